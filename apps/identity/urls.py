from django.urls import path

from apps.identity import views

urlpatterns = [
    path("", views.launcher, name="launcher"),
    path("login/", views.login_page, name="login"),
    path("login/pin/", views.pin_request, name="pin-request"),
    path("login/pin/verify/", views.pin_verify, name="pin-verify"),
    path("logout/", views.logout_view, name="logout"),
]
