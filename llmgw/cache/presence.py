"""Which exact keys a store may hold, kept in memory: a sure miss is answered without reading the store.

Contract (:class:`KeyPresence`):
- Until :meth:`filled` is called, :meth:`may_hold` is True for every key (the store is read).
- Once filled, :meth:`may_hold` is False only for a key that was neither :meth:`add` ed before nor since: the
  keys held here are a superset of the store's (entries that expire, are evicted or cleared stay here), so a
  False is always a true miss, and a True only means "read the store". Keys are held as their hashes: a
  collision costs one read of the store, never a wrong answer.
- Past ``limit`` keys it stops filtering (:meth:`may_hold` is True for every key) and lets its memory go,
  rather than grow without bound; :attr:`enabled` tells.
- One thread adds while others ask: every operation is one step on a built-in set.
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_LIMIT = 1_000_000    # keys (about 60 bytes each)


class KeyPresence:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.enabled = True
        self._ready = False
        self._hashes: set[int] = set()

    @property
    def ready(self) -> bool:
        """Whether misses are answered here (filled, and under the limit)."""
        return self._ready and self.enabled

    def may_hold(self, key: str) -> bool:
        """False only when the store surely lacks ``key`` (see the module contract)."""
        return not self._ready or not self.enabled or hash(key) in self._hashes

    def add(self, keys: Iterable[str]) -> None:
        """Keys now in the store (or about to be: add before a reader could look for them)."""
        if not self.enabled:
            return
        self._hashes.update(map(hash, keys))
        if len(self._hashes) > self.limit:
            self.enabled = False
            self._hashes = set()

    def filled(self) -> None:
        """Every key the store held when filling began has been added: from now on misses are answered here."""
        self._ready = True

    def __len__(self) -> int:
        return len(self._hashes)
