"""Shared state in PostgreSQL: rate windows and budget counters for every gateway that logs to one PostgreSQL
database (``[state] url = "postgresql://…"`` without ``[state] shared``), so that a fleet's budgets are one
number and its rate limits one window.

Contracts (the same as :class:`~llmgw.store.shared.MemoryState`, see :mod:`llmgw.store.shared`, and the same
algorithm as :class:`~llmgw.store.shared_sqlite.SQLiteState`):
- ``acquire``, ``settle`` and ``seed`` are each one transaction that first takes a transaction-level advisory
  lock: one caller at a time, across every process and machine, so a check and the writes that follow it are
  atomic. ``acquire`` checks every window and every budget before it records anything; the Denial names the
  first limit that refused, in the order given, with MemoryState's retry time.
- Times: windows and budget expiry use the **caller's** ``now``; ``spent`` and ``seed`` use ``time.time()``.
  Machines sharing a database should keep their clocks in sync (NTP), as with Redis.
- The work runs on one thread per instance (its own executor, one connection, reopened after a failure), never on
  the event loop; any database error raises :class:`~llmgw.store.shared.StateUnavailable` (budgets fail closed).
- Tables ``llmgw_admissions``, ``llmgw_totals``, ``llmgw_counters`` (the SQLite state's, prefixed): ``select *
  from llmgw_counters`` shows the spend.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
from psycopg.rows import tuple_row

from .log_postgres import DatabaseUnavailable, connect, describe, one_line
from .shared import WINDOW_S, Denial, Hold, StateUnavailable, Window

T = TypeVar("T")

SWEEP_EVERY = 1000
SWEEP_GRACE_S = 3600.0
_LOCK_ID = 0x6C6C6D6773   # the state's advisory lock ("llmgs"), apart from the migrations'

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS llmgw_admissions (id BIGSERIAL PRIMARY KEY, key TEXT NOT NULL,"
    " request_id TEXT NOT NULL, time DOUBLE PRECISION NOT NULL, cost BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS llmgw_admissions_key_time ON llmgw_admissions(key, time)",
    "CREATE INDEX IF NOT EXISTS llmgw_admissions_request ON llmgw_admissions(request_id)",
    "CREATE TABLE IF NOT EXISTS llmgw_totals (key TEXT PRIMARY KEY, total BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS llmgw_counters (key TEXT PRIMARY KEY, amount DOUBLE PRECISION NOT NULL,"
    " expires DOUBLE PRECISION NOT NULL)",
)
_ADD_TOTAL = ("INSERT INTO llmgw_totals (key, total) VALUES (%s, %s)"
              " ON CONFLICT (key) DO UPDATE SET total = llmgw_totals.total + EXCLUDED.total")

Conn = psycopg.Connection[Any]


class PostgresState:
    """:class:`~llmgw.store.shared.SharedState` in PostgreSQL, shared by every gateway that opens ``url``."""

    suspends = True   # every call waits on the store

    def __init__(self, url: str, password: str | None = None, *, timeout_s: float = 3.0) -> None:
        self.url = url
        self._password = password
        self._timeout_s = timeout_s
        self._db: Conn | None = None   # opened, and only ever used, on the executor's thread
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="llmgw-shared-postgres")
        self._acquires = 0
        self._closed = False

    # --- plumbing ---------------------------------------------------------------------------------------------

    async def _run(self, fn: Callable[[Conn], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._locked, fn)

    def _connect(self) -> Conn:
        db = connect(self.url, self._password, timeout_s=self._timeout_s)
        db.row_factory = tuple_row   # type: ignore[assignment]
        try:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
                for statement in _SCHEMA:
                    db.execute(statement)
        except BaseException:
            db.close()
            raise
        return db

    def _locked(self, fn: Callable[[Conn], T]) -> T:
        """Run ``fn`` in one transaction under the state's advisory lock (on the executor's thread)."""
        try:
            if self._db is None or self._db.closed:
                self._db = self._connect()
            db = self._db
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
                return fn(db)
        except DatabaseUnavailable as exc:
            raise StateUnavailable(f"shared state: {exc}") from None
        except psycopg.Error as exc:
            if self._db is not None and (self._db.closed or self._db.broken):
                with contextlib.suppress(psycopg.Error):
                    self._db.close()
                self._db = None
            raise StateUnavailable(f"shared state in {describe(self.url)}: {one_line(exc, self._password)}") \
                from None

    # --- the contract -----------------------------------------------------------------------------------------

    async def acquire(self, request_id: str, windows: Sequence[Window], holds: Sequence[Hold],
                      now: float) -> Denial | None:
        if not windows and not holds:
            return None
        self._acquires += 1
        sweep = self._acquires % SWEEP_EVERY == 0

        def work(db: Conn) -> Denial | None:
            cutoff = now - WINDOW_S
            if sweep:
                for (key,) in db.execute("SELECT key FROM llmgw_totals").fetchall():
                    _trim(db, key, cutoff - SWEEP_GRACE_S)
                db.execute("DELETE FROM llmgw_totals WHERE total = 0 AND NOT EXISTS"
                           " (SELECT 1 FROM llmgw_admissions a WHERE a.key = llmgw_totals.key)")
                db.execute("DELETE FROM llmgw_counters WHERE expires <= %s",
                           (min(now, time.time()) - SWEEP_GRACE_S,))
            for w in windows:
                _trim(db, w.key, cutoff)
                if _total(db, w.key) + w.cost > w.limit:
                    oldest = db.execute("SELECT MIN(time) FROM llmgw_admissions WHERE key = %s",
                                        (w.key,)).fetchone()[0]   # type: ignore[index]
                    first = oldest if oldest is not None else now
                    return Denial(w.label, max(1.0, first + WINDOW_S - now), budget=False)
            for h in holds:
                if _counter(db, h.key, now) + h.amount > h.limit:
                    return Denial(h.label, 0.0, budget=True, resets=h.resets)
            for w in windows:
                db.execute("INSERT INTO llmgw_admissions (key, request_id, time, cost) VALUES (%s, %s, %s, %s)",
                           (w.key, request_id, now, int(w.cost)))
                db.execute(_ADD_TOTAL, (w.key, int(w.cost)))
            for h in holds:
                _add(db, h.key, h.amount, h.ttl_s, now)
            return None

        return await self._run(work)

    async def settle(self, request_id: str, windows: Sequence[Window], holds: Sequence[Hold],
                     used_tokens: int, used_usd: float, now: float) -> None:
        tpm = [w for w in windows if w.kind == "tpm"]
        if not tpm and not holds:
            return

        def work(db: Conn) -> None:
            for w in tpm:   # the first admission of this request to the window, as MemoryState does
                row = db.execute("SELECT id, cost FROM llmgw_admissions WHERE request_id = %s AND key = %s"
                                 " ORDER BY id LIMIT 1", (request_id, w.key)).fetchone()
                if row is not None:
                    db.execute("UPDATE llmgw_admissions SET cost = %s WHERE id = %s", (int(used_tokens), row[0]))
                    db.execute(_ADD_TOTAL, (w.key, int(used_tokens) - row[1]))
            for h in holds:
                _add(db, h.key, used_usd - h.amount, h.ttl_s, now)

        await self._run(work)

    async def spent(self, key: str) -> float:
        now = time.time()
        return await self._run(lambda db: _counter(db, key, now))

    async def seed(self, key: str, amount: float, ttl_s: int) -> None:
        now = time.time()

        def work(db: Conn) -> None:
            if _counter(db, key, now) == 0.0 and amount:
                db.execute("INSERT INTO llmgw_counters (key, amount, expires) VALUES (%s, %s, %s)"
                           " ON CONFLICT (key) DO UPDATE SET amount = EXCLUDED.amount, expires = EXCLUDED.expires",
                           (key, float(amount), now + ttl_s))

        await self._run(work)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def shut() -> None:
            if self._db is not None:
                with contextlib.suppress(psycopg.Error):
                    self._db.close()
                self._db = None

        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        finally:
            self._executor.shutdown(wait=False)


def _trim(db: Conn, key: str, cutoff: float) -> None:
    """Drop the window's admissions at or before ``cutoff`` and take their costs off its total."""
    freed = db.execute("WITH gone AS (DELETE FROM llmgw_admissions WHERE key = %s AND time <= %s RETURNING cost)"
                       " SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM gone", (key, cutoff)).fetchone()
    if freed is not None and freed[0]:
        db.execute(_ADD_TOTAL, (key, -int(freed[1])))


def _total(db: Conn, key: str) -> int:
    row = db.execute("SELECT total FROM llmgw_totals WHERE key = %s", (key,)).fetchone()
    return int(row[0]) if row is not None else 0


def _counter(db: Conn, key: str, now: float) -> float:
    row = db.execute("SELECT amount, expires FROM llmgw_counters WHERE key = %s", (key,)).fetchone()
    return float(row[0]) if row is not None and row[1] > now else 0.0


def _add(db: Conn, key: str, amount: float, ttl_s: int, now: float) -> None:
    row = db.execute("SELECT amount, expires FROM llmgw_counters WHERE key = %s", (key,)).fetchone()
    current, expires = (float(row[0]), float(row[1])) if row is not None else (0.0, 0.0)
    if expires <= now:
        current, expires = 0.0, now + ttl_s
    db.execute("INSERT INTO llmgw_counters (key, amount, expires) VALUES (%s, %s, %s) ON CONFLICT (key)"
               " DO UPDATE SET amount = EXCLUDED.amount, expires = EXCLUDED.expires", (key, current + amount, expires))
