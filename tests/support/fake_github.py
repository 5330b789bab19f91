"""A fake GitHub on 127.0.0.1 speaking the OAuth and REST endpoints the
portal's GitHub sign-in uses.

``/login/oauth/authorize`` sends the browser straight back to the
``redirect_uri`` with a code for the configured user (no consent page);
``/login/oauth/access_token`` trades that code for a token once;
``/user``, ``/user/emails``, ``/user/orgs`` and ``/user/teams`` answer for
the token's user, with ``Link`` pagination as GitHub sends it. Paths work
both at the root and under ``/api/v3`` (GitHub Enterprise's layout).
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit


@dataclass
class FakeUser:
    login: str = "octocat"
    id: int = 1
    email: str = "octocat@corp.example"
    verified: bool = True
    extra_emails: list[tuple[str, bool]] = field(default_factory=list)
    orgs: list[str] = field(default_factory=list)
    teams: list[tuple[str, str]] = field(default_factory=list)  # (org, slug)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeGitHub  # type: ignore[assignment]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return

    def _send(
        self,
        status: int,
        body: object = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _path(self) -> tuple[str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        path = parts.path
        if path.startswith("/api/v3/"):
            path = path[len("/api/v3") :]
        return path, parse_qs(parts.query)

    def do_GET(self) -> None:  # noqa: N802
        path, query = self._path()
        self.server.hits.append(path)
        if path == "/login/oauth/authorize":
            self._authorize(query)
            return
        user = self._token_user()
        if user is None:
            self._send(401, {"message": "Bad credentials"})
            return
        if path == "/user":
            self._send(
                200,
                {
                    "login": user.login,
                    "id": user.id,
                    "name": user.login.title(),
                    # GitHub shows the public profile address, verified or not.
                    "email": user.email,
                    "html_url": f"{self.server.url}/{user.login}",
                },
            )
        elif path == "/user/emails":
            emails = [{"email": user.email, "primary": True, "verified": user.verified}]
            emails += [
                {"email": e, "primary": False, "verified": v}
                for e, v in user.extra_emails
            ]
            self._send(200, emails)
        elif path == "/user/orgs":
            self._paginated(
                path, query, [{"login": o, "id": i} for i, o in enumerate(user.orgs)]
            )
        elif path == "/user/teams":
            teams = [
                {"slug": slug, "organization": {"login": org}}
                for org, slug in user.teams
            ]
            self._paginated(path, query, teams)
        else:
            self._send(404, {"message": "Not Found"})

    def do_POST(self) -> None:  # noqa: N802
        path, _ = self._path()
        self.server.hits.append(path)
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        if path != "/login/oauth/access_token":
            self._send(404, {"message": "Not Found"})
            return
        code = (form.get("code") or [""])[0]
        client_id = (form.get("client_id") or [""])[0]
        with self.server.lock:
            user = self.server.codes.pop(code, None)
        if user is None or client_id != self.server.client_id:
            self._send(200, {"error": "bad_verification_code"})
            return
        token = secrets.token_hex(20)
        with self.server.lock:
            self.server.tokens[token] = user
        self._send(
            200,
            {"access_token": token, "token_type": "bearer", "scope": "read:org"},
        )

    def _authorize(self, query: dict[str, list[str]]) -> None:
        redirect_uri = (query.get("redirect_uri") or [""])[0]
        state = (query.get("state") or [""])[0]
        self.server.last_authorize = query
        code = secrets.token_hex(10)
        with self.server.lock:
            self.server.codes[code] = self.server.user
        target = f"{redirect_uri}?{urlencode({'code': code, 'state': state})}"
        self._send(302, headers={"Location": target})

    def _token_user(self) -> FakeUser | None:
        auth = self.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return None
        with self.server.lock:
            return self.server.tokens.get(token.strip())

    def _paginated(
        self, path: str, query: dict[str, list[str]], items: list[dict]
    ) -> None:
        per_page = min(int((query.get("per_page") or ["30"])[0]), self.server.max_page)
        page = int((query.get("page") or ["1"])[0])
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            following = (
                f"{self.server.api_url}{path}?per_page={per_page}&page={page + 1}"
            )
            last = (len(items) + per_page - 1) // per_page
            headers["Link"] = (
                f'<{following}>; rel="next", '
                f'<{self.server.api_url}{path}?per_page={per_page}&page={last}>; rel="last"'
            )
        self._send(200, chunk, headers)


class FakeGitHub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, client_id: str = "fake-client-id", max_page: int = 30) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.client_id = client_id
        # GitHub caps per_page at 100; a smaller cap makes pagination show.
        self.max_page = max_page
        self.lock = threading.Lock()
        self.user = FakeUser()
        self.codes: dict[str, FakeUser] = {}
        self.tokens: dict[str, FakeUser] = {}
        self.hits: list[str] = []
        self.last_authorize: dict[str, list[str]] = {}
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v3"

    def configure(self, user: FakeUser) -> None:
        """Make ``user`` the one who signs in next."""
        with self.lock:
            self.user = user

    def issue_token(self, user: FakeUser) -> str:
        token = secrets.token_hex(20)
        with self.lock:
            self.tokens[token] = user
        return token

    def start(self) -> FakeGitHub:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
