"""Class 4: IP rules see only hops added by trusted proxies."""

import pytest

from apps.policies.engine import Identity, make_rule, selector_matches
from apps.proxy.clientip import client_ip

RULE = make_rule("include", "ip_range", "10.0.0.0/8")
USER = Identity(kind="user", sub="user:1", email="a@corp.example")


@pytest.mark.parametrize(
    ("peer", "xff", "trusted", "expected"),
    [
        ("203.0.113.9", "", 0, "203.0.113.9"),
        ("203.0.113.9", "10.0.0.1", 0, "203.0.113.9"),  # untrusted header ignored
        ("192.0.2.1", "10.0.0.1", 1, "10.0.0.1"),
        ("192.0.2.1", "10.0.0.1, 198.51.100.7", 1, "198.51.100.7"),  # spoofed left
        ("192.0.2.1", "10.0.0.1, 198.51.100.7, 192.0.2.50", 2, "198.51.100.7"),
        ("192.0.2.1", "", 1, None),
        ("192.0.2.1", "garbage", 1, None),
        ("192.0.2.1", "10.0.0.1, not-an-ip", 1, None),
        ("192.0.2.1", "10.0.0.1,", 1, None),
        ("192.0.2.1", "10.0.0.1:8080", 1, None),
        ("192.0.2.1", "[2001:db8::1]", 1, "2001:db8::1"),
        ("192.0.2.1", "10.0.0.1 , 2001:db8::2", 1, "2001:db8::2"),
        ("192.0.2.1", "999.1.1.1", 1, None),
        ("192.0.2.1", "10.0.0.1\x00", 1, None),
        ("192.0.2.1", "a" * 5000, 1, None),
        ("192.0.2.1", "10.0.0.1", 3, None),
        ("not-an-ip", "", 0, None),
        ("", "", 0, None),
    ],
)
def test_client_ip_hops_and_garbage(peer, xff, trusted, expected):
    environ = {"REMOTE_ADDR": peer}
    if xff:
        environ["HTTP_X_FORWARDED_FOR"] = xff
    found = client_ip(environ, trusted)
    assert (str(found) if found is not None else None) == expected


@pytest.mark.parametrize(
    ("xff", "matches"),
    [
        ("10.1.2.3", True),
        ("11.1.2.3", False),
        ("10.1.2.3, 11.1.2.3", False),  # only the hop the proxy added counts
        ("11.1.2.3, 10.1.2.3", True),
        ("garbage", False),
        ("", False),
    ],
)
def test_ip_rule_one_trusted_proxy_uses_rightmost_hop(xff, matches):
    environ = {"REMOTE_ADDR": "192.0.2.1", "HTTP_X_FORWARDED_FOR": xff}
    assert selector_matches(RULE, USER, client_ip(environ, 1)) is matches
