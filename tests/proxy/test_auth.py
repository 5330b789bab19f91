"""Credentials end to end: service tokens and application cookies."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from apps.audit.models import AuditEvent
from apps.policies.models import Policy
from apps.proxy import revocation
from apps.tokens.models import ServiceToken
from apps.tokens.service import issue_token, revoke_token, rotate_token
from tests.proxy.conftest import API, make_app, mint_cookie, token_headers, wait_for

pytestmark = pytest.mark.e2e


def _get(portal, headers, path="/x"):  # type: ignore[no-untyped-def]
    return portal.request(
        "GET", path, host="echo.localhost", headers={**API, **headers}
    )


# Service tokens --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["access", "cf"])
def test_token_either_header_pair_admitted(portal, echo, token, kind):  # type: ignore[no-untyped-def]
    assert _get(portal, token_headers(token, kind)).status == 200


@pytest.mark.parametrize(
    "shape",
    [
        "mixed",
        "both-pairs",
        "id-only",
        "secret-only",
        "doubled-id",
        "doubled-secret",
        "empty-secret",
    ],
)
def test_token_malformed_pair_refused(portal, echo, token, upstream, shape):  # type: ignore[no-untyped-def]
    cid, secret = token.client_id, token.secret
    headers = {
        "mixed": [("Access-Client-Id", cid), ("CF-Access-Client-Secret", secret)],
        "both-pairs": [
            *token_headers(token).items(),
            *token_headers(token, "cf").items(),
        ],
        "id-only": [("Access-Client-Id", cid)],
        "secret-only": [("Access-Client-Secret", secret)],
        "doubled-id": [
            ("Access-Client-Id", cid),
            ("Access-Client-Id", cid),
            ("Access-Client-Secret", secret),
        ],
        "doubled-secret": [
            ("Access-Client-Id", cid),
            ("Access-Client-Secret", secret),
            ("Access-Client-Secret", secret),
        ],
        "empty-secret": [("Access-Client-Id", cid), ("Access-Client-Secret", "")],
    }[shape]
    before = len(upstream.requests)
    resp = portal.request("GET", "/x", host="echo.localhost", headers=headers)
    assert resp.status == 400
    assert resp.json()["error"] == "invalid_token_headers"
    assert len(upstream.requests) == before


def test_token_wrong_secret_is_anonymous(portal, echo, token):  # type: ignore[no-untyped-def]
    resp = _get(
        portal, {"Access-Client-Id": token.client_id, "Access-Client-Secret": "x" * 43}
    )
    assert resp.status == 401


def test_token_unknown_id_is_anonymous(portal, echo, token):  # type: ignore[no-untyped-def]
    headers = {
        "Access-Client-Id": "0" * 32 + ".access",
        "Access-Client-Secret": token.secret,
    }
    assert _get(portal, headers).status == 401


def test_token_id_with_another_tokens_secret_refused(portal, echo, token):  # type: ignore[no-untyped-def]
    other = issue_token("other-token")
    headers = {
        "Access-Client-Id": token.client_id,
        "Access-Client-Secret": other.secret,
    }
    assert _get(portal, headers).status == 401
    assert _get(portal, token_headers(other)).status == 200


def test_token_expired_is_anonymous(portal, echo):  # type: ignore[no-untyped-def]
    token = issue_token("short-lived", lifetime=timedelta(seconds=1))
    assert _get(portal, token_headers(token)).status == 200
    ServiceToken.objects.filter(pk=token.token.pk).update(
        expires_at=token.token.expires_at - timedelta(hours=1)
    )
    from apps.policies.snapshot import bump_version

    bump_version()
    assert _get(portal, token_headers(token)).status == 401


def test_token_revoked_refused_on_next_request(portal, echo, token):  # type: ignore[no-untyped-def]
    assert _get(portal, token_headers(token)).status == 200
    revoke_token(token.token)
    for _ in range(4):  # both workers
        assert _get(portal, token_headers(token)).status == 401


def test_token_revocation_mark_alone_honoured(portal, echo, token):  # type: ignore[no-untyped-def]
    assert _get(portal, token_headers(token)).status == 200
    revocation.revoke_token_now(token.token.pk)  # before any config poll
    for _ in range(4):
        assert _get(portal, token_headers(token)).status == 401


def test_token_rotation_keeps_old_secret_for_grace(portal, echo, token):  # type: ignore[no-untyped-def]
    new_secret = rotate_token(token.token, grace=timedelta(minutes=5))
    assert _get(portal, token_headers(token)).status == 200
    new = {"Access-Client-Id": token.client_id, "Access-Client-Secret": new_secret}
    assert _get(portal, new).status == 200


def test_token_rotation_without_grace_drops_old_secret(portal, echo, token):  # type: ignore[no-untyped-def]
    new_secret = rotate_token(token.token, grace=timedelta(0))
    assert _get(portal, token_headers(token)).status == 401
    new = {"Access-Client-Id": token.client_id, "Access-Client-Secret": new_secret}
    assert _get(portal, new).status == 200


def test_token_in_query_string_ignored(portal, echo, token, upstream):  # type: ignore[no-untyped-def]
    before = len(upstream.requests)
    for names in (
        ("Access-Client-Id", "Access-Client-Secret"),
        ("access_client_id", "access_client_secret"),
    ):
        query = f"?{names[0]}={token.client_id}&{names[1]}={token.secret}"
        assert _get(portal, {}, "/x" + query).status == 401
    assert len(upstream.requests) == before


def test_token_not_admitted_gets_403_json(portal, live_db, upstream):  # type: ignore[no-untyped-def]
    make_app(
        "named",
        "named.localhost",
        upstream.url,
        [
            (
                "only-deploy",
                "service_auth",
                1,
                [("include", "service_token", "deploy")],
            ),
            ("staff", "allow", 10, [("include", "everyone", "")]),
        ],
    )
    deploy = issue_token("deploy")
    other = issue_token("not-deploy")
    ok = portal.request(
        "GET", "/", host="named.localhost", headers=token_headers(deploy)
    )
    assert ok.status == 200
    resp = portal.request(
        "GET", "/", host="named.localhost", headers=token_headers(other)
    )
    assert resp.status == 403
    assert resp.header("Content-Type") == "application/json"
    assert resp.json()["error"] == "access_denied"


def test_token_use_written_at_most_once_a_minute(portal, echo, token):  # type: ignore[no-untyped-def]
    for _ in range(8):
        assert _get(portal, token_headers(token)).status == 200

    def seen():  # type: ignore[no-untyped-def]
        row = ServiceToken.objects.get(pk=token.token.pk)
        events = AuditEvent.objects.filter(kind="token_used").count()
        return row.last_seen is not None and events >= 1

    assert wait_for(seen)
    time.sleep(0.5)  # let any second, wrong write land
    for _ in range(4):
        _get(portal, token_headers(token))
    time.sleep(0.5)
    events = AuditEvent.objects.filter(kind="token_used")
    assert events.count() == 1
    assert events.get().detail == {"token_id": token.token.pk}
    assert token.secret not in str(events.get().detail)


# Application cookies ---------------------------------------------------------


def test_cookie_valid_member_admitted(portal, echo):  # type: ignore[no-untyped-def]
    assert _get(portal, {"Cookie": mint_cookie(echo)}).status == 200


def _tamper(pair: str, how: str) -> str:
    name, value = pair.split("=", 1)
    payload, mac = value.split(".")
    forged = {
        "flip-mac": f"{payload}.{mac[:-2]}{'AA' if mac[-2:] != 'AA' else 'BB'}",
        "truncated": value[: len(value) // 2],
        "no-mac": payload,
        "empty-mac": payload + ".",
        "swap-payload": "eyJ4IjoxfQ." + mac,
        "garbage": "%%%not-base64%%%.@@@",
        "huge": "A" * 5000 + "." + mac,
        "mac-suffix": f"{payload}.{mac}!!",
        "mac-padding": f"{payload}.{mac}==",
    }[how]
    return f"{name}={forged}"


@pytest.mark.parametrize(
    "how",
    [
        "flip-mac",
        "truncated",
        "no-mac",
        "empty-mac",
        "swap-payload",
        "garbage",
        "huge",
        "mac-suffix",
        "mac-padding",
    ],
)
def test_cookie_forged_is_anonymous(portal, echo, upstream, how):  # type: ignore[no-untyped-def]
    before = len(upstream.requests)
    resp = _get(portal, {"Cookie": _tamper(mint_cookie(echo), how)})
    assert resp.status == 401
    assert len(upstream.requests) == before


def test_cookie_expired_is_anonymous(portal, echo):  # type: ignore[no-untyped-def]
    cookie = mint_cookie(echo, issued_at=int(time.time()) - 7200, ttl=3600)
    assert _get(portal, {"Cookie": cookie}).status == 401


def test_cookie_of_other_application_is_anonymous(portal, echo, upstream):  # type: ignore[no-untyped-def]
    other = make_app(
        "other",
        "other.localhost",
        upstream.url,
        [("staff", "allow", 10, [("include", "email_domain", "corp.example")])],
    )
    foreign = mint_cookie(echo, app_id=other.pk)
    assert _get(portal, {"Cookie": foreign}).status == 401
    own = mint_cookie(other)
    resp = portal.request(
        "GET", "/", host="other.localhost", headers={**API, "Cookie": own}
    )
    assert resp.status == 200


def test_cookie_sent_twice_is_anonymous(portal, echo):  # type: ignore[no-untyped-def]
    good = mint_cookie(echo)
    other = mint_cookie(echo, email="mallory@corp.example")
    assert _get(portal, {"Cookie": f"{good}; {other}"}).status == 401


def test_cookie_signed_with_another_key_is_anonymous(portal, echo, settings):  # type: ignore[no-untyped-def]
    settings.SECRET_KEY = "a-different-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
    forged = mint_cookie(echo)
    assert _get(portal, {"Cookie": forged}).status == 401


def test_cookie_session_revoked_on_next_request(portal, echo):  # type: ignore[no-untyped-def]
    cookie = mint_cookie(echo, sid="sid-revoke-me")
    assert _get(portal, {"Cookie": cookie}).status == 200
    revocation.revoke_session("sid-revoke-me")
    for _ in range(4):
        assert _get(portal, {"Cookie": cookie}).status == 401


def test_cookie_user_revoked_on_next_request(portal, echo):  # type: ignore[no-untyped-def]
    cookie = mint_cookie(echo, user_id=4242)
    bystander = mint_cookie(echo, user_id=4343)
    assert _get(portal, {"Cookie": cookie}).status == 200
    revocation.revoke_user(4242)
    for _ in range(4):
        assert _get(portal, {"Cookie": cookie}).status == 401
        assert _get(portal, {"Cookie": bystander}).status == 200
    later = mint_cookie(echo, user_id=4242, issued_at=int(time.time()) + 2)
    assert _get(portal, {"Cookie": later}).status == 200


def test_cookie_app_revoked_on_next_request(portal, echo):  # type: ignore[no-untyped-def]
    cookie = mint_cookie(echo)
    assert _get(portal, {"Cookie": cookie}).status == 200
    revocation.revoke_app(echo.pk)
    for _ in range(4):
        assert _get(portal, {"Cookie": cookie}).status == 401


def test_cookie_revoke_user_sessions_ends_cookies(portal, echo):  # type: ignore[no-untyped-def]
    from django.contrib.auth import get_user_model

    from apps.identity.sessions import revoke_user_sessions

    user = get_user_model().objects.create(
        username="bob@corp.example", email="bob@corp.example"
    )
    cookie = mint_cookie(echo, email="bob@corp.example", user_id=user.pk)
    assert _get(portal, {"Cookie": cookie}).status == 200
    revoke_user_sessions(user.pk)
    assert _get(portal, {"Cookie": cookie}).status == 401


def test_cookie_policy_change_applies_within_seconds(portal, echo):  # type: ignore[no-untyped-def]
    cookie = mint_cookie(echo, email="carol@corp.example")
    assert _get(portal, {"Cookie": cookie}).status == 200
    started = time.monotonic()
    Policy.objects.filter(application=echo, name="staff").delete()
    assert wait_for(lambda: _get(portal, {"Cookie": cookie}).status == 403, timeout=5)
    assert time.monotonic() - started < 5
