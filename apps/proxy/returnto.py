"""Where a member goes after signing in: a signed (application, host, path).

The login page never takes a free URL. The proxy signs the application, the
public host and the path the member asked for; the portal reads that back and
hands off only to that application. The path is cleaned again on the way out
(``safe_path``), so even a value signed by mistake cannot leave the
application.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from django.core import signing

_SALT = "accessportal.return-to"
MAX_AGE = 3600
_CONTROL_RE = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class ReturnTo:
    app_id: int
    host: str
    path: str
    # Ties the sign-in to the browser that started it (see apps.proxy.state).
    nonce: str = ""


def safe_path(raw: str | None, default: str = "/") -> str:
    """Return ``raw`` if it is a plain path on this origin, else ``default``.

    Decode once, strip control characters and whitespace, then require one
    leading ``/`` not followed by ``/`` or ``\\``: that rules out absolute
    URLs, protocol-relative ``//host`` and the ``/\\host`` form browsers read
    as protocol-relative too.
    """
    if not raw:
        return default
    text = raw
    try:
        decoded = unquote(text, errors="strict")
    except UnicodeDecodeError:
        return default
    for candidate in (text, decoded):
        cleaned = _CONTROL_RE.sub("", candidate)
        if not cleaned.startswith("/") or cleaned[1:2] in ("/", "\\"):
            return default
        if "\\" in cleaned.split("?", 1)[0]:
            return default
        if "%2f" in cleaned[:4].lower() or "%5c" in cleaned[:4].lower():
            return default
    if _CONTROL_RE.search(text):
        return default
    return text


def sign_return(app_id: int, host: str, path: str, nonce: str = "") -> str:
    data = {"a": app_id, "h": host, "p": path}
    if nonce:
        data["n"] = nonce
    return signing.dumps(data, salt=_SALT, compress=True)


def read_return(value: str | None) -> ReturnTo | None:
    if not value or len(value) > 8192:
        return None
    try:
        data = signing.loads(value, salt=_SALT, max_age=MAX_AGE)
        return ReturnTo(
            int(data["a"]),
            str(data["h"]),
            safe_path(str(data["p"])),
            str(data.get("n", "")),
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
