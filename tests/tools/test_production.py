"""The production set-up: two gunicorn instances sharing PostgreSQL and Redis.

Each instance reaches the stores through a loopback TCP relay that the test
owns, so an outage is a cut relay, never a stopped service. Admin actions
come from a separate console process (``tests/tools/control.py``) that talks
to the stores directly, as an admin on a third instance would. The policy
poll interval is the production default (2 s).
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from psycopg import sql

from tests.conftest import portal_env, require
from tests.support.portal import Portal, Response, free_port
from tests.tools.control import Control
from tests.tools.members import redeem
from tests.tools.tcprelay import TcpRelay

pytestmark = [pytest.mark.e2e, pytest.mark.production]

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
POLICY_DEADLINE = 5.0
POLL_INTERVAL = 2.0  # ACCESSPORTAL_CONFIG_POLL_SECONDS's default
RECOVERY_DEADLINE = 10.0
TOOLS = 12
_numbers = itertools.count(1)


def _postgres_admin() -> psycopg.Connection | None:
    try:
        return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error:
        return None


def _redis_client() -> redis.Redis | None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError:
        return None
    return client


def _with_address(url: str, address: tuple[str, int], path: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = f"{address[0]}:{address[1]}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return parts._replace(netloc=netloc, path=path or parts.path).geturl()


def _address(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


@dataclass
class Stores:
    """A throw-away database and cache prefix, each behind a relay."""

    postgres: TcpRelay
    redis: TcpRelay
    direct: dict[str, str]
    relayed: dict[str, str]
    prefix: str


@pytest.fixture(scope="module")
def stores() -> Iterator[Stores]:
    cache = _redis_client()
    require(
        cache is not None,
        f"Redis at {REDIS_URL}",
        "start Redis or set TEST_REDIS_URL (e.g. apt-get install -y redis-server)",
    )
    admin = _postgres_admin()
    require(
        admin is not None,
        f"PostgreSQL at {POSTGRES_URL}",
        "start PostgreSQL with a user that may CREATE DATABASE, or set "
        "TEST_POSTGRES_URL (e.g. apt-get install -y postgresql)",
    )
    assert cache is not None and admin is not None
    suffix = secrets.token_hex(4)
    database = f"accessportal_tools_{suffix}"
    prefix = f"accessportal-tools-{suffix}"
    pg_address = _address(POSTGRES_URL, 5432)
    postgres = TcpRelay(pg_address).start()
    redis_relay = TcpRelay(_address(REDIS_URL, 6379)).start()
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    try:
        yield Stores(
            postgres,
            redis_relay,
            direct={
                "DATABASE_URL": _with_address(POSTGRES_URL, pg_address, database),
                "REDIS_URL": REDIS_URL,
            },
            relayed={
                "DATABASE_URL": _with_address(
                    POSTGRES_URL, ("127.0.0.1", postgres.port), database
                ),
                "REDIS_URL": _with_address(REDIS_URL, ("127.0.0.1", redis_relay.port)),
            },
            prefix=prefix,
        )
    finally:
        postgres.stop()
        redis_relay.stop()
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(database)
            )
        )
        admin.close()
        for key in cache.scan_iter(f"{prefix}:*"):
            cache.delete(key)


@dataclass
class Tool:
    id: int
    host: str


@dataclass
class Cluster:
    a: Portal
    b: Portal
    control: Control
    postgres: TcpRelay
    redis: TcpRelay
    tools: list[Tool]
    token: dict[str, str]

    @property
    def instances(self) -> tuple[Portal, Portal]:
        return self.a, self.b


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, django_db_setup, upstream, stores) -> Iterator[Cluster]:  # type: ignore[no-untyped-def]
    """Two instances on the relayed stores; an admin console on the real."""
    logs = Path(tmp_path_factory.mktemp("production"))
    a_port, b_port = free_port(), free_port()
    shared = {
        # Both instances sit behind one public address, as behind a balancer.
        "PORTAL_URL": f"http://localhost:{a_port}",
        "ACCESSPORTAL_CACHE_PREFIX": stores.prefix,
    }
    started: list[Callable[[], None]] = []
    try:
        control_env = production_env(**shared, **stores.direct)
        migrate = Control.migrate(control_env, logs / "migrate.log")
        assert migrate == 0, f"migrate failed; see {logs / 'migrate.log'}"
        control = Control(control_env, logs / "control.log")
        started.append(control.stop)
        instances = []
        for name, port in (("a", a_port), ("b", b_port)):
            env = production_env(**shared, **stores.relayed)
            portal = Portal(port, "127.0.0.1", env, log_path=logs / f"{name}.log")
            started.append(portal.stop)
            portal.start()
            instances.append(portal)
        tools = [publish_tool(control, upstream.url) for _ in range(TOOLS)]
        client_id, secret = control("issue_token", name="robot")
        token = {"Access-Client-Id": client_id, "Access-Client-Secret": secret}
        cluster = Cluster(
            instances[0],
            instances[1],
            control,
            stores.postgres,
            stores.redis,
            tools,
            token,
        )
        # Published once and awaited once: a new application or token reaches
        # an instance only at its next policy poll.
        wait_until(
            lambda: all(
                call(p, t).status == 401
                and p.request("GET", "/", host=t.host, headers=token).status == 200
                for p in cluster.instances
                for t in tools
            ),
            POLICY_DEADLINE,
        )
        yield cluster
    finally:
        for stop in reversed(started):
            stop()


def production_env(**overrides: str) -> dict[str, str]:
    env = portal_env(**overrides)
    env.pop("ACCESSPORTAL_CONFIG_POLL_SECONDS")  # the production default, 2 s
    return env


def publish_tool(control: Control, upstream_url: str) -> Tool:
    number = next(_numbers)
    host = f"tool-{number}.localhost"
    app_id = control(
        "publish",
        slug=f"tool-{number}",
        hosts=host,
        upstream=upstream_url,
        policies=[
            ["staff", "allow", 10, [["email_domain", "example.com"]]],
            ["machines", "service_auth", 1, [["any_service_token", ""]]],
        ],
    )
    return Tool(app_id, host)


@pytest.fixture
def tool(cluster) -> Tool:  # type: ignore[no-untyped-def]
    """An application of its own per test, so revocations never leak."""
    return cluster.tools.pop()


def member() -> str:
    return f"member-{secrets.token_hex(3)}@example.com"


def call(
    portal: Portal,
    tool: Tool,
    cookie: str | None = None,
    accept: str = "application/json",
    path: str = "/dashboard",
) -> Response:
    headers = {"Accept": accept}
    if cookie:
        headers["Cookie"] = cookie
    return portal.request("GET", path, host=tool.host, headers=headers, timeout=10)


def sign_in(cluster: Cluster, tool: Tool, email: str, via: Portal) -> str:
    target = cluster.control("sign_in", app_id=tool.id, host=tool.host, email=email)
    return redeem(via, tool.host, target)


def wait_until(check: Callable[[], bool], timeout: float) -> float:
    """Poll ``check``; return how long it took to come true."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"not true within {timeout} s")


