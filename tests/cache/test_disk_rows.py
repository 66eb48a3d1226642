"""New cache entries are written to diskcache in a few multi-row statements, as exactly the rows ``Cache.set``
writes (llmgw.cache.disk_rows); everything else still goes through ``Cache.set``."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import diskcache
import pytest

from llmgw.cache import disk_rows
from llmgw.cache.store import CacheEntry, CacheStore

COMPARED = ("key", "raw", "access_count", "tag", "size", "mode", "filename", "value")


def table(cache: diskcache.Cache) -> dict[str, dict[str, Any]]:
    con = sqlite3.connect(Path(cache.directory) / "cache.db")
    con.row_factory = sqlite3.Row
    rows = {row["key"]: dict(row) for row in con.execute("SELECT * FROM Cache")}
    con.close()
    return rows


def test_the_rows_are_those_set_writes_and_diskcache_reads_and_counts_them(tmp_path: Path) -> None:
    by_set, by_rows = diskcache.Cache(str(tmp_path / "set")), diskcache.Cache(str(tmp_path / "rows"))
    assert disk_rows.writable(by_rows)
    now = time.time()
    values: dict[str | int, bytes] = {f"k{n}": f'{{"n": {n}, "text": "{"é" * n}"}}'.encode() for n in range(300)}
    values.update({n: f"by id {n}".encode() for n in range(1000, 1100)})     # the store's keys, tagged
    tags = {key: (f"exact-{key}" if isinstance(key, int) else None) for key in values}
    for key, value in values.items():
        by_set.set(key, value, expire=60.0, tag=tags[key])
    with by_rows.transact():
        inserted = disk_rows.insert_new(by_rows, [(k, v, now + 60.0, tags[k]) for k, v in values.items()], now)
    assert inserted == set(values)
    expected, got = table(by_set), table(by_rows)
    assert {k: {c: r[c] for c in COMPARED} for k, r in got.items()} == \
        {k: {c: r[c] for c in COMPARED} for k, r in expected.items()}
    assert all(abs(r["expire_time"] - (r["store_time"] + 60.0)) < 1e-6 for r in got.values())
    assert len(by_rows) == len(by_set) == 400 and by_rows.volume() == by_set.volume()   # the triggers counted
    assert by_rows.get("k7") == values["k7"] and by_rows.get(1042) == b"by id 1042"
    assert by_rows.get(1042, tag=True) == (b"by id 1042", "exact-1042")
    assert by_rows.get("k7", expire_time=True)[1] == pytest.approx(now + 60.0)


def test_held_keys_large_values_and_repeats_are_left_to_set(tmp_path: Path) -> None:
    cache = diskcache.Cache(str(tmp_path), disk_min_file_size=1024)
    cache.set("held", b"old")
    now = time.time()
    rows = [("held", b"new", now + 60, None), ("big", b"x" * 2048, now + 60, None), ("twice", b"one", now + 60, None),
            ("twice", b"two", now + 60, None), ("new", b"v", now + 60, None)]
    with cache.transact():
        inserted = disk_rows.insert_new(cache, rows, now)
    assert inserted == {"twice", "new"}
    assert cache.get("held") == b"old" and cache.get("big") is None       # not written here: set() does those
    assert cache.get("twice") == b"two" and cache.get("new") == b"v"    # the last of a repeated key


def test_a_table_of_other_columns_is_not_written(tmp_path: Path) -> None:
    cache = diskcache.Cache(str(tmp_path))
    cache._con.execute("ALTER TABLE Cache ADD COLUMN extra TEXT")
    assert not disk_rows.writable(cache)


def test_a_table_without_its_unique_key_index_is_not_written(tmp_path: Path) -> None:
    cache = diskcache.Cache(str(tmp_path))
    assert disk_rows.writable(cache)
    cache._con.execute("DROP INDEX Cache_key_raw")     # ON CONFLICT (key, raw) needs it: set() writes instead
    assert not disk_rows.writable(cache)


def entry(key: str, text: str, ttl: float = 60.0) -> CacheEntry:
    now = time.time()
    return CacheEntry(key, "p", None, {"choices": [{"message": {"content": text}}]}, {"completion_tokens": 1}, 0.0,
                      now, now + ttl)


@pytest.mark.parametrize("rows_writable", [True, False])
def test_the_store_reads_back_what_a_batch_stored_either_way(tmp_path: Path, rows_writable: bool) -> None:
    store = CacheStore(tmp_path)
    assert store._rows_writable
    store._rows_writable = rows_writable
    store.put(entry("held", "before"))
    store.put_many([entry("held", "after"), entry("a", "x" * 40_000), entry("b", "short"), entry("c", "gone", -1),
                    entry("b", "again")])
    assert store.get("held").answer["choices"][0]["message"]["content"] == "after"     # type: ignore[union-attr]
    assert store.get("a").answer["choices"][0]["message"]["content"] == "x" * 40_000  # type: ignore[union-attr]
    assert store.get("b").answer["choices"][0]["message"]["content"] == "again"       # type: ignore[union-attr]
    assert store.get("c") is None                                                      # expired
    assert len(store.disk) == len(table(store.disk))      # diskcache's own count kept up (expired rows may go)
    store.close()


def test_parts_are_padded_with_their_last_row_to_a_fixed_size() -> None:
    from llmgw.store.batches import padded_parts

    assert list(padded_parts([1, 2, 3], (4, 16))) == [[1, 2, 3, 3]]
    assert [len(p) for p in padded_parts(list(range(20)), (4, 16))] == [16, 4]
    assert list(padded_parts(list(range(20)), (4, 16)))[1] == [16, 17, 18, 19]
    assert [len(p) for p in padded_parts(list(range(17)), (4, 16))] == [16, 4]
    assert list(padded_parts(list(range(17)), (4, 16)))[1] == [16, 16, 16, 16]
    assert list(padded_parts([], (4, 16))) == []


@pytest.mark.parametrize(("count", "padded"), [(1, [1]), (3, [4]), (125, [128]), (129, [256]), (300, [256, 64])])
def test_a_batch_is_padded_to_at_most_twice_its_rows(tmp_path: Path, count: int, padded: list[int]) -> None:
    cache = diskcache.Cache(str(tmp_path))
    counting = _Counting(cache._con)
    seen = SimpleNamespace(_con=counting, disk_min_file_size=cache.disk_min_file_size)
    now = time.time()
    rows = [(1000 + n, b"{}", now + 60.0, f"exact-{n}") for n in range(count)]
    with cache.transact():
        disk_rows.insert_new(seen, rows, now, unheld=True)   # type: ignore[arg-type]
    assert [sql.count("(?") for sql in counting.statements] == padded
    assert len(cache) == count


class _Counting:
    """A connection that counts the statements run through it."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con, self.statements = con, []

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self.statements.append(sql)
        return self.con.execute(sql, *args)


