"""Make a new assertion signing key; the previous one stays published."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.audit.service import record_event
from apps.proxy.keys import rotate_signing_key


class Command(BaseCommand):
    help = "Rotate the ES256 key that signs X-Access-Jwt-Assertion."

    def handle(self, *args: Any, **options: Any) -> None:
        key = rotate_signing_key()
        record_event(
            "signing_key_rotated", actor="cli", outcome="ok", detail={"kid": key.kid}
        )
        self.stdout.write(
            f"New signing key {key.kid}; the previous key stays published."
        )
