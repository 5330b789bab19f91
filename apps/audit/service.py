"""Record audit events, now or off the request path.

``record_event`` writes at once and is for admin actions and sign-in, where a
database write is part of the work anyway. ``defer_event`` hands the event to
one background writer per process so that proxied requests never wait for the
database; the writer saves events in batches.

Limitations: deferred events that are still queued when a process is killed
without a graceful shutdown are lost (gunicorn's graceful stop flushes them
through ``flush_deferred``). The queue is bounded; when the database is down
for long enough to fill it, further events are dropped and counted in the
operators' log.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import close_old_connections
from django.utils import timezone

logger = logging.getLogger(__name__)

_QUEUE_SIZE = 50_000
_queue: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_SIZE)
_writer_lock = threading.Lock()
_writer: threading.Thread | None = None
_dropped = 0


def _build(
    kind: str,
    actor: str = "",
    application: str = "",
    client_ip: str | None = None,
    outcome: str = "",
    detail: dict[str, Any] | None = None,
    time: datetime | None = None,
) -> dict[str, Any]:
    return {
        "time": time or timezone.now(),
        "kind": kind,
        "actor": (actor or "")[:320],
        "application": application or "",
        "client_ip": client_ip or None,
        "outcome": outcome,
        "detail": detail or {},
    }


def record_event(kind: str, **fields: Any) -> None:
    from apps.audit.models import AuditEvent

    AuditEvent.objects.create(**_build(kind, **fields))


def defer_event(kind: str, **fields: Any) -> None:
    global _dropped
    _ensure_writer()
    try:
        _queue.put_nowait(_build(kind, **fields))
    except queue.Full:
        _dropped += 1
        if _dropped % 1000 == 1:
            logger.error("audit queue full; %d events dropped so far", _dropped)


def defer_call(task: Callable[[], None]) -> None:
    """Run a small database write on the background writer."""
    global _dropped
    _ensure_writer()
    try:
        _queue.put_nowait(task)
    except queue.Full:
        _dropped += 1


def _ensure_writer() -> None:
    global _writer
    if _writer is not None and _writer.is_alive():
        return
    with _writer_lock:
        if _writer is not None and _writer.is_alive():
            return
        _writer = threading.Thread(target=_run_writer, name="audit-writer", daemon=True)
        _writer.start()


def _save_batch(batch: list[dict[str, Any]]) -> None:
    from apps.audit.models import AuditEvent

    for attempt in range(30):
        try:
            close_old_connections()
            AuditEvent.objects.bulk_create([AuditEvent(**e) for e in batch])
            return
        except Exception:  # the database may be briefly away; retry, then give up
            if attempt == 0:
                logger.warning("audit write failed; retrying", exc_info=True)
            threading.Event().wait(1.0)
    logger.error("audit write failed for good; %d events lost", len(batch))


def _run_writer() -> None:
    while True:
        item = _queue.get()
        taken = 1
        batch = [] if item is None else [item]
        while len(batch) < 500:
            try:
                more = _queue.get_nowait()
            except queue.Empty:
                break
            taken += 1
            if more is not None:
                batch.append(more)
        tasks = [b for b in batch if callable(b)]
        events = [b for b in batch if not callable(b)]
        if events:
            _save_batch(events)
        for task in tasks:
            try:
                close_old_connections()
                task()
            except Exception:  # a lost last_seen update must not stop the writer
                logger.warning("deferred write failed", exc_info=True)
        for _ in range(taken):
            _queue.task_done()


def flush_deferred(timeout: float = 10.0) -> None:
    """Wait until queued events are written (used at shutdown and in tests)."""
    if _writer is None:
        return
    done = threading.Event()

    def wait() -> None:
        _queue.join()
        done.set()

    threading.Thread(target=wait, daemon=True).start()
    done.wait(timeout)


atexit.register(flush_deferred)
