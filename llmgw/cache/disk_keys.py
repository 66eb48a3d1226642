"""The key log of a disk store: the exact keys stored, in order. A key's id in the log is also the diskcache key of
its entry, so every process sharing the store learns where each exact key's entry lies
(:class:`~llmgw.cache.locations.KeyLocations`) by reading the log, and answers a miss without reading SQLite.

Contract:
- :func:`create` makes the ``llmgw_keys`` table beside diskcache's ``Cache`` table (in the same database, so a
  batch's keys commit with its entries). Its ids only grow (``AUTOINCREMENT``, never reused, even after a clear):
  a follower never misses a key by reading from where it stopped, and an id names one entry for ever.
- :func:`record` appends keys inside the writer's transaction, trims the log to its last :data:`KEEP` keys, and
  returns the ids they got: the diskcache keys to store their entries under.
- :func:`forget_evicted` drops, inside the caller's transaction, every key logged before the oldest entry left in
  the ``Cache`` table: those entries are gone, and the log is part of the store's size, so that a small store would
  otherwise fill its ``max_mb`` with the keys of entries it no longer holds.
- :func:`fill` adds every entry of the ``Cache`` table to a :class:`KeyLocations` (its exact key is the row's
  ``tag``; a row of an older store, kept under its exact key with no tag, is located by that key). Rows of any
  other shape are skipped.
- :class:`KeyFollower` (a thread) follows the log every ``poll_s`` seconds from where the store's opening fill
  left it, stepping over the ids of the keys its own process logged (:meth:`KeyFollower.mine`). A follower that
  finds keys trimmed before it read them (a gap in the ids) fills again from the ``Cache`` table: nothing stored is
  ever missed, it is only seen up to ``poll_s`` late. While the database cannot be read it retries every second;
  the locations stay as they were.
"""

from __future__ import annotations

import collections
import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import orjson

from ..store.batches import SQLITE_SIZES, fixed_parts
from .locations import KeyLocations

log = logging.getLogger("llmgw.cache")

KEEP = 200_000        # keys the log keeps (a follower further behind fills again from the Cache table)
READ_BATCH = 5_000    # rows read per statement
OWN_RANGES = 10_000   # id ranges of this process's own batches kept for the follower to step over


def create(path: Path) -> None:
    """Create the key log in the database at ``path`` (diskcache's ``cache.db``) if it is not there yet."""
    db = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    try:
        db.execute("CREATE TABLE IF NOT EXISTS llmgw_keys (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL)")
    finally:
        db.close()


def record(con: sqlite3.Connection, keys: Sequence[str]) -> tuple[int, int]:
    """Append ``keys`` (at least one) to the log, inside the caller's transaction on ``con``, and trim it to
    :data:`KEEP` keys; returns the first and last id they got (one writer at a time: consecutive ids, ``keys[i]``
    got ``first + i``)."""
    try:   # one statement (one SQLite step, one GIL hand-off) for the whole batch, in the keys' order
        con.execute("INSERT INTO llmgw_keys (key) SELECT value FROM json_each(?) ORDER BY key",
                    (orjson.dumps(list(keys)).decode(),))
    except sqlite3.OperationalError:   # an SQLite built without JSON functions: a few multi-row statements
        for part in fixed_parts(keys, SQLITE_SIZES):
            con.execute(f"INSERT INTO llmgw_keys (key) VALUES {', '.join(['(?)'] * len(part))}", part)
    last = con.execute("SELECT last_insert_rowid()").fetchone()[0]
    if last > KEEP:
        con.execute("DELETE FROM llmgw_keys WHERE id <= ?", (last - KEEP,))
    return last - len(keys) + 1, last


def forget_evicted(con: sqlite3.Connection) -> None:
    """Drop the keys logged before the oldest entry kept (see the module contract); all of them when no entry is
    kept under an id. A follower still behind them finds a gap in the ids and fills again from the table."""
    con.execute("DELETE FROM llmgw_keys WHERE id < coalesce("
                "(SELECT key FROM Cache WHERE typeof(key) = 'integer' AND raw = 1 ORDER BY key LIMIT 1),"
                " (SELECT max(id) + 1 FROM llmgw_keys))")


