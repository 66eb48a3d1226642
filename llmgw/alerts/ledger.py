"""The alerts already raised, kept in ``alerts.db`` in the state folder so that each is sent once per period.

Contract:
- :meth:`AlertLedger.claim` is the one way to raise an alert: an atomic ``INSERT OR IGNORE`` of ``(alert, period)``.
  True means this process owns the alert (it logs, streams and sends it); False means it was raised before — by
  this process, another worker on the same state folder, or a run before a restart — and nothing more is done.
- Every claimed alert keeps its record (:meth:`~.model.Alert.record`) and its delivery ``state``: ``pending`` while
  being sent, ``sent``, ``failed`` (every attempt failed; ``problem`` says why, without the webhook's address),
  ``logged`` (no webhook configured), ``covered`` (a lower budget share claimed together with a higher one, which
  is the one sent).
- The file is created ``0600`` in a ``0700`` folder (:func:`llmgw.store.log.open_state_db`). Calls block: run
  them in a thread. One connection, used by one thread at a time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson

from ..store.log import open_state_db
from .model import Alert

FILE_NAME = "alerts.db"

_SCHEMA = """CREATE TABLE IF NOT EXISTS alerts (
    alert TEXT NOT NULL, period TEXT NOT NULL, time REAL NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL,
    text TEXT NOT NULL, record TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    problem TEXT, PRIMARY KEY (alert, period))"""


class AlertLedger:
    """The ``alerts`` table of ``path`` (see the module contract)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = open_state_db(path)
        with self._db:
            self._db.execute(_SCHEMA)
            self._db.execute("CREATE INDEX IF NOT EXISTS alerts_time ON alerts (time)")

    def claim(self, alert: Alert, state: str = "pending") -> bool:
        """Record ``alert`` unless it was raised already in its period; True when this call recorded it."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO alerts (alert, period, time, kind, subject, text, record, state)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (alert.key, alert.period, alert.time, alert.kind, alert.subject, alert.text,
                 orjson.dumps(alert.record()).decode(), state))
            return cursor.rowcount == 1

    def settle(self, alert: Alert, state: str, attempts: int, problem: str | None = None) -> None:
        """Record how delivering ``alert`` ended."""
        with self._lock, self._db:
            self._db.execute("UPDATE alerts SET state = ?, attempts = ?, problem = ? WHERE alert = ? AND period = ?",
                             (state, attempts, problem, alert.key, alert.period))

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` alerts, newest first: each record with its ``state``, ``attempts`` and ``problem``."""
        with self._lock:
            rows = self._db.execute("SELECT record, state, attempts, problem FROM alerts ORDER BY time DESC, rowid DESC"
                                    " LIMIT ?", (limit,)).fetchall()
        return [{**orjson.loads(r[0]), "state": r[1], "attempts": r[2], "problem": r[3]} for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_ledger(folder: Path) -> AlertLedger:
    """The ledger in the state folder ``folder``."""
    return AlertLedger(folder / FILE_NAME)


__all__ = ["FILE_NAME", "AlertLedger", "open_ledger"]
