"""Class 1: redirect targets only ever stay on the same origin."""

import pytest

from apps.proxy.returnto import read_return, safe_path, sign_return

HOSTILE = [
    "//evil.example",
    "//evil.example/",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "https://evil.example",
    "http://evil.example/x",
    "HTTPS://evil.example",
    "javascript:alert(1)",
    "data:text/html,hi",
    "evil.example",
    "%2F%2Fevil.example",
    "%2f%2fevil.example",
    "/%2F/evil.example",
    "/%2f%2fevil.example",
    "/%5Cevil.example",
    "/%5cevil.example",
    "%252F%252Fevil.example",
    "/%09/evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    " //evil.example",
    "\t//evil.example",
    "//\tevil.example",
    "/ /evil.example",
    "\x00//evil.example",
    "/\x00/evil.example",
    "//user:pass@evil.example",
    "//evil.example@good.example",
    "https:evil.example",
    "https:/evil.example",
    "/\\\\evil.example",
    "",
    "?next=//evil",
    "#//evil",
]

SAFE = [
    "/",
    "/grafana/d/abc?orgId=1",
    "/a/b/c",
    "/search?q=%2F%2Fnot-a-redirect",
    "/path/with%20space",
    "/caf%C3%A9",
    "/x?next=https://evil.example",  # a query value is data, not a target
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_safe_path_hostile_target_falls_back_to_default(raw):
    assert safe_path(raw, "/home") == "/home"


@pytest.mark.parametrize("raw", SAFE)
def test_safe_path_plain_path_is_kept(raw):
    assert safe_path(raw, "/home") == raw


@pytest.mark.parametrize("raw", HOSTILE)
def test_read_return_signed_hostile_path_is_neutralised(raw):
    ret = read_return(sign_return(1, "app.localhost", raw))
    assert ret is not None
    assert ret.path == "/"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "x",
        "eyJhIjoxfQ",
        "eyJhIjoxLCJoIjoiZXZpbCIsInAiOiIvIn0:1abc:forged",
        "a" * 9000,
    ],
)
def test_read_return_forged_or_garbage_value_is_refused(value):
    assert read_return(value) is None
