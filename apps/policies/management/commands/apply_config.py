"""Apply a YAML config file: applications, policies and rules."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.policies.config import ConfigError, apply_config


class Command(BaseCommand):
    help = (
        "Create or update applications, policies and rules from a YAML file. "
        "The whole file is checked first; a bad file changes nothing."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="the YAML file ('-' reads stdin)")
        parser.add_argument(
            "--dry-run", action="store_true", help="print the changes, write nothing"
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            help="delete applications and policies the file does not list",
        )
        parser.add_argument(
            "--actor", default="", help="who to name in the audit log (default: cli)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        source = options["file"]
        try:
            if source == "-":
                import sys

                text = sys.stdin.read()
            else:
                text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {source}: {exc}") from None
        actor = options["actor"] or f"cli:{_user()}"
        try:
            plan = apply_config(
                text,
                prune=options["prune"],
                dry_run=options["dry_run"],
                actor=actor,
                source=source,
            )
        except ConfigError as exc:
            raise CommandError(f"{source}: {exc} (nothing was changed)") from None
        if plan.is_empty:
            self.stdout.write("No changes: the database already matches the file.")
            return
        prefix = "would " if options["dry_run"] else ""
        for change in plan.changes:
            self.stdout.write(f"{prefix}{change}")
        if options["dry_run"]:
            self.stdout.write(f"Dry run: {len(plan.changes)} changes, none written.")
        else:
            self.stdout.write(
                self.style.SUCCESS(f"{len(plan.changes)} changes applied.")
            )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
