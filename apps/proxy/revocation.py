"""Revocation marks in the shared cache, honoured on the next request.

A mark outlives any credential it can cancel: app cookies and handoff codes
never live longer than ``MAX_LIFETIME``. A cache that cannot be read makes the
request fail with 503 rather than pass unchecked.

In the embedded set-up the shared cache is a table in the SQLite file, so
asking it on every request would put a database query on the hot path. There
every instance lives on one host, so each revocation also appends a byte to a
stamp file beside the database; a process remembers its answers and forgets
them as soon as the stamp's size (or inode) changes, which costs one
``stat()`` per request. With Redis, or a database other than SQLite (which
several hosts may share), no local signal can reach every instance, so the
cache is asked on every request (one round trip, ``get_many``).

Limitations: the stamp grows by one byte per revocation and is replaced by a
fresh file once it passes ``STAMP_LIMIT`` bytes; a process that reads the
stamp while it is being replaced simply sees a change and asks the cache.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.cache import cache

MAX_LIFETIME = 400 * 86400
STAMP_NAME = "accessportal-revocations.stamp"
STAMP_LIMIT = 1 << 20
_MEMO_LIMIT = 50_000


def _sid_key(sid: str) -> str:
    return f"revoked:sid:{sid}"


def _user_key(user_id: int) -> str:
    return f"revoked:user:{user_id}"


def _app_key(app_id: int) -> str:
    return f"revoked:app:{app_id}"


def _token_key(token_id: int) -> str:
    return f"revoked:token:{token_id}"


def stamp_path() -> Path | None:
    """The local change signal, or None when there can be none."""
    key = (id(settings.CACHES), id(settings.DATABASES))
    if _stamp_cache.get("key") != key:
        _stamp_cache["key"] = key
        _stamp_cache["path"] = _find_stamp_path()
    return _stamp_cache["path"]  # type: ignore[return-value]


_stamp_cache: dict[str, object] = {}


def _find_stamp_path() -> Path | None:
    backend = str(settings.CACHES["default"]["BACKEND"])
    db = settings.DATABASES["default"]
    if not backend.endswith("DatabaseCache") or "sqlite" not in db["ENGINE"]:
        return None
    name = str(db["NAME"])
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name).resolve().parent / STAMP_NAME


def _generation(path: Path) -> tuple[int, int]:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return (0, 0)
    return (info.st_ino, info.st_size)


def _signal() -> None:
    path = stamp_path()
    if path is None:
        return
    if _generation(path)[1] >= STAMP_LIMIT:
        fresh = path.with_suffix(f".{os.getpid()}.tmp")
        fresh.write_bytes(b".")
        os.replace(fresh, path)  # a new inode is a change too
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, b".")
    finally:
        os.close(fd)


class _Memo:
    """Answers read from the cache, valid while the stamp is unchanged."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation: tuple[int, int] | None = None
        self.values: dict[str, object] = {}

    def get_many(self, keys: list[str]) -> dict[str, object]:
        path = stamp_path()
        if path is None:
            return cache.get_many(keys)
        # Read the stamp before the cache: a revocation that lands in
        # between changes the stamp, so the next request asks again.
        generation = _generation(path)
        with self.lock:
            if generation != self.generation:
                self.values.clear()
                self.generation = generation
            if all(k in self.values for k in keys):
                return {k: self.values[k] for k in keys if self.values[k] is not None}
        found = cache.get_many(keys)
        with self.lock:
            if self.generation == generation:
                if len(self.values) > _MEMO_LIMIT:
                    self.values.clear()
                for key in keys:
                    self.values[key] = found.get(key)
        return found

    def forget(self) -> None:
        with self.lock:
            self.values.clear()
            self.generation = None


_memo = _Memo()


def _mark(key: str, value: int) -> None:
    cache.set(key, value, timeout=MAX_LIFETIME)
    _signal()
    _memo.forget()


def revoke_session(sid: str) -> None:
    _mark(_sid_key(sid), 1)


def revoke_user(user_id: int) -> None:
    """Cancel every app cookie issued to the user up to now."""
    _mark(_user_key(user_id), int(time.time()) + 1)


def revoke_app(app_id: int) -> None:
    """Cancel every cookie of one application issued up to now."""
    _mark(_app_key(app_id), int(time.time()) + 1)


def revoke_token_now(token_id: int) -> None:
    _mark(_token_key(token_id), 1)


def is_cookie_revoked(sid: str, user_id: int, app_id: int, issued_at: int) -> bool:
    keys = [_sid_key(sid), _user_key(user_id), _app_key(app_id)]
    marks = _memo.get_many(keys)
    if marks.get(keys[0]):
        return True
    for key in keys[1:]:
        cutoff = marks.get(key)
        if cutoff is not None and issued_at < int(str(cutoff)):
            return True
    return False


def is_session_revoked(sid: str) -> bool:
    return bool(cache.get(_sid_key(sid)))


def is_token_revoked(token_id: int) -> bool:
    key = _token_key(token_id)
    return bool(_memo.get_many([key]).get(key))
