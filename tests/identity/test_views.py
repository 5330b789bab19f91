"""Login, PIN, launcher and logout pages through Django's test client."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from django.core import mail
from django.test import Client

from apps.audit.models import AuditEvent
from apps.identity import pin as pins
from apps.identity.pin import PinCheck
from apps.proxy.returnto import sign_return

pytestmark = pytest.mark.django_db

APP_ORIGIN = "http://echo.localhost:8000"


def _csrf_client() -> Client:
    return Client(enforce_csrf_checks=False)


def _request_pin(client: Client, email: str, next_value: str = "", **extra):  # type: ignore[no-untyped-def]
    return client.post(
        "/login/pin/",
        {"email": email, "next": next_value},
        REMOTE_ADDR="10.1.1.1",
        **extra,
    )


def _mailed_pin(address: str) -> str:
    sent = [m for m in mail.outbox if m.to == [address]]
    assert sent
    found = re.search(r"\b(\d{6})\b", sent[-1].body)
    assert found is not None
    return found.group(1)


def _verify(client: Client, email: str, code: str, next_value: str = ""):  # type: ignore[no-untyped-def]
    return client.post(
        "/login/pin/verify/",
        {"email": email, "pin": code, "next": next_value},
        REMOTE_ADDR="10.1.1.1",
    )


def _sign_in(client: Client, email: str = "ada@corp.example", next_value: str = ""):  # type: ignore[no-untyped-def]
    _request_pin(client, email, next_value)
    return _verify(client, email, _mailed_pin(email), next_value)


def _follow_handoff(client: Client, location: str) -> str:
    """Redeem the handoff on the application host; return where it leads."""
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}" == APP_ORIGIN
    assert parts.path == "/.accessportal/authorized"
    resp = client.get(f"{parts.path}?{parts.query}", HTTP_HOST="echo.localhost:8000")
    assert resp.status_code == 302, resp.content
    return resp["Location"]


def test_login_page_offers_pin_form_with_csrf(client: Client) -> None:
    resp = client.get("/login/")

    assert resp.status_code == 200
    body = resp.content.decode()
    assert 'action="/login/pin/"' in body
    assert "csrfmiddlewaretoken" in body
    assert '<label for="id_email"' in body
    assert "Content-Security-Policy" in resp.headers
    assert resp.headers["Cache-Control"] == "no-store"


def test_login_page_pin_disabled_hides_pin_form(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PIN_LOGIN_ENABLED = False

    resp = client.get("/login/")

    assert 'action="/login/pin/"' not in resp.content.decode()
    assert client.post("/login/pin/", {"email": "a@corp.example"}).status_code == 404


def test_login_page_github_enabled_offers_github_button(
    client: Client, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.GITHUB_LOGIN_ENABLED = True

    body = client.get("/login/").content.decode()

    assert 'action="/accounts/github/login/"' in body


@pytest.mark.parametrize(
    "raw", ["", "ada", "a@evil@corp.example", "ada@corp.example, b@corp.example"]
)
def test_pin_request_not_one_address_400_with_form(
    client: Client, corp_app, raw: str, inline_jobs
) -> None:  # type: ignore[no-untyped-def]
    resp = _request_pin(client, raw)

    assert resp.status_code == 400
    body = resp.content.decode()
    assert "Enter one e-mail address" in body
    assert 'name="email"' in body
    assert inline_jobs == []
    assert mail.outbox == []


def test_pin_request_admissible_and_stranger_same_answer(
    client: Client, corp_app, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    queued: list[object] = []
    monkeypatch.setattr(pins.background, "submit", queued.append)
    token = re.compile(rb'name="csrfmiddlewaretoken" value="[^"]+"')

    known = _request_pin(client, "ada@corp.example")
    stranger = _request_pin(client, "ada@corp.example.evil")

    assert known.status_code == stranger.status_code == 200

    def strip(resp):  # type: ignore[no-untyped-def]
        body = token.sub(b"", resp.content)
        return body.replace(b"ada@corp.example.evil", b"X").replace(
            b"ada@corp.example", b"X"
        )

    assert strip(known) == strip(stranger)
    assert len(queued) == 2


def test_pin_request_normalises_address(client: Client, corp_app, inline_jobs) -> None:  # type: ignore[no-untyped-def]
    resp = _request_pin(client, "  Ada@CORP.example ")

    assert resp.status_code == 200
    assert mail.outbox[0].to == ["ada@corp.example"]
    assert b'value="ada@corp.example"' in resp.content


def test_pin_request_over_limit_429(client: Client, corp_app, inline_jobs) -> None:  # type: ignore[no-untyped-def]
    for _ in range(5):
        _request_pin(client, "ada@corp.example")

    resp = _request_pin(client, "ada@corp.example")

    assert resp.status_code == 429
    assert b"Too many codes" in resp.content
    assert len(mail.outbox) == 5


def test_pin_verify_right_code_no_next_goes_to_launcher(
    client: Client, corp_app, inline_jobs
) -> None:  # type: ignore[no-untyped-def]
    resp = _sign_in(client)

    assert resp.status_code == 302
    assert resp["Location"] == "/"
    launcher = client.get("/")
    assert launcher.status_code == 200
    assert f'href="{APP_ORIGIN}/"'.encode() in launcher.content
    event = AuditEvent.objects.get(kind="login_succeeded")
    assert event.detail == {"method": "pin"}
    assert event.client_ip == "10.1.1.1"


def test_pin_verify_right_code_hands_off_to_original_path(
    client: Client, corp_app, inline_jobs
) -> None:  # type: ignore[no-untyped-def]
    signed = sign_return(corp_app.pk, "echo.localhost", "/some/path?x=1")

    resp = _sign_in(client, next_value=signed)

    assert resp.status_code == 302
    assert _follow_handoff(client, resp["Location"]) == "/some/path?x=1"


def test_pin_verify_code_reused_refused(client: Client, corp_app, inline_jobs) -> None:  # type: ignore[no-untyped-def]
    _request_pin(client, "ada@corp.example")
    code = _mailed_pin("ada@corp.example")
    assert _verify(client, "ada@corp.example", code).status_code == 302

    other = Client()
    resp = _verify(other, "ada@corp.example", code)

    assert resp.status_code == 400
    assert b"already used" in resp.content
    assert other.get("/").status_code == 302


def test_pin_verify_brute_force_kills_code(
    client: Client, corp_app, inline_jobs
) -> None:  # type: ignore[no-untyped-def]
    _request_pin(client, "ada@corp.example")
    code = _mailed_pin("ada@corp.example")
    wrong = f"{(int(code) + 7) % 1_000_000:06d}"

    statuses = [
        _verify(client, "ada@corp.example", wrong).status_code for _ in range(5)
    ]
    last = _verify(client, "ada@corp.example", code)

    assert statuses == [400] * 5
    assert last.status_code == 400
    # The page says what it says for any failure; the audit log has why.
    last_event = AuditEvent.objects.filter(kind="pin_failed").latest("id")
    assert last_event.detail["reason"] == PinCheck.EXHAUSTED.value
    assert AuditEvent.objects.filter(kind="pin_failed").count() == 6
    assert all(code not in str(e.detail) for e in AuditEvent.objects.all())


def test_pin_verify_expired_code_refused(
    client: Client, corp_app, inline_jobs, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from django.utils import timezone

    start = timezone.now()
    monkeypatch.setattr(pins, "now", lambda: start)
    _request_pin(client, "ada@corp.example")
    code = _mailed_pin("ada@corp.example")
    monkeypatch.setattr(pins, "now", lambda: start + timedelta(minutes=11))

    resp = _verify(client, "ada@corp.example", code)

    assert resp.status_code == 400
    assert b"expired" in resp.content


def test_pin_verify_unknown_address_same_as_wrong(client: Client, corp_app) -> None:  # type: ignore[no-untyped-def]
    resp = _verify(client, "nobody@corp.example", "123456")

    assert resp.status_code == 400
    assert AuditEvent.objects.get(kind="pin_failed").detail == {"reason": "no-pin"}


@pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", ""])
def test_pin_verify_malformed_code_400(client: Client, corp_app, code: str) -> None:  # type: ignore[no-untyped-def]
    resp = _verify(client, "ada@corp.example", code)

    assert resp.status_code == 400
    assert b"six digits" in resp.content


def test_pin_verify_code_with_spaces_accepted(
    client: Client, corp_app, inline_jobs
) -> None:  # type: ignore[no-untyped-def]
    _request_pin(client, "ada@corp.example")
    code = _mailed_pin("ada@corp.example")

    resp = _verify(client, "ada@corp.example", f" {code[:3]} {code[3:]} ")

    assert resp.status_code == 302


def test_pin_pages_never_render_the_code(client: Client, corp_app, inline_jobs) -> None:  # type: ignore[no-untyped-def]
    page = _request_pin(client, "ada@corp.example")
    code = _mailed_pin("ada@corp.example")

    assert code.encode() not in page.content


@pytest.mark.parametrize(
    "next_value",
    [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "%2F%2Fevil.example",
        " //evil.example",
        "\t/\\evil.example",
        "http:evil.example",
    ],
)
def test_login_free_url_next_ignored_lands_on_launcher(
    client: Client, corp_app, inline_jobs, next_value: str
) -> None:  # type: ignore[no-untyped-def]
    page = client.get(f"/login/?next={quote(next_value)}")
    assert b"invalid or has expired" in page.content
    assert b"evil.example" not in page.content

    resp = _sign_in(client, next_value=next_value)

    assert resp["Location"] == "/"


@pytest.mark.parametrize(
    "path",
    [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "/%2F%2Fevil.example",
        "%2F%2Fevil.example",
        "/%5Cevil.example",
        " //evil.example",
        "/\t/evil.example",
        "\n//evil.example",
        "/%09/evil.example",
    ],
)
def test_login_signed_hostile_path_stays_on_application(
    client: Client, corp_app, inline_jobs, path: str
) -> None:  # type: ignore[no-untyped-def]
    signed = sign_return(corp_app.pk, "echo.localhost", path)

    resp = _sign_in(client, next_value=signed)
    final = _follow_handoff(client, resp["Location"])

    assert final.startswith("/")
    assert not final.startswith("//")
    assert "\\" not in final
    assert urlsplit(final).netloc == ""
    assert "evil.example" not in urlsplit(final).path.split("/")[1:2]


def test_login_tampered_signature_ignored(
    client: Client, corp_app, inline_jobs
) -> None:  # type: ignore[no-untyped-def]
    signed = sign_return(corp_app.pk, "echo.localhost", "/ok")
    tampered = signed[:-2] + ("AA" if not signed.endswith("AA") else "BB")

    resp = _sign_in(client, next_value=tampered)

    assert resp["Location"] == "/"


def test_login_signed_in_member_goes_straight_to_handoff(
    client: Client, corp_app, inline_jobs
) -> None:  # type: ignore[no-untyped-def]
    _sign_in(client)
    signed = sign_return(corp_app.pk, "echo.localhost", "/again")

    resp = client.get(f"/login/?next={quote(signed)}")

    assert resp.status_code == 302
    assert _follow_handoff(client, resp["Location"]) == "/again"


def test_launcher_signed_out_redirects_to_login(client: Client) -> None:
    resp = client.get("/")

    assert resp.status_code == 302
    assert resp["Location"] == "/login/"


def test_launcher_lists_only_allowed_launcher_apps(
    client: Client, corp_app, make_app, inline_jobs
) -> None:  # type: ignore[no-untyped-def]
    make_app("hidden", "hidden.localhost", include=[("everyone", "")], launcher=False)
    make_app("other", "other.localhost", include=[("email", "bob@corp.example")])
    make_app("open", "open.localhost", include=[("everyone", "")])
    _sign_in(client)

    body = client.get("/").content.decode()

    assert "http://echo.localhost:8000/" in body
    assert "http://open.localhost:8000/" in body
    assert "hidden.localhost" not in body
    assert "other.localhost" not in body


def test_launcher_no_apps_explains_empty_state(
    client: Client, make_app, inline_jobs
) -> None:  # type: ignore[no-untyped-def]
    make_app(
        "hidden",
        "hidden.localhost",
        include=[("email_domain", "corp.example")],
        launcher=False,
    )
    _sign_in(client)

    resp = client.get("/")

    assert resp.status_code == 200
    assert b"No application is listed" in resp.content


def test_logout_get_shows_confirm_form_and_keeps_session(
    client: Client, corp_app, inline_jobs
) -> None:  # type: ignore[no-untyped-def]
    _sign_in(client)

    resp = client.get("/logout/")

    assert b'method="post" action="/logout/"' in resp.content
    assert client.get("/").status_code == 200


def test_logout_post_without_csrf_refused(corp_app, inline_jobs) -> None:  # type: ignore[no-untyped-def]
    strict = Client(enforce_csrf_checks=True)
    resp = strict.post("/logout/")

    assert resp.status_code == 403


def test_logout_post_ends_session_and_revokes_sid(
    client: Client, corp_app, inline_jobs
) -> None:  # type: ignore[no-untyped-def]
    from apps.proxy import revocation

    _sign_in(client)
    sid = client.session["accessportal.identity"]["sid"]

    resp = client.post("/logout/", REMOTE_ADDR="10.1.1.1")

    assert resp.status_code == 200
    assert b"Signed out" in resp.content
    assert revocation.is_session_revoked(sid)
    assert client.get("/").status_code == 302
    event = AuditEvent.objects.get(kind="logout")
    assert event.actor == "ada@corp.example"
    assert event.client_ip == "10.1.1.1"


def test_logout_done_shows_signed_out_page(client: Client) -> None:
    resp = client.get("/logout/?done=1")

    assert resp.status_code == 200
    assert b"Signed out" in resp.content


def test_logout_switch_signs_out_and_keeps_next(
    client: Client, corp_app, inline_jobs
) -> None:  # type: ignore[no-untyped-def]
    _sign_in(client)
    signed = sign_return(corp_app.pk, "echo.localhost", "/x")

    resp = client.get(f"/logout/?switch=1&next={quote(signed)}")

    assert resp.status_code == 302
    target = urlsplit(resp["Location"])
    assert target.path == "/login/"
    assert parse_qs(target.query)["next"] == [signed]
    assert client.get("/").status_code == 302


def test_logout_switch_bad_next_goes_to_plain_login(client: Client) -> None:
    resp = client.get("/logout/?switch=1&next=//evil.example")

    assert resp["Location"] == "/login/"


def test_pin_request_get_redirects_to_login(client: Client) -> None:
    resp = client.get("/login/pin/")

    assert resp.status_code == 302
    assert resp["Location"] == "/login/"


def test_pin_request_stranger_no_member_no_mail(
    client: Client, corp_app, inline_jobs
) -> None:  # type: ignore[no-untyped-def]
    from django.contrib.auth import get_user_model

    resp = _request_pin(client, "a@notcorp.example")

    assert resp.status_code == 200
    assert inline_jobs == ["job"]
    assert mail.outbox == []
    assert not get_user_model().objects.exists()
    assert not AuditEvent.objects.filter(kind="pin_sent").exists()


def test_pin_verify_failure_reads_the_same_for_any_address(client) -> None:  # type: ignore[no-untyped-def]
    from apps.identity.views import _PIN_FAILED

    # Whatever the reason (no code ever sent, wrong, expired, spent), the
    # page says the same, so it cannot tell which addresses may sign in.
    answers = set()
    for email in ("stranger@other.example", "someone@corp.example"):
        resp = client.post(
            "/login/pin/verify/", {"email": email, "pin": "000000", "next": ""}
        )
        assert resp.status_code == 400
        answers.add(_PIN_FAILED in resp.content.decode())
    assert answers == {True}
