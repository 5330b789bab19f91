"""One background thread per process for sign-in work that must not run on
the request path (deciding whether an address is admissible, creating the
member, sending the mail).

Under gunicorn's gevent worker the thread is a greenlet, so a slow mail
server delays only the queued jobs, never a request.

Limitations: the queue lives in memory; jobs still queued when a process is
killed are lost (``drain`` runs them at a graceful exit). The queue is
bounded, and a job that does not fit is dropped and logged.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from collections.abc import Callable

from django.db import close_old_connections

logger = logging.getLogger(__name__)

_jobs: queue.Queue[Callable[[], None]] = queue.Queue(maxsize=10_000)
_lock = threading.Lock()
_worker: threading.Thread | None = None


def submit(job: Callable[[], None]) -> None:
    _ensure_worker()
    try:
        _jobs.put_nowait(job)
    except queue.Full:
        logger.error("sign-in job queue full; job dropped")


def _ensure_worker() -> None:
    global _worker
    if _worker is not None and _worker.is_alive():
        return
    with _lock:
        if _worker is not None and _worker.is_alive():
            return
        _worker = threading.Thread(target=_run, name="signin-jobs", daemon=True)
        _worker.start()


def _run_one(job: Callable[[], None]) -> None:
    try:
        close_old_connections()
        job()
    except Exception:  # one failed send must not stop the jobs behind it
        logger.error("sign-in job failed", exc_info=True)
    finally:
        close_old_connections()


def _run() -> None:
    while True:
        job = _jobs.get()
        try:
            _run_one(job)
        finally:
            _jobs.task_done()


def drain(timeout: float = 10.0) -> None:
    """Wait for queued jobs to finish (at exit, and in tests)."""
    if _worker is None:
        return
    done = threading.Event()

    def wait() -> None:
        _jobs.join()
        done.set()

    threading.Thread(target=wait, daemon=True).start()
    done.wait(timeout)


atexit.register(drain)
