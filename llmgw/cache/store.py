"""Where cached answers live: entries by exact key (on disk, or in Redis to share them between machines), a journal
of their prompt vectors, and an in-memory index of those vectors.

Contract (every store):
- ``get(key)`` returns the live :class:`CacheEntry` under an exact key or None; ``put(entry)`` stores it with a
  TTL (replacing one with the same key). Every method may block (disk, network): call it off the event loop. A
  store is safe to use from several threads. A store that cannot be reached raises :class:`CacheUnavailable`.
- Each entry with a vector is also appended to the store's *journal* (exact key, partition, prompt text, expiry,
  embedder, vector, the writing process's id). A background thread reads the whole journal into the
  :class:`~llmgw.cache.index.VectorIndex` when the store opens (``ready`` is set then; until then semantic
  lookups see the entries read so far, and the server does not wait), then follows it, so that entries other
  processes store are found by this one's semantic lookups (within about 0.2 s on disk, milliseconds in Redis).
  Only vectors of the store's current embedder are indexed; nothing is re-embedded.
- ``nearest`` returns the live entries of one partition whose cosine similarity with a query vector is at least
  ``threshold``, best first. Index rows whose entry has expired or was evicted are dropped as they are met, and by
  :meth:`~llmgw.cache.index.VectorIndex.prune`.

:class:`CacheStore` is the per-machine store: entries in diskcache, capped at ``max_mb`` and evicting the least
recently stored first, the journal in a SQLite table beside them; every process on the machine (``--workers``)
shares both. A store that passes ``max_mb`` evicts down to :data:`EVICT_TO` of it in one transaction, so that the
batches after it evict nothing (diskcache's own cull, which still runs after each batch for what has expired and for
any excess the estimate left, evicts ten entries a transaction: a store kept at its cap that way paid more than a
dozen commits a batch); the key log forgets the evicted entries' keys then. Each entry is kept under its id in the
store's key log (:mod:`llmgw.cache.disk_keys`), a number that only grows, with its exact key as the row's tag:
storing appends to diskcache's indexes instead of dirtying a random page of an index by prompt hash for every
answer. Each process knows where every exact key's latest entry lies (:class:`~llmgw.cache.locations.KeyLocations`,
filled from the store when it opens, then from the key log and the journal): a miss is answered from memory, a hit
is one read by id whose entry must carry the exact key asked for. Other processes' entries are seen within about
``POLL_S``. Storing a key again replaces its entry (the older row is deleted in the same transaction when this
process knows of it). Entries are JSON bytes (:meth:`CacheEntry.to_json`) and the store never unpickles anything it
reads (:class:`BytesOnlyDisk`). :class:`~llmgw.cache.redis_store.RedisCacheStore` shares them between machines. What
both share (:class:`CacheEntry`, :class:`CacheUnavailable`, :class:`IndexedStore`, the journal record) is in
:mod:`llmgw.cache.base` and importable from here too.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import diskcache
from diskcache.core import EVICTION_POLICY, MODE_PICKLE

from . import disk_keys
from .base import JOURNAL_BATCH, CacheEntry, CacheUnavailable, IndexedStore, JournalRecord
from .disk_rows import insert_new, writable
from .locations import KeyLocations, Locator

if TYPE_CHECKING:
    from ..profile import Profile
    from .config import CacheConfig

__all__ = ["JOURNAL_BATCH", "CacheEntry", "CacheStore", "CacheUnavailable", "IndexedStore", "JournalRecord",
           "open_store"]

EVICT_TO = 0.9   # share of max_mb a store that passed it is evicted down to


class BytesOnlyDisk(diskcache.Disk):
    """diskcache's serialiser, made safe: it stores bytes and plain keys only and never unpickles what it reads (a
    pickled value or key — written by anyone who can write the cache folder — reads as missing), so the cache
    folder can never make the server run code."""

    def put(self, key: Any) -> tuple[Any, bool]:
        if not isinstance(key, str | bytes | int | float):
            raise TypeError(f"cache keys are strings, not {type(key).__name__}")
        return super().put(key)

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise UnsafeEntry("a pickled cache key")
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        if not read and not isinstance(value, bytes):
            raise TypeError(f"cache values are bytes, not {type(value).__name__}")
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == MODE_PICKLE:
            raise UnsafeEntry("a pickled cache value")
        return super().fetch(mode, filename, value, read)


class UnsafeEntry(ValueError):
    """A cache row that only unpickling could read; it is treated as missing, never loaded."""


log = logging.getLogger("llmgw.cache")
POLL_S = 0.2         # how often the disk store's follower looks for other processes' records


class CacheStore(IndexedStore):
    """Entries in diskcache, the journal in ``journal.sqlite`` beside them (see the module contract)."""

    local = True

    def __init__(self, directory: Path | str, *, max_mb: float = 256.0, embedder: str | None = None) -> None:
        super().__init__(embedder)
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)   # cached answers are the owner's alone
        self.disk = diskcache.Cache(str(self.directory), size_limit=int(max_mb * 1024 * 1024),
                                    eviction_policy="least-recently-stored", cull_limit=0, disk=BytesOnlyDisk)
        journal = self.directory / "journal.sqlite"
        self._journal_path = journal
        self._journal_lock = threading.Lock()
        self._journal = self._connect()
        self._rows_writable = writable(self.disk)
        database = self.directory / diskcache.core.DBNAME
        self.locations = KeyLocations()
        try:
            disk_keys.create(database)
            cursor = disk_keys.fill(self.disk._con, self.locations)
        except sqlite3.Error as exc:
            raise CacheUnavailable(f"cache store {self.directory}: {exc}") from None
        self._keys = disk_keys.KeyFollower(database, self.locations, self._closing, cursor=cursor, poll_s=POLL_S)
        self._keys.start()
        self.start_following()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._journal_path, timeout=5.0, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS journal (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL,"
                   " partition TEXT NOT NULL, text TEXT, expires REAL NOT NULL, embedder TEXT NOT NULL,"
                   " vector BLOB NOT NULL, origin TEXT NOT NULL, locator)")
        db.execute("CREATE INDEX IF NOT EXISTS journal_expires ON journal(expires)")
        if "locator" not in self._journal_columns(db):   # a journal of an older store
            try:
                db.execute("ALTER TABLE journal ADD COLUMN locator")
            except sqlite3.OperationalError:
                if "locator" not in self._journal_columns(db):   # not another worker opening it at the same time
                    raise
        return db

    @staticmethod
    def _journal_columns(db: sqlite3.Connection) -> set[str]:
        return {row[1] for row in db.execute("PRAGMA table_info(journal)")}

    def get(self, key: str) -> CacheEntry | None:
        """The live entry under exact key ``key``, or None: without reading SQLite when no entry of ``key`` is
        known (see the module contract)."""
        locator = self.locations.locate(key)
        if locator is None:
            return None
        entry = self.read(locator)
        if entry is None or entry.key != key or entry.expires <= time.time():
            return None
        return entry

    def read(self, locator: Locator) -> CacheEntry | None:
        """The entry stored under diskcache key ``locator``, live or not, or None."""
        try:
            return CacheEntry.from_json(self.disk.get(locator))
        except UnsafeEntry as exc:
            log.warning("cache store %s: ignored %s under %s", self.directory, exc, str(locator)[:12])
            return None
        except (OSError, sqlite3.Error) as exc:
            raise CacheUnavailable(f"cache store {self.directory}: {exc}") from None

    def _write(self, entry: CacheEntry) -> None:
        self._write_many([entry])

    def put(self, entry: CacheEntry) -> None:
        """Store ``entry``, then keep the store under ``max_mb`` (:meth:`put_many` does that once per batch)."""
        super().put(entry)
        self._cull()

    def put_many(self, entries: Sequence[CacheEntry]) -> None:
        """Every entry in one diskcache transaction: one commit for the batch, the new small ones in a few statements
        (:mod:`llmgw.cache.disk_rows`), and one pass that drops what has expired and evicts the least recently
        stored entries while the store is over ``max_mb``."""
        self._write_many(entries)
        if self.index is not None:    # only a semantic store indexes what it stored
            for entry in entries:
                self.stored(entry)
        self._cull()

    def _write_many(self, entries: Sequence[CacheEntry]) -> None:
        """The entries and their keys in one transaction, each under its new id in the key log, the older entries of
        their keys deleted; then their locations and journal records (once the entries are committed: a follower
        that reads a record finds its entry)."""
        entries = list({e.key: e for e in entries}.values())   # a key given twice: its last entry
        keys = [e.key for e in entries]
        try:
            with self.disk.transact():
                now = time.time()
                first, last = disk_keys.record(self.disk._con, keys)
                rows = [(first + i, e.to_json(), now + max(0.001, e.expires - now), e.key)
                        for i, e in enumerate(entries)]
                for key in keys:
                    older = self.locations.locate(key)
                    if older is not None:
                        self.disk.delete(older)
                inserted = insert_new(self.disk, rows, now, unheld=True) if self._rows_writable else set()
                for locator, value, expires, key in rows:
                    if locator not in inserted:
                        self.disk.set(locator, value, expire=expires - now, tag=key)
            self.locations.add(keys, range(first, last + 1))
            self._keys.mine((first, last))
            if self.index is not None:    # only a semantic store journals its entries' vectors
                for i, entry in enumerate(entries):
                    self._journal_insert(entry, first + i)
        except (OSError, sqlite3.Error) as exc:
            raise CacheUnavailable(f"cache store {self.directory}: {exc}") from None

    def _cull(self) -> None:
        try:
            if self.disk.volume() > self.disk.size_limit:
                self._evict()
            self.disk.cull()
        except (OSError, sqlite3.Error) as exc:
            raise CacheUnavailable(f"cache store {self.directory}: {exc}") from None

    def _evict(self) -> None:
        """Evict the least recently stored entries (the store's eviction order) until about :data:`EVICT_TO` of
        ``max_mb`` is left, in one transaction: as many entries as the excess holds at the store's average bytes
        per entry. The size is read again inside the transaction: another worker may have evicted meanwhile."""
        oldest = EVICTION_POLICY[self.disk.eviction_policy]["cull"]
        if oldest is None:
            return
        con = self.disk._con
        files: list[str] = []
        with self.disk.transact():
            volume, count = self.disk.volume(), len(self.disk)
            if volume <= self.disk.size_limit or count <= 0:
                return
            rows = min(count, math.ceil((volume - self.disk.size_limit * EVICT_TO) * count / volume))
            now = time.time()
            files = [name for (name,) in con.execute(oldest.format(fields="filename", now=now), (rows,)) if name]
            con.execute(f"DELETE FROM Cache WHERE rowid IN ({oldest.format(fields='rowid', now=now)})", (rows,))
            disk_keys.forget_evicted(con)
        for name in files:   # values too large for the table live in files of their own: gone with their rows
            self.disk._disk.remove(name)

    def _journal_insert(self, entry: CacheEntry, locator: Locator) -> None:
        if entry.vector is None or entry.embedder is None:
            return
        with self._journal_lock:
            self._journal.execute(
                "INSERT INTO journal (key, partition, text, expires, embedder, vector, origin, locator)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (entry.key, entry.partition, entry.text, entry.expires, entry.embedder, entry.vector, self.origin,
                 locator))

    def _read_journal(self, cursor: Any, *, wait: bool) -> tuple[list[JournalRecord], Any]:
        last = cursor or 0
        try:
            with self._journal_lock:
                rows = self._journal.execute(
                    "SELECT id, key, partition, text, expires, embedder, vector, origin, locator FROM journal"
                    " WHERE id > ? ORDER BY id LIMIT ?", (last, JOURNAL_BATCH)).fetchall()
        except sqlite3.Error as exc:
            raise CacheUnavailable(f"cache journal {self._journal_path}: {exc}") from None
        if not rows:
            if wait:
                self._closing.wait(POLL_S)
            return [], last
        # the journal may be read before the key log that says where these entries lie: it says so itself
        located = [(key, locator) for _, key, *_, origin, locator in rows
                   if origin != self.origin and isinstance(key, str) and type(locator) is int]
        self.locations.add([key for key, _ in located], [locator for _, locator in located])
        records = [JournalRecord(CacheEntry(key, partition, text, {}, {}, 0.0, 0.0, expires, embedder, vector), origin)
                   for _, key, partition, text, expires, embedder, vector, origin, _ in rows]
        return records, rows[-1][0]

    def stats(self) -> dict[str, Any]:
        self.disk.expire()
        with self._journal_lock:
            semantic = self._journal.execute("SELECT count(*) FROM journal WHERE expires > ?",
                                             (time.time(),)).fetchone()[0]
        return {"where": str(self.directory), "entries": len(self.disk), "semantic": semantic,
                "bytes": int(self.disk.volume())}

    def clear(self) -> int:
        count = len(self.disk)
        self.disk.clear()
        with self.disk.transact():
            self.disk._con.execute("DELETE FROM llmgw_keys")
        self.locations.clear()
        with self._journal_lock:
            self._journal.execute("DELETE FROM journal")
        return count

    def expire(self) -> None:
        """Drop expired entries and journal records; keep the journal at most about twice as long as the store."""
        self.disk.expire()
        with self._journal_lock:
            self._journal.execute("DELETE FROM journal WHERE expires <= ?", (time.time(),))
            keep = max(10_000, 2 * len(self.disk))
            self._journal.execute("DELETE FROM journal WHERE id <= (SELECT max(id) FROM journal) - ?", (keep,))

    def close(self) -> None:
        self.stop_following()
        self._keys.join(timeout=10)
        with self._journal_lock:
            self._journal.close()
        self.disk.close()


def open_store(profile: Profile, config: CacheConfig, *, embedder: str | None = None) -> IndexedStore:
    """The store a profile's ``[cache]`` uses: in the Redis of ``[state] shared`` when that is set and
    ``[cache] shared`` is true, else on disk (``[cache] dir``, default ``cache`` beside the request log).
    ``embedder``: the name of the model whose vectors to index (None: no index, no journal follower)."""
    if profile.state.shared and config.shared:
        from .redis_store import RedisCacheStore

        return RedisCacheStore(profile.state.shared, embedder=embedder, ttl_s=config.ttl_s, max_mb=config.max_mb)
    directory = Path(config.dir).expanduser() if config.dir else profile.state.db_path.parent / "cache"
    return CacheStore(directory, max_mb=config.max_mb, embedder=embedder)
