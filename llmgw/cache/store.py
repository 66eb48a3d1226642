"""Where cached answers live: a diskcache store on disk and an in-memory numpy index of their prompt vectors.

Contract:
- :class:`CacheStore` keeps :class:`CacheEntry` s under their exact key with a TTL; the store is capped at
  ``max_mb`` and evicts the least recently stored entries first. Every method may block on disk: call it off the
  event loop. It is safe to use from several threads.
- Entries with a vector made by the store's current embedder (``embedder`` name; no index without one) are also in
  the :class:`VectorIndex`, which is rebuilt from the store when the store opens (no re-embedding).
- :meth:`CacheStore.nearest` returns the live entries of one partition whose cosine similarity with a query
  vector is at least ``threshold``, best first. Index rows whose entry has expired or was evicted are dropped
  as they are met, and by :meth:`VectorIndex.prune`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import diskcache
import numpy as np


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


class _Partition:
    """The vectors of one partition: a growable matrix with swap-remove."""

    def __init__(self, dim: int) -> None:
        self.keys: list[str] = []
        self.vectors = np.zeros((8, dim), dtype=np.float32)
        self.expires = np.zeros(8, dtype=np.float64)

    def add(self, key: str, vector: np.ndarray, expires: float) -> int:
        row = len(self.keys)
        if row == len(self.vectors):
            self.vectors = np.concatenate([self.vectors, np.zeros_like(self.vectors)])
            self.expires = np.concatenate([self.expires, np.zeros_like(self.expires)])
        self.vectors[row] = vector
        self.expires[row] = expires
        self.keys.append(key)
        return row


class VectorIndex:
    """Unit vectors by partition, searched by dot product (see the module contract)."""

    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim            # fixed by the first vector added when None
        self._parts: dict[str, _Partition] = {}
        self._where: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._where)

    def add(self, partition: str, key: str, vector: np.ndarray, expires: float) -> None:
        with self._lock:
            if self.dim is None:
                self.dim = int(vector.shape[0])
            if vector.shape[0] != self.dim:
                return
            if key in self._where:
                self._remove(key)
            part = self._parts.get(partition)
            if part is None:
                part = self._parts[partition] = _Partition(self.dim)
            self._where[key] = (partition, part.add(key, vector, expires))

    def remove(self, key: str) -> None:
        with self._lock:
            self._remove(key)

    def _remove(self, key: str) -> None:
        where = self._where.pop(key, None)
        if where is None:
            return
        partition, row = where
        part = self._parts[partition]
        last = len(part.keys) - 1
        if row != last:
            moved = part.keys[last]
            part.keys[row] = moved
            part.vectors[row] = part.vectors[last]
            part.expires[row] = part.expires[last]
            self._where[moved] = (partition, row)
        part.keys.pop()
        if not part.keys:
            del self._parts[partition]

    def search(self, partition: str, vector: np.ndarray, threshold: float, limit: int = 4,
               now: float | None = None) -> list[tuple[str, float]]:
        """Up to ``limit`` (key, cosine) pairs at or above ``threshold``, best first, unexpired."""
        now = time.time() if now is None else now
        with self._lock:
            part = self._parts.get(partition)
            if part is None or vector.shape[0] != self.dim:
                return []
            size = len(part.keys)
            scores = part.vectors[:size] @ vector
            scores[part.expires[:size] <= now] = -1.0
            top = np.argpartition(-scores, limit - 1)[:limit] if size > limit else np.arange(size)
            top = top[np.argsort(-scores[top])]
            return [(part.keys[i], float(scores[i])) for i in top if scores[i] >= threshold]

    def prune(self, now: float | None = None) -> int:
        """Drop expired rows; returns how many."""
        now = time.time() if now is None else now
        with self._lock:
            dead = [k for p in self._parts.values() for i, k in enumerate(p.keys) if p.expires[i] <= now]
            for key in dead:
                self._remove(key)
        return len(dead)


class CacheStore:
    """Entries on disk (diskcache) plus the vector index of the current embedder (see the module contract)."""

    def __init__(self, directory: Path | str, *, max_mb: float = 256.0, embedder: str | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.disk = diskcache.Cache(str(self.directory), size_limit=int(max_mb * 1024 * 1024),
                                    eviction_policy="least-recently-stored", cull_limit=16)
        self.embedder = embedder
        self.index: VectorIndex | None = VectorIndex() if embedder else None
        self._adds = 0
        if self.index is not None:
            self.rebuild()

    def rebuild(self) -> int:
        """Load the vectors of the current embedder's live entries into the index; returns how many."""
        if self.index is None:
            return 0
        now = time.time()
        count = 0
        for key in list(self.disk.iterkeys()):
            entry = CacheEntry.from_dict(self.disk.get(key))
            if entry is None or entry.vector is None or entry.embedder != self.embedder or entry.expires <= now:
                continue
            self.index.add(entry.partition, entry.key, np.frombuffer(entry.vector, dtype=np.float32), entry.expires)
            count += 1
        return count

    def get(self, key: str) -> CacheEntry | None:
        """The live entry under exact key ``key``, or None."""
        entry = CacheEntry.from_dict(self.disk.get(key))
        if entry is None or entry.expires <= time.time():
            return None
        return entry

    def put(self, entry: CacheEntry) -> None:
        """Store ``entry`` (replacing one with the same key) and index its vector if it has one."""
        ttl = max(0.001, entry.expires - time.time())
        self.disk.set(entry.key, entry.as_dict(), expire=ttl)
        if self.index is not None and entry.vector is not None and entry.embedder == self.embedder:
            self.index.add(entry.partition, entry.key, np.frombuffer(entry.vector, dtype=np.float32),
                           entry.expires)
            self._adds += 1
            if self._adds % 1024 == 0:
                self.index.prune()
                self.disk.expire()

    def nearest(self, partition: str, vector: np.ndarray, threshold: float,
                limit: int = 4) -> list[tuple[CacheEntry, float]]:
        """Live entries of ``partition`` at or above ``threshold``, best first (see the module contract)."""
        if self.index is None:
            return []
        found = []
        for key, score in self.index.search(partition, vector, threshold, limit):
            entry = self.get(key)
            if entry is None:
                self.index.remove(key)
                continue
            found.append((entry, score))
        return found

    def close(self) -> None:
        self.disk.close()
