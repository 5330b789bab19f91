"""Applications, their policies and the rules inside them.

Validation lives in ``clean()`` so that the admin, ``apply_config`` and any
script see the same errors for the same mistake.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from apps.policies.patterns import (
    PatternError,
    normalise_host,
    parse_pattern,
    split_hosts,
    takes_portal_path,
)

_HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9-]+$")
_TEAM_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?/[A-Za-z0-9._-]+$")
_ORG_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")
_DOMAIN_RE = re.compile(
    r"^(\*\.)?(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$"
)
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# Headers that frame, route or authenticate a request, or that the portal
# sets itself: an identity value in one of them would change how the request
# is read or collide with the portal's own.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "content-encoding",
        "content-range",
        "range",
        "expect",
        "cookie",
        "authorization",
        "origin",
        "x-access-jwt-assertion",
        "cf-access-jwt-assertion",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-uri",
        "x-forwarded-method",
        "x-forwarded-server",
        "x-forwarded-ssl",
        "x-forwarded-scheme",
        "forwarded",
        "x-real-ip",
        "x-original-url",
        "x-original-uri",
        "x-original-method",
        "x-rewrite-url",
        "x-http-method-override",
    }
)


def reserved_header(name: str) -> bool:
    """Whether a header may not carry an application's identity value."""
    from apps.proxy.headers import HOP_BY_HOP, TOKEN_HEADERS

    lowered = name.strip().lower().replace("_", "-")
    if lowered in _IDENTITY_NAMES:
        return False
    return (
        lowered in _RESERVED_HEADERS
        or lowered in HOP_BY_HOP
        or lowered in TOKEN_HEADERS
        or lowered.startswith(("x-auth-request-", "x-forwarded", "x-original-"))
        or lowered in _CLIENT_ADDRESS_HEADERS
    )


# Identity headers upstreams commonly read, allowed although their family is
# otherwise the portal's (X-Forwarded-User is oauth2-proxy's convention).
_IDENTITY_NAMES = frozenset(
    {"x-forwarded-user", "x-forwarded-email", "x-forwarded-preferred-username"}
)
_CLIENT_ADDRESS_HEADERS = frozenset(
    {
        "true-client-ip",
        "cf-connecting-ip",
        "x-client-ip",
        "client-ip",
        "x-cluster-client-ip",
        "fastly-client-ip",
        "x-originating-ip",
        "x-proxyuser-ip",
        "x-http-method",
        "x-method-override",
        "front-end-https",
        "via",
        "max-forwards",
    }
)


