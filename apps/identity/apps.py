from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "apps.identity"
    verbose_name = "Sign-in"

    def ready(self) -> None:
        from apps.identity.github import configure_urls

        configure_urls()
