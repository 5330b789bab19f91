"""``manage.py issue_token``: a token for scripts, its secret printed once."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.tokens.models import ServiceToken
from apps.tokens.service import hash_secret

pytestmark = pytest.mark.django_db


def issue(*args: str) -> str:
    out = StringIO()
    call_command("issue_token", *args, stdout=out)
    return out.getvalue()


def test_issue_token_prints_id_and_secret_once() -> None:
    output = issue("deploy-bot", "--expires-days", "7")
    client_id = re.search(r"^Access-Client-Id: (\S+)$", output, re.M)
    secret = re.search(r"^Access-Client-Secret: (\S+)$", output, re.M)
    assert client_id and secret
    token = ServiceToken.objects.get(name="deploy-bot")
    assert token.client_id == client_id.group(1)
    assert token.secret_hash == hash_secret(secret.group(1))
    assert output.count(secret.group(1)) == 1
    lifetime = token.expires_at - timezone.now()
    assert timedelta(days=6, hours=23) < lifetime <= timedelta(days=7)
    event = AuditEvent.objects.get(kind="token_issued")
    assert event.actor == "cli"
    assert secret.group(1) not in str(event.detail)


def test_issue_token_default_expiry_one_year() -> None:
    issue("ci")
    lifetime = ServiceToken.objects.get().expires_at - timezone.now()
    assert timedelta(days=364) < lifetime <= timedelta(days=365)


def test_issue_token_duplicate_name_fails() -> None:
    issue("ci")
    with pytest.raises(CommandError, match="name"):
        issue("ci")
    assert ServiceToken.objects.count() == 1


@pytest.mark.parametrize("days", ["0", "-1", "5000"])
def test_issue_token_bad_expiry_fails(days: str) -> None:
    with pytest.raises(CommandError, match="expires-days"):
        issue("ci", "--expires-days", days)
    assert not ServiceToken.objects.exists()
