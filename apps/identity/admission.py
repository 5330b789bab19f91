"""Which identities some policy could admit, and which applications one may
use, decided from the same in-memory snapshot and engine as the proxy.

"Admissible" looks only at the include rules of enabled ``allow`` policies
(``everyone``, ``email``, ``email_domain``, and for GitHub logins also
``github_org`` and ``github_team``). It gates who gets a member account and
a PIN mail; whether a member may use an application is decided by the full
engine on every request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from apps.policies.engine import (
    Identity,
    IPAddress,
    evaluate_access,
    selector_matches,
)
from apps.policies.snapshot import get_snapshot

logger = logging.getLogger(__name__)

_EMAIL_SELECTORS = frozenset({"everyone", "email", "email_domain"})
_GITHUB_SELECTORS = _EMAIL_SELECTORS | {"github_org", "github_team"}


def _could_admit(who: Identity, selectors: frozenset[str]) -> bool:
    try:
        snap = get_snapshot()
        for app in snap.apps.values():
            for policy in app.policies.second:
                if policy.action != "allow":
                    continue
                for rule in policy.include:
                    if rule.selector in selectors and selector_matches(rule, who, None):
                        return True
    except Exception:  # fail closed: an unreadable config admits nobody
        logger.error("admissibility check failed; refusing", exc_info=True)
    return False


def is_admissible_email(email: str) -> bool:
    """Could some allow policy admit ``email`` signing in with a PIN?"""
    return _could_admit(
        Identity(kind="user", email=email, method="pin"), _EMAIL_SELECTORS
    )


def is_admissible_github(
    email: str, username: str, orgs: list[str], teams: list[str]
) -> bool:
    """Could some allow policy admit this GitHub identity?"""
    who = Identity(
        kind="user",
        email=email,
        username=username,
        orgs=frozenset(o.lower() for o in orgs),
        teams=frozenset(t.lower() for t in teams),
        method="github",
    )
    return _could_admit(who, _GITHUB_SELECTORS)


def identity_from_facts(facts: dict[str, Any]) -> Identity:
    """The engine's view of a global session's facts."""
    return Identity(
        kind="user",
        sub=f"user:{facts['uid']}",
        email=facts.get("email", ""),
        username=facts.get("username", ""),
        orgs=frozenset(facts.get("orgs", [])),
        teams=frozenset(facts.get("teams", [])),
        method=facts.get("method", ""),
        session_id=facts.get("sid", ""),
    )


@dataclass(frozen=True)
class LauncherEntry:
    name: str
    url: str


def launcher_entries(
    facts: dict[str, Any], client_ip: IPAddress | None
) -> list[LauncherEntry]:
    """The launcher applications this identity may use, by name."""
    who = identity_from_facts(facts)
    entries = []
    for app in get_snapshot().apps.values():
        if not app.launcher:
            continue
        if evaluate_access(app.policies, who, client_ip).is_allowed:
            entries.append(LauncherEntry(app.name, app.public_origin() + app.home_path))
    return sorted(entries, key=lambda e: e.name.lower())
