"""Create the demo's admin account, sample application and policy."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.policies.models import Application, Policy, Rule

DEMO_DOMAIN = "example.com"


class Command(BaseCommand):
    help = "Seed the demo: an admin, the whoami application and an allow policy."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--upstream", default="http://127.0.0.1:8001")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEMO:
            raise CommandError("seed_demo runs only with ACCESSPORTAL_DEMO=1")
        users = get_user_model()
        admin = users.objects.filter(username="admin").first()
        if admin is None:
            password = secrets.token_urlsafe(12)
            users.objects.create_superuser("admin", "admin@example.com", password)
            self.stdout.write(f"Admin account: admin / {password}  (shown once)")
        else:
            self.stdout.write(
                "Admin account: admin (already exists; password unchanged)"
            )
        app, created = Application.objects.get_or_create(
            slug="whoami",
            defaults={
                "name": "whoami (demo upstream)",
                "hosts": "whoami.localhost",
                "upstream": options["upstream"],
            },
        )
        if not created and app.upstream != options["upstream"]:
            app.upstream = options["upstream"]  # the demo upstream moved port
            app.full_clean()
            app.save()
        if created:
            app.full_clean()
            app.save()
            policy = Policy.objects.create(
                application=app, name="demo-domain", action="allow", precedence=10
            )
            Rule.objects.create(
                policy=policy,
                kind="include",
                selector="email_domain",
                value=DEMO_DOMAIN,
            )
        port = f":{settings.PORTAL.port}" if settings.PORTAL.port else ""
        self.stdout.write(
            f"Application: {settings.PORTAL.scheme}://whoami.localhost{port}/ "
            f"(anyone@{DEMO_DOMAIN} may sign in; the PIN is printed here)"
        )
