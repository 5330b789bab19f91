"""Security headers for every page the portal itself serves."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self' {forms}; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def csp_with_form_targets(*origins: str) -> str:
    """The portal's policy, letting forms lead on to ``origins`` as well.

    ``form-action`` also governs the redirects that follow a form post, so a
    sign-in form whose answer redirects to an application's handoff needs that
    application's origin listed here.
    """
    github = settings.GITHUB_URL if settings.GITHUB_LOGIN_ENABLED else ""
    targets = " ".join(o for o in (github, *origins) if o)
    return CSP.format(forms=targets).replace("  ", " ")


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.csp = csp_with_form_targets()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", self.csp)
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        if settings.IS_HTTPS:
            response.headers.setdefault(
                "Strict-Transport-Security",
                "max-age=31536000; includeSubDomains; preload",
            )
        return response


class PortalCsrfViewMiddleware(CsrfViewMiddleware):
    """Django's CSRF checks, working under ``Referrer-Policy: no-referrer``.

    With that policy browsers send ``Origin: null`` on form posts (the Fetch
    standard serialises the origin as ``null`` when the referrer policy is
    ``no-referrer``) and no ``Referer``, so Django's origin check refuses
    every form. ``Sec-Fetch-Site`` is set by the browser alone (scripts cannot
    forge it) and still says whether the post came from a page of this same
    origin; that answers the question the origin check asks. The token check
    that follows is unchanged.
    """

    def _origin_verified(self, request: HttpRequest) -> bool:
        if (
            request.META.get("HTTP_ORIGIN") == "null"
            and request.META.get("HTTP_SEC_FETCH_SITE") == "same-origin"
        ):
            return True
        return super()._origin_verified(request)  # type: ignore[misc]
