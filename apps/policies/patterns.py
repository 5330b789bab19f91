"""Path patterns and host names for applications.

A pattern is a prefix at segment boundaries: ``/grafana`` covers
``/grafana``, ``/grafana/`` and ``/grafana/x`` but never ``/grafanax``. A
``*`` segment stands for exactly one non-empty segment. Patterns are matched
against the normalised path (see ``apps.proxy.paths``), the same one that is
sent upstream, so a rule never reads a path differently from the upstream.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# Paths the portal serves on its own host; a path-mode application there may
# not take them, or it would shadow the login, admin or key endpoints.
PORTAL_PREFIXES = (
    "/login",
    "/logout",
    "/admin",
    "/accounts",
    "/.well-known",
    "/healthz",
    "/metrics",
    "/.accessportal",
)

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9._~!$&'()+,;=:@%-]+$")
_HOST_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class PatternError(ValueError):
    pass


@dataclass(frozen=True)
class PathPattern:
    raw: str
    segments: tuple[str, ...]

    @property
    def literal_count(self) -> int:
        return sum(1 for s in self.segments if s != "*")

    @property
    def specificity(self) -> tuple[int, int]:
        return (self.literal_count, len(self.segments))

    def matches(self, path_segments: list[str]) -> bool:
        if len(path_segments) < len(self.segments):
            return False
        for want, got in zip(self.segments, path_segments, strict=False):
            if want == "*":
                if not got:
                    return False
            elif want != got:
                return False
        return True

    def strip(self, raw_path: str) -> str:
        """Remove the matched prefix from a raw path (same segment count)."""
        if not self.segments:
            return raw_path
        parts = raw_path.split("/")
        # parts[0] is the empty string before the leading slash.
        rest = parts[len(self.segments) + 1 :]
        return "/" + "/".join(rest)


def parse_pattern(raw: str | None) -> PathPattern:
    text = (raw or "").strip()
    if text in {"", "/"}:
        return PathPattern("/", ())
    if not text.startswith("/"):
        raise PatternError("a path pattern must start with '/'")
    body = text.strip("/")
    if "//" in text.rstrip("/") or not body:
        raise PatternError("a path pattern may not contain empty segments")
    segments = tuple(body.split("/"))
    for segment in segments:
        if segment in {".", ".."}:
            raise PatternError("a path pattern may not contain '.' or '..' segments")
        if segment == "*":
            continue
        if "*" in segment:
            raise PatternError("'*' must stand alone as a whole segment")
        if not _SEGMENT_RE.match(segment) or "%" in segment:
            raise PatternError(f"invalid characters in path segment {segment!r}")
    return PathPattern("/" + "/".join(segments), segments)


def takes_portal_path(pattern: PathPattern) -> bool:
    if not pattern.segments:
        return True
    first = "/" + pattern.segments[0]
    if pattern.segments[0] == "*":
        return True
    return any(first.lower() == prefix for prefix in PORTAL_PREFIXES)


def normalise_host(raw: str) -> str:
    """Lower-case a host and check it is a DNS name or an IP literal."""
    host = raw.strip().lower().rstrip(".")
    if not host:
        raise PatternError("a host may not be empty")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    if len(host) > 253:
        raise PatternError(f"host {raw!r} is too long")
    labels = host.split(".")
    if not all(_HOST_LABEL_RE.match(label) for label in labels):
        raise PatternError(f"{raw!r} is not a valid host name or IP address")
    if labels[-1].isdigit():
        raise PatternError(f"{raw!r} is not a valid host name or IP address")
    return host


def split_hosts(raw: str) -> list[str]:
    return [h for h in re.split(r"[\s,]+", raw or "") if h]
