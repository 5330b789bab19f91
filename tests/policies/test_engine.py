"""The policy engine's semantics, with hostile inputs."""

from __future__ import annotations

import ipaddress

import pytest

from apps.policies.engine import (
    ANONYMOUS,
    Identity,
    Outcome,
    PolicySet,
    PolicySpec,
    evaluate_access,
    make_rule,
    parse_ip,
)


def policy(
    name: str,
    action: str = "allow",
    precedence: int = 10,
    include: tuple = (),
    require: tuple = (),
    exclude: tuple = (),
) -> PolicySpec:
    def rules(kind: str, items: tuple) -> tuple:
        return tuple(make_rule(kind, sel, val) for sel, val in items)

    return PolicySpec(
        name=name,
        action=action,
        precedence=precedence,
        session_duration=None,
        include=rules("include", include),
        require=rules("require", require),
        exclude=rules("exclude", exclude),
    )


def user(email: str, **facts: object) -> Identity:
    return Identity(kind="user", sub="u", email=email, **facts)  # type: ignore[arg-type]


TOKEN = Identity(kind="service", sub="token:x", token_id=1, token_name="ci")


def decide(policies: list[PolicySpec], who: Identity, ip: str = "") -> Outcome:
    return evaluate_access(PolicySet.build(policies), who, parse_ip(ip)).outcome


@pytest.mark.parametrize(
    ("email", "outcome"),
    [
        ("a@corp.example", Outcome.ALLOW),
        ("A@CORP.EXAMPLE", Outcome.ALLOW),
        ("a@corp.example.evil", Outcome.DENY),
        ("a@evil@corp.example", Outcome.DENY),
        ("a@notcorp.example", Outcome.DENY),
        ("a@sub.corp.example", Outcome.DENY),
        ("@corp.example", Outcome.DENY),
        ("corp.example", Outcome.DENY),
    ],
)
def test_email_domain_exact_lookalikes_denied(email: str, outcome: Outcome) -> None:
    rules = [policy("staff", include=(("email_domain", "corp.example"),))]
    assert decide(rules, user(email)) is outcome


@pytest.mark.parametrize(
    ("email", "outcome"),
    [
        ("a@eu.corp.example", Outcome.ALLOW),
        ("a@x.eu.corp.example", Outcome.ALLOW),
        ("a@corp.example", Outcome.DENY),
        ("a@evilcorp.example", Outcome.DENY),
        ("a@eu.corp.example.evil", Outcome.DENY),
    ],
)
def test_email_domain_wildcard_subdomains_only(email: str, outcome: Outcome) -> None:
    rules = [policy("subs", include=(("email_domain", "*.corp.example"),))]
    assert decide(rules, user(email)) is outcome


@pytest.mark.parametrize(
    ("ip", "outcome"),
    [
        ("10.1.2.3", Outcome.ALLOW),
        ("11.0.0.1", Outcome.DENY),
        ("2001:db8::5", Outcome.ALLOW),
        ("2001:db9::5", Outcome.DENY),
        ("::ffff:10.0.0.1", Outcome.ALLOW),
        ("", Outcome.DENY),
        ("not-an-ip", Outcome.DENY),
    ],
)
def test_ip_range_v4_v6_required(ip: str, outcome: Outcome) -> None:
    rules = [
        policy(
            "office",
            include=(("everyone", ""),),
            require=(("ip_range", "10.0.0.0/8"),),
        ),
        policy(
            "office6",
            include=(("everyone", ""),),
            require=(("ip_range", "2001:db8::/32"),),
        ),
    ]
    assert decide(rules, user("a@corp.example"), ip) is outcome


def test_require_all_must_match_else_denied() -> None:
    rules = [
        policy(
            "ops",
            include=(("email_domain", "corp.example"),),
            require=(("github_org", "acme"), ("login_method", "github")),
        )
    ]
    both = user("a@corp.example", orgs=frozenset({"acme"}), method="github")
    one = user("a@corp.example", orgs=frozenset({"acme"}), method="pin")
    assert decide(rules, both) is Outcome.ALLOW
    assert decide(rules, one) is Outcome.DENY


def test_exclude_any_match_denies() -> None:
    rules = [
        policy(
            "staff",
            include=(("email_domain", "corp.example"),),
            exclude=(("email", "contractor@corp.example"),),
        )
    ]
    assert decide(rules, user("contractor@corp.example")) is Outcome.DENY
    assert decide(rules, user("ann@corp.example")) is Outcome.ALLOW


