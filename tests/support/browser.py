"""Debian's chromium through Playwright, and a member signing in by PIN.

Every browser test launches chromium the same way: the system binary (never
a downloaded build), headless, with background networking off because this
machine's network is closed, and a fresh profile.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch_context(
    playwright: Any, profile: Path | str, executable: str, timeout_ms: int = 15_000
) -> Any:
    context = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=executable, headless=True, args=CHROMIUM_ARGS
    )
    context.set_default_timeout(timeout_ms)
    return context


_PIN_RE = re.compile(r"code is:\s+(\d{6})")


def wait_for_pin(address: str, timeout: float = 10.0) -> str:
    """The PIN in the newest mail to ``address`` in the file backend's folder."""
    folder = Path(settings.EMAIL_FILE_PATH or "")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(
            folder.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True
        ):
            text = path.read_text(errors="replace")
            for message in reversed(text.split("-" * 79)):
                if f"To: {address}" in message and (found := _PIN_RE.search(message)):
                    return found.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no PIN mailed to {address} within {timeout}s")


def sign_in_with_pin(page: Any, url: str, email: str) -> None:
    """Open ``url``, sign in on the portal's PIN pages, land back on ``url``."""
    page.goto(url)
    page.fill("#id_email", email)
    page.click("text=E-mail me a code")
    page.wait_for_selector("#id_pin")
    page.fill("#id_pin", wait_for_pin(email))
    page.click("button:has-text('Sign in')")
    app_host = urlsplit(url).hostname

    def back_on_app(current: str) -> bool:
        return (
            urlsplit(current).hostname == app_host and "/.accessportal/" not in current
        )

    page.wait_for_url(back_on_app)
