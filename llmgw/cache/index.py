"""The in-memory vector index of the semantic cache: unit vectors by partition, searched by cosine similarity.

Contract:
- :meth:`VectorIndex.search` returns up to ``limit`` (key, cosine) pairs of one partition at or above
  ``threshold``, best first, leaving out rows whose ``expires`` has passed. Thread-safe.
- Small partitions (up to ``dense_max`` rows) are scanned whole, by one matrix-vector product.
- In larger ones, when the search is given a :class:`~llmgw.cache.difference.TermRule` (what any text the difference
  guard could accept must contain), only rows whose terms may satisfy it are scored. Each row keeps a 128-bit
  Bloom signature of its terms (two bits per term, within one 64-bit word); a term is "maybe present" when its
  bits are set. The filter never drops a row whose terms satisfy the rule (no false negatives), so the search
  returns exactly what a whole scan would have returned among the rows the guard could accept. Rows added
  without terms always pass. When more than ``candidate_max`` rows pass, the whole partition is scanned.
- Scores returned are exact cosines.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterable

import numpy as np

from .difference import TermRule

_WORDS = 2                # 64-bit words per signature
_ALL = np.uint64(2**64 - 1)
DENSE_MAX = 4096          # partitions up to this many rows are scanned whole
CANDIDATE_MAX = 8192      # more rows than this pass the term filter: scan the partition whole


def term_bits(term: str) -> tuple[int, np.uint64]:
    """The signature word and two-bit mask of one term (stable across processes)."""
    h = zlib.crc32(term.encode())
    return h % _WORDS, np.uint64((1 << ((h >> 1) & 63)) | (1 << ((h >> 7) & 63)))


def signature(terms: Iterable[str] | None) -> np.ndarray:
    """The Bloom signature of a row's terms; all bits set for ``None`` (the row always passes the filter)."""
    words = np.zeros(_WORDS, dtype=np.uint64)
    if terms is None:
        words[:] = _ALL
        return words
    for term in terms:
        word, mask = term_bits(term)
        words[word] |= mask
    return words


class _Partition:
    """The rows of one partition: keys, vectors, expiry times and codes in growable arrays with swap-remove."""

    def __init__(self, dim: int) -> None:
        self.keys: list[str] = []
        self.vectors = np.zeros((8, dim), dtype=np.float32)
        self.expires = np.zeros(8, dtype=np.float64)
        self.signs = np.zeros((_WORDS, 8), dtype=np.uint64)   # term signatures, one contiguous row per word

    def add(self, key: str, vector: np.ndarray, sign: np.ndarray, expires: float) -> int:
        row = len(self.keys)
        if row == len(self.vectors):
            self.vectors = np.concatenate([self.vectors, np.zeros_like(self.vectors)])
            self.expires = np.concatenate([self.expires, np.zeros_like(self.expires)])
            self.signs = np.concatenate([self.signs, np.zeros_like(self.signs)], axis=1)
        self.vectors[row] = vector
        self.expires[row] = expires
        self.signs[:, row] = sign
        self.keys.append(key)
        return row

    def move(self, source: int, target: int) -> None:
        self.keys[target] = self.keys[source]
        self.vectors[target] = self.vectors[source]
        self.expires[target] = self.expires[source]
        self.signs[:, target] = self.signs[:, source]

    def maybe(self, rule: TermRule) -> np.ndarray:
        """Rows whose signature may satisfy ``rule`` (a superset of those whose terms do)."""
        size = len(self.keys)
        passing = np.ones(size, dtype=bool)
        for term in rule.mandatory:
            word, mask = term_bits(term)
            passing &= (self.signs[word, :size] & mask) == mask
        if rule.need:
            count = np.zeros(size, dtype=np.uint8)
            for term in rule.optional:
                word, mask = term_bits(term)
                count += (self.signs[word, :size] & mask) == mask
            passing &= count >= rule.need
        return np.flatnonzero(passing)


class VectorIndex:
    """Unit vectors by partition (see the module contract)."""

    def __init__(self, dim: int | None = None, *, dense_max: int = DENSE_MAX,
                 candidate_max: int = CANDIDATE_MAX) -> None:
        self.dim = dim            # fixed by the first vector added when None
        self.dense_max = dense_max
        self.candidate_max = candidate_max
        self.scans = {"whole": 0, "filtered": 0}     # how searches were answered (for tests and the bench)
        self._parts: dict[str, _Partition] = {}
        self._where: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._where)

    def add(self, partition: str, key: str, vector: np.ndarray, expires: float,
            terms: Iterable[str] | None = None) -> None:
        """Index ``vector`` under ``key`` (replacing it) with the row's ``terms`` (see
        :func:`~llmgw.cache.difference.index_terms`); vectors of another dimension than the first are ignored."""
        sign = signature(terms)
        with self._lock:
            if self.dim is None:
                self.dim = int(vector.shape[0])
            if vector.shape[0] != self.dim:
                return
            if key in self._where:
                self._remove(key)
            part = self._parts.get(partition)
            if part is None:
                part = self._parts[partition] = _Partition(vector.shape[0])
            self._where[key] = (partition, part.add(key, vector, sign, expires))

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
            part.move(last, row)
            self._where[part.keys[row]] = (partition, row)
        part.keys.pop()
        if not part.keys:
            del self._parts[partition]

    def search(self, partition: str, vector: np.ndarray, threshold: float, limit: int = 4,
               now: float | None = None, rule: TermRule | None = None) -> list[tuple[str, float]]:
        """Up to ``limit`` (key, cosine) pairs at or above ``threshold``, best first, unexpired; with ``rule``,
        among the rows whose terms may satisfy it (see the module contract)."""
        now = time.time() if now is None else now
        with self._lock:
            part = self._parts.get(partition)
            if part is None or vector.shape[0] != self.dim:
                return []
            size = len(part.keys)
            rows: np.ndarray | None = None
            if size > self.dense_max and rule is not None and (rule.mandatory or rule.need):
                rows = part.maybe(rule)
                if len(rows) > self.candidate_max:
                    rows = None
            if rows is None:
                self.scans["whole"] += 1
                rows = np.arange(size)
                scores = part.vectors[:size] @ vector
            else:
                self.scans["filtered"] += 1
                scores = part.vectors[rows] @ vector
            scores[part.expires[rows] <= now] = -1.0
            top = np.argpartition(-scores, limit - 1)[:limit] if len(rows) > limit else np.arange(len(rows))
            top = top[np.argsort(-scores[top])]
            return [(part.keys[rows[i]], float(scores[i])) for i in top if scores[i] >= threshold]

    def prune(self, now: float | None = None) -> int:
        """Drop expired rows; returns how many."""
        now = time.time() if now is None else now
        with self._lock:
            dead = [k for p in self._parts.values() for i, k in enumerate(p.keys) if p.expires[i] <= now]
            for key in dead:
                self._remove(key)
        return len(dead)
