from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    name = "apps.policies"
    verbose_name = "Applications and policies"

    def ready(self) -> None:
        from apps.policies import signals  # noqa: F401
