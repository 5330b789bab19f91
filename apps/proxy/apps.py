from django.apps import AppConfig


class ProxyConfig(AppConfig):
    name = "apps.proxy"
    verbose_name = "Proxy and signing keys"
