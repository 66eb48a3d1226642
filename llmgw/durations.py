"""Durations and points in time as users type them: ``30m``, ``24h``, ``7d``, ``2w``, or an ISO date."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (``30m``, ``24h``, ``7d``); raises ``ValueError`` naming the accepted forms."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration (use e.g. 30m, 24h, 7d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_point(text: str, *, now: float | None = None) -> float:
    """A point in time as a UNIX timestamp: ``7d`` means seven days ago; an ISO date/time is taken as UTC
    unless it names its zone. Raises ``ValueError`` with a clear message."""
    now = time.time() if now is None else now
    if _DURATION.match(text):
        return now - parse_duration(text)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (30m, 24h, 7d) nor an ISO date (2026-01-31)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
