"""What counts as one e-mail address at the sign-in forms."""

from __future__ import annotations

import re

MAX_LENGTH = 254
# Deliberately narrow: one local part, one domain with a dot-free or dotted
# name of letters, digits and hyphens. Anything a mail server might read as
# two recipients (commas, spaces, quotes, angle brackets) is refused here.
_EMAIL_RE = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@"
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*"
    r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)


def normalise_email(raw: str | None) -> str | None:
    """Return the address lowercased and trimmed, or None if it is not one.

    Exactly one ``@``, a non-empty local part and a domain; no whitespace,
    commas or quoting inside, so that the text can only ever name one
    mailbox.
    """
    if raw is None:
        return None
    text = raw.strip().lower()
    if not text or len(text) > MAX_LENGTH or text.count("@") != 1:
        return None
    local, domain = text.split("@")
    if not local or not domain or len(local) > 64:
        return None
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    if not _EMAIL_RE.match(text):
        return None
    return text
