"""The disk store keeps each entry under a growing id and finds exact keys through its in-memory locations: a sure
miss never reads SQLite, a stored entry is always found — entries of other processes, entries from before the store
opened, entries of an older store's layout, a follower that fell behind the trimmed log — and a locator never
yields another key's answer."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import diskcache
import pytest

from llmgw.cache import disk_keys
from llmgw.cache.embed import HashEmbedder
from llmgw.cache.locations import KeyLocations
from llmgw.cache.store import CacheEntry, CacheStore


def entry(key: str, ttl: float = 60.0, content: str | None = None) -> CacheEntry:
    now = time.time()
    return CacheEntry(key, "p", None, {"choices": [{"message": {"content": content or key}}]}, {}, 0.01, now,
                      now + ttl)


def content(found: CacheEntry | None) -> str | None:
    return None if found is None else found.answer["choices"][0]["message"]["content"]


def found_within(store: CacheStore, key: str, timeout: float = 5.0) -> CacheEntry | None:
    deadline = time.monotonic() + timeout
    while (got := store.get(key)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return got


def cache_rows(folder: Path) -> list[tuple[object, object]]:
    db = sqlite3.connect(folder / diskcache.core.DBNAME)
    try:
        return db.execute("SELECT key, tag FROM Cache ORDER BY rowid").fetchall()
    finally:
        db.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CacheStore]:
    opened = CacheStore(tmp_path / "cache")
    yield opened
    opened.close()


def test_entries_are_kept_under_growing_ids_with_their_exact_key_as_tag(store: CacheStore, tmp_path: Path) -> None:
    """Storing appends to diskcache's key index (ids that only grow) instead of inserting prompt hashes at random."""
    store.put_many([entry("k-b"), entry("k-a"), entry("k-c")])
    store.put(entry("k-0"))
    rows = cache_rows(tmp_path / "cache")
    assert [tag for _, tag in rows] == ["k-b", "k-a", "k-c", "k-0"]
    ids = [key for key, _ in rows]
    assert all(type(i) is int for i in ids) and ids == sorted(ids) and len(set(ids)) == 4
    assert [content(store.get(k)) for k in ("k-a", "k-b", "k-c", "k-0")] == ["k-a", "k-b", "k-c", "k-0"]