@pytest.mark.parametrize("count", [1, 15, 16, 17, 100, 300])
def test_a_batch_of_unheld_keys_is_written_in_padded_statements_counted_once(tmp_path: Path, count: int) -> None:
    cache = diskcache.Cache(str(tmp_path))
    counting = _Counting(cache._con)
    seen = SimpleNamespace(_con=counting, disk_min_file_size=cache.disk_min_file_size)
    now = time.time()
    rows = [(1000 + n, f'{{"n": {n}}}'.encode(), now + 60.0, f"exact-{n}") for n in range(count)]
    with cache.transact():
        inserted = disk_rows.insert_new(seen, rows, now, unheld=True)   # type: ignore[arg-type]
    assert inserted == {1000 + n for n in range(count)}
    assert len(cache) == count, "a repeated row is written once and counted once"
    assert cache.get(1000 + count - 1, tag=True) == (f'{{"n": {count - 1}}}'.encode(), f"exact-{count - 1}")
    assert len(counting.statements) == -(-count // 256), "one statement per 256 rows, no lookup"
    held = _Counting(cache._con)
    with cache.transact():
        again = disk_rows.insert_new(SimpleNamespace(_con=held, disk_min_file_size=cache.disk_min_file_size),
                                     rows, now + 1.0)   # type: ignore[arg-type]
    assert again == set() and len(cache) == count
    assert len(held.statements) == -(-count // 256), "held keys: one lookup per 256 keys, nothing inserted"
