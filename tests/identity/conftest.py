"""Fixtures for sign-in tests: applications with policies, jobs run inline,
the fake GitHub server, and a portal under gunicorn that signs in with it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from apps.policies.models import Application, Policy, Rule
from apps.policies.snapshot import bump_version
from tests.conftest import portal_env
from tests.support.fake_github import FakeGitHub
from tests.support.portal import Portal, free_port

MakeApp = Callable[..., Application]


def create_app(
    slug: str,
    host: str,
    upstream: str = "http://127.0.0.1:9",
    include: list[tuple[str, str]] | None = None,
    action: str = "allow",
    launcher: bool = True,
) -> Application:
    app = Application(
        name=slug.title(), slug=slug, hosts=host, upstream=upstream, launcher=launcher
    )
    app.full_clean()
    app.save()
    policy = Policy(
        application=app, name=f"{slug}-{action}", action=action, precedence=10
    )
    policy.full_clean()
    policy.save()
    for selector, value in include or []:
        rule = Rule(policy=policy, kind="include", selector=selector, value=value)
        rule.full_clean()
        rule.save()
    # Signals bump the version on commit, which a rolled-back test never
    # reaches; bump it here so the snapshot sees the new rows.
    bump_version()
    return app


@pytest.fixture
def make_app(db) -> MakeApp:  # type: ignore[no-untyped-def]
    return create_app


@pytest.fixture
def corp_app(make_app: MakeApp) -> Application:
    """``echo.localhost``, open to anyone at ``corp.example``."""
    return make_app(
        "echo", "echo.localhost", include=[("email_domain", "corp.example")]
    )


@pytest.fixture
def inline_jobs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run background sign-in jobs at once, inside the test's transaction."""
    from apps.identity import background

    ran: list[str] = []

    def run_now(job: Callable[[], None]) -> None:
        ran.append("job")
        job()

    monkeypatch.setattr(background, "submit", run_now)
    return ran


@pytest.fixture(scope="session")
def fake_github() -> Iterator[FakeGitHub]:
    server = FakeGitHub().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def github_portal(  # type: ignore[no-untyped-def]
    django_db_setup, tmp_path_factory, fake_github: FakeGitHub
) -> Iterator[Portal]:
    """A portal under gunicorn whose GitHub is the fake server."""
    port = free_port()
    logs = tmp_path_factory.mktemp("github-portal")
    env = portal_env(
        PORTAL_URL=f"http://localhost:{port}",
        GITHUB_CLIENT_ID=fake_github.client_id,
        GITHUB_CLIENT_SECRET="fake-client-secret",
        GITHUB_URL=fake_github.url,
        GITHUB_API_URL=fake_github.api_url,
        ACCESSPORTAL_PIN_LOGIN="0",
        TEST_WORKERS="1",
    )
    server = Portal(
        port=port, bind="127.0.0.1", env=env, log_path=Path(logs) / "gunicorn.log"
    )
    server.start()
    yield server
    server.stop()
