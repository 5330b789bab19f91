"""Make a new assertion signing key; the previous one stays published."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.proxy.keys import rotate_signing_key


class Command(BaseCommand):
    help = (
        "Make a new ES256 signing key for X-Access-Jwt-Assertion. The previous "
        "key stays in /.well-known/jwks.json so upstreams keep verifying."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        key = rotate_signing_key()
        self.stdout.write(f"new signing key {key.kid}")