def test_production_sign_in_through_one_instance_works_on_the_other(  # type: ignore[no-untyped-def]
    cluster, tool, upstream
):
    email = member()
    cookie = sign_in(cluster, tool, email, via=cluster.a)

    resp = call(cluster.b, tool, cookie)

    assert resp.status == 200
    assert upstream.last.header("X-Auth-Request-Email") == email


def test_production_logout_on_one_instance_is_honoured_by_the_other(cluster, tool):  # type: ignore[no-untyped-def]
    cookie = sign_in(cluster, tool, member(), via=cluster.a)
    assert call(cluster.b, tool, cookie).status == 200

    out = cluster.a.request(
        "GET", "/.accessportal/logout", host=tool.host, headers={"Cookie": cookie}
    )

    assert out.status == 302
    assert [call(p, tool, cookie).status for p in cluster.instances] == [401, 401]


@pytest.mark.parametrize(
    "action", ["revoke_user_sessions", "revoke_user", "revoke_app"]
)
def test_production_admin_revocation_is_honoured_by_both_instances(  # type: ignore[no-untyped-def]
    cluster, tool, action
):
    email = member()
    cookie = sign_in(cluster, tool, email, via=cluster.b)
    assert [call(p, tool, cookie).status for p in cluster.instances] == [200, 200]

    if action == "revoke_app":
        cluster.control(action, app_id=tool.id)
    else:
        cluster.control(action, email=email)

    assert [call(p, tool, cookie).status for p in cluster.instances] == [401, 401]


def assert_settles_everywhere(
    cluster: Cluster, check: Callable[[Portal], bool], deadline: float
) -> float:
    """Wait until every worker of both instances passes ``check``.

    A worker re-reads the configuration version (and re-checks the database)
    on its first request after one poll interval, so once the interval has
    passed since a change, no request may see the old state, whichever
    worker it lands on. Returns when both instances first passed.
    """
    changed_at = time.monotonic()
    took = wait_until(lambda: all(check(p) for p in cluster.instances), deadline)
    time.sleep(max(0.0, POLL_INTERVAL + 0.2 - (time.monotonic() - changed_at)))
    assert all(check(p) for p in cluster.instances * 4)
    assert time.monotonic() - changed_at < deadline
    return took