class Application(models.Model):
    class CorsMode(models.TextChoices):
        UPSTREAM = "upstream", "Pass preflight upstream (bare OPTIONS, no identity)"
        PORTAL = "portal", "Answer preflight at the portal for the listed origins"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    hosts = models.TextField(
        help_text="Public host names or IP addresses, one per line or comma-separated."
    )
    path = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text="Optional path pattern such as /grafana or /api/*/envelope/.",
    )
    upstream = models.CharField(
        max_length=500, help_text="http(s)://host[:port][/base]"
    )
    strip_prefix = models.BooleanField(default=False)
    preserve_host = models.BooleanField(default=False)
    session_duration = models.DurationField(default=timedelta(hours=24))
    audience = models.CharField(
        max_length=200,
        blank=True,
        help_text="The aud claim of the signed assertion; defaults to the slug.",
    )
    identity_header = models.CharField(
        max_length=100,
        blank=True,
        help_text="Optional header carrying the user name, e.g. X-WEBAUTH-USER.",
    )
    launcher = models.BooleanField(default=True, help_text="Show on the launcher page.")
    enabled = models.BooleanField(default=True)
    ca_bundle = models.CharField(
        max_length=500,
        blank=True,
        help_text="Path to a CA bundle for verifying the upstream's TLS certificate.",
    )
    connect_timeout = models.FloatField(default=5.0)
    read_timeout = models.FloatField(default=60.0)
    cors_mode = models.CharField(
        max_length=16, choices=CorsMode.choices, default=CorsMode.UPSTREAM
    )
    cors_origins = models.TextField(blank=True, help_text="Origins, one per line.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def host_list(self) -> list[str]:
        out = []
        for raw in split_hosts(self.hosts):
            try:
                out.append(normalise_host(raw))
            except PatternError:
                out.append(raw.lower())
        return out

    @property
    def audience_tag(self) -> str:
        return self.audience or self.slug

    def public_url(self, host: str | None = None) -> str:
        portal = settings.PORTAL
        name = host or self.host_list[0]
        if ":" in name:
            name = f"[{name}]"
        if portal.port:
            name = f"{name}:{portal.port}"
        base = f"{portal.scheme}://{name}"
        pattern = parse_pattern(self.path)
        if pattern.segments and "*" not in pattern.segments:
            return base + pattern.raw + "/"
        return base + "/"

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        hosts: list[str] = []
        for raw in split_hosts(self.hosts):
            try:
                hosts.append(normalise_host(raw))
            except PatternError as exc:
                errors.setdefault("hosts", []).append(str(exc))
        if not hosts and "hosts" not in errors:
            errors.setdefault("hosts", []).append("at least one host is required")
        if len(set(hosts)) != len(hosts):
            errors.setdefault("hosts", []).append("a host is listed twice")
        try:
            pattern = parse_pattern(self.path)
            self.path = "" if not pattern.segments else pattern.raw
        except PatternError as exc:
            errors.setdefault("path", []).append(str(exc))
            pattern = None
        if (
            pattern is not None
            and settings.PORTAL_HOST in hosts
            and takes_portal_path(pattern)
        ):
            errors.setdefault("path", []).append(
                "on the portal host an application needs a path pattern that does "
                "not take a portal path (/login, /admin, /.accessportal, ...)"
            )
        if pattern is not None and self.strip_prefix and not pattern.segments:
            errors.setdefault("strip_prefix", []).append(
                "strip prefix needs a path pattern"
            )
        upstream = urlsplit(self.upstream or "")
        if upstream.scheme not in {"http", "https"} or not upstream.hostname:
            errors.setdefault("upstream", []).append(
                "the upstream must be an http:// or https:// URL with a host"
            )
        elif upstream.query or upstream.fragment or upstream.username:
            errors.setdefault("upstream", []).append(
                "the upstream may not carry credentials, a query or a fragment"
            )
        else:
            try:
                upstream.port  # noqa: B018 - raises on a bad port
            except ValueError:
                errors.setdefault("upstream", []).append("the upstream port is invalid")
        if self.identity_header and reserved_header(self.identity_header):
            errors.setdefault("identity_header", []).append(
                f"{self.identity_header} is a header the portal or HTTP itself "
                "controls; choose an application-specific name such as "
                "X-WEBAUTH-USER"
            )
        if self.identity_header and not _HEADER_NAME_RE.match(self.identity_header):
            errors.setdefault("identity_header", []).append(
                "a header name has only letters, digits and '-'"
            )
        if self.session_duration is not None and self.session_duration <= timedelta(0):
            errors.setdefault("session_duration", []).append("must be positive")
        for field in ("connect_timeout", "read_timeout"):
            if getattr(self, field) is not None and getattr(self, field) <= 0:
                errors.setdefault(field, []).append("a timeout must be positive")
        for origin in split_hosts(self.cors_origins):
            parts = urlsplit(origin)
            if (
                parts.scheme not in {"http", "https"}
                or not parts.hostname
                or parts.path
            ):
                errors.setdefault("cors_origins", []).append(
                    f"{origin!r} is not an origin like https://app.example"
                )
        if hosts and pattern is not None and "hosts" not in errors:
            clash = self._find_route_clash(
                hosts, pattern.raw if pattern.segments else ""
            )
            if clash:
                errors.setdefault("hosts", []).append(clash)
        if errors:
            raise ValidationError(errors)
        self.hosts = "\n".join(hosts)

    def _find_route_clash(self, hosts: list[str], path: str) -> str | None:
        others = Application.objects.exclude(pk=self.pk).only("name", "hosts", "path")
        for other in others:
            if other.path != path:
                continue
            shared = set(other.host_list) & set(hosts)
            if shared:
                host = sorted(shared)[0]
                return (
                    f"host {host} with path {path or '/'} is already used by "
                    f"application {other.name!r}"
                )
        return None


class Policy(models.Model):
    class Action(models.TextChoices):
        ALLOW = "allow", "Allow"
        BLOCK = "block", "Block"
        BYPASS = "bypass", "Bypass (no sign-in)"
        SERVICE_AUTH = "service_auth", "Service auth (tokens)"

    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="policies"
    )
    name = models.CharField(max_length=200)
    action = models.CharField(max_length=16, choices=Action.choices)
    precedence = models.IntegerField(default=100, help_text="Lower numbers go first.")
    session_duration = models.DurationField(null=True, blank=True)

    class Meta:
        ordering = ["application", "precedence", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["application", "name"], name="policy_name_unique_per_app"
            )
        ]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return f"{self.name} ({self.action})"

    def clean(self) -> None:
        if self.session_duration is not None and self.session_duration <= timedelta(0):
            raise ValidationError({"session_duration": "must be positive"})


