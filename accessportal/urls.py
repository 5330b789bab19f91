"""URLs of the portal host (and ``/.accessportal/`` on application hosts)."""

from django.contrib import admin
from django.urls import include, path

from apps.proxy import views as proxy_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path(".well-known/jwks.json", proxy_views.jwks, name="jwks"),
    path("healthz", proxy_views.healthz, name="healthz"),
    path("metrics", proxy_views.metrics, name="metrics"),
    path(".accessportal/authorized", proxy_views.authorized, name="app-authorized"),
    path(".accessportal/logout", proxy_views.app_logout, name="app-logout"),
    path(".accessportal/identity", proxy_views.identity, name="app-identity"),
    path("accounts/", include("apps.identity.github_urls")),
    path("", include("apps.identity.urls")),
]

# A lost database or cache gets a clear 503 instead of a bare 500.
handler500 = "accessportal.errors.server_error"
