"""The global session on the portal host and what it remembers of a login.

``establish_session`` runs once per sign-in (PIN or GitHub): it rotates the
Django session key (so a session id planted before login is worthless), marks
a fresh session id ``sid`` that every application cookie of this login will
carry, and stores the identity facts read at login. ``end_session`` revokes
that ``sid`` in the shared cache, which every instance checks on every
proxied request, and deletes the Django session.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from django.contrib.auth import login
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest
from django.utils import timezone
from django.utils.module_loading import import_string

from apps.identity.models import LoginSession
from apps.proxy import revocation

logger = logging.getLogger(__name__)

IDENTITY_KEY = "accessportal.identity"


def establish_session(
    request: HttpRequest,
    user: Any,
    method: str,
    username: str = "",
    orgs: list[str] | None = None,
    teams: list[str] | None = None,
    client_ip: str | None = None,
) -> dict[str, Any]:
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    request.session.cycle_key()
    sid = secrets.token_urlsafe(24)
    facts = {
        "uid": user.pk,
        "email": getattr(user, "email", "") or user.get_username(),
        "username": username,
        "orgs": sorted({o.lower() for o in orgs or []}),
        "teams": sorted({t.lower() for t in teams or []}),
        "method": method,
        "sid": sid,
    }
    request.session[IDENTITY_KEY] = facts
    request.session.save()
    LoginSession.objects.create(
        sid=sid,
        user=user,  # type: ignore[misc]
        session_key=request.session.session_key or "",
        method=method,
        client_ip=client_ip,
    )
    return facts


def session_identity(request: HttpRequest) -> dict[str, Any] | None:
    """The identity facts of a live global session, or None."""
    if not request.user.is_authenticated:
        return None
    facts = request.session.get(IDENTITY_KEY)
    if not facts or revocation.is_session_revoked(facts.get("sid", "")):
        return None
    return facts


def _delete_django_session(session_key: str) -> None:
    if not session_key:
        return
    from django.conf import settings

    store: SessionBase = import_string(f"{settings.SESSION_ENGINE}.SessionStore")(
        session_key
    )
    store.delete(session_key)


def end_login(login_session: LoginSession) -> None:
    revocation.revoke_session(login_session.sid)
    _delete_django_session(login_session.session_key)
    if login_session.ended_at is None:
        login_session.ended_at = timezone.now()
        login_session.save(update_fields=["ended_at"])


def end_session_by_sid(sid: str) -> LoginSession | None:
    revocation.revoke_session(sid)
    found = LoginSession.objects.filter(sid=sid).select_related("user").first()
    if found is not None:
        end_login(found)
    return found


def end_request_session(request: HttpRequest) -> None:
    facts = request.session.get(IDENTITY_KEY) or {}
    sid = facts.get("sid")
    if sid:
        end_session_by_sid(sid)
    request.session.flush()


def revoke_user_sessions(user_id: int) -> int:
    """End every login of a user: global sessions and application cookies."""
    revocation.revoke_user(user_id)
    count = 0
    for login_session in LoginSession.objects.filter(
        user_id=user_id, ended_at__isnull=True
    ):
        end_login(login_session)
        count += 1
    return count
