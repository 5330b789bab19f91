from django.urls import path

from apps.identity import views

urlpatterns = [
    path("", views.launcher, name="launcher"),
    path("login/", views.login_page, name="login"),
    path("logout/", views.logout_view, name="logout"),
]