def test_policy_without_include_never_matches() -> None:
    rules = [policy("empty", require=(("email_domain", "corp.example"),))]
    assert decide(rules, user("a@corp.example")) is Outcome.DENY


def test_precedence_lower_first_block_wins() -> None:
    rules = [
        policy("allow-all", precedence=20, include=(("everyone", ""),)),
        policy(
            "block-bob",
            action="block",
            precedence=10,
            include=(("email", "bob@corp.example"),),
        ),
    ]
    decision = evaluate_access(PolicySet.build(rules), user("bob@corp.example"), None)
    assert decision.outcome is Outcome.DENY
    assert decision.policy == "block-bob"


def test_precedence_allow_before_block_allows() -> None:
    rules = [
        policy("allow-bob", precedence=5, include=(("email", "bob@corp.example"),)),
        policy("block-all", action="block", precedence=10, include=(("everyone", ""),)),
    ]
    assert decide(rules, user("bob@corp.example")) is Outcome.ALLOW
    assert decide(rules, user("eve@corp.example")) is Outcome.DENY


def test_bypass_before_allow_and_block_by_precedence() -> None:
    rules = [
        policy("block-all", action="block", precedence=1, include=(("everyone", ""),)),
        policy("health", action="bypass", precedence=99, include=(("everyone", ""),)),
    ]
    decision = evaluate_access(PolicySet.build(rules), ANONYMOUS, None)
    assert decision.outcome is Outcome.BYPASS
    assert decision.policy == "health"


def test_anonymous_without_bypass_gets_login() -> None:
    rules = [policy("all", include=(("everyone", ""),))]
    assert decide(rules, ANONYMOUS) is Outcome.LOGIN


def test_signed_in_nothing_matched_denied() -> None:
    rules = [policy("staff", include=(("github_org", "acme"),))]
    assert decide(rules, user("a@corp.example")) is Outcome.DENY


def test_token_admitted_only_by_service_auth() -> None:
    allow_everyone = policy("all", include=(("everyone", ""),))
    allow_tokens = policy("all-tokens", include=(("any_service_token", ""),))
    assert decide([allow_everyone, allow_tokens], TOKEN) is Outcome.DENY
    service = policy("ci", action="service_auth", include=(("service_token", "ci"),))
    assert decide([service], TOKEN) is Outcome.ALLOW
    other = Identity(kind="service", sub="token:y", token_id=2, token_name="other")
    assert decide([service], other) is Outcome.DENY


def test_service_auth_does_not_admit_users() -> None:
    rules = [policy("svc", action="service_auth", include=(("everyone", ""),))]
    assert decide(rules, user("a@corp.example")) is Outcome.DENY
    assert decide(rules, ANONYMOUS) is Outcome.LOGIN


def test_user_selectors_never_match_tokens() -> None:
    rules = [
        policy(
            "svc",
            action="service_auth",
            include=(("email_domain", "corp.example"), ("github_org", "acme")),
        )
    ]
    assert decide(rules, TOKEN) is Outcome.DENY


def test_team_and_org_selectors_match_membership() -> None:
    rules = [policy("ops", include=(("github_team", "acme/ops"),))]
    member = user("a@x.example", teams=frozenset({"acme/ops"}))
    outsider = user("a@x.example", teams=frozenset({"acme/dev"}))
    assert decide(rules, member) is Outcome.ALLOW
    assert decide(rules, outsider) is Outcome.DENY


def test_evaluate_broken_rule_fails_closed() -> None:
    broken = PolicySpec(
        name="broken",
        action="allow",
        precedence=1,
        session_duration=None,
        include=(make_rule("include", "no_such_selector", "x"),),
    )
    decision = evaluate_access(PolicySet.build([broken]), user("a@corp.example"), None)
    assert decision.outcome is Outcome.DENY
    assert decision.reason == "error"


def test_evaluate_broken_network_fails_closed() -> None:
    bad = make_rule("include", "ip_range", "10.0.0.0/8")
    object.__setattr__(bad, "network", "not a network")
    spec = PolicySpec("bad", "allow", 1, None, include=(bad,))
    ip = ipaddress.ip_address("10.0.0.1")
    decision = evaluate_access(PolicySet.build([spec]), user("a@corp.example"), ip)
    assert decision.outcome is Outcome.DENY
