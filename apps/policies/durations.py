"""Human durations such as ``8h``, ``30m`` or ``7d`` for config files."""

from __future__ import annotations

import re
from datetime import timedelta

_PART_RE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int) -> timedelta:
    if isinstance(text, int) and not isinstance(text, bool):
        return timedelta(seconds=text)
    raw = str(text).strip().lower()
    if not raw or _PART_RE.sub("", raw) != "":
        raise ValueError(f"{text!r} is not a duration like 30m, 8h or 7d")
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART_RE.findall(raw))
    if seconds <= 0:
        raise ValueError("a duration must be longer than zero")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
