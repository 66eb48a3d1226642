"""What every cache store shares (see :mod:`llmgw.cache.store` for the contract): the entry, the journal record,
the error a store raises when it cannot be reached, and :class:`IndexedStore` (the vector index, the journal
follower and the semantic search). :mod:`llmgw.cache.store` (on disk) and :mod:`llmgw.cache.redis_store` (in Redis)
build on it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import orjson

from .difference import TermRule, index_terms
from .index import VectorIndex

PRUNE_EVERY = 1024   # stores between two sweeps of expired index rows and journal records
JOURNAL_BATCH = 2000

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
        """The fields by name, values shared with the entry (no deep copy: the answer is serialised, not kept)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, value: Any) -> CacheEntry | None:
        try:
            return cls(**value)
        except TypeError:
            return None

    def to_json(self) -> bytes:
        """The entry as stored: JSON without its vector (vectors live in the journal). Never a pickle."""
        if self.vector is None:
            return orjson.dumps(self)     # the fields by name, in order, as as_dict() gives them (all in C)
        values = self.as_dict()
        values["vector"] = None
        return orjson.dumps(values)

    @classmethod
    def from_json(cls, raw: Any) -> CacheEntry | None:
        """An entry read back from :meth:`to_json`'s bytes; None for anything else."""
        if not isinstance(raw, bytes | str):
            return None
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        return cls.from_dict(value) if isinstance(value, dict) else None


@dataclass(slots=True)
class JournalRecord:
    """One journal record: the entry's index fields (no answer) and the id of the process that stored it."""

    entry: CacheEntry
    origin: str


class IndexedStore:
    """What every store shares: the vector index, the journal follower and the semantic search (see the module
    contract). Subclasses implement ``get``, ``_write`` (store one entry and append its journal record),
    ``_read_journal`` and ``close`` (which must call :meth:`stop_following` first)."""

    local = False
    """Whether a lookup is a read of a local file (cheap enough for the event loop), not a network round trip."""

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
        self.stored(entry)

    def stored(self, entry: CacheEntry) -> None:
        """What follows storing ``entry``: index its vector if it has one, and now and then sweep the index and
        the journal."""
        if self.add_to_index(entry, time.time()):
            assert self.index is not None
            self._adds += 1
            if self._adds % PRUNE_EVERY == 0:
                self.index.prune()
                self.expire()

    def put_many(self, entries: Sequence[CacheEntry]) -> None:
        """Store ``entries`` as :meth:`put` does, in one transaction where the backend has them."""
        for entry in entries:
            self.put(entry)

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
            entry = self.get(key)   # None: expired or evicted since it was indexed
            if entry is None:
                self.index.remove(key)
                continue
            found.append((entry, score))
        return found
