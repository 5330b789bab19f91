"""The policy tester answers as the proxy would."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse

from apps.policies.models import Application, Policy, Rule
from apps.tokens.service import issue_token, revoke_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def app(grafana: Application) -> Application:
    health = Policy.objects.create(
        application=grafana, name="health", action="bypass", precedence=1
    )
    Rule.objects.create(policy=health, kind="include", selector="everyone")
    Rule.objects.create(
        policy=health, kind="require", selector="ip_range", value="192.0.2.0/24"
    )
    ci = Policy.objects.create(
        application=grafana, name="ci", action="service_auth", precedence=5
    )
    Rule.objects.create(policy=ci, kind="include", selector="service_token", value="ci")
    ops = Policy.objects.create(
        application=grafana,
        name="ops-github",
        action="allow",
        precedence=5,
        session_duration=timedelta(hours=1),
    )
    Rule.objects.create(
        policy=ops, kind="include", selector="github_team", value="acme/ops"
    )
    Rule.objects.create(
        policy=ops, kind="require", selector="login_method", value="github"
    )
    return grafana


def ask(client: Client, app: Application, **fields: str) -> str:
    query = {"application": str(app.pk), "login_method": "pin", **fields}
    response = client.get(reverse("admin:policy_tester") + "?" + urlencode(query))
    assert response.status_code == 200
    return response.content.decode()


def verdict(body: str) -> str:
    marker = 'class="verdict-'
    start = body.index(marker) + len(marker)
    return body[start : body.index('"', start)]


@pytest.mark.parametrize(
    ("fields", "outcome", "policy"),
    [
        ({"email": "ann@corp.example"}, "allow", "staff"),
        ({"email": "eve@corp.example"}, "deny", ""),
        ({"email": "ann@corp.example.evil"}, "deny", ""),
        ({}, "login", ""),
        ({"client_ip": "192.0.2.7"}, "bypass", "health"),
        (
            {
                "email": "x@other.example",
                "github_teams": "Acme/Ops",
                "login_method": "github",
            },
            "allow",
            "ops-github",
        ),
        ({"email": "x@other.example", "github_teams": "acme/ops"}, "deny", ""),
        ({"service_token": "ci"}, "allow", "ci"),
        ({"service_token": "other"}, "deny", ""),
        ({"service_token": "missing"}, "login", ""),
    ],
)
def test_policy_tester_answers(
    staff_client: Client, app: Application, fields: dict, outcome: str, policy: str
) -> None:
    issue_token("ci")
    issue_token("other")
    body = ask(staff_client, app, **fields)
    assert verdict(body) == outcome
    if policy:
        assert f"Decided by policy: <strong>{policy}</strong>" in body
    else:
        assert "Decided by policy" not in body


def test_policy_tester_revoked_token_is_anonymous(
    staff_client: Client, app: Application
) -> None:
    revoke_token(issue_token("ci").token)
    body = ask(staff_client, app, service_token="ci")
    assert verdict(body) == "login"
    assert "revoked or expired" in body


def test_policy_tester_bad_ip_is_form_error(
    staff_client: Client, app: Application
) -> None:
    body = ask(staff_client, app, email="ann@corp.example", client_ip="10.0.0.300")
    assert "not an IP address" in body
    assert 'class="verdict-' not in body


def test_policy_tester_needs_staff(client: Client, app: Application) -> None:
    response = client.get(reverse("admin:policy_tester"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
