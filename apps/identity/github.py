"""GitHub sign-in through django-allauth, cut down to what members need.

allauth runs the OAuth dance (state, code exchange, ``/user`` and
``/user/emails``). At ``pre_social_login`` this module takes over: it picks
the primary verified address, reads organizations and teams with
pagination, checks that some policy could admit the identity, and starts the
portal's own global session. allauth's account and social-account records
are never written, and its sign-up and password pages are not routed (see
``apps/identity/github_urls.py``).

allauth's GitHub adapter computes its URLs when it is imported and assumes
``<GITHUB_URL>/api/v3`` for the API; ``configure_urls`` (run from
``IdentityConfig.ready``) points it at ``GITHUB_URL`` and ``GITHUB_API_URL``
from the environment instead, which is what GitHub Enterprise and the fake
server in the tests need.

Limitations: organizations and teams are read at most ``MAX_PAGES`` pages
of 100 each; a member of more than 1000 organizations is judged on the
first 1000.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialLogin
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.audit.service import record_event
from apps.identity.admission import is_admissible_github
from apps.identity.emails import normalise_email
from apps.proxy.clientip import client_ip
from apps.proxy.returnto import ReturnTo, read_return

logger = logging.getLogger(__name__)

PAGE_SIZE = 100
MAX_PAGES = 10
TIMEOUT = 10
_LINK_NEXT_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class GitHubError(Exception):
    """GitHub did not answer as documented; nobody signs in on a guess."""


def configure_urls() -> None:
    from allauth.socialaccount.providers.github.views import GitHubOAuth2Adapter

    web, api = settings.GITHUB_URL, settings.GITHUB_API_URL
    GitHubOAuth2Adapter.web_url = web
    GitHubOAuth2Adapter.api_url = api
    GitHubOAuth2Adapter.access_token_url = f"{web}/login/oauth/access_token"
    GitHubOAuth2Adapter.authorize_url = f"{web}/login/oauth/authorize"
    GitHubOAuth2Adapter.profile_url = f"{api}/user"
    GitHubOAuth2Adapter.emails_url = f"{api}/user/emails"

    # The callback must be built from PORTAL_URL, not from the request's
    # Host header or scheme (which a proxy in front may change).
    def get_callback_url(self: Any, request: HttpRequest, app: Any) -> str:
        return f"{settings.PORTAL_URL}/accounts/github/login/callback/"

    adapter: Any = GitHubOAuth2Adapter
    adapter.get_callback_url = get_callback_url


def _api_get_all(path: str, token: str) -> list[dict[str, Any]]:
    """Every item of a paginated list, following ``Link: rel="next"``.

    A next link is followed only on the configured API origin, so a forged
    header cannot send the member's token elsewhere.
    """
    api = settings.GITHUB_API_URL
    origin = urlsplit(api)
    url: str | None = f"{api}{path}?per_page={PAGE_SIZE}"
    headers = {
        "Authorization": f"token {token}",
        "Accept": "application/vnd.github+json",
    }
    items: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        if url is None:
            break
        resp = requests.get(url, headers=headers, timeout=TIMEOUT)
        if resp.status_code != 200:
            raise GitHubError(f"{path} answered {resp.status_code}")
        page = resp.json()
        if not isinstance(page, list):
            raise GitHubError(f"{path} did not answer with a list")
        items.extend(i for i in page if isinstance(i, dict))
        url = None
        match = _LINK_NEXT_RE.search(resp.headers.get("Link", ""))
        if match:
            following = urlsplit(match.group(1))
            if (following.scheme, following.netloc) != (origin.scheme, origin.netloc):
                raise GitHubError(f"{path} pointed to another host")
            url = match.group(1)
    return items


def read_memberships(token: str) -> tuple[list[str], list[str]]:
    """Organization logins and ``org/team`` slugs, lowercased."""
    orgs = sorted(
        {
            str(o["login"]).lower()
            for o in _api_get_all("/user/orgs", token)
            if "login" in o
        }
    )
    teams = set()
    for team in _api_get_all("/user/teams", token):
        org = (team.get("organization") or {}).get("login")
        if org and team.get("slug"):
            teams.add(f"{org}/{team['slug']}".lower())
    return orgs, sorted(teams)


def primary_verified_email(sociallogin: SocialLogin) -> str | None:
    for address in sociallogin.email_addresses:
        if address.primary and address.verified:
            return normalise_email(address.email)
    return None


def _return_to(sociallogin: SocialLogin) -> ReturnTo | None:
    # The login form sends next=/login/?next=<signed value>; only the signed
    # value inside counts.
    raw = (sociallogin.state or {}).get("next") or ""
    values = parse_qs(urlsplit(raw).query).get("next", [])
    return read_return(values[0]) if len(values) == 1 else None


def _ip(request: HttpRequest) -> str | None:
    found = client_ip(request.META, settings.TRUSTED_PROXY_COUNT)
    return str(found) if found is not None else None


def refuse(request: HttpRequest, actor: str, reason: str, message: str) -> HttpResponse:
    record_event(
        "login_failed",
        actor=actor,
        client_ip=_ip(request),
        outcome="deny",
        detail={"method": "github", "reason": reason},
    )
    logger.warning("GitHub sign-in refused: %s", reason)
    return render(
        request,
        "identity/refused.html",
        {"message": message, "status": 403},
        status=403,
    )


def complete_github_login(
    request: HttpRequest, sociallogin: SocialLogin
) -> HttpResponse:
    from apps.identity.pin import member_for
    from apps.identity.sessions import establish_session
    from apps.identity.views import _app_slug, continue_after_login

    login = str(sociallogin.account.extra_data.get("login") or "")
    email = primary_verified_email(sociallogin)
    if email is None:
        return refuse(
            request,
            login,
            "no-verified-email",
            "Your GitHub account has no verified primary e-mail address. "
            "Verify it on GitHub, then sign in again.",
        )
    token = sociallogin.token.token if sociallogin.token else ""
    try:
        orgs, teams = read_memberships(token)
    except (GitHubError, requests.RequestException, ValueError) as exc:
        logger.warning("GitHub memberships unreadable: %s", exc)
        return refuse(
            request,
            email,
            "github-unavailable",
            "GitHub did not tell us your organizations. Try again later.",
        )
    if not is_admissible_github(email, login, orgs, teams):
        return refuse(
            request,
            email,
            "not-admissible",
            f"No application admits {email} (GitHub: {login}). "
            "Ask an administrator for access, or sign in another way.",
        )
    user = member_for(email)
    if user is None:
        return refuse(
            request,
            email,
            "staff-account",
            "This address belongs to an administrator account.",
        )
    ip = _ip(request)
    facts = establish_session(
        request, user, "github", username=login, orgs=orgs, teams=teams, client_ip=ip
    )
    ret = _return_to(sociallogin)
    record_event(
        "login_succeeded",
        actor=email,
        application=_app_slug(ret),
        client_ip=ip,
        outcome="ok",
        detail={"method": "github", "username": login},
    )
    return continue_after_login(request, ret, facts)


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(  # type: ignore[override]
        self, request: HttpRequest, sociallogin: Any
    ) -> bool:
        return False

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        # The portal keeps its own session and facts; allauth's user and
        # social-account records are never made.
        raise ImmediateHttpResponse(complete_github_login(request, sociallogin))

    def on_authentication_error(  # type: ignore[override]
        self, request, provider, error=None, exception=None, extra_context=None
    ) -> None:
        if exception is not None:
            logger.warning("GitHub sign-in failed: %s", type(exception).__name__)
        raise ImmediateHttpResponse(
            refuse(
                request,
                "",
                f"oauth-{error or 'error'}",
                "GitHub sign-in did not complete. Try again, or sign in another way.",
            )
        )