class Rule(models.Model):
    class Kind(models.TextChoices):
        INCLUDE = "include", "Include (any matches)"
        REQUIRE = "require", "Require (all must match)"
        EXCLUDE = "exclude", "Exclude (none may match)"

    class Selector(models.TextChoices):
        EVERYONE = "everyone", "Everyone"
        EMAIL = "email", "Email"
        EMAIL_DOMAIN = "email_domain", "Email domain"
        GITHUB_ORG = "github_org", "GitHub organization"
        GITHUB_TEAM = "github_team", "GitHub team (org/team)"
        IP_RANGE = "ip_range", "IP range (CIDR)"
        LOGIN_METHOD = "login_method", "Login method"
        SERVICE_TOKEN = "service_token", "Service token (by name)"
        ANY_SERVICE_TOKEN = "any_service_token", "Any valid service token"

    VALUELESS = {Selector.EVERYONE, Selector.ANY_SERVICE_TOKEN}
    BYPASS_SELECTORS = {Selector.EVERYONE, Selector.IP_RANGE}
    LOGIN_METHODS = {"pin", "github"}

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="rules")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.INCLUDE)
    selector = models.CharField(max_length=24, choices=Selector.choices)
    value = models.CharField(max_length=320, blank=True, default="")

    class Meta:
        ordering = ["policy", "kind", "selector", "value"]

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.selector}={self.value}"
            if self.value
            else f"{self.kind} {self.selector}"
        )

    def clean(self) -> None:
        self.value = normalise_rule_value(self.selector, self.value)
        policy = self.policy if self.policy_id else None
        if policy is not None:
            check_action_selector(policy.action, self.kind, self.selector)


TOKEN_SELECTORS = {Rule.Selector.SERVICE_TOKEN, Rule.Selector.ANY_SERVICE_TOKEN}


def check_action_selector(action: str, kind: str, selector: str) -> None:
    """Refuse rules that a policy of this action could never use.

    Anonymous traffic passes bypass policies, so only address rules make
    sense there; tokens are admitted only by service_auth policies, so token
    rules anywhere else, or member rules in a service_auth policy, would be
    accepted and then silently never match.
    """
    if action == Policy.Action.BYPASS and selector not in Rule.BYPASS_SELECTORS:
        raise ValidationError(
            {"selector": "a bypass policy may use only 'everyone' and 'ip_range'"}
        )
    if (
        action in (Policy.Action.ALLOW, Policy.Action.BLOCK)
        and selector in TOKEN_SELECTORS
    ):
        raise ValidationError(
            {
                "selector": "service tokens are admitted only by service_auth "
                "policies; move this rule to one"
            }
        )
    if action == Policy.Action.SERVICE_AUTH:
        allowed = TOKEN_SELECTORS | {Rule.Selector.IP_RANGE}
        if kind == Rule.Kind.INCLUDE:
            allowed = TOKEN_SELECTORS
        if selector not in allowed:
            raise ValidationError(
                {
                    "selector": "a service_auth policy includes service_token or "
                    "any_service_token, and may require or exclude ip_range"
                }
            )


def normalise_rule_value(selector: str, value: str | None) -> str:
    """Check a selector's value and return its canonical form."""
    text = (value or "").strip()
    sel = Rule.Selector
    if selector not in sel.values:
        raise ValidationError({"selector": f"unknown selector {selector!r}"})
    if selector in Rule.VALUELESS:
        if text not in {"", "true", "True"}:
            raise ValidationError({"value": f"{selector} takes no value"})
        return ""
    if not text:
        raise ValidationError({"value": f"{selector} needs a value"})
    if selector == sel.EMAIL:
        text = text.lower()
        if not _EMAIL_RE.match(text) or text.count("@") != 1:
            raise ValidationError({"value": f"{value!r} is not one email address"})
    elif selector == sel.EMAIL_DOMAIN:
        text = text.lower().rstrip(".")
        if "@" in text:
            raise ValidationError({"value": "an email domain has no '@'"})
        if not _DOMAIN_RE.match(text):
            raise ValidationError({"value": f"{value!r} is not a domain"})
    elif selector == sel.GITHUB_ORG:
        if not _ORG_RE.match(text):
            raise ValidationError({"value": f"{value!r} is not a GitHub organization"})
        text = text.lower()
    elif selector == sel.GITHUB_TEAM:
        if not _TEAM_RE.match(text):
            raise ValidationError({"value": "a GitHub team is written org/team"})
        text = text.lower()
    elif selector == sel.IP_RANGE:
        try:
            text = str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValidationError({"value": f"{value!r} is not a CIDR range"}) from None
    elif selector == sel.LOGIN_METHOD:
        text = text.lower()
        if text not in Rule.LOGIN_METHODS:
            raise ValidationError({"value": "login method is 'pin' or 'github'"})
    return text
