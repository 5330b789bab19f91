"""The relay's keep-alive pool never lets one answer or request leak into
another: upstreams that send more than they framed, that never read request
bodies, or that drip their answer, each get a bounded, isolated outcome."""

from __future__ import annotations

import socket
import time

import pytest

from tests.proxy.conftest import API, STANDARD_POLICIES, make_app, token_headers
from tests.support.raw_upstream import RawUpstream

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def raw_upstream():  # type: ignore[no-untyped-def]
    server = RawUpstream()
    yield server
    server.close()


@pytest.fixture
def raw_app(live_db, raw_upstream):  # type: ignore[no-untyped-def]
    from apps.tokens.service import issue_token

    make_app(
        "raw",
        "raw.localhost",
        f"http://127.0.0.1:{raw_upstream.port}",
        STANDARD_POLICIES + [("public", "bypass", 1, [("include", "everyone", "")])],
        path="",
        read_timeout=1.5,
    )
    return token_headers(issue_token("raw-ci"))


def test_relay_extra_bytes_after_answer_never_reach_next_request(
    portal, raw_upstream, raw_app
):  # type: ignore[no-untyped-def]
    raw_upstream.answers["/evil"] = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
        b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Poison: 1\r\n\r\nPOISONED"
    )
    raw_upstream.answers["/204"] = b"HTTP/1.1 204 No Content\r\n\r\nPOISON-VIA-204"
    for evil in ("/evil", "/204") * 6:
        first = portal.request("GET", evil, host="raw.localhost", headers=raw_app)
        assert first.status in (200, 204)
        victim = portal.request("GET", "/victim", host="raw.localhost", headers=raw_app)
        assert victim.status == 200
        assert victim.body == b"ok"
        assert victim.header("X-Poison") is None


def test_relay_unread_request_body_is_never_parsed_as_a_request(
    portal, raw_upstream, raw_app
):  # type: ignore[no-untyped-def]
    smuggled = (
        b"GET /smuggled HTTP/1.1\r\nHost: x\r\n"
        b"X-Auth-Request-Email: boss@corp.example\r\n\r\n"
    )
    for _ in range(6):
        resp = portal.request(
            "GET",
            "/public-get",
            host="raw.localhost",
            headers={"Content-Length": str(len(smuggled))},
            body=smuggled,
        )
        assert resp.status == 200
        after = portal.request("GET", "/victim", host="raw.localhost", headers=raw_app)
        assert after.body == b"ok"
    assert not any(
        "/smuggled" in head.split("\r\n", 1)[0] for head in raw_upstream.heads
    )


def test_relay_dripping_upstream_head_times_out_with_504(portal, raw_upstream, raw_app):  # type: ignore[no-untyped-def]
    def drip(conn: socket.socket) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 40:
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                return
            time.sleep(0.2)

    raw_upstream.answers["/drip"] = drip  # type: ignore[assignment]
    started = time.monotonic()
    resp = portal.request(
        "GET", "/drip", host="raw.localhost", headers={**API, **raw_app}
    )
    elapsed = time.monotonic() - started
    assert resp.status == 504
    assert resp.json()["error"] == "upstream_timeout"
    assert elapsed < 4


def test_relay_flood_of_interim_answers_is_refused(portal, raw_upstream, raw_app):  # type: ignore[no-untyped-def]
    raw_upstream.answers["/flood"] = (
        b"HTTP/1.1 100 Continue\r\n\r\n" * 50
        + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    resp = portal.request(
        "GET", "/flood", host="raw.localhost", headers={**API, **raw_app}
    )
    assert resp.status == 502


@pytest.mark.parametrize(
    "chunks",
    [
        b"5\r\nhelloXX\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhel",
    ],
)
def test_relay_badly_framed_chunked_body_gets_400(
    portal, raw_upstream, raw_app, chunks
):  # type: ignore[no-untyped-def]
    with socket.create_connection(("127.0.0.1", portal.port), timeout=10) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\n"
            + f"Host: raw.localhost:{portal.port}\r\n".encode()
            + b"Access-Client-Id: "
            + raw_app["Access-Client-Id"].encode()
            + b"\r\n"
            + b"Access-Client-Secret: "
            + raw_app["Access-Client-Secret"].encode()
            + b"\r\n"
            + b"Transfer-Encoding: chunked\r\nAccept: application/json\r\n\r\n"
            + chunks
        )
        if chunks.endswith(b"hel"):
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            try:
                piece = sock.recv(65536)
            except OSError:
                break
            if not piece:
                break
            data += piece
    status_line = data.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 400"), data[:300]


def test_relay_late_upstream_bytes_never_reach_another_caller(
    portal, live_db, raw_upstream
):  # type: ignore[no-untyped-def]
    from apps.tokens.service import issue_token

    make_app("rawtok", "rawtok.localhost", raw_upstream.url, STANDARD_POLICIES)
    alice = token_headers(issue_token("raw-alice"))
    bob = token_headers(issue_token("raw-bob"))

    def late(conn: socket.socket) -> None:
        # A framed answer, then, after the connection is back in the pool
        # but before the next caller's answer, bytes posing as that answer.
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nA1")
        time.sleep(0.15)
        try:
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Leak: 1\r\n\r\nSECRET"
            )
            conn.settimeout(3)
            while conn.recv(65536):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except OSError:
            return

    raw_upstream.answers["/late"] = late  # type: ignore[assignment]
    leaked = 0
    for _ in range(8):
        # Alice's own later answers may be confused by her upstream's stray
        # bytes; what matters is that Bob never sees them.
        portal.request("GET", "/late", host="rawtok.localhost", headers=alice)
        time.sleep(0.03)
        victim = portal.request("GET", "/victim", host="rawtok.localhost", headers=bob)
        leaked += victim.body == b"SECRET" or victim.header("X-Leak") is not None
    assert leaked == 0


def test_relay_upstream_cannot_set_the_portals_cookies(portal, raw_upstream, raw_app):  # type: ignore[no-untyped-def]
    raw_upstream.answers["/setcookie"] = (
        b"HTTP/1.1 200 OK\r\n"
        b"Set-Cookie: accessportal_app.state.raw=FIXED; Path=/.accessportal/authorized\r\n"
        b"Set-Cookie: accessportal_app=evil; Path=/\r\n"
        b"Set-Cookie: AccessPortal_Session=x; Path=/\r\n"
        b"Set-Cookie: sessionid=own; Path=/\r\n"
        b"Content-Length: 2\r\n\r\nok"
    )
    resp = portal.request("GET", "/setcookie", host="raw.localhost", headers=raw_app)
    assert resp.status == 200
    assert resp.header_all("Set-Cookie") == ["sessionid=own; Path=/"]
