"""Class 10: production settings pass Django's deployment checks, and bad
settings stop start-up with one line naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _manage(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "ACCESSPORTAL_DEMO",
            "SECRET_KEY",
            "PORTAL_URL",
            "DJANGO_SETTINGS_MODULE",
        }
    }
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_production_settings_are_clean(tmp_path):
    result = _manage(
        {
            "SECRET_KEY": "prod-" + "k" * 60,
            "PORTAL_URL": "https://access.corp.example",
            "DATABASE_URL": f"sqlite:///{tmp_path}/deploy.sqlite3",
        },
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({}, "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"SECRET_KEY": "s" * 40, "PORTAL_URL": "ftp://access.example"}, "PORTAL_URL"),
        (
            {"SECRET_KEY": "s" * 40, "PORTAL_URL": "https://access.example/sub"},
            "PORTAL_URL",
        ),
        ({"SECRET_KEY": "s" * 40, "DATABASE_URL": "mysql://db/x"}, "DATABASE_URL"),
        ({"SECRET_KEY": "s" * 40, "REDIS_URL": "http://cache"}, "REDIS_URL"),
        ({"SECRET_KEY": "s" * 40, "TRUSTED_PROXY_COUNT": "two"}, "TRUSTED_PROXY_COUNT"),
        ({"SECRET_KEY": "s" * 40, "TRUSTED_PROXY_COUNT": "-1"}, "TRUSTED_PROXY_COUNT"),
        ({"SECRET_KEY": "s" * 40, "ACCESSPORTAL_DEMO": "maybe"}, "ACCESSPORTAL_DEMO"),
        ({"SECRET_KEY": "s" * 40, "EMAIL_PORT": "smtp"}, "EMAIL_PORT"),
        (
            {"SECRET_KEY": "s" * 40, "METRICS_ALLOWED_NETWORKS": "10.0.0/8"},
            "METRICS_ALLOWED_NETWORKS",
        ),
        (
            {"SECRET_KEY": "s" * 40, "METRICS_ALLOWED_NETWORKS": "garbage"},
            "METRICS_ALLOWED_NETWORKS",
        ),
        ({"SECRET_KEY": "s" * 40, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ],
)
def test_settings_bad_value_stops_startup_naming_variable(overrides, variable):
    result = _manage(overrides, "check")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr
