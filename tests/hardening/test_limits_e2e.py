"""Class 7: oversized or odd requests get clear answers, and large bodies
stream instead of hitting Django's in-memory limits."""

import hashlib
import socket
import time

import pytest

from tests.support.apps import make_app

OPEN = ("open", "bypass", 1, [("include", "everyone", "")])

pytestmark = pytest.mark.e2e


@pytest.fixture
def open_app(live_db, upstream):  # type: ignore[no-untyped-def]
    return make_app("lim", "lim.localhost", upstream.url, [OPEN])


def test_limits_very_long_url_is_refused_with_414(portal, open_app):  # type: ignore[no-untyped-def]
    resp = portal.request("GET", "/" + "a" * 20000, host="lim.localhost")
    assert resp.status in (400, 414)


def test_limits_oversized_header_is_refused(portal, open_app):  # type: ignore[no-untyped-def]
    resp = portal.request(
        "GET", "/", host="lim.localhost", headers={"X-Big": "b" * 40000}
    )
    assert resp.status in (400, 431)


def test_limits_too_many_headers_are_refused(portal, open_app):  # type: ignore[no-untyped-def]
    headers = [(f"X-H{i}", "v") for i in range(300)]
    resp = portal.request("GET", "/", host="lim.localhost", headers=headers)
    assert resp.status in (400, 431)


def test_limits_body_beyond_django_limits_streams_through(portal, open_app, upstream):  # type: ignore[no-untyped-def]
    body = bytes(range(256)) * (
        40 * 4096
    )  # 40 MiB, far past DATA_UPLOAD_MAX_MEMORY_SIZE
    resp = portal.request(
        "POST", "/upload", host="lim.localhost", body=body, timeout=120
    )
    assert resp.status == 200
    assert upstream.last.body_len == len(body)
    assert upstream.last.body_sha == hashlib.sha256(body).hexdigest()


def test_limits_expect_100_continue_is_honoured(portal, open_app, upstream):  # type: ignore[no-untyped-def]
    body = b"z" * 100_000
    with socket.create_connection(("127.0.0.1", portal.port), timeout=10) as sock:
        sock.sendall(
            b"POST /expect HTTP/1.1\r\n"
            + f"Host: lim.localhost:{portal.port}\r\n".encode()
            + f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100")
        sock.sendall(body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
    assert data.split(b"\r\n", 1)[0].endswith(b"200 OK")
    assert upstream.last.body_len == len(body)
    assert "expect" not in upstream.last.header_names()


def test_limits_slow_sender_does_not_block_other_clients(portal, open_app):  # type: ignore[no-untyped-def]
    slow = socket.create_connection(("127.0.0.1", portal.port), timeout=10)
    try:
        slow.sendall(
            f"POST /slow HTTP/1.1\r\nHost: lim.localhost:{portal.port}\r\nContent-Length: 1000\r\n\r\n".encode()
        )
        slow.sendall(b"x" * 10)
        started = time.monotonic()
        for _ in range(5):
            assert (
                portal.request("GET", "/fast", host="lim.localhost", timeout=5).status
                == 200
            )
        assert time.monotonic() - started < 3
    finally:
        slow.close()
