"""Send an allowed request upstream and stream the answer back.

Built on urllib3's connection pools directly: one pool per upstream
(scheme, host, port, CA bundle), no cookie jar, no proxies from the
environment, no retries that could replay a request body, and no decoding of
compressed bodies. The request target is written exactly as the client sent
it: urllib3's ``urlopen`` would re-encode it (upper-casing ``%2f``, escaping a
stray ``%``), and an upstream must see the bytes the policy engine judged.
"""

from __future__ import annotations

import errno
import http.client
import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import urllib3
from django.conf import settings
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util import SKIP_HEADER, Retry, Timeout

from apps.policies.snapshot import AppSpec

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024
NO_RETRY = Retry(total=False, redirect=False, raise_on_redirect=False)


class UpstreamError(Exception):
    """The upstream could not be reached or did not answer in time."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _RawTargetMixin:
    def putrequest(
        self,
        method: str,
        url: str,
        skip_host: bool = False,
        skip_accept_encoding: bool = False,
    ) -> None:
        # Never invent an Accept-Encoding the client did not send.
        parent: Any = super()
        parent.putrequest(method, url, skip_host=skip_host, skip_accept_encoding=True)

    def _encode_request(self, request: str) -> bytes:
        # The target arrives as latin-1 text from the WSGI server, one
        # character per byte the client sent, so this restores those bytes.
        return request.encode("latin-1")


class RawHTTPConnection(_RawTargetMixin, HTTPConnection):
    pass


class RawHTTPSConnection(_RawTargetMixin, HTTPSConnection):
    pass


class _PoolMixin:
    def send_raw(
        self,
        method: str,
        target: str,
        body: Any,
        headers: dict[str, str],
        chunked: bool,
        timeout: Timeout,
    ) -> BaseHTTPResponse:
        pool: Any = self
        if not any(k.lower() == "user-agent" for k in headers):
            headers["User-Agent"] = SKIP_HEADER  # send none rather than urllib3's
        conn = pool._get_conn()
        try:
            return pool._make_request(
                conn,
                method,
                target,
                body=body,
                headers=headers,
                chunked=chunked,
                timeout=timeout,
                retries=NO_RETRY,
                response_conn=conn,
                preload_content=False,
                decode_content=False,
                enforce_content_length=True,
            )
        except BaseException:
            conn.close()
            pool._put_conn(conn)
            raise


class RawHTTPPool(_PoolMixin, HTTPConnectionPool):
    ConnectionCls = RawHTTPConnection


class RawHTTPSPool(_PoolMixin, HTTPSConnectionPool):
    ConnectionCls = RawHTTPSConnection


_pools: dict[tuple[str, str, int, str], Any] = {}
_pools_lock = threading.Lock()


def _pool_for(app: AppSpec) -> Any:
    up = app.upstream
    key = (up.scheme, up.host, up.port, app.ca_bundle)
    pool = _pools.get(key)
    if pool is not None:
        return pool
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            kwargs: dict[str, Any] = {
                "maxsize": settings.UPSTREAM_POOL_SIZE,
                "block": False,
                "retries": False,
            }
            if up.scheme == "https":
                kwargs["cert_reqs"] = "CERT_REQUIRED"
                if app.ca_bundle:
                    kwargs["ca_certs"] = app.ca_bundle
                pool = RawHTTPSPool(up.host, up.port, **kwargs)
            else:
                pool = RawHTTPPool(up.host, up.port, **kwargs)
            _pools[key] = pool
    return pool


def relay_request(
    app: AppSpec,
    method: str,
    target: str,
    headers: dict[str, str],
    body: Iterable[bytes] | None,
    chunked: bool,
) -> BaseHTTPResponse:
    """Send the request; raise ``UpstreamError`` for a 502 or 504 answer."""
    timeout = Timeout(connect=app.connect_timeout, read=app.read_timeout)
    pool = _pool_for(app)
    try:
        return pool.send_raw(method, target, body, headers, chunked, timeout)
    except NewConnectionError:
        # Checked first: urllib3 makes it a subclass of ConnectTimeoutError,
        # but a refused connection is "down" (502), not "slow" (504).
        raise UpstreamError(502, "refused") from None
    except (ConnectTimeoutError, ReadTimeoutError, TimeoutError):
        raise UpstreamError(504, "timeout") from None
    except SSLError:
        raise UpstreamError(502, "tls") from None
    except (
        ProtocolError,
        OSError,
        urllib3.exceptions.HTTPError,
        http.client.HTTPException,
    ):
        # _make_request does not wrap http.client's own errors (a garbage
        # status line is BadStatusLine) the way urlopen would.
        raise UpstreamError(502, "protocol") from None


def stream_body(response: BaseHTTPResponse, app_slug: str = "") -> Iterator[bytes]:
    """Yield the upstream body as it arrives, then return the connection.

    When the upstream fails mid-body the status line is already out, so the
    only honest signal left is to cut the client's connection: a reset makes
    gunicorn close the socket without a 500 on top of a half-sent answer.
    """
    complete = False
    try:
        while True:
            try:
                chunk = response.read1(CHUNK)
            except (
                ProtocolError,
                OSError,
                urllib3.exceptions.HTTPError,
                http.client.HTTPException,
            ) as exc:
                logger.warning(
                    "upstream of %s failed mid-body: %s", app_slug, type(exc).__name__
                )
                raise ConnectionResetError(
                    errno.ECONNRESET, "upstream body cut short"
                ) from None
            if not chunk:
                break
            yield chunk
        complete = True
    finally:
        if complete:
            response.release_conn()
        else:
            # Unread bytes would poison the pooled connection.
            response.close()
            conn = getattr(response, "_connection", None)
            if conn is not None:
                conn.close()
            response.release_conn()
