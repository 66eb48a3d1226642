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
shares both. :class:`~llmgw.cache.redis_store.RedisCacheStore` shares them between machines.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import diskcache
import numpy as np

from .difference import TermRule, index_terms
from .index import VectorIndex

if TYPE_CHECKING:
    from ..profile import Profile
    from .config import CacheConfig

PRUNE_EVERY = 1024   # stores between two sweeps of expired index rows and journal records
JOURNAL_BATCH = 2000
POLL_S = 0.2         # how often the disk store's follower looks for other processes' records

log = logging.getLogger("llmgw.cache")


class CacheUnavailable(Exception):
    """The store could not be read or written (the message says why); the request goes on as a miss."""


@dataclass(slots=True)
class CacheEntry:
    """One cached answer: the canonical OpenAI ``chat.completion`` and what it cost when it was made."""

    key: str
    partition: str
    text: str | None              # the last user turn (semantic entries), else None
    answer: dict[str, Any]        # canonical chat.completion
    usage: dict[str, Any]         # OpenAI usage of the original answer
    cost_usd: float
    created: float
    expires: float
    embedder: str | None = None
    vector: bytes | None = None   # float32, unit length

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: Any) -> CacheEntry | None:
        try:
            return cls(**value)
        except TypeError:
            return None


@dataclass(slots=True)
class JournalRecord:
    """One journal record: the entry's index fields (no answer) and the id of the process that stored it."""

    entry: CacheEntry
    origin: str


