"""The span queue: a stuck or failing collector never blocks the caller; what does not fit is dropped and counted;
closing is bounded."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from llmgw.telemetry.export import SpanQueue


class StuckExporter:
    """An exporter whose export blocks until released, and then succeeds or fails."""

    def __init__(self, *, ok: bool = True) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[Any]] = []
        self.ok = ok
        self.shut = False

    def export(self, spans: Sequence[Any]) -> Any:
        self.entered.set()
        self.release.wait(10)
        self.batches.append(list(spans))
        return type("Result", (), {"name": "SUCCESS" if self.ok else "FAILURE"})()

    def shutdown(self) -> None:
        self.shut = True


def test_a_full_queue_drops_and_counts_without_blocking() -> None:
    exporter = StuckExporter()
    queue = SpanQueue(exporter, where="test", max_queue=10, batch_size=4, delay_s=0.01)
    queue.submit(["s"] * 4)
    assert exporter.entered.wait(5)             # the thread is stuck exporting the first batch
    started = time.perf_counter()
    for _ in range(100):
        queue.submit(["a", "b"])
    assert time.perf_counter() - started < 0.5   # never waits on the exporter
    assert queue.pending() == 10
    assert queue.dropped == 200 - 10
    exporter.release.set()
    queue.close(5)
    assert queue.exported == 14 and queue.pending() == 0
    assert exporter.shut


def test_close_is_bounded_when_the_exporter_hangs() -> None:
    exporter = StuckExporter()
    queue = SpanQueue(exporter, where="test", batch_size=2, delay_s=0.01)
    queue.submit(["x"] * 6)
    assert exporter.entered.wait(5)
    started = time.perf_counter()
    queue.close(0.3)
    assert time.perf_counter() - started < 2
    assert queue.dropped >= 4                   # left in the queue at close
    exporter.release.set()


def test_failed_batches_are_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    exporter = StuckExporter(ok=False)
    exporter.release.set()
    queue = SpanQueue(exporter, where="http://collector.invalid/v1/traces", batch_size=1, delay_s=0.01)
    with caplog.at_level(logging.INFO, logger="llmgw.telemetry"):
        for _ in range(5):
            queue.submit(["x"])
        deadline = time.monotonic() + 5
        while queue.failed < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        exporter.ok = True
        queue.submit(["y"])
        queue.close(5)
    assert queue.failed == 5 and queue.exported == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "collector.invalid" in warnings[0].getMessage()
    assert any("takes spans again" in r.getMessage() for r in caplog.records)


def test_submit_after_close_is_dropped() -> None:
    exporter = StuckExporter()
    exporter.release.set()
    queue = SpanQueue(exporter, where="test", delay_s=0.01)
    queue.close(1)
    queue.submit(["late"])
    assert queue.dropped == 1 and exporter.batches == []
