"""What the commands that read the request log share: the ``--db`` option's help, finding the log a profile (or
``--db``) names, opening it, and finding one request in it, each failing with one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..profile import Profile
from ..store.log_backend import LogMissing, LogReader, LogSource, LogUnavailable, open_reader
from .common import fail, load_or_exit

T = TypeVar("T")

DB_HELP = "Request-log database (default: the profile's [state] url)."
AMBIGUOUS_SHOWN = 10   # the ids an ambiguous prefix lists


def profile_and_log(profile: Path | None, db: Path | None) -> tuple[Profile | None, LogSource]:
    """The profile (None with ``--db`` and no ``--profile``) and the log it names (or the ``--db`` file): a
    SQLite file or a PostgreSQL database."""
    prof = load_or_exit(profile) if db is None or profile is not None else None
    source = LogSource.file(db) if db is not None else LogSource.of(prof.state)  # type: ignore[union-attr]
    return prof, source


def open_log(source: LogSource) -> LogReader:
    """A reader of the log (a context manager), or exit 1 with one line: no log yet, or it cannot be opened."""
    try:
        return open_reader(source)
    except LogMissing:
        fail(f"no request log at {source.describe()} yet; start the proxy with `llmgw serve` and send a request")
    except LogUnavailable as exc:
        fail(str(exc))


def reading(read: Callable[[], T]) -> T:
    """``read()``, or exit 1 with one line when the log stops answering mid-way (a PostgreSQL outage)."""
    try:
        return read()
    except LogUnavailable as exc:
        fail(str(exc))


def one_request(reader: LogReader, request_id: str) -> Any:
    """The row ``request_id`` names, or exit 1: unknown, or ambiguous (listing the matches)."""
    rows = reading(lambda: reader.find_all(request_id, limit=AMBIGUOUS_SHOWN + 1))
    if not rows:
        fail(f"no logged request with id {request_id!r}; `llmgw logs list` shows recent ids")
    if len(rows) > 1:
        ids = ", ".join(r["id"] for r in rows[:AMBIGUOUS_SHOWN]) + (", …" if len(rows) > AMBIGUOUS_SHOWN else "")
        count = f"more than {AMBIGUOUS_SHOWN}" if len(rows) > AMBIGUOUS_SHOWN else str(len(rows))
        fail(f"{request_id!r} is ambiguous: {count} logged request ids start with it ({ids}); give more of the id")
    return rows[0]
