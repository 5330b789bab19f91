"""Admin sign-in: staff only, TOTP outside demo mode, throttled, audited."""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit.models import AuditEvent
from tests.admin.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"


def enroll(username: str, *extra: str) -> str:
    out = StringIO()
    call_command("enroll_totp", username, *extra, stdout=out)
    return out.getvalue()


def current_code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def test_admin_without_totp_refused_outside_demo(admin_client: Client) -> None:
    response = admin_client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)


def test_admin_without_totp_allowed_in_demo(
    admin_client: Client, settings: Any
) -> None:
    settings.DEMO = True
    assert admin_client.get(reverse("admin:index")).status_code == 200
    page = admin_client.get(LOGIN + "?next=/admin/")
    assert page.status_code in (200, 302)


def test_admin_non_staff_refused(client: Client, settings: Any) -> None:
    settings.DEMO = True
    member = get_user_model().objects.create_user("ann@corp.example", password="x" * 12)
    client.force_login(member)
    assert client.get(reverse("admin:index")).status_code == 302


def test_admin_login_form_asks_for_otp_outside_demo(
    client: Client, settings: Any
) -> None:
    assert 'name="otp_token"' in client.get(LOGIN).content.decode()
    settings.DEMO = True
    assert 'name="otp_token"' not in client.get(LOGIN).content.decode()


def test_admin_login_with_password_and_totp(client: Client, staff_user: Any) -> None:
    enroll("root")
    device = TOTPDevice.objects.get(user=staff_user)
    wrong = client.post(
        LOGIN, {"username": "root", "password": PASSWORD, "otp_token": "000000"}
    )
    assert wrong.status_code == 200
    assert client.get(reverse("admin:index")).status_code == 302
    # django-otp makes a device wait after a miss; skip the wait.
    device.refresh_from_db()
    device.throttle_reset()
    response = client.post(
        LOGIN,
        {"username": "root", "password": PASSWORD, "otp_token": current_code(device)},
    )
    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200
    kinds = list(AuditEvent.objects.values_list("kind", flat=True))
    assert "admin_login" in kinds and "admin_login_failed" in kinds


def test_admin_login_password_only_refused_outside_demo(
    client: Client, staff_user: Any
) -> None:
    enroll("root")
    client.post(LOGIN, {"username": "root", "password": PASSWORD})
    assert client.get(reverse("admin:index")).status_code == 302


def test_enroll_totp_prints_uri_and_backup_codes(
    client: Client, staff_user: Any
) -> None:
    output = enroll("root", "--backup-codes", "3")
    assert re.search(r"otpauth://totp/[^ ]*\?secret=[A-Z2-7]+", output)
    device = TOTPDevice.objects.get(user=staff_user)
    assert device.confirmed
    codes = re.findall(r"^  (\S+)$", output, flags=re.M)
    assert len(codes) == 3
    assert StaticToken.objects.filter(device__user=staff_user).count() == 3
    # A backup code signs in once, then is spent.
    form = {"username": "root", "password": PASSWORD, "otp_token": codes[0]}
    assert client.post(LOGIN, form).status_code == 302
    client.logout()
    assert client.post(LOGIN, form).status_code == 200
    assert AuditEvent.objects.filter(kind="totp_enrolled").exists()


def test_enroll_totp_second_device_needs_replace(staff_user: Any) -> None:
    first = enroll("root")
    with pytest.raises(CommandError, match="--replace"):
        enroll("root")
    assert TOTPDevice.objects.filter(user=staff_user).count() == 1
    second = enroll("root", "--replace")
    assert TOTPDevice.objects.filter(user=staff_user).count() == 1
    assert first != second


def test_enroll_totp_unknown_user_fails(db: Any) -> None:
    with pytest.raises(CommandError, match="no user named"):
        enroll("nobody")


def test_admin_login_throttled_per_username(
    client: Client, staff_user: Any, settings: Any
) -> None:
    settings.DEMO = True
    for _ in range(5):
        response = client.post(LOGIN, {"username": "root", "password": "wrong"})
        assert response.status_code == 200
    # Even the right password is refused while the name is throttled.
    response = client.post(LOGIN, {"username": "root", "password": PASSWORD})
    assert response.status_code == 429
    assert client.get(reverse("admin:index")).status_code == 302
    assert AuditEvent.objects.filter(kind="admin_login_failed").count() == 5
    assert AuditEvent.objects.filter(kind="admin_login_throttled").count() == 1


def test_admin_login_throttled_per_address(
    client: Client, staff_user: Any, settings: Any
) -> None:
    settings.DEMO = True
    for n in range(5):
        client.post(LOGIN, {"username": f"guess{n}", "password": "wrong"})
    other_ip = Client(REMOTE_ADDR="10.9.9.9")
    response = client.post(LOGIN, {"username": "root", "password": PASSWORD})
    assert response.status_code == 429
    assert (
        other_ip.post(LOGIN, {"username": "root", "password": PASSWORD}).status_code
        == 302
    )


def test_admin_login_success_resets_username_counter(
    client: Client, staff_user: Any, settings: Any
) -> None:
    settings.DEMO = True
    for _ in range(4):
        client.post(LOGIN, {"username": "root", "password": "wrong"})
    assert (
        client.post(LOGIN, {"username": "root", "password": PASSWORD}).status_code
        == 302
    )
    client.logout()
    other = Client(REMOTE_ADDR="10.9.9.8")
    for _ in range(4):
        other.post(LOGIN, {"username": "root", "password": "wrong"})
    assert (
        other.post(LOGIN, {"username": "root", "password": PASSWORD}).status_code == 302
    )


def test_admin_login_without_enrolled_device_says_how_to_enrol(
    client: Client, staff_user: Any
) -> None:
    form = {"username": "root", "password": PASSWORD, "otp_token": "123456"}
    page = client.post(LOGIN, form)
    assert page.status_code == 200
    assert b"enroll_totp" in page.content
    assert not page.wsgi_request.user.is_authenticated


def test_admin_login_without_code_asks_for_it_plainly(
    client: Client, staff_user: Any
) -> None:
    enroll("root")
    page = client.post(LOGIN, {"username": "root", "password": PASSWORD})
    assert page.status_code == 200
    assert b"six-digit code" in page.content
