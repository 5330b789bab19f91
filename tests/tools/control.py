"""An admin's console on the production set-up, as a separate process.

The test process runs on the suite's SQLite settings; the production tests
need someone who writes to the shared PostgreSQL and Redis the way an admin
(or a third portal instance) would. This process boots Django on the
production settings it is given in its environment and then executes one
JSON command per line from stdin, answering one JSON line on stdout.

Run as ``python -m tests.tools.control`` from the repository root.
"""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]


class Control:
    """The test's handle on the console process."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.tools.control"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
        )
        if json.loads(self._read()).get("ready") is not True:
            raise RuntimeError(f"the console did not start; see {log_path}")

    @staticmethod
    def migrate(env: dict[str, str], log_path: Path) -> int:
        """Run ``manage.py migrate`` as an operator would; return its code."""
        with open(log_path, "ab") as log:
            return subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
                timeout=120,
            ).returncode

    def _read(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the console exited; see its log")
        return line

    def __call__(self, op: str, **args: Any) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self._read())
        if not answer["ok"]:
            raise RuntimeError(f"console command {op} failed:\n{answer['error']}")
        return answer["result"]

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


def _policy(raw: list) -> Any:
    """``[name, action, precedence, [[selector, value], ...]]`` as a spec."""
    from tests.tools.publish import PolicySpec

    name, action, precedence, include = raw
    return PolicySpec(name, action, precedence, [(s, v) for s, v in include])


def publish(slug: str, hosts: str, upstream: str, policies: list[list]) -> int:
    from tests.tools.publish import publish_app

    specs = [_policy(raw) for raw in policies]
    return publish_app(slug, hosts, upstream, specs).pk


def add_policy(app_id: int, policy: list) -> int:
    from apps.policies.models import Application
    from tests.tools.publish import add_policy

    return add_policy(Application.objects.get(pk=app_id), _policy(policy)).pk


def delete_policy(app_id: int, name: str) -> int:
    from apps.policies.models import Policy

    deleted, _ = Policy.objects.filter(application_id=app_id, name=name).delete()
    return deleted


def issue_token(name: str) -> list[str]:
    from apps.tokens.service import issue_token

    issued = issue_token(name)
    return [issued.client_id, issued.secret]


def sign_in(app_id: int, host: str, email: str, path: str = "/") -> str:
    from tests.tools.members import handoff_target

    return handoff_target(app_id, host, email, path)


def revoke_user_sessions(email: str) -> int:
    from django.contrib.auth import get_user_model

    from apps.identity.sessions import revoke_user_sessions

    user = get_user_model().objects.get(username=email)
    return revoke_user_sessions(user.pk)


def revoke_user(email: str) -> None:
    from django.contrib.auth import get_user_model

    from apps.proxy.revocation import revoke_user

    revoke_user(get_user_model().objects.get(username=email).pk)


def revoke_app(app_id: int) -> None:
    from apps.proxy.revocation import revoke_app

    revoke_app(app_id)


COMMANDS = {
    f.__name__: f
    for f in (
        publish,
        add_policy,
        delete_policy,
        issue_token,
        sign_in,
        revoke_user_sessions,
        revoke_user,
        revoke_app,
    )
}


def main() -> None:
    import django

    django.setup()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        try:
            result: Any = COMMANDS[command["op"]](**command.get("args", {}))
            answer = {"ok": True, "result": result}
        except Exception:  # reported to the test, which fails with the trace
            answer = {"ok": False, "error": traceback.format_exc()}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
