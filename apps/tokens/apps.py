from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "apps.tokens"
    verbose_name = "Service tokens"
