"""Config as code: apply, re-apply, export, dry run, prune, bad files."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from apps.audit.models import AuditEvent
from apps.policies.config import ConfigError, apply_config, export_config
from apps.policies.models import Application, Policy, Rule

pytestmark = pytest.mark.django_db

DATA = Path(__file__).parent / "data"
GOOD = (DATA / "three_apps.yaml").read_text()


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def counts() -> tuple[int, int, int]:
    return (Application.objects.count(), Policy.objects.count(), Rule.objects.count())


def test_apply_config_twice_second_run_changes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    first = run("apply_config", path)
    assert "create application grafana" in first
    assert "create policy sentry/envelope" in first
    assert counts() == (3, 6, 12)

    before = export_config()
    second = run("apply_config", path)
    assert second.strip() == "No changes: the database already matches the file."
    assert export_config() == before


def test_export_config_reproduces_applied_file(tmp_path: Path) -> None:
    run("apply_config", write(tmp_path, GOOD))
    exported = run("export_config")
    assert exported == GOOD
    assert run("apply_config", write(tmp_path, exported, "again.yaml")).startswith(
        "No changes"
    )
    assert run("export_config") == exported


def test_apply_config_audited_with_actor(tmp_path: Path) -> None:
    run("apply_config", write(tmp_path, GOOD), "--actor", "ops@corp.example")
    event = AuditEvent.objects.get(kind="config_applied")
    assert event.actor == "ops@corp.example"
    assert "create application wiki" in event.detail["changes"]


def test_apply_config_changed_field_updates_only_it(tmp_path: Path) -> None:
    run("apply_config", write(tmp_path, GOOD))
    changed = GOOD.replace(
        "precedence: 5\n    include: [{email:", "precedence: 6\n    include: [{email:"
    )
    changed = changed.replace(
        "upstream: http://10.0.0.5:3000", "upstream: http://10.0.0.6:3000"
    )
    output = run("apply_config", write(tmp_path, changed))
    assert output.splitlines()[:2] == [
        "update application grafana: upstream",
        "update policy grafana/block-contractors: precedence",
    ]
    assert Application.objects.get(slug="grafana").upstream == "http://10.0.0.6:3000"


def test_apply_config_rules_replaced_exactly(tmp_path: Path) -> None:
    run("apply_config", write(tmp_path, GOOD))
    changed = GOOD.replace(
        "include: [{email_domain: corp.example}, {github_org: acme}]",
        "include: [{github_org: acme}, {github_team: acme/ops}]",
    )
    assert "update policy grafana/staff: rules" in run(
        "apply_config", write(tmp_path, changed)
    )
    staff = Policy.objects.get(name="staff")
    includes = set(staff.rules.filter(kind="include").values_list("selector", "value"))
    assert includes == {("github_org", "acme"), ("github_team", "acme/ops")}


def test_apply_config_dry_run_writes_nothing(tmp_path: Path) -> None:
    output = run("apply_config", write(tmp_path, GOOD), "--dry-run")
    assert "would create application grafana" in output
    assert "Dry run: 9 changes, none written." in output
    assert counts() == (0, 0, 0)
    assert not AuditEvent.objects.exists()


def test_apply_config_without_prune_keeps_unlisted(tmp_path: Path) -> None:
    run("apply_config", write(tmp_path, GOOD))
    only_grafana = GOOD.split("- slug: sentry")[0]
    assert run("apply_config", write(tmp_path, only_grafana)).startswith("No changes")
    assert counts()[0] == 3


def test_apply_config_prune_removes_unlisted(tmp_path: Path) -> None:
    run("apply_config", write(tmp_path, GOOD))
    only_grafana = GOOD.split("- slug: sentry")[0].replace(
        "  - name: block-contractors\n    action: block\n    precedence: 5\n"
        "    include: [{email: contractor@corp.example}]\n",
        "",
    )
    path = write(tmp_path, only_grafana)
    dry = run("apply_config", path, "--prune", "--dry-run")
    assert "would delete application sentry" in dry
    assert counts()[0] == 3
    output = run("apply_config", path, "--prune")
    assert "delete application sentry" in output
    assert "delete application wiki" in output
    assert "delete policy grafana/block-contractors" in output
    assert list(Application.objects.values_list("slug", flat=True)) == ["grafana"]
    assert list(Policy.objects.values_list("name", flat=True)) == ["staff"]


def line_of(text: str, needle: str) -> int:
    """The last line holding ``needle`` (the mutated one comes later)."""
    found = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    assert found, needle
    return found[-1]


BAD_FILES = [
    pytest.param(
        "require: [{ip_range: 10.0.0.0/8}]",
        "require: [{ip_range: 10.0.0/8}]",
        "require[0].ip_range",
        "not a CIDR",
        id="bad-cidr",
    ),
    pytest.param(
        "hosts: [sentry.corp.example]",
        "hosts: [grafana.corp.example]",
        "applications[sentry].hosts",
        "grafana.corp.example",
        id="duplicate-host-and-path",
    ),
    pytest.param(
        "upstream: http://10.0.0.5:3000",
        "upstream: ftp://10.0.0.5:3000",
        "applications[grafana].upstream",
        "http:// or https://",
        id="ftp-upstream",
    ),
    pytest.param(
        "{github_team: acme/eng}",
        "{gitlab_group: acme/eng}",
        "gitlab_group",
        "unknown selector",
        id="unknown-selector",
    ),
    pytest.param(
        "include: [{everyone: true}]",
        "include: [{email: a@corp.example}]",
        "policies[0].include[0].email",
        "bypass policy may use only",
        id="bypass-with-email",
    ),
    pytest.param(
        "session_duration: 8h",
        "session_duration: 8 hours",
        "applications[grafana].session_duration",
        "not a duration",
        id="bad-duration",
    ),
    pytest.param(
        "action: service_auth",
        "action: permit",
        "policies[1].action",
        "unknown action",
        id="unknown-action",
    ),
    pytest.param(
        "  strip_prefix: false\n  preserve_host: true",
        "  strip_prefix: false\n  preserve_hosts: true",
        "preserve_hosts",
        "unknown key",
        id="unknown-key",
    ),
    pytest.param(
        "    include: [{github_team: acme/eng}]",
        "    include: [{github_team: acme/eng}",
        "",
        "not valid YAML",
        id="broken-yaml",
    ),
]


@pytest.mark.parametrize(("old", "new", "field", "message"), BAD_FILES)
def test_apply_config_bad_file_rejected_whole(
    tmp_path: Path, old: str, new: str, field: str, message: str
) -> None:
    run("apply_config", write(tmp_path, GOOD))
    before = (export_config(), AuditEvent.objects.count())
    assert old in GOOD
    # A valid change earlier in the file must not be applied either.
    bad = GOOD.replace("name: Grafana", "name: Grafana 2").replace(old, new, 1)
    with pytest.raises(CommandError) as caught:
        run("apply_config", write(tmp_path, bad, "bad.yaml"))
    text = str(caught.value)
    assert field in text
    assert message in text
    assert "nothing was changed" in text
    if field:
        assert f"line {line_of(bad, new.strip().splitlines()[-1])}:" in text
    assert (export_config(), AuditEvent.objects.count()) == before


def test_apply_config_bad_file_on_empty_db_leaves_it_empty(tmp_path: Path) -> None:
    bad = GOOD.replace("upstream: http://127.0.0.1:8080", "upstream: ftp://x")
    with pytest.raises(CommandError, match=r"applications\[wiki\]\.upstream"):
        run("apply_config", write(tmp_path, bad))
    assert counts() == (0, 0, 0)


def test_apply_config_clash_with_unlisted_app_rejected(tmp_path: Path) -> None:
    Application.objects.create(
        name="Old",
        slug="old",
        hosts="wiki.corp.example",
        path="/wiki",
        upstream="http://10.9.9.9",
    )
    with pytest.raises(ConfigError) as caught:
        apply_config(GOOD)
    assert caught.value.where == "applications[wiki].hosts"
    assert "'Old'" in caught.value.message
    assert Application.objects.count() == 1


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("", ""),
        ("apps: []", "apps"),
        ("applications: {}", "applications"),
        ("applications:\n- slug: x\n  name: X\n", "applications[0].hosts"),
        (
            "applications:\n- slug: a\n  name: A\n  hosts: [a.example]\n"
            "  upstream: http://a\n- slug: a\n  name: B\n  hosts: [b.example]\n"
            "  upstream: http://b\n",
            "applications[1].slug",
        ),
        (
            "applications:\n- slug: a\n  name: A\n  hosts: [a.example]\n"
            "  upstream: http://a\n  policies:\n  - {name: p, action: allow}\n"
            "  - {name: p, action: block}\n",
            "policies[1].name",
        ),
        (
            "applications:\n- slug: a\n  name: A\n  hosts: [a.example]\n"
            "  upstream: http://a\n  enabled: maybe\n",
            "applications[a].enabled",
        ),
    ],
)
def test_load_config_structure_errors_name_place(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        apply_config(text)
    assert caught.value.where.endswith(where)
    assert Application.objects.count() == 0


def test_apply_config_minimal_app_takes_defaults() -> None:
    apply_config(
        "applications:\n- slug: tiny\n  name: Tiny\n  hosts: tiny.example\n"
        "  upstream: http://10.0.0.1\n  policies:\n  - name: all\n"
        "    action: allow\n    include: [everyone]\n"
    )
    app = Application.objects.get(slug="tiny")
    assert app.enabled and app.launcher and app.cors_mode == "upstream"
    exported = yaml.safe_load(export_config())["applications"][0]
    assert exported["session_duration"] == "1d"
    assert exported["policies"][0] == {
        "name": "all",
        "action": "allow",
        "precedence": 100,
        "include": [{"everyone": True}],
    }


def test_export_config_never_contains_tokens_or_keys() -> None:
    from apps.proxy.keys import current_key
    from apps.tokens.service import issue_token

    apply_config(GOOD)
    issued = issue_token("ci-bot")
    key = current_key()
    exported = export_config()
    assert issued.secret not in exported
    assert issued.client_id not in exported
    assert "ci-bot" not in exported
    assert key.kid not in exported and "PRIVATE" not in exported


def test_docs_example_applies_cleanly() -> None:
    docs = (Path(__file__).parents[2] / "README.md").read_text()
    section = docs.split("## Configuration as code", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert len(apply_config(example).changes) == 9
    assert apply_config(example).is_empty
