"""Where cached answers live: entries by exact key (on disk, or in Redis to share them between instances) and an
in-memory index of their prompt vectors.

Contract (every store):
- ``get(key)`` returns the live :class:`CacheEntry` under an exact key or None; ``put(entry)`` stores it with a
  TTL (replacing one with the same key). Every method may block (disk, network): call it off the event loop. A
  store is safe to use from several threads. A store that cannot be reached raises :class:`CacheUnavailable`.
- Entries with a vector made by the store's current embedder (``embedder`` name; no index without one) are also in
  the :class:`~llmgw.cache.index.VectorIndex`, which is rebuilt in a background thread when the store opens (no
  re-embedding): a store of 100,000 entries takes seconds to read, and the server does not wait for it.
  ``ready`` is set when the rebuild is over; until then semantic lookups see the entries read so far.
- ``nearest`` returns the live entries of one partition whose cosine similarity with a query vector is at least
  ``threshold``, best first. Index rows whose entry has expired or was evicted are dropped as they are met, and by
  :meth:`~llmgw.cache.index.VectorIndex.prune`.

:class:`CacheStore` is the per-machine store: diskcache, capped at ``max_mb``, evicting the least recently stored
entries first; processes on one machine share its entries (exact hits) but each indexes only its own and those
present when it started. :class:`~llmgw.cache.redis_store.RedisCacheStore` shares both between instances.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import diskcache
import numpy as np

from .guard import TermRule, index_terms
from .index import VectorIndex

PRUNE_EVERY = 1024   # stores between two sweeps of expired index rows

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


class IndexedStore:
    """What every store shares: the vector index and the semantic search over it (see the module contract).

    Subclasses implement ``get``, ``_write`` (store one entry) and ``close``."""

    def __init__(self, embedder: str | None) -> None:
        self.embedder = embedder
        self.index: VectorIndex | None = VectorIndex() if embedder else None
        self.ready = threading.Event()       # set once the index holds every entry the store had when it opened
        self._closing = threading.Event()
        self._adds = 0

    def start_rebuild(self) -> None:
        """Rebuild the index from the store in a background thread (sets ``ready`` when done)."""
        if self.index is None:
            self.ready.set()
            return

        def run() -> None:
            started = time.perf_counter()
            try:
                count = self.rebuild()
                log.info("semantic cache index: %d entries read in %.1f s", count, time.perf_counter() - started)
            except Exception as exc:  # the index stays partial; lookups still work
                log.warning("semantic cache index rebuilt partly: %s", exc)
            finally:
                self.ready.set()

        threading.Thread(target=run, name="llmgw-cache-rebuild", daemon=True).start()

    def rebuild(self) -> int:
        raise NotImplementedError

    def get(self, key: str) -> CacheEntry | None:
        raise NotImplementedError

    def _write(self, entry: CacheEntry) -> None:
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
    """Entries on disk (diskcache) plus the vector index of the current embedder (see the module contract)."""

    def __init__(self, directory: Path | str, *, max_mb: float = 256.0, embedder: str | None = None) -> None:
        super().__init__(embedder)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.disk = diskcache.Cache(str(self.directory), size_limit=int(max_mb * 1024 * 1024),
                                    eviction_policy="least-recently-stored", cull_limit=16)
        self.start_rebuild()

    def rebuild(self) -> int:
        """Load the vectors of the current embedder's live entries into the index; returns how many."""
        if self.index is None:
            return 0
        now = time.time()
        count = 0
        for key in list(self.disk.iterkeys()):
            if self._closing.is_set():
                break
            entry = CacheEntry.from_dict(self.disk.get(key))
            if entry is not None and self.add_to_index(entry, now):
                count += 1
        return count

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
        except (OSError, sqlite3.Error) as exc:
            raise CacheUnavailable(f"cache store {self.directory}: {exc}") from None

    def expire(self) -> None:
        self.disk.expire()

    def close(self) -> None:
        self._closing.set()
        self.ready.wait(10)
        self.disk.close()
