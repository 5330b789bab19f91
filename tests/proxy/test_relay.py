"""What the relay carries, and how it fails, against real upstreams."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import http.client
import socket
import ssl
import threading

import pytest

from tests.proxy.conftest import API, HTML, STANDARD_POLICIES, make_app, token_headers
from tests.support.portal import free_port
from tests.support.raw_upstream import RawUpstream
from tests.support.upstream import UpstreamServer

pytestmark = pytest.mark.e2e

BIG = 24 * 1024 * 1024  # well past Django's 2.5 MB in-memory upload limit


def _req(portal, token, method, path, headers=None, body=None, host="echo.localhost"):  # type: ignore[no-untyped-def]
    return portal.request(
        method,
        path,
        host=host,
        headers={**token_headers(token), **(headers or {})},
        body=body,
    )


def test_relay_large_upload_streams_through(portal, echo, token, upstream):  # type: ignore[no-untyped-def]
    body = bytes(range(256)) * (BIG // 256)
    resp = _req(
        portal,
        token,
        "PUT",
        "/upload",
        {"Content-Type": "application/octet-stream"},
        body,
    )
    assert resp.status == 200, resp.body[:200]
    assert upstream.last.body_len == len(body)
    assert upstream.last.body_sha == hashlib.sha256(body).hexdigest()


def test_relay_large_download_streams_through(portal, echo, token):  # type: ignore[no-untyped-def]
    resp = _req(portal, token, "GET", f"/__bytes?n={BIG}")
    assert resp.status == 200
    assert len(resp.body) == BIG
    assert resp.body[:512] == bytes(range(256)) * 2
    resp = _req(portal, token, "GET", "/__bytes?n=300000&chunked=1")
    assert len(resp.body) == 300000


def test_relay_chunked_upload_passed_as_chunked(portal, echo, token, upstream):  # type: ignore[no-untyped-def]
    pieces = [b"a" * 70000, b"b" * 3, b"c" * 100000]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    resp = _req(
        portal, token, "POST", "/chunked", {"Transfer-Encoding": "chunked"}, framed
    )
    assert resp.status == 200
    assert upstream.last.body_len == sum(len(p) for p in pieces)
    assert upstream.last.body_sha == hashlib.sha256(b"".join(pieces)).hexdigest()
    assert upstream.last.header("Transfer-Encoding") == "chunked"


def test_relay_expect_continue_answered_and_body_relayed(portal, echo, token, upstream):  # type: ignore[no-untyped-def]
    body = b"z" * 200000
    with socket.create_connection(("127.0.0.1", portal.port), timeout=10) as sock:
        head = (
            f"POST /expect HTTP/1.1\r\nHost: echo.localhost\r\n"
            f"Access-Client-Id: {token.client_id}\r\n"
            f"Access-Client-Secret: {token.secret}\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n"
            "Connection: close\r\n\r\n"
        )
        sock.sendall(head.encode())
        interim = sock.recv(100)
        assert interim.startswith(b"HTTP/1.1 100")
        sock.sendall(body)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert b" 200 " in reply.split(b"\r\n", 1)[0]
    assert upstream.last.body_len == len(body)
    assert upstream.last.header("Expect") is None


def test_relay_head_has_headers_no_body(portal, echo, token, upstream):  # type: ignore[no-untyped-def]
    resp = _req(portal, token, "HEAD", "/__bytes?n=5000")
    assert resp.status == 200
    assert resp.header("Content-Length") == "5000"
    assert resp.body == b""
    assert upstream.last.method == "HEAD"
    # The pooled connection is still usable afterwards.
    assert _req(portal, token, "GET", "/after-head").status == 200


def test_relay_plain_options_reaches_upstream(portal, echo, token, upstream):  # type: ignore[no-untyped-def]
    resp = _req(portal, token, "OPTIONS", "/opts")
    assert resp.status == 200
    assert upstream.last.method == "OPTIONS"


@pytest.mark.parametrize("code", [204, 304])
def test_relay_bodiless_status_passed(portal, echo, token, code):  # type: ignore[no-untyped-def]
    resp = _req(portal, token, "GET", f"/__status/{code}", {"If-None-Match": '"x"'})
    assert resp.status == code
    assert resp.body == b""
    assert _req(portal, token, "GET", "/after").status == 200


@pytest.mark.parametrize("code", [201, 400, 404, 418, 500, 503])
def test_relay_upstream_status_passed(portal, echo, token, code):  # type: ignore[no-untyped-def]
    assert _req(portal, token, "GET", f"/__status/{code}").status == code


def test_relay_set_cookie_headers_kept_apart(portal, echo, token):  # type: ignore[no-untyped-def]
    resp = _req(portal, token, "GET", "/__cookies")
    assert resp.header_all("Set-Cookie") == [
        "a=1; Path=/",
        "b=2; Path=/; HttpOnly",
        "c=3, with comma; Path=/",
    ]


def test_relay_gzip_passed_untouched(portal, echo, token, upstream):  # type: ignore[no-untyped-def]
    resp = _req(portal, token, "GET", "/__gzip", {"Accept-Encoding": "gzip"})
    assert resp.header("Content-Encoding") == "gzip"
    assert resp.header("Vary") == "Accept-Encoding"
    assert int(resp.header("Content-Length")) == len(resp.body)
    assert gzip.decompress(resp.body) == b"hello gzip " * 100
    assert upstream.last.header("Accept-Encoding") == "gzip"


def test_relay_no_accept_encoding_invented(portal, echo, token, upstream):  # type: ignore[no-untyped-def]
    _req(portal, token, "GET", "/plain")
    assert upstream.last.header("Accept-Encoding") is None
    assert upstream.last.header("User-Agent") is None


def test_relay_response_hop_by_hop_dropped(portal, echo, token):  # type: ignore[no-untyped-def]
    resp = _req(portal, token, "GET", "/__hop")
    assert resp.status == 200
    names = {k.lower() for k, _ in resp.headers}
    assert "x-secret-hop" not in names
    assert "keep-alive" not in names


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        ("{up}/next?a=1", "{pub}/next?a=1"),
        ("{up}", "{pub}/"),
        ("/relative", "/relative"),
        ("https://elsewhere.example/x", "https://elsewhere.example/x"),
        ("{up}evil.example/x", "{up}evil.example/x"),
        ("{UP}/upper?x=1", "{pub}/upper?x=1"),
        ("{up_noport}/default-port", "{up_noport}/default-port"),
    ],
)
def test_relay_location_rewritten_to_public_url(
    portal, echo, token, upstream, to, expected
):  # type: ignore[no-untyped-def]
    from urllib.parse import quote

    pub = f"http://echo.localhost:{portal.port}"
    values = {
        "up": upstream.url,
        "UP": upstream.url.upper(),
        "up_noport": upstream.url.rsplit(":", 1)[0],  # port 80: another server
        "pub": pub,
    }
    target = to.format(**values)
    resp = _req(portal, token, "GET", f"/__redirect?to={quote(target, safe='')}")
    assert resp.status == 302
    assert resp.header("Location") == expected.format(**values)


def test_relay_location_uses_configured_host_not_request_host(
    portal, echo, token, upstream
):  # type: ignore[no-untyped-def]
    from urllib.parse import quote

    resp = portal.request(
        "GET",
        f"/__redirect?to={quote(upstream.url + '/n', safe='')}",
        host="Echo.Localhost:9999",
        headers=token_headers(token),
    )
    assert resp.header("Location") == f"http://echo.localhost:{portal.port}/n"


def test_relay_client_authorization_passed(portal, echo, token, upstream):  # type: ignore[no-untyped-def]
    _req(portal, token, "GET", "/auth", {"Authorization": "Bearer upstream-own-token"})
    assert upstream.last.header("Authorization") == "Bearer upstream-own-token"


@pytest.mark.parametrize(
    "target",
    [
        "/a%2fb/%2F?x=%2f",
        "/sp%20ace?q=a+b%20c",
        "/%C3%A9t%C3%A9?%E2%9C%93=1",
        "/x?",
        "/x?a=1&a=2&b",
    ],
)
def test_relay_raw_target_byte_for_byte(portal, echo, token, upstream, target):  # type: ignore[no-untyped-def]
    assert _req(portal, token, "GET", target).status == 200
    assert upstream.last.path == target


# CORS preflight --------------------------------------------------------------

PREFLIGHT = {
    "Origin": "https://ui.example",
    "Access-Control-Request-Method": "PUT",
    "Access-Control-Request-Headers": "content-type",
}


def test_relay_preflight_answered_by_portal(portal, live_db, upstream):  # type: ignore[no-untyped-def]
    make_app(
        "cors",
        "cors.localhost",
        upstream.url,
        STANDARD_POLICIES,
        cors_mode="portal",
        cors_origins="https://ui.example",
    )
    before = len(upstream.requests)
    resp = portal.request("OPTIONS", "/api", host="cors.localhost", headers=PREFLIGHT)
    assert resp.status == 204
    assert resp.header("Access-Control-Allow-Origin") == "https://ui.example"
    assert "PUT" in resp.header("Access-Control-Allow-Methods")
    assert resp.header("Access-Control-Allow-Headers") == "content-type"
    bad = portal.request(
        "OPTIONS",
        "/api",
        host="cors.localhost",
        headers={**PREFLIGHT, "Origin": "https://evil.example"},
    )
    assert bad.status == 403
    assert bad.header("Access-Control-Allow-Origin") is None
    assert len(upstream.requests) == before
    from apps.tokens.service import issue_token

    auth = token_headers(issue_token("cors-ci"))
    real = portal.request(
        "PUT",
        "/api",
        host="cors.localhost",
        headers={**auth, "Origin": "https://ui.example", "Content-Length": "2"},
        body=b"{}",
    )
    assert real.status == 200
    assert real.header_all("Access-Control-Allow-Origin") == ["https://ui.example"]
    assert real.header("Access-Control-Allow-Credentials") == "true"
    other = portal.request(
        "GET",
        "/api",
        host="cors.localhost",
        headers={**auth, "Origin": "https://evil.example"},
    )
    assert other.header("Access-Control-Allow-Origin") is None


def test_relay_preflight_passed_upstream_bare(portal, echo, upstream):  # type: ignore[no-untyped-def]
    from tests.proxy.conftest import mint_cookie

    headers = {
        **PREFLIGHT,
        "Cookie": f"{mint_cookie(echo)}; sessionid=1",
        "Authorization": "Basic eDp5",
    }
    resp = portal.request("OPTIONS", "/api", host="echo.localhost", headers=headers)
    assert resp.status == 200
    seen = upstream.last
    assert seen.method == "OPTIONS"
    assert seen.header("Origin") == "https://ui.example"
    assert seen.header("Cookie") is None
    assert seen.header("Authorization") is None
    assert not {n for n in seen.header_names() if n.startswith("x-auth-request")}
    assert seen.header("X-Access-Jwt-Assertion") is None


def test_relay_preflight_returns_only_the_cors_answer(portal, echo, upstream):  # type: ignore[no-untyped-def]
    # The test upstream answers OPTIONS like GET, with a full echo body: an
    # anonymous preflight must not become a way to read the application.
    resp = portal.request(
        "OPTIONS",
        "/private/page?q=1",
        host="echo.localhost",
        headers={
            **PREFLIGHT,
            "X-HTTP-Method-Override": "DELETE",
            "Content-Length": "11",
        },
        body=b"hello=world",
    )
    assert resp.status == 200
    assert resp.body == b""
    assert resp.header("Content-Type") is None
    seen = upstream.last
    assert seen.method == "OPTIONS"
    assert seen.path == "/private/page?q=1"
    assert seen.body_len == 0
    assert seen.header("X-HTTP-Method-Override") is None
    assert seen.header("Access-Control-Request-Method") == "PUT"


# Failures --------------------------------------------------------------------


def test_relay_timeout_gives_504_page(portal, live_db, upstream):  # type: ignore[no-untyped-def]
    make_app(
        "slow", "slow.localhost", upstream.url, STANDARD_POLICIES, read_timeout=0.3
    )
    from apps.tokens.service import issue_token

    token = issue_token("slow-ci")
    resp = _req(portal, token, "GET", "/__sleep?s=1.5", HTML, host="slow.localhost")
    assert resp.status == 504
    assert b"Slow" in resp.body
    assert upstream.url.encode() not in resp.body
    resp = _req(portal, token, "GET", "/__sleep?s=1.5", API, host="slow.localhost")
    assert resp.status == 504
    assert resp.json()["error"] == "upstream_timeout"
    # A quick answer within the same short timeout still passes.
    assert (
        _req(portal, token, "GET", "/__sleep?s=0.05", API, host="slow.localhost").status
        == 200
    )


def test_relay_refused_gives_502_page_without_internals(portal, live_db):  # type: ignore[no-untyped-def]
    port = free_port()
    make_app("gone", "gone.localhost", f"http://127.0.0.1:{port}", STANDARD_POLICIES)
    from apps.tokens.service import issue_token

    token = issue_token("gone-ci")
    resp = _req(portal, token, "GET", "/", HTML, host="gone.localhost")
    assert resp.status == 502
    assert b"Gone" in resp.body
    for leak in (str(port).encode(), b"127.0.0.1", b"Traceback", b"refused", b"Errno"):
        assert leak not in resp.body
    assert (
        _req(portal, token, "GET", "/", API, host="gone.localhost").json()["error"]
        == "upstream_unavailable"
    )


def test_relay_garbage_upstream_gives_502(portal, echo, token):  # type: ignore[no-untyped-def]
    resp = _req(portal, token, "GET", "/__garbage", API)
    assert resp.status == 502
    assert _req(portal, token, "GET", "/fine").status == 200


def test_relay_reset_mid_body_cuts_client_connection(portal, echo, token):  # type: ignore[no-untyped-def]
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        _req(portal, token, "GET", "/__reset")
    assert _req(portal, token, "GET", "/fine").status == 200


# Upstream TLS ----------------------------------------------------------------


def _make_ca(tmp_path, name: str):  # type: ignore[no-untyped-def]
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_path = tmp_path / f"{name}-ca.pem"
    ca_path.write_bytes(ca.public_bytes(pem))
    chain = tmp_path / f"{name}-server.pem"
    chain.write_bytes(
        cert.public_bytes(pem)
        + key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_path, chain


@pytest.fixture(scope="module")
def tls_upstream(tmp_path_factory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("tls")
    ca_path, chain = _make_ca(tmp, "good")
    other_ca, _ = _make_ca(tmp, "other")
    server = UpstreamServer()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield server, f"https://{host}:{port}", str(ca_path), str(other_ca)
    server.shutdown()
    server.server_close()


def test_relay_tls_upstream_verified_with_app_ca(portal, live_db, tls_upstream):  # type: ignore[no-untyped-def]
    server, url, ca_path, other_ca = tls_upstream
    make_app("tls-ok", "tls-ok.localhost", url, STANDARD_POLICIES, ca_bundle=ca_path)
    make_app("tls-system", "tls-system.localhost", url, STANDARD_POLICIES)
    make_app(
        "tls-wrong", "tls-wrong.localhost", url, STANDARD_POLICIES, ca_bundle=other_ca
    )
    from apps.tokens.service import issue_token

    token = issue_token("tls-ci")
    resp = _req(portal, token, "GET", "/secure?x=1", API, host="tls-ok.localhost")
    assert resp.status == 200, resp.body
    assert server.last.path == "/secure?x=1"
    for host in ("tls-system.localhost", "tls-wrong.localhost"):
        before = len(server.requests)
        resp = _req(portal, token, "GET", "/secure", API, host=host)
        assert resp.status == 502
        assert len(server.requests) == before


# Upstream answers the relay's own HTTP client must read (or refuse) ---------


@pytest.fixture(scope="module")
def scripted():  # type: ignore[no-untyped-def]
    server = RawUpstream()
    yield server
    server.close()


@pytest.fixture
def scripted_app(live_db, scripted):  # type: ignore[no-untyped-def]
    from apps.tokens.service import issue_token

    make_app(
        "scripted",
        "scripted.localhost",
        f"http://127.0.0.1:{scripted.port}",
        STANDARD_POLICIES,
        read_timeout=2,
    )
    return token_headers(issue_token("scripted-ci"))


@pytest.mark.parametrize(
    ("answer", "status", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, b"hello"),
        (b"HTTP/1.0 200 OK\r\n\r\nuntil close", 200, b"until close"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n",
            200,
            b"abcde",
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
            201,
            b"ok",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
            502,
            None,
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 502, None),
        (
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n",
            502,
            None,
        ),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 502, None),
        (b"HTTP/2 200\r\n\r\n", 502, None),
        (b"HTTP/1.1 2000 OK\r\n\r\n", 502, None),
        (b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", 502, None),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 200, None),
        # Chunk sizes Python's int() would take but HTTP does not.
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
            200,
            None,
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-0\r\n\r\n", 200, None),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n"
            + b"a" * 10
            + b"\r\n0\r\n\r\n",
            200,
            None,
        ),
        # A bare CR or NUL inside a header value could split the client's answer.
        (
            b"HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: evil=1\r\nContent-Length: 0\r\n\r\n",
            502,
            None,
        ),
        (b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n", 502, None),
        (b"HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 0\r\n\r\n", 502, None),
        (b"", 502, None),
    ],
)
def test_relay_upstream_framing_read_or_refused(
    portal, scripted, scripted_app, answer, status, body
):  # type: ignore[no-untyped-def]
    scripted.answer = answer
    if body is None and status == 200:
        # The head was fine, the body is not: the client's connection is cut.
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            portal.request("GET", "/", host="scripted.localhost", headers=scripted_app)
        return
    resp = portal.request(
        "GET", "/", host="scripted.localhost", headers={**API, **scripted_app}
    )
    assert resp.status == status, resp.body[:200]
    if body is not None:
        assert resp.body == body
    else:
        assert resp.json()["error"] == "upstream_unavailable"


def test_relay_chunked_with_content_length_reaches_client_without_it(
    portal, scripted, scripted_app
):  # type: ignore[no-untyped-def]
    scripted.answer = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    )
    resp = portal.request("GET", "/", host="scripted.localhost", headers=scripted_app)
    assert resp.status == 200
    assert resp.body == b"hello"
    assert resp.header("Content-Length") in (None, "5")


def test_relay_upstream_connections_reused(portal, scripted, scripted_app):  # type: ignore[no-untyped-def]
    scripted.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    for _ in range(3):  # both workers open their pooled connection
        portal.request("GET", "/", host="scripted.localhost", headers=scripted_app)
    before = scripted.connections
    for _ in range(20):
        assert (
            portal.request(
                "GET", "/", host="scripted.localhost", headers=scripted_app
            ).status
            == 200
        )
    assert scripted.connections - before <= 2
