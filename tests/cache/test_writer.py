"""The cache's write-behind queue: answers are stored off the event loop, in batches, found while queued, bounded,
and all stored on close."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmgw.cache.base import CacheEntry, CacheUnavailable
from llmgw.cache.config import CacheConfig
from llmgw.cache.store import EVICT_TO, CacheStore
from llmgw.cache.writer import WriteBehind
from llmgw.exchange import UpstreamReply, Usage
from llmgw.stages.cache import CacheStage
from llmgw.testing.exchanges import make_exchange


def entry(key: str) -> CacheEntry:
    now = time.time()
    return CacheEntry(key, "p", None, {"choices": [{"message": {"content": key}}]}, {}, 0.01, now, now + 60)


class SlowStore:
    """Records each batch and the thread that stored it; holds every batch until ``gate`` opens."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.gate = threading.Event()

    def __call__(self, entries: Sequence[CacheEntry]) -> None:
        self.gate.wait(10)
        self.threads.add(threading.current_thread().name)
        self.batches.append([e.key for e in entries])


def wait_for_a_batch(store: SlowStore, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not store.batches and time.monotonic() < deadline:
        time.sleep(0.005)


def test_put_returns_at_once_and_the_entry_is_found_while_queued() -> None:
    store = SlowStore()
    writer = WriteBehind(store)
    started = time.perf_counter()
    for n in range(200):
        writer.put(entry(f"k{n}"))
    assert time.perf_counter() - started < 0.5   # nothing waited for the (blocked) store
    assert writer.pending("k7") is not None and writer.pending("nope") is None
    store.gate.set()
    assert writer.settle(5)
    writer.close()
    stored = [k for batch in store.batches for k in batch]
    assert sorted(stored) == sorted(f"k{n}" for n in range(200))
    assert len(store.batches) < 200                # batched, not one call per entry
    assert store.threads == {"llmgw-cache-writer"} and writer.pending("k7") is None


def test_the_queue_is_bounded_and_drops_are_counted() -> None:
    store = SlowStore()
    writer = WriteBehind(store, max_pending=10)
    for n in range(50):
        writer.put(entry(f"k{n}"))
    assert writer.dropped >= 39
    store.gate.set()
    writer.close()
    assert writer.written + writer.dropped == 50


def test_a_failing_store_is_counted_and_the_writer_goes_on() -> None:
    calls: list[int] = []

    def flaky(entries: Sequence[CacheEntry]) -> None:
        calls.append(len(entries))
        if len(calls) == 1:
            raise CacheUnavailable("disk full")

    writer = WriteBehind(flaky)
    writer.put(entry("a"))
    assert writer.settle(5)
    writer.put(entry("b"))
    writer.close()
    assert writer.failed == 1 and writer.written == 1 and writer.pending("a") is None


def test_close_stores_everything_queued(tmp_path: Path) -> None:
    store = CacheStore(tmp_path)
    writer = WriteBehind(store.put_many)
    for n in range(300):
        writer.put(entry(f"k{n}"))
    writer.close()
    assert all(store.get(f"k{n}") is not None for n in range(300))
    store.close()


async def test_the_stage_stores_off_the_loop_and_answers_the_next_identical_request(tmp_path: Path) -> None:
    stage = CacheStage(CacheConfig(enabled=True), CacheStore(tmp_path))
    written_by: list[str] = []
    put_many = stage.store.put_many  # type: ignore[union-attr]

    def spy(entries: Any) -> None:
        written_by.append(threading.current_thread().name)
        put_many(entries)

    stage.store.put_many = spy  # type: ignore[union-attr,method-assign]
    body = {"messages": [{"role": "user", "content": "What is 2+2?"}]}
    first = make_exchange(body)
    await stage.request(first)
    first.reply = UpstreamReply({"choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": "4"}}]},
                                usage=Usage(5, 1))
    first.usage = Usage(5, 1)
    await stage.response(first)
    second = make_exchange(body)
    await stage.request(second)           # queued or stored: either way a hit
    assert second.cache == "hit" and second.reply is not None
    stage.close()
    assert written_by and threading.main_thread().name not in written_by
    reopened = CacheStage(CacheConfig(enabled=True), CacheStore(tmp_path))
    third = make_exchange(body)
    await reopened.request(third)
    assert third.cache == "hit"
    reopened.close()


def test_answers_arriving_together_are_stored_in_one_batch_without_a_wake_up_each() -> None:
    store = SlowStore()
    store.gate.set()
    writer = WriteBehind(store, max_delay_s=0.2)
    try:
        for i in range(50):
            writer.put(entry(f"k{i}"))
        assert store.batches == []                 # nothing woke the writer: it stores at its next tick
        time.sleep(0.4)
        assert store.batches == [[f"k{i}" for i in range(50)]]
    finally:
        writer.close()


def test_settle_wakes_the_writer_at_once() -> None:
    store = SlowStore()
    store.gate.set()
    writer = WriteBehind(store, max_delay_s=30.0)
    try:
        time.sleep(0.05)    # the writer is asleep until its next tick, half a minute away
        writer.put(entry("k"))
        started = time.monotonic()
        assert writer.settle(5.0)
        assert time.monotonic() - started < 1.0
        assert store.batches == [["k"]] and writer.pending("k") is None
    finally:
        writer.close()


