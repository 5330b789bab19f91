"""Django's admin app, with the portal's admin site as ``admin.site``.

Kept apart from ``admin_site`` because an app config is imported before the
models are ready.
"""

from django.contrib.admin.apps import AdminConfig


class PortalAdminConfig(AdminConfig):
    default_site = "accessportal.admin_site.PortalAdminSite"
