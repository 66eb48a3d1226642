"""A bounded on-disk queue of request-log rows that could not be written to their database yet.

Contracts:
- The spool is a small SQLite file in the local state folder, created ``0600`` in a ``0700`` folder (like the
  log itself: :func:`~llmgw.store.log.open_state_db`). Rows are the INSERT parameters
  (:func:`~llmgw.store.log.row_values`), kept as JSON arrays in the order they were spooled.
- :meth:`Spool.put` stores rows until the spool holds ``max_rows``; it returns how many it stored, and the caller
  counts and reports the rest as dropped. :meth:`Spool.peek` gives the oldest rows with a token that
  :meth:`Spool.remove` takes to delete exactly those rows once they are written.
- Several processes may share one spool file (SQLite locks it): one process's leftovers are written by whichever
  process next reaches the database. Rows are written idempotently (by request id), so a row written twice, by two
  processes or after a crash between writing and removing, is still one row.
- Blocking: used from the log writer's thread only.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from .log import open_state_db


class Spool:
    """Rows waiting for their database, on disk, at most ``max_rows`` of them."""

    def __init__(self, path: Path, max_rows: int) -> None:
        self.path = path
        self.max_rows = max_rows
        self._db = open_state_db(path)
        with self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS spool"
                             " (seq INTEGER PRIMARY KEY AUTOINCREMENT, row BLOB NOT NULL)")

    def count(self) -> int:
        """Rows in the spool now (every process's)."""
        return int(self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])

    def put(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """Store as many of ``rows`` as fit under ``max_rows`` (oldest first); returns how many were stored."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")   # the count and the insert as one step across processes
            room = max(0, self.max_rows - self.count())
            kept = rows[:room]
            self._db.executemany("INSERT INTO spool (row) VALUES (?)", [(orjson.dumps(list(r)),) for r in kept])
        return len(kept)

    def peek(self, limit: int) -> tuple[tuple[int, int] | None, list[tuple[Any, ...]]]:
        """The oldest ``limit`` rows and the token that :meth:`remove` takes (None when the spool is empty)."""
        found = self._db.execute("SELECT seq, row FROM spool ORDER BY seq LIMIT ?", (limit,)).fetchall()
        if not found:
            return None, []
        return (found[0][0], found[-1][0]), [tuple(orjson.loads(blob)) for _, blob in found]

    def remove(self, token: tuple[int, int] | None) -> None:
        """Delete the rows a :meth:`peek` gave (sequence numbers only grow, so the range is exactly those)."""
        if token is None:
            return
        with self._db:
            self._db.execute("DELETE FROM spool WHERE seq >= ? AND seq <= ?", token)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