class IndexedStore:
    """What every store shares: the vector index, the journal follower and the semantic search (see the module
    contract). Subclasses implement ``get``, ``_write`` (store one entry and append its journal record),
    ``_read_journal`` and ``close`` (which must call :meth:`stop_following` first)."""

    def __init__(self, embedder: str | None) -> None:
        self.embedder = embedder
        self.index: VectorIndex | None = VectorIndex() if embedder else None
        self.origin = uuid.uuid4().hex
        self.ready = threading.Event()       # set once the index holds every entry the store had when it opened
        self._closing = threading.Event()
        self._follower: threading.Thread | None = None
        self._adds = 0

    def stop_following(self) -> None:
        self._closing.set()
        if self._follower is not None:
            self._follower.join(timeout=10)

    def start_following(self) -> None:
        """Read the journal whole, then follow it, in a background thread (see the module contract)."""
        if self.index is None:
            self.ready.set()
            return
        self._follower = threading.Thread(target=self._follow, name="llmgw-cache-follow", daemon=True)
        self._follower.start()

    def _follow(self) -> None:
        failing = False
        cursor: Any = None
        while not self._closing.is_set():
            try:
                if not self.ready.is_set():
                    started = time.perf_counter()
                    cursor, count = self._read_whole_journal()
                    log.info("semantic cache index: %d entries read in %.1f s", count, time.perf_counter() - started)
                    self.ready.set()
                records, cursor = self._read_journal(cursor, wait=True)
                if failing:
                    log.info("semantic cache follows its journal again")
                    failing = False
            except CacheUnavailable as exc:
                if not failing:
                    log.warning("semantic cache cannot read its journal (retrying): %s", exc)
                    failing = True
                self._closing.wait(1.0)
                continue
            now = time.time()
            for record in records:
                if record.origin != self.origin:   # this process indexed its own entries when it stored them
                    self.add_to_index(record.entry, now)

    def _read_whole_journal(self) -> tuple[Any, int]:
        """Index every live record of the journal; returns the cursor after the last one and how many."""
        cursor: Any = None
        count = 0
        while not self._closing.is_set():
            records, cursor = self._read_journal(cursor, wait=False)
            now = time.time()
            count += sum(self.add_to_index(record.entry, now) for record in records)
            if len(records) < JOURNAL_BATCH:
                break
        return cursor, count

    def _read_journal(self, cursor: Any, *, wait: bool) -> tuple[list[JournalRecord], Any]:
        """Up to ``JOURNAL_BATCH`` records after ``cursor`` (``None``: from the start) and the new cursor; with
        ``wait``, waits a little for new ones when there are none."""
        raise NotImplementedError

    def get(self, key: str) -> CacheEntry | None:
        raise NotImplementedError

    def _write(self, entry: CacheEntry) -> None:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        """What the store holds: ``where``, ``entries``, ``semantic`` (journalled vectors), ``bytes``."""
        raise NotImplementedError

    def clear(self) -> int:
        """Remove every entry and journal record; returns how many entries there were. Running servers drop
        their index rows of removed entries as they meet them."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def indexable(self, entry: CacheEntry, now: float) -> bool:
        """Whether ``entry`` belongs in this store's index: a live vector of the store's embedder."""
        return (self.index is not None and entry.vector is not None and entry.embedder == self.embedder
                and entry.expires > now)

    def add_to_index(self, entry: CacheEntry, now: float) -> bool:
        """Index ``entry``'s vector (with its text's terms) if :meth:`indexable`; returns whether it was."""
        if self.index is None or entry.vector is None or not self.indexable(entry, now):
            return False
        terms = index_terms(entry.text) if entry.text is not None else None
        self.index.add(entry.partition, entry.key, np.frombuffer(entry.vector, dtype=np.float32), entry.expires,
                       terms)
        return True

    def put(self, entry: CacheEntry) -> None:
        """Store ``entry`` (replacing one with the same key) and index its vector if it has one."""
        self._write(entry)
        if self.add_to_index(entry, time.time()):
            assert self.index is not None
            self._adds += 1
            if self._adds % PRUNE_EVERY == 0:
                self.index.prune()
                self.expire()

    def expire(self) -> None:
        """Housekeeping of expired entries, where the backend needs it."""

    def nearest(self, partition: str, vector: np.ndarray, threshold: float, limit: int = 4,
                rule: TermRule | None = None) -> list[tuple[CacheEntry, float]]:
        """Live entries of ``partition`` at or above ``threshold``, best first, among those whose text may satisfy
        ``rule`` when given (see the module contract)."""
        if self.index is None:
            return []
        found = []
        for key, score in self.index.search(partition, vector, threshold, limit, rule=rule):
            entry = self.get(key)
            if entry is None:
                self.index.remove(key)
                continue
            found.append((entry, score))
        return found


class CacheStore(IndexedStore):
    """Entries in diskcache, the journal in ``journal.sqlite`` beside them (see the module contract)."""

    def __init__(self, directory: Path | str, *, max_mb: float = 256.0, embedder: str | None = None) -> None:
        super().__init__(embedder)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.disk = diskcache.Cache(str(self.directory), size_limit=int(max_mb * 1024 * 1024),
                                    eviction_policy="least-recently-stored", cull_limit=16)
        journal = self.directory / "journal.sqlite"
        self._backfill = not journal.exists() and len(self.disk) > 0   # a store from before the journal existed
        self._journal_path = journal
        self._journal_lock = threading.Lock()
        self._journal = self._connect()
        self.start_following()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._journal_path, timeout=5.0, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS journal (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL,"
                   " partition TEXT NOT NULL, text TEXT, expires REAL NOT NULL, embedder TEXT NOT NULL,"
                   " vector BLOB NOT NULL, origin TEXT NOT NULL)")
        db.execute("CREATE INDEX IF NOT EXISTS journal_expires ON journal(expires)")
        return db

    def get(self, key: str) -> CacheEntry | None:
        """The live entry under exact key ``key``, or None."""
        try:
            entry = CacheEntry.from_dict(self.disk.get(key))
        except (OSError, sqlite3.Error) as exc:
            raise CacheUnavailable(f"cache store {self.directory}: {exc}") from None
        if entry is None or entry.expires <= time.time():
            return None
        return entry

    def _write(self, entry: CacheEntry) -> None:
        ttl = max(0.001, entry.expires - time.time())
        try:
            self.disk.set(entry.key, entry.as_dict(), expire=ttl)
            self._journal_insert(entry)
        except (OSError, sqlite3.Error) as exc:
            raise CacheUnavailable(f"cache store {self.directory}: {exc}") from None

    def _journal_insert(self, entry: CacheEntry) -> None:
        if entry.vector is None or entry.embedder is None:
            return
        with self._journal_lock:
            self._journal.execute(
                "INSERT INTO journal (key, partition, text, expires, embedder, vector, origin)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (entry.key, entry.partition, entry.text, entry.expires, entry.embedder, entry.vector, self.origin))

    def _read_whole_journal(self) -> tuple[Any, int]:
        if self._backfill:
            self._backfill_journal()
        return super()._read_whole_journal()

    def _backfill_journal(self) -> None:
        """Journal the vectors of a store written before the journal existed (once, from the follower thread)."""
        now = time.time()
        for key in list(self.disk.iterkeys()):
            if self._closing.is_set():
                return
            entry = CacheEntry.from_dict(self.disk.get(key))
            if entry is not None and entry.expires > now:
                self._journal_insert(entry)
        self._backfill = False

    def _read_journal(self, cursor: Any, *, wait: bool) -> tuple[list[JournalRecord], Any]:
        last = cursor or 0
        try:
            with self._journal_lock:
                rows = self._journal.execute(
                    "SELECT id, key, partition, text, expires, embedder, vector, origin FROM journal"
                    " WHERE id > ? ORDER BY id LIMIT ?", (last, JOURNAL_BATCH)).fetchall()
        except sqlite3.Error as exc:
            raise CacheUnavailable(f"cache journal {self._journal_path}: {exc}") from None
        if not rows:
            if wait:
                self._closing.wait(POLL_S)
            return [], last
        records = [JournalRecord(CacheEntry(key, partition, text, {}, {}, 0.0, 0.0, expires, embedder, vector), origin)
                   for _, key, partition, text, expires, embedder, vector, origin in rows]
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
