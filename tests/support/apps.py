"""Publish applications with policies for tests, through model validation."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from apps.policies.models import Application, Policy, Rule

RuleSpec = tuple[str, str, str]  # (kind, selector, value)


def make_app(
    slug: str,
    hosts: str,
    upstream: str,
    policies: Iterable[tuple[str, str, int, list[RuleSpec]]] = (),
    session_durations: dict[str, timedelta] | None = None,
    **fields: Any,
) -> Application:
    """Save an application with ``(name, action, precedence, rules)``."""
    app = Application(name=slug.title(), slug=slug, hosts=hosts, upstream=upstream)
    for key, value in fields.items():
        setattr(app, key, value)
    app.full_clean()
    app.save()
    for name, action, precedence, rules in policies:
        policy = Policy.objects.create(
            application=app,
            name=name,
            action=action,
            precedence=precedence,
            session_duration=(session_durations or {}).get(name),
        )
        for kind, selector, value in rules:
            rule = Rule(policy=policy, kind=kind, selector=selector, value=value)
            rule.full_clean()
            rule.save()
    return app


def app_spec(**overrides: Any) -> Any:
    """An in-memory ``AppSpec`` (no database), for unit tests of routing."""
    from apps.policies.engine import PolicySet
    from apps.policies.patterns import parse_pattern
    from apps.policies.snapshot import AppSpec, Upstream

    fields: dict[str, Any] = {
        "id": 1,
        "slug": "app",
        "name": "App",
        "hosts": ("app.localhost",),
        "pattern": parse_pattern("/"),
        "upstream": Upstream("http", "127.0.0.1", 9, ""),
        "strip_prefix": False,
        "preserve_host": False,
        "session_duration": timedelta(hours=1),
        "audience": "app",
        "identity_header": "",
        "launcher": True,
        "ca_bundle": "",
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "cors_mode": "upstream",
        "cors_origins": frozenset(),
        "policies": PolicySet(),
    }
    fields.update(overrides)
    return AppSpec(**fields)
