"""The configuration examples in ``docs/real-tools.md`` are valid.

Each YAML block is saved through the models' own validation (what the admin
and the config import share), all of them into one database, so a typo in a
selector, a bad pattern or two examples claiming the same host and path
fail here rather than in front of an admin following the page.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from apps.policies.models import Application
from tests.tools.publish import PolicySpec, publish_app

DOC = Path(__file__).resolve().parents[2] / "docs" / "real-tools.md"


def yaml_blocks() -> list[dict]:
    text = DOC.read_text()
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def rules(raw: list[dict]) -> list[tuple[str, str]]:
    pairs = []
    for rule in raw:
        ((selector, value),) = rule.items()
        pairs.append((selector, "" if value is True else str(value)))
    return pairs


@pytest.mark.django_db
def test_docs_real_tools_config_examples_pass_validation() -> None:
    blocks = yaml_blocks()
    assert len(blocks) >= 5

    for block in blocks:
        for app in block["applications"]:
            policies = [
                PolicySpec(
                    p["name"],
                    p["action"],
                    p["precedence"],
                    rules(p.get("include", [])),
                    rules(p.get("exclude", [])),
                )
                for p in app.get("policies", [])
            ]
            publish_app(
                app["slug"],
                "\n".join(app["hosts"]),
                app["upstream"],
                policies,
                path=app.get("path", ""),
                preserve_host=app.get("preserve_host", False),
                identity_header=app.get("identity_header", ""),
                launcher=app.get("launcher", True),
            )

    assert Application.objects.get(slug="sentry-envelope").path == "/api/*/envelope"
    assert Application.objects.get(slug="grafana").identity_header == "X-WEBAUTH-USER"
