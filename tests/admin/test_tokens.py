"""Service tokens in the admin: the secret is shown once, then never."""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.tokens.models import ServiceToken
from apps.tokens.service import check_secret, hash_secret, issue_token

pytestmark = pytest.mark.django_db


def secret_on(body: str) -> str:
    start = body.index('<code id="client-secret">') + len('<code id="client-secret">')
    return body[start : body.index("</code>", start)]


def test_token_issue_shows_secret_once(
    staff_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = staff_client.post(
        reverse("admin:tokens_servicetoken_add"), {"name": "ci", "expires_days": "30"}
    )
    assert response.status_code == 200
    assert (
        response["Cache-Control"].startswith("max-age=0")
        or "no-store" in response["Cache-Control"]
    )
    body = response.content.decode()
    secret = secret_on(body)
    token = ServiceToken.objects.get(name="ci")
    assert body.count(secret) == 1
    assert token.client_id in body
    assert token.secret_hash == hash_secret(secret)
    assert token.created_by == "root"

    # Never again: not on the list, the change page, the audit log or in logs.
    for url in (
        reverse("admin:tokens_servicetoken_changelist"),
        reverse("admin:tokens_servicetoken_change", args=[token.pk]),
        reverse("admin:audit_auditevent_changelist"),
        reverse("admin:index"),
    ):
        page = staff_client.get(url).content.decode()
        assert secret not in page
        assert token.secret_hash not in page
    assert secret not in caplog.text
    assert secret not in str(list(AuditEvent.objects.values("detail")))
    assert secret not in str(dict(staff_client.session))
    assert AuditEvent.objects.filter(kind="token_issued", actor="root").exists()


def test_token_issue_duplicate_name_shows_error(staff_client: Client) -> None:
    issue_token("ci")
    response = staff_client.post(
        reverse("admin:tokens_servicetoken_add"), {"name": "ci", "expires_days": "30"}
    )
    assert response.status_code == 200
    assert "a token with this name exists" in response.content.decode()
    assert ServiceToken.objects.count() == 1


@pytest.mark.parametrize("days", ["0", "4000", "x"])
def test_token_issue_bad_expiry_rejected(staff_client: Client, days: str) -> None:
    response = staff_client.post(
        reverse("admin:tokens_servicetoken_add"), {"name": "ci", "expires_days": days}
    )
    assert response.status_code == 200
    assert not ServiceToken.objects.exists()


def test_token_rotate_shows_new_secret_once_old_in_grace(staff_client: Client) -> None:
    issued = issue_token("ci")
    url = reverse("admin:tokens_servicetoken_rotate", args=[issued.token.pk])
    assert staff_client.get(url).status_code == 200
    response = staff_client.post(url, {"grace_hours": "2"})
    body = response.content.decode()
    new_secret = secret_on(body)
    assert new_secret != issued.secret
    assert body.count(new_secret) == 1
    token = ServiceToken.objects.get(pk=issued.token.pk)
    assert token.previous_valid_until is not None
    now = token.previous_valid_until.replace(microsecond=0)
    args = (token.secret_hash, token.previous_secret_hash, token.previous_valid_until)
    assert check_secret(new_secret, *args, now=now)
    assert check_secret(issued.secret, *args, now=now)
    change = staff_client.get(
        reverse("admin:tokens_servicetoken_change", args=[token.pk])
    ).content.decode()
    assert new_secret not in change
    assert AuditEvent.objects.filter(kind="token_rotated", actor="root").exists()


def test_token_revoke_page_and_action(staff_client: Client) -> None:
    first = issue_token("one").token
    second = issue_token("two").token
    response = staff_client.post(
        reverse("admin:tokens_servicetoken_revoke", args=[first.pk])
    )
    assert response.status_code == 302
    response = staff_client.post(
        reverse("admin:tokens_servicetoken_changelist"),
        {"action": "revoke_selected", "_selected_action": [second.pk]},
    )
    assert response.status_code == 302
    assert ServiceToken.objects.filter(revoked_at__isnull=True).count() == 0
    assert AuditEvent.objects.filter(kind="token_revoked", actor="root").count() == 2
    # A revoked token cannot be brought back by rotation.
    response = staff_client.post(
        reverse("admin:tokens_servicetoken_rotate", args=[first.pk]),
        {"grace_hours": "1"},
    )
    assert response.status_code == 302
    assert ServiceToken.objects.get(pk=first.pk).previous_secret_hash == ""


def test_token_change_name_audited(staff_client: Client) -> None:
    token = issue_token("old-name").token
    url = reverse("admin:tokens_servicetoken_change", args=[token.pk])
    response = staff_client.post(
        url,
        {
            "name": "new-name",
            "expires_at_0": token.expires_at.strftime("%Y-%m-%d"),
            "expires_at_1": token.expires_at.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.name == "old-name"  # names stay as issued; see the admin
    event = AuditEvent.objects.get(kind="admin_change")
    assert event.detail["object"] == "old-name"


def test_token_delete_revokes_at_once_and_audits(staff_client: Client) -> None:
    from apps.proxy.revocation import is_token_revoked

    token = issue_token("gone").token
    response = staff_client.post(
        reverse("admin:tokens_servicetoken_delete", args=[token.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not ServiceToken.objects.exists()
    assert is_token_revoked(token.pk)
    assert AuditEvent.objects.get(kind="admin_delete").detail["object"] == "gone"


def test_token_change_form_cannot_rename_or_extend(staff_client: Client) -> None:
    issued = issue_token("deploy-bot")
    url = reverse("admin:tokens_servicetoken_change", args=[issued.token.pk])
    assert staff_client.get(url).status_code == 200
    staff_client.post(
        url,
        {"name": "other-bot", "expires_at_0": "2300-01-01", "expires_at_1": "00:00:00"},
    )
    issued.token.refresh_from_db()
    assert issued.token.name == "deploy-bot"
    assert issued.token.expires_at.year < 2300
