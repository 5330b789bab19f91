from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def portal(request: HttpRequest) -> dict[str, Any]:
    return {
        "demo_mode": settings.DEMO,
        "portal_url": settings.PORTAL_URL,
        "pin_login_enabled": settings.PIN_LOGIN_ENABLED,
        "github_login_enabled": settings.GITHUB_LOGIN_ENABLED,
    }
