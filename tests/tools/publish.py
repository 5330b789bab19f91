"""Publish an application the way an admin does: validated models, saved.

Saving goes through ``full_clean()`` like the admin form, and the model
signals bump the configuration version, so the portal under test picks the
change up exactly as it would after an edit in the admin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PolicySpec:
    name: str
    action: str
    precedence: int
    include: list[tuple[str, str]]
    exclude: list[tuple[str, str]] = field(default_factory=list)


STAFF = PolicySpec("staff", "allow", 10, [("email_domain", "example.com")])
EVERYONE_BYPASS = PolicySpec("public", "bypass", 1, [("everyone", "")])
ANY_TOKEN = PolicySpec("machines", "service_auth", 1, [("any_service_token", "")])


def token_policy(token_name: str) -> PolicySpec:
    return PolicySpec(
        f"token-{token_name}", "service_auth", 1, [("service_token", token_name)]
    )


def publish_app(
    slug: str,
    hosts: str,
    upstream: str,
    policies: list[PolicySpec],
    path: str = "",
    **fields: Any,
) -> Any:
    from apps.policies.models import Application

    app = Application(
        name=slug.replace("-", " ").title(),
        slug=slug,
        hosts=hosts,
        upstream=upstream,
        path=path,
        **fields,
    )
    app.full_clean()
    app.save()
    for spec in policies:
        add_policy(app, spec)
    return app


def add_policy(app: Any, spec: PolicySpec) -> Any:
    from apps.policies.models import Policy, Rule

    policy = Policy(
        application=app,
        name=spec.name,
        action=spec.action,
        precedence=spec.precedence,
    )
    policy.full_clean()
    policy.save()
    for kind, pairs in (("include", spec.include), ("exclude", spec.exclude)):
        for selector, value in pairs:
            rule = Rule(policy=policy, kind=kind, selector=selector, value=value)
            rule.full_clean()
            rule.save()
    return policy
