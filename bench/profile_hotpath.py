#!/usr/bin/env python
"""Profile the proxy's hot path in-process (no gunicorn, no wrk).

Creates a throwaway database with one application, then drives the real
dispatcher with WSGI environs for the token, cookie and bypass paths against
``bench/upstream.py``, and prints the per-request cost and the top of a
cProfile listing. Usage: ``python bench/profile_hotpath.py [--apps 10000]``
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.run import add_applications, configure, free_port, wait_ready  # noqa: E402


def environ(host: str, headers: dict[str, str]) -> dict:
    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/small",
        "RAW_URI": "/small",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": host,
        "wsgi.url_scheme": "http",
    }
    for name, value in headers.items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", type=int, default=10)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="accessportal-profile-"))
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "upstream.py"), "--port", str(port)]
    )
    try:
        wait_ready(port, "x", "/small")
        creds = configure(
            {
                "DJANGO_SETTINGS_MODULE": "accessportal.settings",
                "SECRET_KEY": "profile-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
                "DATABASE_URL": f"sqlite:///{work}/p.sqlite3",
                "PORTAL_URL": "http://localhost:8000",
                "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
            },
            f"http://127.0.0.1:{port}",
        )
        if args.apps > 10:
            add_applications(args.apps, f"http://127.0.0.1:{port}")
        from accessportal.wsgi import application

        cases = {
            "token": environ("bench.localhost", creds["token"]),
            "cookie": environ("bench.localhost", creds["cookie"]),
            "bypass": environ("open.localhost", {}),
        }

        def run(env: dict, n: int) -> None:
            for _ in range(n):
                e = dict(env)
                e["wsgi.input"] = io.BytesIO(b"")
                body = application(e, lambda s, h, x=None: None)
                for _chunk in body:
                    pass
                body.close()

        for name, env in cases.items():
            run(env, 200)
            started = time.perf_counter()
            run(env, args.requests)
            took = (time.perf_counter() - started) / args.requests
            print(f"{name:7s} {took * 1e6:8.1f} us per request (in-process)")
        profile = cProfile.Profile()
        profile.enable()
        run(cases["cookie"], args.requests)
        profile.disable()
        stats = pstats.Stats(profile)
        stats.sort_stats(os.environ.get("SORT", "tottime")).print_stats(
            int(os.environ.get("TOP", "25"))
        )
    finally:
        upstream.terminate()
        upstream.wait()


if __name__ == "__main__":
    main()
