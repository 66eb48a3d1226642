"""Many new entries into a diskcache ``Cache`` in one statement: the rows ``Cache.set`` would write, without its
per-entry round trips.

``Cache.set`` runs two statements per entry (look for the key, then insert or update), each of which lets go of the
GIL while SQLite works and must win it back from the event loop: storing a batch of answers from the cache's writer
thread meant hundreds of GIL hand-offs and thread switches. :func:`insert_new` writes the rows of a batch's new keys
with a few multi-row ``INSERT … ON CONFLICT DO NOTHING`` statements, exactly as ``Cache.set`` would write them for
a value it keeps in its table with a tag: the same columns and values, so diskcache's triggers keep its entry count
and size, and its reads, eviction and expiry see no difference. The keys already held are read first (unless the
caller knows there are none), and the others inserted without ``RETURNING``; each part is padded to one of
:data:`PART_SIZES` rows by repeating its last row (which then meets its own key and writes nothing), so a batch of up
to 256 entries is one statement. Every statement, and every row a statement returns, is one more step of SQLite,
and one more hand-off of the GIL between the writer thread and the event loop.

Contract:
- :func:`writable` says whether a cache's table has the columns written here and the unique index on ``(key,
  raw)`` (diskcache 4 and 5); when it has not, the caller stores with ``Cache.set``.
- :func:`insert_new` runs inside ``cache.transact()``; it takes ``(key, value, expire_time, tag)`` rows and inserts
  only those whose key the cache does not hold yet and whose value is smaller than ``disk_min_file_size`` (larger
  values go to files, which only ``Cache.set`` writes), the last one of a key given twice, and returns the keys it
  inserted. Everything else is left to ``Cache.set`` (an existing row is updated there, and its old file
  removed). Keys are strings or integers, tags strings or None.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import diskcache
from diskcache.core import MODE_RAW

from ..store.batches import padded_parts

CACHE_COLUMNS = ("rowid", "key", "raw", "store_time", "expire_time", "access_time", "access_count", "tag", "size",
                 "mode", "filename", "value")
_INSERTED = CACHE_COLUMNS[1:]
_ONE_ROW = "(" + ", ".join("?" * len(_INSERTED)) + ")"


def writable(cache: diskcache.Cache) -> bool:
    """Whether ``cache``'s table has exactly the columns :func:`insert_new` writes and its unique index on
    ``(key, raw)`` (and the cache the settings it reads)."""
    try:
        con = cache._con
        names = tuple(row[1] for row in con.execute("PRAGMA table_info(Cache)"))
        unique = [row[1] for row in con.execute("PRAGMA index_list(Cache)") if row[2]]
        keyed = any(tuple(c[2] for c in con.execute(f"PRAGMA index_info({name!r})")) == ("key", "raw")
                    for name in unique)
    except (AttributeError, sqlite3.Error):
        return False
    return names == CACHE_COLUMNS and keyed and isinstance(getattr(cache, "disk_min_file_size", None), int)


Key = str | int


# Rows per statement: a part is padded to the next of these by repeating its last row. Each padding row costs about
# what a new one does (its parameters bound, the unique index probed), so the sizes double: never twice the rows.
PART_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def insert_new(cache: diskcache.Cache, rows: Sequence[tuple[Key, bytes, float, str | None]], now: float, *,
               unheld: bool = False) -> set[Key]:
    """Insert the ``(key, value, expire_time, tag)`` rows that may go in one statement (see the module contract),
    stored at ``now``; returns their keys. ``unheld``: the caller knows the cache holds none of the keys (ids it
    has just been given), and they are not looked for."""
    limit = cache.disk_min_file_size
    fresh = {key: (value, expires, tag) for key, value, expires, tag in rows if len(value) < limit}
    if not fresh:
        return set()
    con = cache._con
    held: set[Key] = set()
    if not unheld:
        for part in padded_parts(list(fresh), PART_SIZES):   # in the caller's write transaction: none added meanwhile
            held.update(key for (key,) in con.execute(
                f"SELECT key FROM Cache WHERE raw = 1 AND key IN ({', '.join('?' * len(part))})", part))
    values = [(key, True, now, expires, now, 0, tag, 0, MODE_RAW, None, sqlite3.Binary(value))
              for key, (value, expires, tag) in fresh.items() if key not in held]
    for part in padded_parts(values, PART_SIZES):   # a repeated row meets its own key: nothing more is written
        con.execute(f"INSERT INTO Cache ({', '.join(_INSERTED)}) VALUES {', '.join([_ONE_ROW] * len(part))}"
                    " ON CONFLICT (key, raw) DO NOTHING", [value for row in part for value in row])
    return {row[0] for row in values}
