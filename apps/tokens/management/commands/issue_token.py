"""Issue a service token for a script and print its secret once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.policies.ruletext import error_text
from apps.tokens.service import issue_token


class Command(BaseCommand):
    help = "Issue a service token; its client id and secret are printed once."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")
        parser.add_argument("--expires-days", type=int, default=365)

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["expires_days"]
        if days < 1 or days > 3650:
            raise CommandError("--expires-days must be between 1 and 3650")
        try:
            issued = issue_token(
                options["name"], lifetime=timedelta(days=days), actor="cli"
            )
        except ValidationError as exc:
            raise CommandError(error_text(exc)) from None
        # stdout only: the secret is never logged, and cannot be shown again.
        self.stdout.write(f"Access-Client-Id: {issued.client_id}")
        self.stdout.write(f"Access-Client-Secret: {issued.secret}")
        self.stdout.write(
            f"Expires: {issued.token.expires_at:%Y-%m-%d %H:%M} UTC. "
            "Store the secret now: it is not shown again."
        )
