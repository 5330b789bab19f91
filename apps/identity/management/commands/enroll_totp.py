"""Give an admin account a TOTP device (and optional backup codes)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit.service import record_event


class Command(BaseCommand):
    help = (
        "Create a confirmed TOTP device for USERNAME and print its otpauth:// "
        "URI for an authenticator app; --backup-codes N also prints N "
        "single-use codes."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--backup-codes", type=int, default=0, metavar="N")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="delete the user's existing TOTP and backup-code devices first",
        )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        count = options["backup_codes"]
        if count < 0 or count > 50:
            raise CommandError("--backup-codes must be between 0 and 50")
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no user named {options['username']!r}")
        if not user.is_staff:
            self.stderr.write("Note: this user is not staff and cannot use the admin.")
        if options["replace"]:
            TOTPDevice.objects.filter(user=user).delete()
            StaticDevice.objects.filter(user=user).delete()
        elif TOTPDevice.objects.filter(user=user).exists():
            # A second device would silently leave the first one valid.
            raise CommandError(
                f"{user.get_username()} already has an authenticator; run again "
                "with --replace to swap it (the old one stops working)"
            )
        device = TOTPDevice.objects.create(
            user=user, name="authenticator", confirmed=True
        )
        self.stdout.write(
            f"TOTP URI (add it to an authenticator app): {device.config_url}"
        )
        if count:
            static = StaticDevice.objects.create(
                user=user, name="backup codes", confirmed=True
            )
            self.stdout.write("Backup codes (each works once):")
            for _ in range(count):
                token = StaticToken.random_token()
                static.token_set.create(token=token)
                self.stdout.write(f"  {token}")
        record_event(
            "totp_enrolled",
            actor="cli",
            outcome="ok",
            detail={"user": user.get_username(), "backup_codes": count},
        )
