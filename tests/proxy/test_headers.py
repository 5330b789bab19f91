"""The header filter itself, without a server in front of it.

gunicorn already drops header names with underscores, but the guarantee must
not rest on the server: these tests feed the filter WSGI environs directly.
"""

from __future__ import annotations

import pytest

from apps.proxy.headers import (
    client_headers,
    read_cookie,
    response_headers,
    strip_portal_cookies,
)


def _environ(**headers: str) -> dict[str, str]:
    return {"REQUEST_METHOD": "GET", **{f"HTTP_{k}": v for k, v in headers.items()}}


@pytest.mark.parametrize(
    "name",
    [
        "X_AUTH_REQUEST_EMAIL",
        "X_AUTH_REQUEST_USER",
        "X_AUTH_REQUEST_GROUPS",
        "X_AUTH_REQUEST_ANYTHING_ELSE",
        "X_ACCESS_JWT_ASSERTION",
        "CF_ACCESS_JWT_ASSERTION",
        "X_FORWARDED_FOR",
        "X_FORWARDED_HOST",
        "X_FORWARDED_PROTO",
        "X_FORWARDED_URI",
        "X_FORWARDED_METHOD",
        "X_ORIGINAL_URL",
        "X_REAL_IP",
        "FORWARDED",
        "ACCESS_CLIENT_ID",
        "ACCESS_CLIENT_SECRET",
        "CF_ACCESS_CLIENT_ID",
        "CF_ACCESS_CLIENT_SECRET",
        "HOST",
        "CONNECTION",
        "KEEP_ALIVE",
        "TE",
        "TRAILER",
        "TRANSFER_ENCODING",
        "UPGRADE",
        "PROXY_AUTHORIZATION",
        "PROXY_CONNECTION",
        "EXPECT",
    ],
)
def test_client_headers_portal_and_hop_headers_dropped(name):  # type: ignore[no-untyped-def]
    out = client_headers(_environ(**{name: "spoofed"}))
    assert "spoofed" not in out.values()


@pytest.mark.parametrize(
    "raw_key",
    [
        "HTTP_X_AUTH_REQUEST_EMAIL",
        "HTTP_X-AUTH-REQUEST-EMAIL",
        "HTTP_x_auth_request_email",
        "HTTP_X_Auth_Request_Email ",
    ],
)
def test_client_headers_underscore_and_case_variants_dropped(raw_key):  # type: ignore[no-untyped-def]
    out = client_headers({raw_key: "ceo@corp.example"})
    assert out == {}


def test_client_headers_identity_header_dropped_in_any_spelling():  # type: ignore[no-untyped-def]
    environ = _environ(X_GRAFANA_USER="ceo", X_OTHER="kept")
    out = client_headers(environ, ["X-Grafana-User"])
    assert out == {"X-Other": "kept"}
    assert client_headers(_environ(X_GRAFANA_USER="ceo"), ["x_grafana_user"]) == {}


def test_client_headers_connection_named_dropped():  # type: ignore[no-untyped-def]
    environ = _environ(
        CONNECTION="keep-alive, X-Private, x_other_private,Authorization",
        X_PRIVATE="1",
        X_OTHER_PRIVATE="2",
        AUTHORIZATION="Bearer t",
        X_PUBLIC="3",
    )
    assert client_headers(environ) == {"X-Public": "3"}


def test_client_headers_authorization_and_content_kept():  # type: ignore[no-untyped-def]
    environ = {
        **_environ(AUTHORIZATION="Bearer upstream", ACCEPT="*/*"),
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": "12",
    }
    assert client_headers(environ) == {
        "Authorization": "Bearer upstream",
        "Accept": "*/*",
        "Content-Type": "application/json",
        "Content-Length": "12",
    }


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("sessionid=a; accessportal_app=x; csrftoken=b", "sessionid=a; csrftoken=b"),
        ("accessportal_session=s; accessportal_csrf=c", None),
        ("accessportal_app_grafana=x;sessionid=a", "sessionid=a"),
        ('theme="dark mode"; accessportal_app=x', 'theme="dark mode"'),
        ("  accessportal_app = x ; lang=en", "lang=en"),
    ],
)
def test_client_headers_portal_cookies_stripped(header, kept):  # type: ignore[no-untyped-def]
    out = client_headers(_environ(COOKIE=header))
    assert out.get("Cookie") == kept


