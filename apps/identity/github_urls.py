"""The part of allauth the portal routes: GitHub's login and callback.

allauth's account pages (password login, sign-up, password reset, e-mail
management) are deliberately absent; members have no passwords. The few URL
names allauth reverses on its error paths lead back to the portal's own
pages.
"""

from django.urls import include, path
from django.views.generic.base import RedirectView

_to_login = RedirectView.as_view(url="/login/")

urlpatterns = [
    path("", include("allauth.socialaccount.providers.github.urls")),
    path("login/", _to_login, name="account_login"),
    path("signup/", _to_login, name="account_signup"),
    path("email/", _to_login, name="account_email"),
    path("logout/", RedirectView.as_view(url="/logout/"), name="account_logout"),
    path("3rdparty/", _to_login, name="socialaccount_connections"),
    path("3rdparty/login/cancelled/", _to_login, name="socialaccount_login_cancelled"),
    path("3rdparty/login/error/", _to_login, name="socialaccount_login_error"),
    path("3rdparty/signup/", _to_login, name="socialaccount_signup"),
]
