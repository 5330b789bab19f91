"""An admin signed in the way production requires: password and TOTP."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.policies.models import Application, Policy, Rule

PASSWORD = "correct horse battery staple"


@pytest.fixture
def staff_user(db: Any) -> Any:
    return get_user_model().objects.create_superuser(
        "root", "root@corp.example", PASSWORD
    )


@pytest.fixture
def staff_client(client: Client, staff_user: Any) -> Client:
    """A client whose session is verified by a TOTP device."""
    device = TOTPDevice.objects.create(user=staff_user, name="phone", confirmed=True)
    client.force_login(staff_user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


@pytest.fixture
def grafana(db: Any) -> Application:
    app = Application(
        name="Grafana",
        slug="grafana",
        hosts="grafana.corp.example",
        upstream="http://10.0.0.5:3000",
    )
    app.full_clean()
    app.save()
    staff = Policy.objects.create(
        application=app, name="staff", action="allow", precedence=10
    )
    Rule.objects.create(
        policy=staff, kind="include", selector="email_domain", value="corp.example"
    )
    Rule.objects.create(
        policy=staff, kind="exclude", selector="email", value="eve@corp.example"
    )
    return app
