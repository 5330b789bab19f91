"""Print the applications, policies and rules as a config file."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.policies.config import export_config


class Command(BaseCommand):
    help = "Print every application, policy and rule in apply_config's format."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(export_config(), ending="")
