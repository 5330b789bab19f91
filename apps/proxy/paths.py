"""Read a request target the way both the policy engine and upstreams will.

The raw target goes upstream untouched, so the question is only which
application it belongs to. Upstreams disagree about encoded slashes,
backslashes, ``;`` parameters and repeated slashes, so the target is split
twice: once literally (only ``/`` separates, nothing is decoded) and once the
way the most liberal upstream would read it (decoded, ``/`` and ``\\`` both
separate, ``;`` parameters and empty segments dropped). When the two readings
route to different applications the request is refused with 400, because a
rule would then judge one path while the upstream serves another.

Dot segments, plain or encoded, NUL and other control bytes, a ``#`` in the
target, and broken or overlong percent-encoding are refused outright: no
browser sends them, and each is a known way to make two parsers disagree.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

_BAD_PERCENT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_ESCAPE_RE = re.compile(r"%[0-9A-Fa-f]{2}")
# Look-alikes of '.', '/' and '\\' that NFKC leaves alone, and invisible
# characters a server might strip before resolving dot segments.
_LOOKALIKE_RE = re.compile(
    "[\u3002\uff61\u2215\u2044\u29f5\u29f8\u29f9\u200b-\u200d\u2060\ufeff\u00ad]"
)


class BadPath(ValueError):
    """The request target cannot be read safely; answer 400."""


@dataclass(frozen=True)
class Target:
    raw: str  # path and query exactly as sent
    raw_path: str
    query: str  # without the "?"; empty when absent
    literal: list[str]  # segments split on "/" only, still encoded
    liberal: list[str]  # decoded segments as a permissive upstream reads them


def raw_target_from_environ(environ: dict) -> str:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        if not raw.startswith("/"):
            # absolute-form ("http://host/path") or asterisk-form targets
            match = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*", raw)
            if raw == "*" or match is None:
                raise BadPath("the request target must be a path")
            raw = raw[match.end() :] or "/"
            if not raw.startswith("/"):
                raw = "/" + raw
        return raw
    from urllib.parse import quote

    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    path = quote(
        path.encode("latin-1").decode("utf-8", "surrogateescape"),
        safe="/:@!$&'()*+,;=-._~",
    )
    query = environ.get("QUERY_STRING", "")
    return path + ("?" + query if query else "")


def _looks_like_dots(segment: str) -> bool:
    """'.' or '..' as any upstream might read it.

    Servers differ in what they trim or fold before resolving dot segments:
    trailing spaces (Windows), Unicode compatibility forms such as fullwidth
    dots, or whatever follows a '?' or '#' that they decode before splitting.
    """
    folded = unicodedata.normalize("NFKC", segment)
    for candidate in (segment, folded):
        head = re.split(r"[?#;]", candidate, maxsplit=1)[0]
        if head.strip() in {".", ".."} or head.rstrip(" .\u00a0\t") == "" and head:
            return True
    return False


def _decode_segment(segment: str) -> str:
    try:
        return unquote_to_bytes(segment.encode("latin-1")).decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise BadPath("the path is not valid UTF-8 after decoding") from None


def parse_target(raw: str) -> Target:
    if "#" in raw:
        raise BadPath("a fragment ('#') may not be sent in the request target")
    if _CONTROL_RE.search(raw) or " " in raw:
        raise BadPath("the request target contains control characters or spaces")
    path, _, query = raw.partition("?")
    if not path.startswith("/"):
        raise BadPath("the path must start with '/'")
    if _BAD_PERCENT_RE.search(path):
        raise BadPath("the path has a '%' that does not start a valid escape")
    literal = path.split("/")[1:]
    if literal and literal[-1] == "":
        literal = literal[:-1]
    try:
        # The server read each byte of the request line as one latin-1
        # character; undo that, then decode escapes and UTF-8 strictly (which
        # also refuses overlong forms such as %C0%AE).
        decoded = unquote_to_bytes(path.encode("latin-1")).decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise BadPath("the path is not valid UTF-8") from None
    if _CONTROL_RE.search(decoded):
        raise BadPath("the path contains encoded control characters")
    folded = unicodedata.normalize("NFKC", decoded)
    if any(folded.count(c) != decoded.count(c) for c in "/\\.?#;%") or (
        _LOOKALIKE_RE.search(decoded)
    ):
        # Fullwidth solidus, one-dot leader and friends become '/' or '.' in
        # any server that folds Unicode; a bypass must not be judged on one
        # reading of them while the upstream uses the other.
        raise BadPath("the path has characters that some servers read as '/' or '.'")
    if _ESCAPE_RE.search(decoded):
        # A second round of decoding (which some upstreams and frameworks
        # do) would turn %252e%252e into '..' after every check here.
        raise BadPath("the path is percent-encoded twice")
    liberal: list[str] = []
    for piece in re.split(r"[/\\]", decoded):
        segment = piece.split(";", 1)[0]
        if _looks_like_dots(piece) or _looks_like_dots(segment):
            raise BadPath("dot segments ('.' or '..') are not allowed in the path")
        if segment:
            liberal.append(segment)
    for piece in literal:
        if _decode_segment(piece) in {".", ".."}:
            raise BadPath("dot segments ('.' or '..') are not allowed in the path")
    return Target(raw=raw, raw_path=path, query=query, literal=literal, liberal=liberal)
