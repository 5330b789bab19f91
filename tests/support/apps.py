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
