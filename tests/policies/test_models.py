"""Model validation: the same errors for the admin, config import and scripts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from apps.policies.models import Application, Policy, Rule

pytestmark = pytest.mark.django_db


def make_app(**overrides: object) -> Application:
    values: dict[str, object] = {
        "name": "Grafana",
        "slug": "grafana",
        "hosts": "grafana.corp.example",
        "upstream": "http://10.0.0.5:3000",
    }
    values.update(overrides)
    return Application(**values)


def error_fields(instance: object) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        instance.full_clean()  # type: ignore[attr-defined]
    return set(caught.value.message_dict)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"upstream": "ftp://10.0.0.5/"}, "upstream"),
        ({"upstream": "http://"}, "upstream"),
        ({"upstream": "10.0.0.5:3000"}, "upstream"),
        ({"upstream": "http://user:pw@10.0.0.5/"}, "upstream"),
        ({"upstream": "http://10.0.0.5/?q=1"}, "upstream"),
        ({"upstream": "http://10.0.0.5:99999/"}, "upstream"),
        ({"hosts": ""}, "hosts"),
        ({"hosts": "bad_host!.example"}, "hosts"),
        ({"hosts": "a.example\na.example"}, "hosts"),
        ({"path": "/a//b?x"}, "path"),
        ({"hosts": "localhost", "path": "/admin"}, "path"),
        ({"hosts": "localhost", "path": ""}, "path"),
        ({"strip_prefix": True}, "strip_prefix"),
        ({"identity_header": "X Bad"}, "identity_header"),
        ({"session_duration": timedelta(0)}, "session_duration"),
        ({"read_timeout": 0}, "read_timeout"),
        ({"cors_origins": "https://ok.example/path"}, "cors_origins"),
    ],
)
def test_application_clean_bad_field_names_it(overrides: dict, field: str) -> None:
    assert field in error_fields(make_app(**overrides))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"hosts": "10.1.2.3"},
        {"hosts": "::1"},
        {"hosts": "GRAFANA.corp.example, metrics.corp.example"},
        {"hosts": "localhost", "path": "/grafana", "strip_prefix": True},
        {"upstream": "https://grafana.internal:8443/base"},
        {"cors_origins": "https://app.example\nhttp://localhost:3000"},
    ],
)
def test_application_clean_good_values_pass(overrides: dict) -> None:
    make_app(**overrides).full_clean()


def test_application_clean_same_host_and_path_clashes() -> None:
    first = make_app()
    first.full_clean()
    first.save()
    second = make_app(slug="grafana2", hosts="grafana.corp.example")
    assert "hosts" in error_fields(second)


def test_application_clean_same_host_other_path_passes() -> None:
    make_app().save()
    make_app(slug="api", path="/api/*/envelope").full_clean()


def rule(policy: Policy, selector: str, value: str = "") -> Rule:
    return Rule(policy=policy, kind="include", selector=selector, value=value)


@pytest.fixture
def allow_policy() -> Policy:
    app = make_app()
    app.save()
    return Policy.objects.create(application=app, name="staff", action="allow")


@pytest.mark.parametrize(
    ("selector", "value"),
    [
        ("ip_range", "10.0.0/8"),
        ("ip_range", "10.0.0.0/33"),
        ("ip_range", "not-an-ip"),
        ("email", "no-at-sign"),
        ("email", "a@b@corp.example"),
        ("email_domain", "a@corp.example"),
        ("email_domain", "corp"),
        ("github_team", "acme"),
        ("github_team", "acme/"),
        ("github_org", "bad org"),
        ("login_method", "password"),
        ("everyone", "someone"),
        ("email", ""),
        ("no_such_selector", "x"),
    ],
)
def test_rule_clean_bad_value_rejected(
    allow_policy: Policy, selector: str, value: str
) -> None:
    with pytest.raises(ValidationError):
        rule(allow_policy, selector, value).full_clean()


@pytest.mark.parametrize(
    ("selector", "value", "stored"),
    [
        ("ip_range", "10.1.2.3/8", "10.0.0.0/8"),
        ("ip_range", "2001:db8::/32", "2001:db8::/32"),
        ("email", "Ann@Corp.Example", "ann@corp.example"),
        ("email_domain", "Corp.Example", "corp.example"),
        ("email_domain", "*.corp.example", "*.corp.example"),
        ("github_team", "Acme/Ops", "acme/ops"),
        ("login_method", "GitHub", "github"),
        ("everyone", "", ""),
    ],
)
def test_rule_clean_good_value_normalised(
    allow_policy: Policy, selector: str, value: str, stored: str
) -> None:
    item = rule(allow_policy, selector, value)
    item.full_clean()
    assert item.value == stored


@pytest.mark.parametrize(
    ("selector", "value", "is_ok"),
    [
        ("everyone", "", True),
        ("ip_range", "10.0.0.0/8", True),
        ("email", "a@corp.example", False),
        ("email_domain", "corp.example", False),
        ("github_org", "acme", False),
        ("any_service_token", "", False),
    ],
)
def test_rule_clean_bypass_only_everyone_and_ip(
    selector: str, value: str, is_ok: bool
) -> None:
    app = make_app()
    app.save()
    policy = Policy.objects.create(application=app, name="open", action="bypass")
    item = rule(policy, selector, value)
    if is_ok:
        item.full_clean()
    else:
        with pytest.raises(ValidationError) as caught:
            item.full_clean()
        assert "selector" in caught.value.message_dict


@pytest.mark.parametrize(
    ("action", "kind", "selector", "value", "is_ok"),
    [
        ("allow", "include", "any_service_token", "", False),
        ("block", "include", "service_token", "ci", False),
        ("allow", "require", "any_service_token", "", False),
        ("service_auth", "include", "any_service_token", "true", True),
        ("service_auth", "include", "service_token", "ci", True),
        ("service_auth", "require", "ip_range", "10.0.0.0/8", True),
        ("service_auth", "exclude", "service_token", "old", True),
        ("service_auth", "include", "everyone", "", False),
        ("service_auth", "include", "email_domain", "corp.example", False),
        ("service_auth", "require", "github_org", "acme", False),
        ("allow", "include", "email", "a@corp.example", True),
    ],
)
def test_rule_clean_selectors_fit_the_policy_action(
    action: str, kind: str, selector: str, value: str, is_ok: bool
) -> None:
    app = make_app()
    app.save()
    policy = Policy.objects.create(application=app, name="p", action=action)
    item = Rule(policy=policy, kind=kind, selector=selector, value=value)
    if is_ok:
        item.full_clean()
    else:
        with pytest.raises(ValidationError) as caught:
            item.full_clean()
        assert "selector" in caught.value.message_dict


def test_policy_clean_negative_session_rejected(allow_policy: Policy) -> None:
    allow_policy.session_duration = timedelta(hours=-1)
    assert "session_duration" in error_fields(allow_policy)


def test_policy_name_unique_within_application(allow_policy: Policy) -> None:
    twin = Policy(application=allow_policy.application, name="staff", action="block")
    assert "__all__" in error_fields(twin)


@pytest.mark.parametrize(
    ("header", "is_ok"),
    [
        ("X-WEBAUTH-USER", True),
        ("Remote-User", True),
        ("X-Forwarded-User", True),
        ("Host", False),
        ("content-length", False),
        ("Transfer-Encoding", False),
        ("Connection", False),
        ("Cookie", False),
        ("Authorization", False),
        ("X-Forwarded-For", False),
        ("X_Forwarded_Host", False),
        ("X-Access-Jwt-Assertion", False),
        ("X-Auth-Request-Email", False),
        ("Access-Client-Secret", False),
        ("CF-Access-Client-Id", False),
        ("True-Client-IP", False),
        ("CF-Connecting-IP", False),
        ("X-Forwarded", False),
        ("X-Forwarded-Prefix", False),
        ("X-Original-URL", False),
        ("Max-Forwards", False),
        ("X-Forwarded-Email", True),
    ],
)
def test_application_clean_identity_header_not_a_reserved_one(
    header: str, is_ok: bool
) -> None:
    app = make_app()
    app.identity_header = header
    try:
        app.full_clean()
        fields: set[str] = set()
    except ValidationError as caught:
        fields = set(caught.message_dict)
    assert ("identity_header" not in fields) is is_ok


@pytest.mark.parametrize("field", ["connect_timeout", "read_timeout"])
@pytest.mark.parametrize("value", [0, -1])
def test_application_clean_timeout_error_names_its_field(
    field: str, value: float
) -> None:
    app = make_app()
    setattr(app, field, value)
    fields = error_fields(app)
    assert field in fields
    other = {"connect_timeout", "read_timeout"} - {field}
    assert not other & set(fields)
