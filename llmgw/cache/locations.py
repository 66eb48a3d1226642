"""Where each exact key's entry lies in a disk store, kept in memory: the store has no index by exact key.

A disk store keys each new entry by a number that only grows (its id in the store's key log), so storing an entry
appends to every index of diskcache's table instead of touching a random page of an index by prompt hash: a batch
of answers dirties a few pages, not one per answer. Finding an entry by its exact key is then this map's job.

Contract (:class:`KeyLocations`):
- ``locate(key)`` returns the diskcache key of the latest entry stored under ``key`` that this process has learnt
  of (:meth:`add`), or None: a None is a sure miss, answered without reading SQLite. A locator is an ``int`` (an
  entry stored by id) or a ``str`` (an entry of an older store, kept under its exact key).
- Keys are held as their hashes: two keys with the same hash share a slot, so a locator may point at another key's
  entry. The reader must check the entry it reads is the one asked for (the store does: ``entry.key``); a
  collision costs a miss, never a wrong answer. A locator whose entry has expired or been evicted also reads as a
  miss.
- Bounded: past ``limit`` keys the older half is forgotten at once (those entries, the least recently stored,
  are no longer found and age out of the store). Memory is about 100 bytes a key.
- One thread adds while others locate: every operation is one step on a built-in dict (a rebuild is assigned
  whole).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

DEFAULT_LIMIT = 1_000_000    # keys

Locator = int | str


class KeyLocations:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._where: dict[int, Locator] = {}

    def locate(self, key: str) -> Locator | None:
        """The diskcache key of ``key``'s latest known entry, or None (see the module contract)."""
        return self._where.get(hash(key))

    def add(self, keys: Iterable[str], locators: Iterable[Locator]) -> None:
        """``keys[i]`` is now stored under ``locators[i]`` (add before a reader could look for them); a later
        locator of a key replaces an earlier one."""
        where = self._where
        where.update(zip(map(hash, keys), locators, strict=False))
        if len(where) > self.limit:
            self._where = dict(itertools.islice(where.items(), len(where) - self.limit // 2, None))

    def clear(self) -> None:
        self._where = {}

    def __len__(self) -> int:
        return len(self._where)
