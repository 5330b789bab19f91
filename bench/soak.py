"""A bounded soak: mixed traffic through the portal, then the books are
checked.

Fifty clients (by default) send cookie, service-token, bypass and denied
requests for a fixed time through the portal under gunicorn on 127.0.0.1.
At the end: no 5xx answer that the upstream did not cause, the portal's
resident memory after warm-up grew by less than 10%, and the audit log holds
exactly one ``denied`` event per 403 the clients saw.

Run the full version (10 minutes) with::

    .venv/bin/python -m bench.soak --seconds 600 --clients 50

The test suite runs a 60-second version (``tests/hardening/test_soak_e2e.py``).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class SoakResult:
    seconds: float
    statuses: Counter = field(default_factory=Counter)
    by_kind: dict = field(default_factory=dict)
    errors: int = 0
    rss_start_kb: int = 0
    rss_end_kb: int = 0
    denied_seen: int = 0
    denied_audited: int = 0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    @property
    def rss_growth(self) -> float:
        if not self.rss_start_kb:
            return 0.0
        return (self.rss_end_kb - self.rss_start_kb) / self.rss_start_kb

    def summary(self) -> str:
        rate = self.requests / self.seconds if self.seconds else 0
        return (
            f"requests={self.requests} ({rate:.0f}/s) statuses={dict(sorted(self.statuses.items()))} "
            f"client_errors={self.errors} 5xx={self.server_errors} "
            f"rss_kb {self.rss_start_kb}->{self.rss_end_kb} ({self.rss_growth:+.1%}) "
            f"denied seen={self.denied_seen} audited={self.denied_audited}"
        )


def _children_rss_kb(pid: int) -> int:
    """Total resident memory of a gunicorn master's worker processes."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("PPid", "").strip() == str(pid):
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total


def setup_apps(upstream_url: str) -> dict:
    """Create the soak's applications, a member cookie and tokens."""
    from django.contrib.auth import get_user_model

    from apps.policies.models import Application, Policy, Rule
    from apps.policies.snapshot import get_snapshot
    from apps.proxy.cookies import CookieClaims, encode_cookie
    from apps.tokens.service import issue_token

    def make(slug: str, policies: list[tuple[str, str, str]]) -> Application:
        app = Application(
            name=slug, slug=slug, hosts=f"{slug}.localhost", upstream=upstream_url
        )
        app.full_clean()
        app.save()
        for i, (action, selector, value) in enumerate(policies):
            policy = Policy.objects.create(
                application=app, name=f"p{i}", action=action, precedence=i
            )
            Rule.objects.create(
                policy=policy, kind="include", selector=selector, value=value
            )
        return app

    open_app = make(
        "soak-open",
        [
            ("allow", "email_domain", "corp.example"),
            ("service_auth", "service_token", "soak-ok"),
        ],
    )
    make("soak-public", [("bypass", "everyone", "")])
    closed = make("soak-closed", [("allow", "email", "someone-else@corp.example")])
    user = get_user_model().objects.create(
        username="member@corp.example", email="member@corp.example"
    )
    ok = issue_token("soak-ok")
    other = issue_token("soak-other")
    now = int(time.time())
    get_snapshot()

    def cookie(app: Application) -> str:
        from apps.policies.snapshot import get_snapshot as snap

        spec = snap().apps[app.pk]
        claims = CookieClaims(
            app.pk, "soak-sid", user.pk, user.email, "", (), (), "pin", now, now + 86400
        )
        return f"{spec.cookie_name}={encode_cookie(claims)}"

    return {
        "cookie_open": cookie(open_app),
        "cookie_closed": cookie(closed),
        "token_ok": (ok.client_id, ok.secret),
        "token_other": (other.client_id, other.secret),
    }