def fill(db: sqlite3.Connection, locations: KeyLocations, closing: threading.Event | None = None) -> int:
    """Add every entry of the ``Cache`` table to ``locations`` (see the module contract); returns the log id to follow
    from (read first: keys stored while the table is read are in the log after it)."""
    cursor = db.execute("SELECT coalesce(max(id), 0) FROM llmgw_keys").fetchone()[0]
    last_row = -1
    while closing is None or not closing.is_set():
        rows = db.execute("SELECT rowid, key, tag FROM Cache WHERE rowid > ? AND raw = 1 ORDER BY rowid LIMIT ?",
                          (last_row, READ_BATCH)).fetchall()
        keys: list[str] = []
        locators: list[int | str] = []
        for _, key, tag in rows:
            if type(key) is int and type(tag) is str:
                keys.append(tag)
                locators.append(key)
            elif type(key) is str and tag is None:    # an older store's entry, under its exact key
                keys.append(key)
                locators.append(key)
        locations.add(keys, locators)
        if len(rows) < READ_BATCH:
            break
        last_row = rows[-1][0]
    return int(cursor)


class KeyFollower:
    """Keeps ``locations`` following the log of the store at ``path`` from ``cursor`` (see the module contract)."""

    def __init__(self, path: Path, locations: KeyLocations, closing: threading.Event, *, cursor: int | None,
                 poll_s: float) -> None:
        self.path = path
        self.locations = locations
        self._cursor = cursor
        self.poll_s = poll_s
        self._closing = closing
        # bounded: a follower that cannot read for long reads this process's keys back instead of holding their ids
        self._own: collections.deque[tuple[int, int]] = collections.deque(maxlen=OWN_RANGES)
        self._thread = threading.Thread(target=self._run, name="llmgw-cache-keys", daemon=True)

    def mine(self, ids: tuple[int, int]) -> None:
        """The log ids ``(first, last)`` of keys this process committed (and located itself): the follower steps
        over them instead of reading them back."""
        self._own.append(ids)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        cursor = self._cursor           # the last log id read; None: fill (again) from the Cache table
        failing = False
        while not self._closing.is_set():
            try:
                if db is None:
                    db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
                if cursor is None:
                    cursor = fill(db, self.locations, self._closing)
                cursor = self._follow(db, cursor)
                if failing:
                    log.info("cache key log %s is read again", self.path)
                    failing = False
            except sqlite3.Error as exc:
                if not failing:
                    log.warning("cache key log %s cannot be read (retrying): %s", self.path, exc)
                    failing = True
                if db is not None:
                    db.close()
                    db = None
                self._closing.wait(1.0)
                continue
            self._closing.wait(self.poll_s)
        if db is not None:
            db.close()

    def _follow(self, db: sqlite3.Connection, cursor: int) -> int | None:
        """Add the keys logged after ``cursor``; returns the new cursor, or None when keys were trimmed unread."""
        own = self._own
        while not self._closing.is_set():
            while own and own[0][0] <= cursor + 1:    # this process's own keys, next in line: step over them
                cursor = max(cursor, own.popleft()[1])
            upto = own[0][0] if own else 1 << 62
            rows = db.execute("SELECT id, key FROM llmgw_keys WHERE id > ? AND id < ? ORDER BY id LIMIT ?",
                              (cursor, upto, READ_BATCH)).fetchall()
            if not rows:   # with own keys ahead, the ids between them and the cursor were trimmed or cleared
                return None if own else cursor
            if rows[0][0] > cursor + 1:    # ids only grow by one: the ones between were trimmed or cleared
                return None
            self.locations.add([key for _, key in rows], [id_ for id_, _ in rows])
            cursor = rows[-1][0]
            if len(rows) < READ_BATCH and not (own and own[0][0] <= cursor + 1):
                return cursor
        return cursor
