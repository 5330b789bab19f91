"""Class 6: e-mail and domain matching is exact and case-insensitive."""

import pytest

from apps.policies.engine import Identity, make_rule, selector_matches


def _user(email: str) -> Identity:
    return Identity(kind="user", sub="user:1", email=email)


EXACT = make_rule("include", "email_domain", "corp.example")
WILDCARD = make_rule("include", "email_domain", "*.corp.example")
ONE = make_rule("include", "email", "alice@corp.example")


@pytest.mark.parametrize(
    ("email", "matches"),
    [
        ("a@corp.example", True),
        ("A@CORP.EXAMPLE", True),
        ("a@Corp.Example", True),
        ("a@corp.example.evil", False),
        ("a@corp.example.", False),
        ("a@notcorp.example", False),
        ("a@evil-corp.example", False),
        ("a@sub.corp.example", False),
        ("a@evil@corp.example", False),
        ("a@corp.example@evil.example", False),
        ("corp.example", False),
        ("@corp.example", False),
        ("a@", False),
        ("", False),
        ("a@corp\u2024example", False),  # one dot leader, not a full stop
        ("a@corp.examp\u217ce", False),  # small roman numeral fifty
        ("a@c\u043erp.example", False),  # Cyrillic o
        ("a@corp.example\u200b", False),  # zero-width space
        ("a@corp\uff0eexample", False),  # fullwidth full stop
    ],
)
def test_email_domain_exact_rule(email, matches):
    assert selector_matches(EXACT, _user(email), None) is matches


@pytest.mark.parametrize(
    ("email", "matches"),
    [
        ("a@sub.corp.example", True),
        ("a@deep.sub.corp.example", True),
        ("a@corp.example", False),
        ("a@subcorp.example", False),
        ("a@sub.corp.example.evil", False),
        ("a@x@sub.corp.example", False),
    ],
)
def test_email_domain_wildcard_rule_matches_subdomains_only(email, matches):
    assert selector_matches(WILDCARD, _user(email), None) is matches


@pytest.mark.parametrize(
    ("email", "matches"),
    [
        ("alice@corp.example", True),
        ("ALICE@corp.example", True),
        ("alice@corp.example.evil", False),
        ("xalice@corp.example", False),
        ("alice@corp.example ", False),
        ("evil@alice@corp.example", False),
    ],
)
def test_email_rule_is_exact(email, matches):
    assert selector_matches(ONE, _user(email), None) is matches


@pytest.mark.parametrize("kind", ["anonymous", "service"])
def test_email_rules_never_match_non_users(kind):
    who = Identity(kind=kind, email="a@corp.example")
    assert not selector_matches(EXACT, who, None)
    assert not selector_matches(ONE, who, None)