def test_a_full_batch_wakes_the_writer_before_its_tick() -> None:
    store = SlowStore()
    store.gate.set()
    writer = WriteBehind(store, max_delay_s=30.0, batch_size=10)
    try:
        time.sleep(0.05)
        for i in range(10):
            writer.put(entry(f"k{i}"))
        wait_for_a_batch(store)
        assert store.batches == [[f"k{i}" for i in range(10)]]   # soon, without waiting for the tick
    finally:
        writer.close()


def test_the_disk_store_stays_under_max_mb_evicting_the_least_recently_stored(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "cache", max_mb=1.0)
    now = time.time()

    def big(key: str) -> CacheEntry:
        return CacheEntry(key, "p", None, {"choices": [{"message": {"content": key + "x" * 20_000}}]}, {}, 0.01,
                          now, now + 600)

    try:
        store.put_many([big(f"a{i}") for i in range(60)])       # ~1.2 MB in one batch
        store.put_many([big(f"b{i}") for i in range(60)])       # and again
        assert store.disk.volume() <= 1.0 * 1024 * 1024
        assert store.get("b59") is not None and store.get("a0") is None   # the oldest went first
        assert len(store.disk) < 120
        store.put(big("last"))                                  # one at a time too
        assert store.disk.volume() <= 1.0 * 1024 * 1024 and store.get("last") is not None
    finally:
        store.close()


def test_a_disk_store_past_its_cap_evicts_a_margin_at_once_so_the_next_batches_evict_nothing(tmp_path: Path) -> None:
    """Kept at its cap ten entries at a time, a store paid a transaction per ten entries on every batch; it now
    evicts down to EVICT_TO of the cap once, oldest first, and the batches after that only add."""
    store = CacheStore(tmp_path / "cache", max_mb=1.0)
    now = time.time()
    cap = 1024 * 1024

    def answer(key: str) -> CacheEntry:
        return CacheEntry(key, "p", None, {"choices": [{"message": {"content": key + "x" * 4_000}}]}, {}, 0.01,
                          now, now + 600)

    try:
        stored = 0
        while len(store.disk) == stored:     # until a batch evicts
            store.put_many([answer(f"k{stored + i}") for i in range(20)])
            stored += 20
            assert stored < 2_000
        assert store.disk.volume() <= EVICT_TO * cap + 64 * 1024   # the margin, within a few pages
        kept = len(store.disk)
        assert store.get(f"k{stored - 1}") is not None and store.get("k0") is None
        oldest_kept = stored - kept
        assert store.get(f"k{oldest_kept}") is not None and store.get(f"k{oldest_kept - 1}") is None
        store.put_many([answer(f"n{i}") for i in range(20)])
        assert len(store.disk) == kept + 20                # nothing evicted: the margin took them
        assert store.get(f"k{oldest_kept}") is not None
        assert store.disk.volume() <= cap
    finally:
        store.close()


def test_evicting_entries_kept_in_files_removes_their_files(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "cache", max_mb=1.0)
    now = time.time()

    def large(key: str) -> CacheEntry:     # over diskcache's 32 KiB: the value lives in a file of its own
        return CacheEntry(key, "p", None, {"choices": [{"message": {"content": key + "y" * 60_000}}]}, {}, 0.01,
                          now, now + 600)

    def files() -> set[str]:
        return {str(p.relative_to(store.directory)) for p in store.directory.rglob("*.val")}

    try:
        for batch in range(4):
            store.put_many([large(f"f{batch}-{i}") for i in range(10)])
        listed = {name for (name,) in store.disk._con.execute("SELECT filename FROM Cache WHERE filename IS NOT NULL")}
        assert len(listed) == len(store.disk) < 40 and files() == listed   # evicted rows took their files along
        assert store.disk.volume() <= 1024 * 1024 and store.get("f3-9") is not None
    finally:
        store.close()


def test_without_a_delay_every_answer_is_stored_at_once() -> None:
    store = SlowStore()
    store.gate.set()
    writer = WriteBehind(store, max_delay_s=0.0)
    try:
        writer.put(entry("k"))
        wait_for_a_batch(store)
        assert store.batches == [["k"]]
    finally:
        writer.close()



def test_a_busy_writer_stores_once_per_tick_and_a_settle_still_drains() -> None:
    """Entries that come while a batch is stored wait for the next tick instead of a batch of their own right
    after; a settle (a semantic lookup) still has everything stored that was queued before it."""
    batches: list[int] = []

    def store(entries: Sequence[CacheEntry]) -> None:
        batches.append(len(entries))
        time.sleep(0.005)   # a commit takes a while: entries keep coming meanwhile

    writer = WriteBehind(store, max_delay_s=0.05, batch_size=10_000)
    try:
        end, n = time.monotonic() + 1.0, 0
        while time.monotonic() < end:
            writer.put(entry(f"k{n}"))
            n += 1
            if n % 20 == 0:
                time.sleep(0.001)
        writer.put(entry("last"))
        assert writer.settle(2.0) and writer.pending("last") is None
    finally:
        writer.close()
    assert writer.written == n + 1
    assert len(batches) <= 1.0 / 0.05 + 5, f"{len(batches)} batches in a second of 50 ms ticks"
