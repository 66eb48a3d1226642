"""Sending finished spans to the collector from a thread of their own, never from the event loop.

Contract (:class:`SpanQueue`):
- ``submit(spans)`` never blocks and never raises: it appends to a bounded queue (``max_queue`` spans); spans that
  do not fit are dropped and counted (``dropped``), so a slow or unreachable collector costs a request nothing.
- A daemon thread sends batches of at most ``batch_size`` spans through the exporter (OpenTelemetry's OTLP/HTTP
  exporter: protobuf, its own retries within its timeout) every ``delay_s``, or at once when a batch is full.
  A batch the collector did not take is counted (``failed``) and dropped; the first failure after a success is
  logged once as a warning, the recovery once as info (never a header or a secret).
- ``close(timeout_s)`` sends what is queued, within ``timeout_s`` as a whole, then shuts the exporter down; spans
  still queued after that are dropped. Called once, off the event loop (it blocks).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

log = logging.getLogger("llmgw.telemetry")


class Exporter(Protocol):
    """What the queue needs from an exporter (OpenTelemetry's ``SpanExporter``)."""

    def export(self, spans: Sequence[Any]) -> Any: ...

    def shutdown(self) -> None: ...


class SpanQueue:
    """A bounded queue of finished spans and the thread that exports them (see the module contract)."""

    def __init__(self, exporter: Exporter, *, where: str, max_queue: int = 2048, batch_size: int = 512,
                 delay_s: float = 1.0) -> None:
        self.exporter = exporter
        self.where = where              # the collector, for log lines
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.delay_s = delay_s
        self.dropped = 0                # spans that did not fit in the queue, or were left at close
        self.failed = 0                 # spans in batches the collector did not take
        self.exported = 0               # spans the collector took
        self._queue: deque[Any] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._deadline = float("inf")   # monotonic time by which close() wants the thread to stop
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="llmgw-telemetry", daemon=True)
        self._thread.start()

    def submit(self, spans: Sequence[Any]) -> None:
        """Queue ``spans`` for export; what does not fit is dropped and counted."""
        with self._lock:
            room = 0 if self._closing else self.max_queue - len(self._queue)
            taken = spans if len(spans) <= room else spans[:max(room, 0)]
            self._queue.extend(taken)
            self.dropped += len(spans) - len(taken)
            full = len(self._queue) >= self.batch_size
        if full:
            self._wake.set()

    def pending(self) -> int:
        """Spans queued and not yet handed to the exporter."""
        with self._lock:
            return len(self._queue)

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (within ``timeout_s``), stop the thread and shut the exporter down."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._deadline = time.monotonic() + timeout_s
        self._wake.set()
        self._thread.join(timeout_s)
        with self._lock:
            self.dropped += len(self._queue)
            self._queue.clear()
        try:
            self.exporter.shutdown()
        except Exception:   # an exporter that fails to shut down must not stop the server's own shutdown
            log.warning("telemetry: the span exporter did not shut down cleanly", exc_info=True)

    def _take(self) -> list[Any]:
        with self._lock:
            count = min(self.batch_size, len(self._queue))
            return [self._queue.popleft() for _ in range(count)]

    def _run(self) -> None:
        while True:
            self._wake.wait(self.delay_s)
            self._wake.clear()
            while (batch := self._take()):
                self._send(batch)
                if self._closing and time.monotonic() >= self._deadline:
                    return
            if self._closing:
                return

    def _send(self, batch: list[Any]) -> None:
        try:
            result = self.exporter.export(batch)
            ok = getattr(result, "name", "SUCCESS") == "SUCCESS"
        except Exception:   # the exporter's own bug: count the batch as lost, keep the thread alive
            log.debug("telemetry: the span exporter raised", exc_info=True)
            ok = False
        if ok:
            self.exported += len(batch)
            if self._failing:
                self._failing = False
                log.info("telemetry: the collector at %s takes spans again", self.where)
            return
        self.failed += len(batch)
        if not self._failing:
            self._failing = True
            log.warning("telemetry: the collector at %s did not take %d span(s); dropping spans until it does",
                        self.where, len(batch))