def test_strip_portal_cookies_keeps_unparsable_pairs():  # type: ignore[no-untyped-def]
    assert strip_portal_cookies("flag; a=1; accessportal_app=z") == "flag; a=1"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("accessportal_app=v", "v"),
        ("a=1; accessportal_app=v", "v"),
        ("accessportal_app=v; accessportal_app=w", None),
        ("accessportal_app_x=v", None),
        ("xaccessportal_app=v", None),
    ],
)
def test_read_cookie_exact_name_once(header, value):  # type: ignore[no-untyped-def]
    assert read_cookie(header, "accessportal_app") == value


def test_response_headers_hop_and_connection_named_dropped():  # type: ignore[no-untyped-def]
    items = [
        ("Connection", "X-Private"),
        ("X-Private", "1"),
        ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Content-Encoding", "gzip"),
    ]
    assert response_headers(items) == [
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Content-Encoding", "gzip"),
    ]


@pytest.mark.parametrize(
    "name",
    [
        "X-Webauth-Email",
        "X-WEBAUTH-ROLE",
        "X_Webauth_Groups",
        "X-Grafana-Org-Id",
        "X-Forwarded-Ssl",
        "X-Forwarded-Scheme",
        "X-Url-Scheme",
        "Front-End-Https",
        "X-Original-Host",
        "X-Host",
        "Cf-Connecting-Ip",
        "X-Cluster-Client-Ip",
        "Fastly-Client-Ip",
        "X-Envoy-External-Address",
        "X-Authenticated-User",
        "X-Remote-Email",
        "X-Proxy-User",
        "Cf-Access-Authenticated-User-Email",
        "Remote-Email",
        "Remote-Groups",
        "Remote-Name",
        "X-Ms-Client-Principal-Name",
        "X-Goog-Authenticated-User-Email",
        "X-Amzn-Oidc-Identity",
        "Oidc-Claim-Email",
        "X-Auth-User",
        "X-Token-User-Email",
        "X-Userinfo",
        "X-Forwarded",
        "X-Originating-Ip",
        "Client-Ip",
        "X-ProxyUser-Ip",
    ],
)
def test_client_headers_trusted_families_never_pass(name):  # type: ignore[no-untyped-def]
    environ = {f"HTTP_{name.upper().replace('-', '_')}": "boss@corp.example"}
    out = client_headers(environ, ["X-WEBAUTH-USER"])
    assert not {k for k in out if k.lower() == name.lower().replace("_", "-")}


@pytest.mark.parametrize(
    ("configured", "other", "passes"),
    [
        ("X-User", "X-Request-Id", True),
        ("X-Custom-Identity", "X-Custom-Role", False),
        ("Remote-User", "Remote-Groups", False),
        ("X-Forwarded-User", "X-Forwarded-Trace", False),
    ],
)
def test_client_headers_identity_header_family(configured, other, passes):  # type: ignore[no-untyped-def]
    environ = {f"HTTP_{other.upper().replace('-', '_')}": "v", "HTTP_ACCEPT": "*/*"}
    out = client_headers(environ, [configured])
    assert ("Accept" in out) is True
    assert any(k.lower() == other.lower() for k in out) is passes


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://10.0.0.5:8080/base/a", "https://tools.example/tools/a"),
        ("HTTP://10.0.0.5:8080/base/a?x=1", "https://tools.example/tools/a?x=1"),
        ("http://10.0.0.5:8080/base", "https://tools.example/tools/"),
        ("http://10.0.0.5:8080/basement", "https://tools.example/tools/basement"),
        ("/base/b", "/tools/b"),
        ("/basement", "/tools/basement"),
        ("http://10.0.0.5/base/a", "http://10.0.0.5/base/a"),  # port 80: not ours
        ("http://10.0.0.5:80800/base/a", "http://10.0.0.5:80800/base/a"),
        ("http://evil@10.0.0.5:8080/base/a", "http://evil@10.0.0.5:8080/base/a"),
        ("//10.0.0.5:8080/base/a", "//10.0.0.5:8080/base/a"),
        ("https://elsewhere.example/", "https://elsewhere.example/"),
    ],
)
def test_rewrite_location_maps_only_the_upstream_origin(location, expected, settings):  # type: ignore[no-untyped-def]
    import os

    from accessportal.env import get_portal_url
    from apps.policies.patterns import parse_pattern
    from apps.policies.snapshot import Upstream
    from apps.proxy.app import proxy
    from tests.support.apps import app_spec

    os.environ["_TEST_PORTAL"] = "https://access.example"
    settings.PORTAL = get_portal_url("_TEST_PORTAL", "https://access.example")
    app = app_spec(
        slug="tools",
        hosts=("tools.example",),
        pattern=parse_pattern("/tools"),
        upstream=Upstream("http", "10.0.0.5", 8080, "/base"),
        strip_prefix=True,
        cookie_path="/tools",
    )
    assert proxy.rewrite_location(location, app, "tools.example") == expected