def _requests(creds: dict) -> list[tuple[str, str, str, dict[str, str]]]:
    tok_id, tok_secret = creds["token_ok"]
    other_id, other_secret = creds["token_other"]
    return [
        (
            "cookie",
            "soak-open.localhost",
            "/page?x=1",
            {"Cookie": creds["cookie_open"], "Accept": "text/html"},
        ),
        (
            "token",
            "soak-open.localhost",
            "/api/v1/x",
            {"Access-Client-Id": tok_id, "Access-Client-Secret": tok_secret},
        ),
        ("bypass", "soak-public.localhost", "/envelope", {}),
        (
            "denied-user",
            "soak-closed.localhost",
            "/",
            {"Cookie": creds["cookie_closed"], "Accept": "text/html"},
        ),
        (
            "denied-token",
            "soak-open.localhost",
            "/",
            {"CF-Access-Client-Id": other_id, "CF-Access-Client-Secret": other_secret},
        ),
        ("anonymous", "soak-open.localhost", "/", {"Accept": "application/json"}),
        (
            "upload",
            "soak-open.localhost",
            "/__status/200",
            {
                "Access-Client-Id": tok_id,
                "Access-Client-Secret": tok_secret,
                "_body": "x" * 20000,
            },
        ),
    ]


def run_soak(
    port: int,
    master_pid: int,
    creds: dict,
    seconds: float,
    clients: int,
    warmup: float = 5.0,
) -> SoakResult:
    from django.db import close_old_connections

    from apps.audit.models import AuditEvent

    kinds = _requests(creds)
    result = SoakResult(seconds=seconds)
    lock = threading.Lock()
    stop = threading.Event()
    measuring = threading.Event()

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        local: Counter = Counter()
        local_kind: Counter = Counter()
        errors = 0
        for i in itertools.count(offset):
            if stop.is_set():
                break
            kind, host, path, headers = kinds[i % len(kinds)]
            headers = dict(headers)
            body = headers.pop("_body", None)
            try:
                conn.request(
                    "POST" if body else "GET",
                    path,
                    body=body,
                    headers={"Host": f"{host}:{port}", **headers},
                )
                resp = conn.getresponse()
                resp.read()
                if measuring.is_set():
                    local[resp.status] += 1
                    local_kind[(kind, resp.status)] += 1
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        conn.close()
        with lock:
            result.statuses.update(local)
            for key, n in local_kind.items():
                result.by_kind[key] = result.by_kind.get(key, 0) + n
            result.errors += errors

    close_old_connections()
    denied_before = AuditEvent.objects.filter(kind="denied").count()
    # Denials during warm-up are audited too; count them from the start.
    measuring.set()
    threads = [
        threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    time.sleep(min(warmup, seconds / 4))
    result.rss_start_kb = _children_rss_kb(master_pid)
    time.sleep(max(0.0, seconds - min(warmup, seconds / 4)))
    result.rss_end_kb = _children_rss_kb(master_pid)
    stop.set()
    for thread in threads:
        thread.join(30)
    result.denied_seen = result.statuses.get(403, 0)
    deadline = time.time() + 20
    while time.time() < deadline:
        close_old_connections()
        result.denied_audited = (
            AuditEvent.objects.filter(kind="denied").count() - denied_before
        )
        if result.denied_audited >= result.denied_seen:
            break
        time.sleep(0.5)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from tests.conftest import portal_env
    from tests.support.portal import Portal, free_port
    from tests.support.upstream import UpstreamServer

    call_command("migrate", verbosity=0)
    upstream = UpstreamServer().start()
    creds = setup_apps(upstream.url)
    port = free_port()
    log = Path(os.environ["ACCESSPORTAL_TEST_DIR"]) / "soak-gunicorn.log"
    portal = Portal(
        port=port,
        bind="127.0.0.1",
        env=portal_env(PORTAL_URL=f"http://localhost:{port}"),
        log_path=log,
    )
    portal.start()
    try:
        assert portal.process is not None
        result = run_soak(port, portal.process.pid, creds, args.seconds, args.clients)
    finally:
        portal.stop()
        upstream.stop()
    print(result.summary())
    for (kind, status), n in sorted(result.by_kind.items()):
        print(f"  {kind:13s} {status} x{n}")
    ok = (
        result.server_errors == 0
        and result.rss_growth < 0.10
        and result.denied_audited == result.denied_seen
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