def test_production_policy_change_applies_on_both_within_5_seconds(cluster, tool):  # type: ignore[no-untyped-def]
    email = member()
    cookie = sign_in(cluster, tool, email, via=cluster.a)
    assert [call(p, tool, cookie).status for p in cluster.instances] == [200, 200]
    block = ["block-member", "block", 1, [["email", email]]]

    cluster.control("add_policy", app_id=tool.id, policy=block)
    took = assert_settles_everywhere(
        cluster, lambda p: call(p, tool, cookie).status == 403, POLICY_DEADLINE
    )

    cluster.control("delete_policy", app_id=tool.id, name="block-member")
    back = assert_settles_everywhere(
        cluster, lambda p: call(p, tool, cookie).status == 200, POLICY_DEADLINE
    )
    print(f"policy change seen on both in {took:.2f} s, undone in {back:.2f} s")


def assert_unavailable(resp: Response, html: bool) -> None:
    assert resp.status == 503, (resp.status, resp.body[:200])
    assert resp.header("Retry-After")
    if html:
        assert b"Temporarily unavailable" in resp.body
        assert "text/html" in (resp.header("Content-Type") or "")
    else:
        assert resp.json()["error"] == "service_unavailable"


def test_production_redis_outage_refuses_with_503_then_recovers(cluster, tool):  # type: ignore[no-untyped-def]
    cookie = sign_in(cluster, tool, member(), via=cluster.a)
    revoked_email = member()
    revoked = sign_in(cluster, tool, revoked_email, via=cluster.a)
    cluster.control("revoke_user_sessions", email=revoked_email)
    assert call(cluster.a, tool, revoked).status == 401

    cluster.redis.cut()
    try:
        for portal in cluster.instances:
            assert_unavailable(call(portal, tool, cookie), html=False)
            assert_unavailable(call(portal, tool, cookie, "text/html"), html=True)
            # A revoked session cannot be checked now, so it is not let in.
            assert_unavailable(call(portal, tool, revoked), html=False)
            via_token = portal.request(
                "GET", "/x", host=tool.host, headers=cluster.token
            )
            assert_unavailable(via_token, html=False)
            handoff = portal.request(
                "GET",
                "/.accessportal/authorized?code=abc",
                host=tool.host,
                headers={"Accept": "text/html"},
            )
            assert_unavailable(handoff, html=True)
            portal_host = f"localhost:{portal.port}"
            health = portal.request("GET", "/healthz", host=portal_host)
            assert health.status == 503
            assert health.json()["checks"]["cache"] == "unavailable"
            anonymous = call(portal, tool, None, "text/html")
            assert anonymous.status in (302, 503)
    finally:
        cluster.redis.restore()

    took = assert_settles_everywhere(
        cluster, lambda p: call(p, tool, cookie).status == 200, RECOVERY_DEADLINE
    )
    assert [call(p, tool, revoked).status for p in cluster.instances] == [401, 401]
    print(f"recovered from the Redis outage in {took:.2f} s")


def test_production_postgres_outage_refuses_with_503_then_recovers(cluster, tool):  # type: ignore[no-untyped-def]
    cookie = sign_in(cluster, tool, member(), via=cluster.a)
    assert [call(p, tool, cookie).status for p in cluster.instances] == [200, 200]

    cluster.postgres.cut()
    cut_at = time.monotonic()
    try:
        # Until each worker's next check notices (at most one poll interval),
        # a request is decided from the still-current in-memory copy.
        seen = set()
        while time.monotonic() - cut_at < 2.5:
            seen |= {call(p, tool, cookie).status for p in cluster.instances}
            time.sleep(0.1)
        assert seen <= {200, 503}
        for portal in cluster.instances * 3:
            assert_unavailable(call(portal, tool, cookie), html=False)
            assert_unavailable(call(portal, tool, cookie, "text/html"), html=True)
            login = portal.request(
                "GET",
                "/login/",
                host=f"localhost:{portal.port}",
                headers={"Accept": "text/html"},
            )
            assert_unavailable(login, html=True)
        health = cluster.b.request(
            "GET", "/healthz", host=f"localhost:{cluster.b.port}"
        )
        assert health.status == 503
        assert health.json()["checks"]["database"] == "unavailable"
        # Operators still see the outage and the metrics.
        metrics = cluster.b.request(
            "GET", "/metrics", host=f"localhost:{cluster.b.port}"
        )
        assert metrics.status == 200
    finally:
        cluster.postgres.restore()

    took = assert_settles_everywhere(
        cluster, lambda p: call(p, tool, cookie).status == 200, RECOVERY_DEADLINE
    )
    fresh = sign_in(cluster, tool, member(), via=cluster.b)
    assert call(cluster.a, tool, fresh).status == 200
    print(f"recovered from the PostgreSQL outage in {took:.2f} s")
