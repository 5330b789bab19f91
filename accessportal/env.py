"""Read and check every setting that comes from the environment.

All environment access lives here so that a missing or malformed value stops
start-up with one line that names the variable, instead of a traceback deep
inside Django.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def _get(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def get_bool(name: str, default: bool = False) -> bool:
    value = _get(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(
        f"{name} must be 1/0, true/false, yes/no or on/off, not {value!r}"
    )


def get_int(name: str, default: int, minimum: int = 0) -> int:
    value = _get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {number}")
    return number


def get_str(name: str, default: str | None = None) -> str | None:
    return _get(name, default)


@dataclass(frozen=True)
class PortalURL:
    scheme: str
    host: str
    port: int | None
    origin: str

    @property
    def is_https(self) -> bool:
        return self.scheme == "https"


def get_portal_url(name: str, default: str) -> PortalURL:
    raw = _get(name, default) or default
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"{name} must be an http(s) URL with a host, not {raw!r}")
    if parts.path not in {"", "/"} or parts.query or parts.fragment:
        raise ConfigError(f"{name} must be an origin without a path, not {raw!r}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{name} has an invalid port: {raw!r}") from None
    host = parts.hostname.lower()
    netloc = host if port is None else f"{host}:{port}"
    if ":" in host:
        netloc = f"[{host}]" if port is None else f"[{host}]:{port}"
    return PortalURL(parts.scheme, host, port, f"{parts.scheme}://{netloc}")


def get_url(name: str, schemes: set[str]) -> str | None:
    raw = _get(name)
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not (parts.hostname or parts.path):
        wanted = ", ".join(sorted(schemes))
        raise ConfigError(
            f"{name} must be a URL with scheme {wanted}, "
            f"not a {parts.scheme or 'bare'} value"
        )
    return raw


def fail(error: ConfigError) -> None:
    """Print the one-line reason and stop the process."""
    sys.stderr.write(f"accessportal: configuration error: {error}\n")
    raise SystemExit(2)
