"""Which headers cross the portal, in each direction.

From the client, before anything else: hop-by-hop headers and those named in
``Connection`` go; so does every header the portal sets upstream itself and
every header some upstream might take as identity or routing truth, compared
after lower-casing and mapping ``_`` to ``-`` (``X_Auth_Request_Email`` is
the same header to many servers); so do service-token headers and the
portal's own cookies. The rest, including the client's ``Authorization``,
passes.
"""

from __future__ import annotations

from collections.abc import Iterable

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)

TOKEN_HEADERS = frozenset(
    {
        "access-client-id",
        "access-client-secret",
        "cf-access-client-id",
        "cf-access-client-secret",
    }
)

# Headers the portal sets, or that upstreams are known to trust for identity,
# the original URL or the client's address. A client never gets to send them.
PORTAL_SET = frozenset(
    {
        "x-auth-request-email",
        "x-auth-request-user",
        "x-auth-request-groups",
        "x-auth-request-preferred-username",
        "x-auth-request-access-token",
        "x-access-jwt-assertion",
        "cf-access-jwt-assertion",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-server",
        "x-forwarded-uri",
        "x-forwarded-method",
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-forwarded-preferred-username",
        "x-forwarded-access-token",
        "x-original-url",
        "x-original-uri",
        "x-original-method",
        "x-rewrite-url",
        "x-real-ip",
        "x-client-ip",
        "true-client-ip",
        "forwarded",
        "x-webauth-user",
        "x-remote-user",
        "remote-user",
        "x-user",
        "x-email",
        "expect",
    }
)

# Header families that upstreams and their frameworks take as identity, the
# client's address, the original URL or the original scheme.
TRUSTED_FAMILIES = (
    "x-auth-request-",
    "x-forwarded-",
    "x-original-",
    "x-webauth-",
    "x-remote-",
    "x-authenticated-",
    "x-proxy-user",
    "x-grafana-",
    # identity headers of other gateways and clouds, which upstreams moved
    # from them may still trust
    "cf-access-",
    "remote-",
    "x-ms-client-principal",
    "x-goog-authenticated-",
    "x-amzn-oidc-",
    "oidc-claim-",
    "oidc-access-token",
    "x-auth-user",
    "x-token-user-",
    "x-userinfo",
)

# Single headers of the same kind, as various proxies and CDNs name them.
PORTAL_SET = PORTAL_SET | frozenset(
    {
        "x-url-scheme",
        "front-end-https",
        "x-host",
        "cf-connecting-ip",
        "x-cluster-client-ip",
        "fastly-client-ip",
        "x-envoy-external-address",
        "x-scheme",
        "x-https",
        "x-client-cert",
        "x-ssl-client-cert",
        "ssl-client-cert",
        "x-user-email",
        "x-email",
        "x-forwarded",
        "x-originating-ip",
        "client-ip",
        "x-proxyuser-ip",
        "x-real-ip",
        "x-client-ip",
    }
)


def _family(name: str) -> str:
    """``x-webauth-user`` -> ``x-webauth-``: the configured header's kin."""
    head, sep, _ = name.rpartition("-")
    # "x-user" has no family worth the name: dropping "x-" would drop all.
    if not head or head == "x":
        return name
    return head + sep


PORTAL_COOKIES = ("accessportal_session", "accessportal_csrf")
APP_COOKIE_PREFIX = "accessportal_app"


def canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def header_title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def is_portal_cookie(name: str) -> bool:
    return name in PORTAL_COOKIES or name.startswith(APP_COOKIE_PREFIX)


def strip_portal_cookies(cookie_header: str) -> str:
    """Drop the portal's cookies and keep the rest byte-for-byte.

    ``SimpleCookie`` would re-quote values and silently drop pairs it cannot
    parse, which changes what the upstream's own cookies look like.
    """
    kept = []
    for part in cookie_header.split(";"):
        piece = part.strip()
        if not piece:
            continue
        name = piece.split("=", 1)[0].strip()
        if is_portal_cookie(name):
            continue
        kept.append(piece)
    return "; ".join(kept)


def read_cookie(cookie_header: str, name: str) -> str | None:
    """Return the value of ``name``; a cookie sent twice counts as absent."""
    found = None
    for part in cookie_header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key.strip() == name:
            if found is not None:
                return None
            found = value.strip().strip('"')
    return found


def client_headers(environ: dict, extra_drop: Iterable[str] = ()) -> dict[str, str]:
    """The client's request headers that may go upstream."""
    raw: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            raw[canonical(key[5:])] = value
    if "CONTENT_TYPE" in environ and environ["CONTENT_TYPE"]:
        raw["content-type"] = environ["CONTENT_TYPE"]
    if "CONTENT_LENGTH" in environ and environ["CONTENT_LENGTH"]:
        raw["content-length"] = environ["CONTENT_LENGTH"]
    named = {canonical(n) for n in raw.get("connection", "").split(",") if n.strip()}
    drop = (
        HOP_BY_HOP
        | TOKEN_HEADERS
        | PORTAL_SET
        | named
        | {canonical(n) for n in extra_drop}
    )
    drop |= {"host"}
    families = TRUSTED_FAMILIES + tuple(_family(canonical(n)) for n in extra_drop if n)
    out: dict[str, str] = {}
    for name, value in raw.items():
        # Whole families, not only the names the portal sets today: an
        # upstream may read any X-Auth-Request-* or X-Forwarded-* header, and
        # Grafana maps X-WEBAUTH-EMAIL/-ROLE/-GROUPS beside X-WEBAUTH-USER.
        if name in drop or name.startswith(families):
            continue
        if name == "cookie":
            value = strip_portal_cookies(value)
            if not value:
                continue
        out[header_title(name)] = value
    return out


def response_headers(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The upstream's response headers that may go to the client."""
    pairs = list(items)
    named: set[str] = set()
    for name, value in pairs:
        if name.lower() == "connection":
            named |= {canonical(n) for n in value.split(",") if n.strip()}
    drop = HOP_BY_HOP | named
    return [
        (n, v)
        for n, v in pairs
        if n.lower() not in drop
        and not (n.lower() == "set-cookie" and _sets_portal_cookie(v))
    ]


def _sets_portal_cookie(value: str) -> bool:
    """Whether an upstream tries to set one of the portal's own cookies.

    An upstream (or any application sharing the host) could otherwise plant
    a sign-in state cookie to bind a victim's browser to the attacker's
    login, or overwrite the application cookie.
    """
    name = value.split("=", 1)[0].strip().lower()
    return name.startswith("accessportal")