def test_a_sure_miss_never_reads_sqlite(store: CacheStore, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[object] = []
    real_get = store.disk.get
    monkeypatch.setattr(store.disk, "get", lambda key, *a, **k: reads.append(key) or real_get(key, *a, **k))
    assert store.get("never-stored") is None
    assert reads == []
    store.put_many([entry("k1")])
    assert content(store.get("k1")) == "k1"
    store.put(entry("k2"))
    assert store.get("k2") is not None
    assert store.get("k3") is None
    assert len(reads) == 2


def test_a_locator_never_yields_another_keys_answer(store: CacheStore) -> None:
    """Keys are held as hashes: a collision (played here by pointing one key at another's entry) is a miss."""
    store.put_many([entry("mine"), entry("theirs")])
    store.locations.add(["theirs"], [store.locations.locate("mine")])   # type: ignore[list-item]
    assert store.get("theirs") is None
    assert content(store.get("mine")) == "mine"


def test_storing_a_key_again_replaces_its_entry(store: CacheStore, tmp_path: Path) -> None:
    store.put_many([entry("k", content="first")])
    store.put_many([entry("k", content="second"), entry("other")])
    store.put_many([entry("k", content="third"), entry("k", content="fourth")])   # twice in one batch: the last
    assert content(store.get("k")) == "fourth"
    assert [tag for _, tag in cache_rows(tmp_path / "cache")] == ["other", "k"]   # the older rows are gone
    assert len(store.disk) == 2


def test_entries_stored_before_opening_and_by_other_processes_are_found(tmp_path: Path) -> None:
    first = CacheStore(tmp_path)
    first.put_many([entry("before")])
    second = CacheStore(tmp_path)
    try:
        assert second.get("before") is not None            # filled while opening: found at once
        first.put_many([entry(f"later-{i}") for i in range(3)])
        first.put(entry("single"))
        for key in ("later-0", "later-1", "later-2", "single"):
            assert found_within(second, key) is not None, key
        second.put(entry("single", content="again"))         # the other process's older row is replaced too
        assert content(found_within(second, "single")) == "again"
        deadline = time.monotonic() + 5
        while content(first.get("single")) != "again":
            assert time.monotonic() < deadline, "the first process never saw the newer entry"
            time.sleep(0.02)
        assert [tag for _, tag in cache_rows(tmp_path)].count("single") == 1
    finally:
        first.close()
        second.close()


def test_two_processes_storing_the_same_keys_at_once_never_mix_answers(tmp_path: Path) -> None:
    """Both keep their own rows of a key stored by both before either saw the other's; every lookup, in either
    process, finds an answer to the key it asked for."""
    one, two = CacheStore(tmp_path), CacheStore(tmp_path)
    keys = [f"k{i}" for i in range(200)]
    try:
        def store(into: CacheStore, who: str) -> None:
            for start in range(0, len(keys), 20):
                into.put_many([entry(k, content=f"{who}:{k}") for k in keys[start:start + 20]])

        threads = [threading.Thread(target=store, args=(s, who)) for s, who in ((one, "one"), (two, "two"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for reader in (one, two):
            for k in keys:
                got = found_within(reader, k)     # a row the other deleted is found again once its follower reads
                assert got is not None and got.key == k and content(got) in (f"one:{k}", f"two:{k}")
    finally:
        one.close()
        two.close()


def test_entries_of_an_older_store_layout_are_found(tmp_path: Path) -> None:
    """Earlier stores kept entries under their exact key, untagged: they are still answers."""
    old = diskcache.Cache(str(tmp_path))
    old.set("old-key", entry("old-key").to_json(), expire=60)
    old.close()
    store = CacheStore(tmp_path)
    try:
        assert content(store.get("old-key")) == "old-key"
        store.put(entry("old-key", content="new"))
        assert content(store.get("old-key")) == "new"
        assert [tag for _, tag in cache_rows(tmp_path)] == ["old-key"]   # the old row was replaced by a tagged one
    finally:
        store.close()


def test_a_follower_behind_the_trimmed_log_fills_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(disk_keys, "KEEP", 3)
    writer = CacheStore(tmp_path)
    try:
        writer.put_many([entry(f"k{i}") for i in range(10)])
        database = tmp_path / diskcache.core.DBNAME
        db = sqlite3.connect(database, isolation_level=None)
        assert [row[0] for row in db.execute("SELECT key FROM llmgw_keys ORDER BY id")] == ["k7", "k8", "k9"]
        # A follower that had read up to id 2 finds ids 3..7 trimmed: it must fill again, not skip them.
        locations = KeyLocations()
        follower = disk_keys.KeyFollower(database, locations, threading.Event(), cursor=2, poll_s=0.05)
        assert follower._follow(db, 2) is None
        assert disk_keys.fill(db, locations) == 10
        assert [locations.locate(f"k{i}") for i in range(10)] == [writer.locations.locate(f"k{i}") for i in range(10)]
        assert None not in [locations.locate(f"k{i}") for i in range(10)]
        db.close()
    finally:
        writer.close()


def test_a_small_store_keeps_its_room_for_entries_not_for_the_keys_of_evicted_ones(tmp_path: Path) -> None:
    """The key log is part of the store's size: kept at 200,000 keys, it filled a small store's max_mb with the
    keys of entries long evicted, and the entries kept shrank with every batch."""
    store = CacheStore(tmp_path, max_mb=1.0)
    other = CacheStore(tmp_path)          # another worker, following the log
    try:
        stored = 0

        def batch() -> None:
            nonlocal stored
            store.put_many([entry(f"k{stored + i}", content="x" * 600) for i in range(100)])
            stored += 100

        while stored < 3_000:
            batch()
        kept_early = len(store.disk)
        while stored < 15_000:
            batch()
        database = tmp_path / diskcache.core.DBNAME
        db = sqlite3.connect(database, isolation_level=None)
        logged = db.execute("SELECT count(*) FROM llmgw_keys").fetchone()[0]
        oldest = db.execute("SELECT min(key) FROM Cache").fetchone()[0]
        first_logged = db.execute("SELECT min(id) FROM llmgw_keys").fetchone()[0]
        db.close()
        assert len(store.disk) >= 0.95 * kept_early       # was 84% of it, and falling with every batch
        assert logged <= len(store.disk) and first_logged >= oldest   # only the keys of entries still kept
        assert content(store.get(f"k{stored - 1}")) == "x" * 600
        assert content(found_within(other, f"k{stored - 1}")) == "x" * 600   # the follower still finds new ones
        assert other.get("k0") is None
    finally:
        other.close()
        store.close()


def test_a_cleared_store_is_followed_from_the_cache_table_again(store: CacheStore, tmp_path: Path) -> None:
    store.put_many([entry("old")])
    before = CacheStore(tmp_path / "cache")      # opened before the clear: still locates "old"
    assert before.get("old") is not None
    assert store.clear() == 1
    assert store.get("old") is None and len(store.locations) == 0
    assert before.get("old") is None              # its locator points at a row that is gone: a miss
    before.close()
    other = CacheStore(tmp_path / "cache")
    try:
        store.put_many([entry("new")])
        assert found_within(other, "new") is not None
        assert other.get("old") is None
    finally:
        other.close()


def test_hostile_rows_do_not_stop_the_fill_nor_answer(tmp_path: Path) -> None:
    planted = diskcache.Cache(str(tmp_path))
    planted.set(b"bytes-key", b"x")
    planted.set(("a", "tuple", "key"), b"x")                      # a pickled key
    planted.set(12345, b"not json", tag="victim")                 # a row that claims an exact key
    planted.set(12346, entry("someone-else").to_json(), tag="victim-2")   # another key's entry under a false tag
    planted.set(12347, b"x", tag=b"bytes-tag")
    planted.close()
    store = CacheStore(tmp_path)
    try:
        assert store.get("victim") is None and store.get("victim-2") is None
        store.put_many([entry("k")])
        assert store.get("k") is not None
    finally:
        store.close()


def test_locations_past_their_limit_forget_the_older_half() -> None:
    locations = KeyLocations(limit=4)
    locations.add(["a", "b", "c"], [1, 2, 3])
    assert locations.locate("a") == 1 and locations.locate("zzz") is None
    locations.add(["d", "e"], [4, 5])
    assert len(locations) == 2
    assert [locations.locate(k) for k in "abcde"] == [None, None, None, 4, 5]
    locations.add(["d"], [6])                  # a later locator replaces an earlier one
    assert locations.locate("d") == 6


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
        read_back: list[str] = []
        real_add = mine.locations.add

        def add(keys: object, locators: object) -> None:
            keys = list(keys)   # type: ignore[call-overload]
            if threading.current_thread().name == "llmgw-cache-keys":
                read_back.extend(keys)
            real_add(keys, locators)   # type: ignore[arg-type]

        mine.locations.add = add   # type: ignore[method-assign]
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


def semantic(key: str, emb: HashEmbedder) -> CacheEntry:
    e = entry(key)
    e.text = f"alpha beta gamma {key}"
    e.vector, e.embedder = emb.embed([e.text])[0].tobytes(), emb.name
    return e


def test_a_semantic_entry_found_through_the_journal_is_read_even_before_the_key_log_shows_it(tmp_path: Path) -> None:
    """The index is filled from the journal, the locations from the key log, by separate followers: a journal record
    says where its entry lies, so an index row whose key the log has not shown yet is still read (not dropped as
    evicted), and so is an exact lookup of it."""
    emb = HashEmbedder(32)
    one, two = CacheStore(tmp_path, embedder=emb.name), CacheStore(tmp_path, embedder=emb.name)
    try:
        assert one.ready.wait(5) and two.ready.wait(5)
        two._keys.poll_s = 3600.0          # the key log's follower is far behind: it never shows k1
        time.sleep(0.5)                    # let it enter that long wait
        assert two.locations.locate("k1") is None
        e = semantic("k1", emb)
        one.put_many([e])
        query = emb.embed([e.text or ""])[0]
        deadline = time.monotonic() + 5
        while not (found := two.nearest("p", query, 0.9)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [f.key for f, _ in found] == ["k1"]
        assert two.get("k1") is not None
    finally:
        one.close()
        two.close()


def test_a_journal_record_is_written_only_once_its_entry_is_committed(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A follower that reads a journal record must find the entry it points at: the record is written after the
    commit."""
    emb = HashEmbedder(32)
    writer, reader = CacheStore(tmp_path, embedder=emb.name), CacheStore(tmp_path, embedder=emb.name)
    seen: list[bool] = []
    real = writer._journal_insert
    monkeypatch.setattr(writer, "_journal_insert",
                        lambda e, locator: seen.append(reader.read(locator) is not None) or real(e, locator))
    try:
        writer.put_many([semantic(f"k{i}", emb) for i in range(3)])
        assert seen == [True, True, True]
    finally:
        writer.close()
        reader.close()


def old_journal(folder: Path, e: CacheEntry) -> None:
    """A journal as earlier versions wrote it: no locator column."""
    folder.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(folder / "journal.sqlite")
    db.execute("CREATE TABLE journal (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, partition TEXT NOT NULL,"
               " text TEXT, expires REAL NOT NULL, embedder TEXT NOT NULL, vector BLOB NOT NULL, origin TEXT NOT NULL)")
    db.execute("INSERT INTO journal (key, partition, text, expires, embedder, vector, origin)"
               " VALUES (?, ?, ?, ?, ?, ?, ?)",
               (e.key, e.partition, e.text, e.expires, e.embedder, e.vector, "an-older-process"))
    db.commit()
    db.close()


def test_a_semantic_entry_of_an_older_store_is_still_found(tmp_path: Path) -> None:
    emb = HashEmbedder(32)
    e = semantic("old", emb)
    old = diskcache.Cache(str(tmp_path))
    old.set("old", e.to_json(), expire=60)
    old.close()
    old_journal(tmp_path, e)
    store = CacheStore(tmp_path, embedder=emb.name)
    try:
        assert store.ready.wait(5)
        found = store.nearest("p", emb.embed([e.text or ""])[0], 0.9)
        assert [f.key for f, _ in found] == ["old"]
        store.put_many([semantic("new", emb)])      # the journal took its new column
        assert store.get("new") is not None
    finally:
        store.close()


def test_two_workers_bringing_an_older_journal_up_to_date_at_once_both_open(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    old_journal(tmp_path, semantic("old", HashEmbedder(32)))
    first = CacheStore(tmp_path)                    # adds the column
    # the second saw the older columns just before the first added its own: its ALTER fails, and it goes on
    real = CacheStore._journal_columns
    calls: list[int] = []

    def columns(db: sqlite3.Connection) -> set[str]:
        calls.append(1)
        return set() if len(calls) == 1 else real(db)

    monkeypatch.setattr(CacheStore, "_journal_columns", staticmethod(columns))
    second = CacheStore(tmp_path)
    assert len(calls) == 2
    first.close()
    second.close()


class _NoJson:
    """A connection whose SQLite has no JSON functions."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if "json_each" in sql:
            raise sqlite3.OperationalError("no such table: json_each")
        return self.con.execute(sql, *args)


@pytest.mark.parametrize("json", [True, False])
def test_the_key_log_records_a_batch_in_order_with_or_without_json_functions(tmp_path: Path, json: bool) -> None:
    path = tmp_path / "cache.db"
    disk_keys.create(path)
    con = sqlite3.connect(path, isolation_level=None)
    keys = [f"{n:064x}" for n in (5, 3, 9, 1, 7)] * 70     # 350 keys, repeats included, in no sorted order
    first, last = disk_keys.record(con if json else _NoJson(con), keys)   # type: ignore[arg-type]
    again = disk_keys.record(con, ["ab" * 32])
    assert (first, last) == (1, 350) and again == (351, 351)
    assert [key for (key,) in con.execute("SELECT key FROM llmgw_keys ORDER BY id")] == [*keys, "ab" * 32]
