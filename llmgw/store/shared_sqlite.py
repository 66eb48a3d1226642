"""Shared state in one SQLite file: rate windows and budget counters for the workers of ``llmgw serve --workers N``.

Contracts (the same as :class:`~llmgw.store.shared.MemoryState`, see :mod:`llmgw.store.shared`):
- Every process opens the same file (WAL mode, :func:`~llmgw.store.log.open_state_db`). ``acquire``, ``settle``
  and ``seed`` are each one ``BEGIN IMMEDIATE`` transaction: SQLite lets one writer at a time in, so a check and
  the writes that follow it are atomic across every process and thread. ``acquire`` checks every window and every
  budget before it records anything; the Denial names the first limit that refused, in the order given, with the
  retry time MemoryState gives (the oldest admission still in the window leaves it after ``WINDOW_S``).
- Times: windows and budget expiry use the **caller's** ``now`` (as MemoryState does); ``spent`` and ``seed`` use
  ``time.time()``. One machine, one clock.
- Budget sums are computed in Python and stored as REAL (an IEEE double, exact): the same doubles as MemoryState.
- The SQLite work runs on one thread per instance (its own executor, one connection), never on the event loop, and
  never on asyncio's default executor (a burst of requests must not queue DNS lookups behind it). A write lock held
  by another process is waited for up to ``busy_timeout_s``; any SQLite error raises
  :class:`~llmgw.store.shared.StateUnavailable`.
- Housekeeping: ``acquire`` drops the windows' admissions older than ``WINDOW_S``; every ``SWEEP_EVERY`` acquires an
  instance also drops the admissions and counters that have been stale for an hour (a grace for callers' clocks).

Tables: ``admissions(key, request_id, time, cost)`` (one row per admission to a window ``key``, cost 1 for rpm,
tokens for tpm), ``totals(key, total)`` (the sum of the costs in ``admissions`` per window, kept in the same
transactions, so that a check reads one row however full the window) and ``counters(key, amount, expires)`` (USD
per budget key): ``sqlite3 shared-state.db 'select * from counters'`` shows the spend.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from .log import open_state_db
from .shared import WINDOW_S, Denial, Hold, StateUnavailable, Window

T = TypeVar("T")

SWEEP_EVERY = 1000     # acquires per instance between sweeps of every stale row
SWEEP_GRACE_S = 3600.0  # a sweep drops only rows stale for this long already
MIN_BUSY_PAUSE_S = 0.0002   # the first wait for another process's write lock, doubled up to MAX_BUSY_PAUSE_S
MAX_BUSY_PAUSE_S = 0.002

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS admissions (key TEXT NOT NULL, request_id TEXT NOT NULL, time REAL NOT NULL,"
    " cost INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS admissions_key_time ON admissions(key, time)",
    "CREATE INDEX IF NOT EXISTS admissions_request ON admissions(request_id)",
    "CREATE TABLE IF NOT EXISTS totals (key TEXT PRIMARY KEY, total INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, amount REAL NOT NULL, expires REAL NOT NULL)",
)
_ADD_TOTAL = ("INSERT INTO totals (key, total) VALUES (?, ?)"
              " ON CONFLICT (key) DO UPDATE SET total = total + excluded.total")


class SQLiteState:
    """:class:`~llmgw.store.shared.SharedState` in one SQLite file, shared by every process that opens ``path``."""

    suspends = True   # every call waits on the store

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 3.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._db: sqlite3.Connection | None = None  # opened, and only ever used, on the executor's thread
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="llmgw-shared-sqlite")
        self._acquires = 0
        self._closed = False

    # --- plumbing ---------------------------------------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._locked, fn)

    def _connect(self) -> sqlite3.Connection:
        db = open_state_db(self.path, wait_s=self.busy_timeout_s)
        db.isolation_level = None  # autocommit: transactions are the explicit BEGIN IMMEDIATE ... COMMIT below
        try:
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        return db

    def _locked(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction (on the executor's thread). While another process holds the write
        lock the whole transaction is tried again every fraction of a millisecond, for up to ``busy_timeout_s``:
        SQLite's own busy handler sleeps 1, 2, 5, 10 … 100 ms between tries, so under contention transactions that
        take a fraction of a millisecond made requests wait hundreds."""
        pause, deadline = MIN_BUSY_PAUSE_S, 0.0
        while True:
            try:
                return self._transaction(fn)
            except sqlite3.OperationalError as exc:
                now = time.monotonic()
                if not deadline:
                    deadline = now + self.busy_timeout_s
                if not _busy(exc) or now >= deadline:
                    raise StateUnavailable(f"shared state in {self.path}: {exc}") from exc
            except sqlite3.Error as exc:
                raise StateUnavailable(f"shared state in {self.path}: {exc}") from exc
            time.sleep(pause)
            pause = min(pause * 2, MAX_BUSY_PAUSE_S)

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:
            self._db = self._connect()
            self._db.execute("PRAGMA busy_timeout = 0")   # contention is waited for by _locked, in short steps
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return result

    # --- the contract -----------------------------------------------------------------------------------------

    async def acquire(self, request_id: str, windows: Sequence[Window], holds: Sequence[Hold],
                      now: float) -> Denial | None:
        if not windows and not holds:
            return None
        self._acquires += 1
        sweep = self._acquires % SWEEP_EVERY == 0

        def work(db: sqlite3.Connection) -> Denial | None:
            cutoff = now - WINDOW_S
            if sweep:  # with a grace, so that a caller whose clock is a little behind sees what MemoryState would
                for (key,) in db.execute("SELECT key FROM totals").fetchall():
                    _trim(db, key, cutoff - SWEEP_GRACE_S)
                db.execute("DELETE FROM totals WHERE total = 0"
                           " AND NOT EXISTS (SELECT 1 FROM admissions WHERE admissions.key = totals.key)")
                db.execute("DELETE FROM counters WHERE expires <= ?", (min(now, time.time()) - SWEEP_GRACE_S,))
            for w in windows:
                _trim(db, w.key, cutoff)
                if _total(db, w.key) + w.cost > w.limit:
                    oldest = db.execute("SELECT MIN(time) FROM admissions WHERE key = ?", (w.key,)).fetchone()[0]
                    first = oldest if oldest is not None else now
                    return Denial(w.label, max(1.0, first + WINDOW_S - now), budget=False)
            for h in holds:
                if _counter(db, h.key, now) + h.amount > h.limit:
                    return Denial(h.label, 0.0, budget=True, resets=h.resets)
            for w in windows:
                db.execute("INSERT INTO admissions (key, request_id, time, cost) VALUES (?, ?, ?, ?)",
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

        def work(db: sqlite3.Connection) -> None:
            for w in tpm:  # the first admission of this request to the window, as MemoryState does
                row = db.execute("SELECT rowid, cost FROM admissions WHERE request_id = ? AND key = ?"
                                 " ORDER BY rowid LIMIT 1", (request_id, w.key)).fetchone()
                if row is not None:
                    db.execute("UPDATE admissions SET cost = ? WHERE rowid = ?", (int(used_tokens), row[0]))
                    db.execute(_ADD_TOTAL, (w.key, int(used_tokens) - row[1]))
            for h in holds:
                _add(db, h.key, used_usd - h.amount, h.ttl_s, now)

        await self._run(work)

    async def spent(self, key: str) -> float:
        now = time.time()
        return await self._run(lambda db: _counter(db, key, now))

    async def seed(self, key: str, amount: float, ttl_s: int) -> None:
        now = time.time()

        def work(db: sqlite3.Connection) -> None:
            if _counter(db, key, now) == 0.0 and amount:
                db.execute("INSERT OR REPLACE INTO counters (key, amount, expires) VALUES (?, ?, ?)",
                           (key, float(amount), now + ttl_s))

        await self._run(work)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        finally:
            self._executor.shutdown(wait=False)


def _trim(db: sqlite3.Connection, key: str, cutoff: float) -> None:
    """Drop the window's admissions at or before ``cutoff`` and take their costs off its total."""
    count, freed = db.execute("SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM admissions WHERE key = ? AND time <= ?",
                              (key, cutoff)).fetchone()
    if count:
        db.execute("DELETE FROM admissions WHERE key = ? AND time <= ?", (key, cutoff))
        db.execute(_ADD_TOTAL, (key, -freed))


def _total(db: sqlite3.Connection, key: str) -> int:
    row = db.execute("SELECT total FROM totals WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row is not None else 0


def _counter(db: sqlite3.Connection, key: str, now: float) -> float:
    row = db.execute("SELECT amount, expires FROM counters WHERE key = ?", (key,)).fetchone()
    return float(row[0]) if row is not None and row[1] > now else 0.0


def _add(db: sqlite3.Connection, key: str, amount: float, ttl_s: int, now: float) -> None:
    row = db.execute("SELECT amount, expires FROM counters WHERE key = ?", (key,)).fetchone()
    current, expires = (float(row[0]), float(row[1])) if row is not None else (0.0, 0.0)
    if expires <= now:
        current, expires = 0.0, now + ttl_s
    db.execute("INSERT OR REPLACE INTO counters (key, amount, expires) VALUES (?, ?, ?)",
               (key, current + amount, expires))


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Whether ``exc`` says another connection holds the lock (worth waiting for), not that something is broken."""
    text = str(exc)
    return "locked" in text or "busy" in text
