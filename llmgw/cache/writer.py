"""Storing cache entries off the request path: a write-behind queue with its own thread.

Contracts (:class:`WriteBehind`):
- ``put(entry)`` returns at once: no thread hand-off awaited by the event loop, no disk or embedding work on it.
  The writer thread wakes every ``max_delay_s`` (or as soon as ``batch_size`` entries are queued; with
  ``max_delay_s`` 0, at every put) and stores everything queued since its last pass in one ``store_batch`` call
  (one transaction for the disk store), so a busy server pays one commit and one thread wake-up per batch, not
  per answer. On a tick it stores what was queued when it woke and leaves what comes meanwhile to the next tick;
  woken early, it stores until the queue is empty.
- Until it is stored, an entry is found by ``pending(key)``: the server that answered a prompt hits on it at once.
  A semantic lookup (already in a worker thread) calls ``settle(timeout)`` first, which wakes the writer at once,
  so it searches an index that holds this server's recent answers too.
  Other servers sharing the store see it once written (within about ``max_delay_s``).
- Memory is bounded: beyond ``max_pending`` queued entries a new one is dropped and counted (``dropped``); a cache
  is an optimisation, never a reason to grow without limit.
- ``close()`` stores every queued entry before returning. A batch that fails is logged and counted (``failed``);
  the thread goes on.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence

from .base import CacheEntry, CacheUnavailable

log = logging.getLogger("llmgw.cache")


class WriteBehind:
    def __init__(self, store_batch: Callable[[Sequence[CacheEntry]], None], *, max_pending: int = 10_000,
                 max_delay_s: float = 0.05, batch_size: int = 500, name: str = "llmgw-cache-writer") -> None:
        self._store_batch = store_batch
        self._max_pending = max_pending
        self._max_delay_s = max_delay_s
        self._batch_size = batch_size
        self._queue: collections.deque[CacheEntry] = collections.deque()
        self._pending: dict[str, CacheEntry] = {}
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._closed = False
        self.dropped = 0
        self.failed = 0
        self.written = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, entry: CacheEntry) -> None:
        """Queue ``entry`` to be stored (see the module contract)."""
        if self._closed or len(self._pending) >= self._max_pending:
            self.dropped += 1
            return
        self._pending[entry.key] = entry
        if self._idle.is_set():
            self._idle.clear()
        self._queue.append(entry)
        if (not self._max_delay_s or len(self._queue) >= self._batch_size) and not self._wake.is_set():
            self._wake.set()

    def pending(self, key: str) -> CacheEntry | None:
        """The entry queued under ``key`` and not stored yet, if any."""
        return self._pending.get(key)

    def settle(self, timeout: float) -> bool:
        """Wait (blocking, at most ``timeout`` seconds) until every queued entry is stored; whether it was. The
        writer is woken at once rather than at its next tick."""
        if self._idle.is_set():
            return True
        self._wake.set()
        return self._idle.wait(timeout)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """Store what is queued, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            woken = self._wake.wait(self._max_delay_s or None)
            self._wake.clear()
            closing = self._closed
            # On a tick, what is queued now: what comes meanwhile waits for the next tick, so that a busy server
            # commits once per tick. Woken (a settle, a full batch, closing): until the queue is empty.
            queued = len(self._queue)
            while queued > 0 or (woken and self._queue):
                batch: list[CacheEntry] = []
                with contextlib.suppress(IndexError):
                    while len(batch) < self._batch_size:
                        batch.append(self._queue.popleft())
                queued -= len(batch)
                self._write(batch)
            if not self._queue:
                self._idle.set()
            if closing:
                return

    def _write(self, batch: list[CacheEntry]) -> None:
        try:
            self._store_batch(batch)
            self.written += len(batch)
        except CacheUnavailable as exc:
            self.failed += len(batch)
            log.warning("%s: %d cache entries not stored", exc, len(batch))
        except Exception:
            self.failed += len(batch)
            log.exception("%d cache entries not stored", len(batch))
        finally:
            for entry in batch:
                if self._pending.get(entry.key) is entry:
                    del self._pending[entry.key]
