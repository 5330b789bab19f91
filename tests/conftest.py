"""Fixtures shared by the whole suite.

The test process and every portal it starts share one SQLite file (and the
database cache inside it). Unit tests run inside a rolled-back transaction;
end-to-end tests use ``live_db``, which commits for real so that the portal
under gunicorn sees the data, and empties the tables afterwards.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.support.portal import Portal, free_port
from tests.support.upstream import UpstreamServer

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, what: str, how: str) -> None:
    """Skip when the machine lacks something; under CI=true, fail instead."""
    if condition:
        return
    message = f"{what} is not available; {how}"
    if IN_CI:
        pytest.fail(f"CI must not skip: {message}")
    pytest.skip(message)


def require_executable(name: str, package: str) -> str:
    path = shutil.which(name)
    require(
        path is not None,
        f"'{name}'",
        f"install it with: apt-get install -y --no-install-recommends {package}",
    )
    return path or ""


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker):  # type: ignore[no-untyped-def]
    with django_db_blocker.unblock():
        call_command("migrate", verbosity=0, interactive=False)


@pytest.fixture
def live_db(django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Committed database access that the portal under test can see."""
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection

    from apps.audit.models import AuditEvent
    from apps.identity.models import LoginSession
    from apps.policies.models import Application
    from apps.policies.snapshot import bump_version
    from apps.tokens.models import ServiceToken

    with django_db_blocker.unblock():
        yield
        Application.objects.all().delete()
        ServiceToken.objects.all().delete()
        LoginSession.objects.all().delete()
        AuditEvent.objects.all().delete()
        get_user_model().objects.all().delete()
        cache.clear()
        bump_version()
        connection.close()


def portal_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "accessportal.settings",
            "ACCESSPORTAL_CONFIG_POLL_SECONDS": "0",
            "LOG_LEVEL": "WARNING",
        }
    )
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def portal(django_db_setup, tmp_path_factory) -> Iterator[Portal]:  # type: ignore[no-untyped-def]
    """The portal under gunicorn (gevent, 2 workers) on 127.0.0.1."""
    port = free_port()
    logs = tmp_path_factory.mktemp("portal")
    env = portal_env(PORTAL_URL=f"http://localhost:{port}")
    server = Portal(
        port=port, bind="127.0.0.1", env=env, log_path=Path(logs) / "gunicorn.log"
    )
    server.start()
    yield server
    server.stop()
