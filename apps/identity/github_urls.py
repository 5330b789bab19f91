"""The part of allauth the portal routes: GitHub's login and callback.

allauth's account pages (password login, sign-up, password reset, e-mail
management) are deliberately absent; members have no passwords. The few URL
names allauth reverses on its error paths lead back to the portal's own
pages.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from allauth.socialaccount.providers.github import views as github_views
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path
from django.views.generic.base import RedirectView

_to_login = RedirectView.as_view(url="/login/")


def _when_enabled(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    # Without a configured GitHub app allauth would fail with a 500; a
    # disabled method is simply not there.
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.GITHUB_LOGIN_ENABLED:
            raise Http404("GitHub sign-in is not enabled")
        return view(request, *args, **kwargs)

    return wrapper


urlpatterns = [
    path(
        "github/login/",
        _when_enabled(github_views.oauth2_login),
        name="github_login",
    ),
    path(
        "github/login/callback/",
        _when_enabled(github_views.oauth2_callback),
        name="github_callback",
    ),
    path("login/", _to_login, name="account_login"),
    path("signup/", _to_login, name="account_signup"),
    path("email/", _to_login, name="account_email"),
    path("logout/", RedirectView.as_view(url="/logout/"), name="account_logout"),
    path("3rdparty/", _to_login, name="socialaccount_connections"),
    path("3rdparty/login/cancelled/", _to_login, name="socialaccount_login_cancelled"),
    path("3rdparty/login/error/", _to_login, name="socialaccount_login_error"),
    path("3rdparty/signup/", _to_login, name="socialaccount_signup"),
]
