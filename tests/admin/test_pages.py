"""Every admin page renders and saves for a verified staff user."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.identity.models import LoginSession
from apps.policies.models import Application, Policy, Rule
from apps.proxy.keys import current_key
from apps.tokens.service import issue_token

pytestmark = pytest.mark.django_db

MODELS = [
    "policies_application",
    "policies_policy",
    "tokens_servicetoken",
    "proxy_signingkey",
    "audit_auditevent",
    "identity_loginsession",
    "auth_user",
]


@pytest.fixture
def objects(grafana: Application, staff_user: Any) -> dict[str, Any]:
    member = get_user_model().objects.create_user("ann@corp.example")
    login = LoginSession.objects.create(
        sid="s" * 32, user=member, method="pin", client_ip="10.0.0.9"
    )
    AuditEvent.objects.create(time="2026-01-01T00:00:00Z", kind="login", actor="ann")
    return {
        "policies_application": grafana,
        "policies_policy": grafana.policies.get(),
        "tokens_servicetoken": issue_token("ci").token,
        "proxy_signingkey": current_key(),
        "audit_auditevent": AuditEvent.objects.first(),
        "identity_loginsession": login,
        "auth_user": member,
    }


@pytest.mark.parametrize("model", MODELS)
def test_admin_changelist_renders(
    staff_client: Client, objects: dict, model: str
) -> None:
    response = staff_client.get(reverse(f"admin:{model}_changelist"))
    assert response.status_code == 200


@pytest.mark.parametrize("model", MODELS)
def test_admin_change_page_renders(
    staff_client: Client, objects: dict, model: str
) -> None:
    response = staff_client.get(
        reverse(f"admin:{model}_change", args=[objects[model].pk])
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "model",
    ["policies_application", "policies_policy", "tokens_servicetoken", "auth_user"],
)
def test_admin_add_page_renders(
    staff_client: Client, objects: dict, model: str
) -> None:
    assert staff_client.get(reverse(f"admin:{model}_add")).status_code == 200


def test_admin_index_lists_sections_and_tester(staff_client: Client) -> None:
    body = staff_client.get(reverse("admin:index")).content.decode()
    for label in ("Applications", "Service tokens", "Audit events", "Signing keys"):
        assert label in body
    assert reverse("admin:policy_tester") in body


def app_form(**overrides: str) -> dict[str, str]:
    data = {
        "name": "Sentry",
        "slug": "sentry",
        "hosts": "sentry.corp.example",
        "path": "",
        "upstream": "http://10.0.0.7:9000",
        "session_duration": "8:00:00",
        "audience": "",
        "identity_header": "",
        "launcher": "on",
        "enabled": "on",
        "ca_bundle": "",
        "connect_timeout": "5",
        "read_timeout": "60",
        "cors_mode": "upstream",
        "cors_origins": "",
        "policies-TOTAL_FORMS": "1",
        "policies-INITIAL_FORMS": "0",
        "policies-MIN_NUM_FORMS": "0",
        "policies-MAX_NUM_FORMS": "1000",
        "policies-0-name": "staff",
        "policies-0-action": "allow",
        "policies-0-precedence": "10",
        "policies-0-session_duration": "",
        "policies-0-rules_text": (
            "include email_domain corp.example\n"
            "include github_team acme/ops\n"
            "require ip_range 10.0.0.0/8\n"
            "exclude email eve@corp.example\n"
        ),
    }
    data.update(overrides)
    return data


def test_application_add_with_policy_and_rules_saves(staff_client: Client) -> None:
    response = staff_client.post(reverse("admin:policies_application_add"), app_form())
    assert response.status_code == 302, response.content.decode()[:3000]
    app = Application.objects.get(slug="sentry")
    policy = app.policies.get(name="staff")
    rules = set(policy.rules.values_list("kind", "selector", "value"))
    assert rules == {
        ("include", "email_domain", "corp.example"),
        ("include", "github_team", "acme/ops"),
        ("require", "ip_range", "10.0.0.0/8"),
        ("exclude", "email", "eve@corp.example"),
    }
    event = AuditEvent.objects.get(kind="admin_add")
    assert event.actor == "root"
    assert event.application == "sentry"


def errors_of(response: Any) -> str:
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"upstream": "ftp://10.0.0.7/"}, "http:// or https://"),
        ({"hosts": "grafana.corp.example"}, "already used by application"),
        ({"policies-0-rules_text": "include ip_range 10.0.0/8"}, "is not a CIDR range"),
        ({"policies-0-rules_text": "include nobody x"}, "unknown selector"),
        (
            {"policies-0-action": "bypass"},
            "a bypass policy may use only",
        ),
        ({"policies-0-rules_text": "include"}, "line 1: write"),
        ({"policies-0-rules_text": "maybe everyone"}, "unknown rule kind"),
        ({"policies-0-rules_text": "include github_team acme"}, "org/team"),
    ],
)
def test_application_add_invalid_shows_model_error(
    staff_client: Client, grafana: Application, overrides: dict, message: str
) -> None:
    response = staff_client.post(
        reverse("admin:policies_application_add"), app_form(**overrides)
    )
    assert message in errors_of(response)
    assert not Application.objects.filter(slug="sentry").exists()


def test_application_change_edits_rules_text(
    staff_client: Client, grafana: Application
) -> None:
    policy = grafana.policies.get()
    url = reverse("admin:policies_application_change", args=[grafana.pk])
    page = staff_client.get(url).content.decode()
    assert "include email_domain corp.example\nexclude email eve@corp.example" in page
    data = app_form(
        name="Grafana",
        slug="grafana",
        hosts="grafana.corp.example",
        upstream="http://10.0.0.5:3000",
        **{
            "policies-INITIAL_FORMS": "1",
            "policies-0-id": str(policy.pk),
            "policies-0-application": str(grafana.pk),
            "policies-0-rules_text": "include github_org acme",
        },
    )
    response = staff_client.post(url, data)
    assert response.status_code == 302
    assert list(policy.rules.values_list("selector", "value")) == [
        ("github_org", "acme")
    ]
    event = AuditEvent.objects.get(kind="admin_change")
    assert event.detail["model"] == "policies.application"
    assert "policy" in str(event.detail["changes"])


def test_policy_page_rule_inline_bypass_rejects_email(
    staff_client: Client, grafana: Application
) -> None:
    data = {
        "application": str(grafana.pk),
        "name": "open",
        "action": "bypass",
        "precedence": "1",
        "session_duration": "",
        "rules-TOTAL_FORMS": "1",
        "rules-INITIAL_FORMS": "0",
        "rules-MIN_NUM_FORMS": "0",
        "rules-MAX_NUM_FORMS": "1000",
        "rules-0-kind": "include",
        "rules-0-selector": "email",
        "rules-0-value": "a@corp.example",
    }
    response = staff_client.post(reverse("admin:policies_policy_add"), data)
    assert "a bypass policy may use only" in errors_of(response)
    data["rules-0-selector"] = "ip_range"
    data["rules-0-value"] = "10.1.2.3/8"
    response = staff_client.post(reverse("admin:policies_policy_add"), data)
    assert response.status_code == 302
    rule = Rule.objects.get(policy__name="open")
    assert rule.value == "10.0.0.0/8"


def test_policy_delete_is_audited(staff_client: Client, grafana: Application) -> None:
    policy = grafana.policies.get()
    response = staff_client.post(
        reverse("admin:policies_policy_delete", args=[policy.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Policy.objects.exists()
    event = AuditEvent.objects.get(kind="admin_delete")
    assert event.application == "grafana"
    assert event.detail["object"] == "staff (allow)"


def test_application_revoke_sessions_action(
    staff_client: Client, grafana: Application
) -> None:
    from apps.proxy.revocation import is_cookie_revoked

    assert not is_cookie_revoked("sid", 1, grafana.pk, issued_at=0)
    response = staff_client.post(
        reverse("admin:policies_application_changelist"),
        {"action": "revoke_sessions", "_selected_action": [grafana.pk]},
    )
    assert response.status_code == 302
    assert is_cookie_revoked("sid", 1, grafana.pk, issued_at=0)
    assert AuditEvent.objects.filter(
        kind="app_sessions_revoked", application="grafana", actor="root"
    ).exists()


def test_user_revoke_sessions_action_ends_logins(staff_client: Client) -> None:
    member = get_user_model().objects.create_user("ann@corp.example")
    login = LoginSession.objects.create(sid="a" * 32, user=member, method="pin")
    response = staff_client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "revoke_sessions", "_selected_action": [member.pk]},
    )
    assert response.status_code == 302
    login.refresh_from_db()
    assert login.ended_at is not None
    event = AuditEvent.objects.get(kind="user_sessions_revoked")
    assert event.detail["sessions_ended"] == 1


def test_login_session_admin_is_read_only(staff_client: Client, objects: dict) -> None:
    login = objects["identity_loginsession"]
    page = staff_client.get(
        reverse("admin:identity_loginsession_change", args=[login.pk])
    ).content.decode()
    assert login.sid not in page
    assert (
        staff_client.get(reverse("admin:identity_loginsession_add")).status_code == 403
    )


def test_signing_key_page_hides_private_material(
    staff_client: Client, objects: dict
) -> None:
    key = objects["proxy_signingkey"]
    for url in (
        reverse("admin:proxy_signingkey_changelist"),
        reverse("admin:proxy_signingkey_change", args=[key.pk]),
    ):
        body = staff_client.get(url).content.decode()
        assert "PRIVATE KEY" not in body
        assert key.private_pem.splitlines()[1] not in body
        assert key.kid in body


def test_signing_key_rotate_button_rotates_and_audits(
    staff_client: Client, objects: dict
) -> None:
    old = objects["proxy_signingkey"]
    assert staff_client.get(reverse("admin:proxy_signingkey_rotate")).status_code == 405
    response = staff_client.post(reverse("admin:proxy_signingkey_rotate"))
    assert response.status_code == 302
    assert current_key().kid != old.kid
    event = AuditEvent.objects.get(kind="signing_key_rotated")
    assert event.detail["kid"] == current_key().kid
    assert event.actor == "root"


def test_user_add_is_audited(staff_client: Client) -> None:
    response = staff_client.post(
        reverse("admin:auth_user_add"),
        {
            "username": "bob",
            "password1": "a-long-enough-password-1",
            "password2": "a-long-enough-password-1",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(kind="admin_add")
    assert event.detail["model"] == "auth.user"
    assert "a-long-enough-password-1" not in str(event.detail)


def test_every_registered_admin_is_audited() -> None:
    from django.contrib import admin

    from apps.audit.adminlog import AuditMixin

    assert admin.site._registry
    for model, model_admin in admin.site._registry.items():
        assert isinstance(model_admin, AuditMixin), model


def test_group_add_through_third_party_admin_is_audited(staff_client: Client) -> None:
    response = staff_client.post(reverse("admin:auth_group_add"), {"name": "ops"})
    assert response.status_code == 302
    event = AuditEvent.objects.get(kind="admin_add")
    assert event.detail["model"] == "auth.group"
    assert event.actor == "root"
