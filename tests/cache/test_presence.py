"""The disk store's key presence: a sure miss never reads SQLite, and no stored entry is ever missed for it —
entries of other processes, entries from before the store opened, a follower that fell behind the trimmed log."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import diskcache
import pytest

from llmgw.cache import disk_keys
from llmgw.cache.presence import KeyPresence
from llmgw.cache.store import CacheEntry, CacheStore


def entry(key: str, ttl: float = 60.0) -> CacheEntry:
    now = time.time()
    return CacheEntry(key, "p", None, {"choices": [{"message": {"content": key}}]}, {}, 0.01, now, now + ttl)


def wait_ready(store: CacheStore, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not store.presence.ready:
        assert time.monotonic() < deadline, "the key presence was never filled"
        time.sleep(0.01)


def found_within(store: CacheStore, key: str, timeout: float = 5.0) -> CacheEntry | None:
    deadline = time.monotonic() + timeout
    while (got := store.get(key)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return got


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CacheStore]:
    opened = CacheStore(tmp_path / "cache")
    wait_ready(opened)
    yield opened
    opened.close()


def test_a_sure_miss_never_reads_sqlite(store: CacheStore, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    real_get = store.disk.get
    monkeypatch.setattr(store.disk, "get", lambda key, *a, **k: reads.append(key) or real_get(key, *a, **k))
    assert store.get("never-stored") is None
    assert reads == []
    store.put_many([entry("k1")])
    got = store.get("k1")
    assert got is not None and got.answer["choices"][0]["message"]["content"] == "k1"
    store.put(entry("k2"))
    assert store.get("k2") is not None
    assert reads == ["k1", "k2"]


def test_entries_stored_before_opening_and_by_other_processes_are_found(tmp_path: Path) -> None:
    first = CacheStore(tmp_path)
    first.put_many([entry("before")])
    second = CacheStore(tmp_path)
    try:
        wait_ready(first)
        wait_ready(second)
        assert second.get("before") is not None
        first.put_many([entry(f"later-{i}") for i in range(3)])
        first.put(entry("single"))
        for key in ("later-0", "later-1", "later-2", "single"):
            assert found_within(second, key) is not None, key
    finally:
        first.close()
        second.close()


def test_a_follower_behind_the_trimmed_log_fills_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(disk_keys, "KEEP", 3)
    writer = CacheStore(tmp_path)
    try:
        writer.put_many([entry(f"k{i}") for i in range(10)])
        database = tmp_path / diskcache.core.DBNAME
        db = sqlite3.connect(database, isolation_level=None)
        assert [row[0] for row in db.execute("SELECT key FROM llmgw_keys ORDER BY id")] == ["k7", "k8", "k9"]
        # A follower that had read up to id 2 finds ids 3..7 trimmed: it must fill again, not skip them.
        presence = KeyPresence()
        follower = disk_keys.KeyFollower(database, presence, threading.Event(), poll_s=0.05)
        assert follower._follow(db, 2) is None
        cursor = follower._fill(db)
        assert cursor == 10
        assert all(presence.may_hold(f"k{i}") for i in range(10))
        db.close()
    finally:
        writer.close()


def test_a_cleared_store_is_followed_from_the_cache_table_again(store: CacheStore, tmp_path: Path) -> None:
    store.put_many([entry("old")])
    assert store.clear() == 1
    other = CacheStore(tmp_path / "cache")
    try:
        wait_ready(other)
        store.put_many([entry("new")])
        assert found_within(other, "new") is not None
        assert other.get("old") is None
    finally:
        other.close()


def test_hostile_rows_do_not_stop_the_fill(tmp_path: Path) -> None:
    planted = diskcache.Cache(str(tmp_path))
    planted.set(b"bytes-key", b"x")
    planted.set(("a", "tuple", "key"), b"x")       # a pickled key
    planted.close()
    store = CacheStore(tmp_path)
    try:
        wait_ready(store)
        store.put_many([entry("k")])
        assert store.get("k") is not None
    finally:
        store.close()


def test_presence_past_its_limit_stops_filtering() -> None:
    presence = KeyPresence(limit=3)
    presence.filled()
    presence.add(["a", "b"])
    assert presence.ready and presence.may_hold("a") and not presence.may_hold("zzz")
    presence.add(["c", "d"])
    assert not presence.enabled and not presence.ready and len(presence) == 0
    assert presence.may_hold("zzz")           # every key is read from the store again


def test_presence_before_it_is_filled_sends_every_lookup_to_the_store() -> None:
    presence = KeyPresence()
    assert presence.may_hold("anything")
    presence.filled()
    assert not presence.may_hold("anything")


def test_an_entry_without_a_vector_is_stored_as_the_same_json_as_one_with() -> None:
    plain = entry("k")
    with_vector = entry("k")
    with_vector.created, with_vector.expires = plain.created, plain.expires
    with_vector.vector, with_vector.embedder = b"\x00\x00\x80\x3f", "hash-32"
    assert plain.to_json() == with_vector.to_json().replace(b'"embedder":"hash-32"', b'"embedder":null')
    assert CacheEntry.from_json(plain.to_json()) == plain


def test_a_follower_steps_over_its_own_keys_and_reads_the_others(tmp_path: Path) -> None:
    mine, other = CacheStore(tmp_path), CacheStore(tmp_path)
    try:
        wait_ready(mine)
        wait_ready(other)
        read_back: list[str] = []
        real_add = mine.presence.add

        def add(keys: object) -> None:
            keys = list(keys)   # type: ignore[call-overload]
            if threading.current_thread().name == "llmgw-cache-keys":
                read_back.extend(keys)
            real_add(keys)

        mine.presence.add = add   # type: ignore[method-assign]
        mine.put_many([entry(f"mine-{i}") for i in range(20)])
        other.put_many([entry("theirs")])
        mine.put(entry("mine-single"))
        assert found_within(mine, "theirs") is not None
        time.sleep(0.5)          # a few more polls
        assert read_back == ["theirs"]
        assert all(mine.get(f"mine-{i}") is not None for i in range(20)) and mine.get("mine-single") is not None
    finally:
        mine.close()
        other.close()


def test_a_semantic_entry_found_through_the_journal_is_read_even_before_the_key_log_shows_it(tmp_path: Path) -> None:
    """The index is filled from the journal, the presence from the key log, by separate followers: an index row of an
    entry whose key the presence has not seen yet must still be read (not dropped as evicted)."""
    from llmgw.cache.embed import HashEmbedder

    emb = HashEmbedder(32)
    one, two = CacheStore(tmp_path, embedder=emb.name), CacheStore(tmp_path, embedder=emb.name)
    try:
        assert one.ready.wait(5) and two.ready.wait(5)
        wait_ready(two)
        two._keys.poll_s = 3600.0          # the key log's follower is far behind: the presence never shows k1
        time.sleep(0.5)                    # let it enter that long wait
        e = entry("k1")
        e.text = "alpha beta gamma"
        e.vector, e.embedder = emb.embed(["alpha beta gamma"])[0].tobytes(), emb.name
        one.put_many([e])
        query = emb.embed(["alpha beta gamma"])[0]
        deadline = time.monotonic() + 5
        while not (found := two.nearest("p", query, 0.9)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [f.key for f, _ in found] == ["k1"]
        assert not two.presence.may_hold("k1")      # the exact lookup still says miss until the log shows it
    finally:
        one.close()
        two.close()


def test_a_journal_record_is_written_only_once_its_entry_is_committed(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A follower that reads a journal record must find the entry: the record is written after the commit."""
    from llmgw.cache.embed import HashEmbedder

    emb = HashEmbedder(32)
    writer, reader = CacheStore(tmp_path, embedder=emb.name), CacheStore(tmp_path, embedder=emb.name)
    seen: list[bool] = []
    real = writer._journal_insert
    monkeypatch.setattr(writer, "_journal_insert",
                        lambda e: seen.append(reader.read_indexed(e.key) is not None) or real(e))
    try:
        batch = [entry(f"k{i}") for i in range(3)]
        for e in batch:
            e.text = f"text {e.key}"
            e.vector, e.embedder = emb.embed([e.text])[0].tobytes(), emb.name
        writer.put_many(batch)
        assert seen == [True, True, True]
    finally:
        writer.close()
        reader.close()
