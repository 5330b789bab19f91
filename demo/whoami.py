"""A sample upstream for the demo: it answers every request with what it got.

It shows the method, the raw path, the headers and the identity the portal
sent, and decodes the signed assertion's claims (without verifying them; an
upstream that trusts the assertion must verify it against the portal's JWKS).
Run: ``python -m demo.whoami --port 8001``.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _claims(token: str) -> dict:
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}


class WhoamiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "whoami"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        info = {
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_bytes": len(body),
            "identity": {
                "email": self.headers.get("X-Auth-Request-Email"),
                "user": self.headers.get("X-Auth-Request-User"),
                "groups": self.headers.get("X-Auth-Request-Groups"),
                "assertion_claims": _claims(
                    self.headers.get("X-Access-Jwt-Assertion", "")
                ),
            },
        }
        if "text/html" in (self.headers.get("Accept") or ""):
            rows = "".join(
                f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                for k, v in info["headers"]
            )
            out = (
                "<!doctype html><title>whoami</title><h1>whoami</h1>"
                f"<p>{html.escape(self.command)} {html.escape(self.path)}</p>"
                f"<h2>Identity</h2><pre>{html.escape(json.dumps(info['identity'], indent=2))}</pre>"
                f"<h2>Headers</h2><table>{rows}</table>"
            ).encode()
            kind = "text/html; charset=utf-8"
        else:
            out = json.dumps(info, indent=2).encode()
            kind = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), WhoamiHandler)
    print(f"whoami upstream on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
