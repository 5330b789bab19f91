"""The policy engine: a pure function from (application, identity, client IP)
to a decision.

Order: ``bypass`` and ``service_auth`` policies first, by precedence; then
``allow`` and ``block`` by precedence. The first policy that matches decides.
A policy matches when at least one include rule, every require rule and no
exclude rule matches. Nothing matched means ``login`` for an anonymous caller
and ``deny`` for anyone signed in. Any error while deciding denies.

Service tokens are admitted only by ``service_auth`` policies; anonymous
callers are admitted only by ``bypass`` policies.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from dataclasses import dataclass, field
from datetime import timedelta

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Outcome(enum.Enum):
    ALLOW = "allow"
    BYPASS = "bypass"
    DENY = "deny"
    LOGIN = "login"


@dataclass(frozen=True)
class Identity:
    """Who is asking: a signed-in member, a service token, or nobody."""

    kind: str  # "user", "service" or "anonymous"
    sub: str = ""
    email: str = ""
    username: str = ""
    orgs: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()
    method: str = ""
    token_id: int | None = None
    token_name: str = ""
    session_id: str = ""

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    @property
    def groups(self) -> list[str]:
        return sorted(self.orgs) + sorted(self.teams)

    @property
    def display(self) -> str:
        if self.is_service:
            return f"token:{self.token_name}"
        return self.email or "anonymous"


ANONYMOUS = Identity(kind="anonymous")


@dataclass(frozen=True)
class RuleSpec:
    kind: str
    selector: str
    value: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None


@dataclass(frozen=True)
class PolicySpec:
    name: str
    action: str
    precedence: int
    session_duration: timedelta | None
    include: tuple[RuleSpec, ...] = ()
    require: tuple[RuleSpec, ...] = ()
    exclude: tuple[RuleSpec, ...] = ()


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    policy: str = ""
    session_duration: timedelta | None = None

    @property
    def is_allowed(self) -> bool:
        return self.outcome in (Outcome.ALLOW, Outcome.BYPASS)


@dataclass
class PolicySet:
    """An application's policies, ordered once for every request."""

    first: list[PolicySpec] = field(default_factory=list)
    second: list[PolicySpec] = field(default_factory=list)

    @classmethod
    def build(cls, policies: list[PolicySpec]) -> PolicySet:
        key = lambda p: (p.precedence, p.name)  # noqa: E731
        return cls(
            first=sorted(
                (p for p in policies if p.action in ("bypass", "service_auth")), key=key
            ),
            second=sorted(
                (p for p in policies if p.action in ("allow", "block")), key=key
            ),
        )


def make_rule(kind: str, selector: str, value: str) -> RuleSpec:
    network = None
    if selector == "ip_range":
        network = ipaddress.ip_network(value, strict=False)
    return RuleSpec(kind, selector, value, network)


def email_domain(email: str) -> str | None:
    if email.count("@") != 1:
        return None
    local, domain = email.split("@")
    if not local or not domain:
        return None
    return domain.lower()


def selector_matches(
    rule: RuleSpec, who: Identity, client_ip: IPAddress | None
) -> bool:
    sel = rule.selector
    if sel == "everyone":
        return True
    if sel == "ip_range":
        if client_ip is None or rule.network is None:
            return False
        if client_ip.version != rule.network.version:
            mapped = getattr(client_ip, "ipv4_mapped", None)
            return mapped is not None and mapped in rule.network
        return client_ip in rule.network
    if sel == "any_service_token":
        return who.is_service
    if sel == "service_token":
        return who.is_service and who.token_name == rule.value
    if who.kind != "user":
        return False
    if sel == "email":
        return who.email.lower() == rule.value
    if sel == "email_domain":
        domain = email_domain(who.email)
        if domain is None:
            return False
        if rule.value.startswith("*."):
            return domain.endswith(rule.value[1:]) and domain != rule.value[2:]
        return domain == rule.value
    if sel == "github_org":
        return rule.value in who.orgs
    if sel == "github_team":
        return rule.value in who.teams
    if sel == "login_method":
        return who.method == rule.value
    raise ValueError(f"unknown selector {sel!r}")


def policy_matches(
    policy: PolicySpec, who: Identity, client_ip: IPAddress | None
) -> bool:
    if not policy.include:
        return False
    if not any(selector_matches(r, who, client_ip) for r in policy.include):
        return False
    if not all(selector_matches(r, who, client_ip) for r in policy.require):
        return False
    return not any(selector_matches(r, who, client_ip) for r in policy.exclude)


def evaluate_access(
    policies: PolicySet, who: Identity, client_ip: IPAddress | None
) -> Decision:
    """Decide whether ``who`` may use the application; never raises."""
    try:
        return _evaluate(policies, who, client_ip)
    except Exception:  # fail closed: a broken rule must never let anyone in
        logger.error("policy evaluation failed; denying", exc_info=True)
        return Decision(Outcome.DENY, "error")


def _evaluate(
    policies: PolicySet, who: Identity, client_ip: IPAddress | None
) -> Decision:
    for policy in policies.first:
        if policy.action == "service_auth" and not who.is_service:
            continue
        if policy_matches(policy, who, client_ip):
            outcome = Outcome.BYPASS if policy.action == "bypass" else Outcome.ALLOW
            return Decision(outcome, f"policy:{policy.name}", policy.name)
    if who.is_anonymous:
        return Decision(Outcome.LOGIN, "no-credentials")
    if who.is_service:
        return Decision(Outcome.DENY, "token-not-admitted")
    for policy in policies.second:
        if policy_matches(policy, who, client_ip):
            if policy.action == "block":
                return Decision(Outcome.DENY, f"policy:{policy.name}", policy.name)
            return Decision(
                Outcome.ALLOW,
                f"policy:{policy.name}",
                policy.name,
                policy.session_duration,
            )
    return Decision(Outcome.DENY, "no-policy-matched")


def parse_ip(text: str | None) -> IPAddress | None:
    """Parse an address; anything unparsable is no address at all."""
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
