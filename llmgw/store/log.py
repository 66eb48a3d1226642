"""The request log: one SQLite table (WAL mode), its migrations and a batching writer (the read queries are in
:mod:`llmgw.store.log_read`).

Contracts:
- The schema is owned here; ``MIGRATIONS`` is a plain list of functions, applied in order and recorded in
  ``PRAGMA user_version``. Add a migration by appending a function; never edit a released one.
- :class:`LogWriter` takes rows from the event loop with a non-blocking ``write(row)`` and commits them in
  batches from its own thread. ``close()`` flushes every row it was given before returning.
- The database is the user's to query: ``sqlite3 ~/.llmgw/llmgw.db 'select * from requests'``.
- It holds prompts, answers and key hashes, so it is the owner's alone: :func:`open_state_db` creates its folder
  ``0700`` (when it creates it, and the default ``~/.llmgw`` always) and the file ``0600`` before SQLite opens it
  (SQLite gives its ``-wal``/``-shm`` files the same mode), and takes group and other access away from an existing
  database and its ``-wal``/``-shm``. The key store and the workers' shared state are opened the same way.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson

from .batches import SQLITE_SIZES, fixed_parts

log = logging.getLogger("llmgw.log")

def _v1(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE requests (
            id TEXT PRIMARY KEY,
            time REAL NOT NULL,
            client_format TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            alias TEXT NOT NULL,
            provider TEXT NOT NULL,
            target TEXT NOT NULL,
            status INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            error TEXT,
            error_message TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cached_tokens INTEGER NOT NULL DEFAULT 0,
            cache_write_tokens INTEGER NOT NULL DEFAULT 0,
            reasoning_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0,
            latency_ms REAL NOT NULL DEFAULT 0,
            ttft_ms REAL,
            attempts INTEGER NOT NULL DEFAULT 0,
            attempts_json TEXT NOT NULL DEFAULT '[]',
            cache TEXT NOT NULL DEFAULT 'miss',
            key TEXT NOT NULL DEFAULT '',
            team TEXT NOT NULL DEFAULT '',
            tags TEXT NOT NULL DEFAULT '[]',
            stream INTEGER NOT NULL DEFAULT 0,
            dropped_params TEXT NOT NULL DEFAULT '[]',
            request TEXT,
            response TEXT
        )
        """
    )
    db.execute("CREATE INDEX requests_time ON requests(time)")
    db.execute("CREATE INDEX requests_team_time ON requests(team, time)")
    db.execute("CREATE INDEX requests_alias_time ON requests(alias, time)")


def _v2(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE requests ADD COLUMN findings TEXT NOT NULL DEFAULT '[]'")


def _v3(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE requests ADD COLUMN saved_usd REAL NOT NULL DEFAULT 0")


def _v4(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE requests ADD COLUMN usage_estimated INTEGER NOT NULL DEFAULT 0")


def _v5(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE requests ADD COLUMN overhead_ms REAL")


def _v6(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE requests ADD COLUMN cost_breakdown TEXT NOT NULL DEFAULT '{}'")
    db.execute("ALTER TABLE requests ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE requests ADD COLUMN story TEXT NOT NULL DEFAULT '[]'")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6]

# The same schema in PostgreSQL (llmgw.store.log_postgres applies it): one entry per SQLite migration above, in the
# same order, each a tuple of statements. A new column is added to both lists. SQLite's REAL is an 8-byte float
# (DOUBLE PRECISION), its INTEGER 8 bytes (BIGINT); ``id`` compares bytewise (COLLATE "C") as it does in SQLite,
# so a prefix is a range on the primary key.
PG_MIGRATIONS: list[tuple[str, ...]] = [
    ("""CREATE TABLE requests (
            id TEXT COLLATE "C" PRIMARY KEY,
            time DOUBLE PRECISION NOT NULL,
            client_format TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            alias TEXT NOT NULL,
            provider TEXT NOT NULL,
            target TEXT NOT NULL,
            status BIGINT NOT NULL,
            outcome TEXT NOT NULL,
            error TEXT,
            error_message TEXT,
            input_tokens BIGINT NOT NULL DEFAULT 0,
            output_tokens BIGINT NOT NULL DEFAULT 0,
            cached_tokens BIGINT NOT NULL DEFAULT 0,
            cache_write_tokens BIGINT NOT NULL DEFAULT 0,
            reasoning_tokens BIGINT NOT NULL DEFAULT 0,
            cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
            latency_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
            ttft_ms DOUBLE PRECISION,
            attempts BIGINT NOT NULL DEFAULT 0,
            attempts_json TEXT NOT NULL DEFAULT '[]',
            cache TEXT NOT NULL DEFAULT 'miss',
            key TEXT NOT NULL DEFAULT '',
            team TEXT NOT NULL DEFAULT '',
            tags TEXT NOT NULL DEFAULT '[]',
            stream BIGINT NOT NULL DEFAULT 0,
            dropped_params TEXT NOT NULL DEFAULT '[]',
            request TEXT,
            response TEXT
        )""",
     "CREATE INDEX requests_time ON requests(time)",
     "CREATE INDEX requests_team_time ON requests(team, time)",
     "CREATE INDEX requests_alias_time ON requests(alias, time)"),
    ("ALTER TABLE requests ADD COLUMN findings TEXT NOT NULL DEFAULT '[]'",),
    ("ALTER TABLE requests ADD COLUMN saved_usd DOUBLE PRECISION NOT NULL DEFAULT 0",),
    ("ALTER TABLE requests ADD COLUMN usage_estimated BIGINT NOT NULL DEFAULT 0",),
    ("ALTER TABLE requests ADD COLUMN overhead_ms DOUBLE PRECISION",),
    ("ALTER TABLE requests ADD COLUMN cost_breakdown TEXT NOT NULL DEFAULT '{}'",
     "ALTER TABLE requests ADD COLUMN unpriced BIGINT NOT NULL DEFAULT 0",
     "ALTER TABLE requests ADD COLUMN story TEXT NOT NULL DEFAULT '[]'"),
]

_COLUMNS = (
    "id", "time", "client_format", "endpoint", "alias", "provider", "target", "status", "outcome", "error",
    "error_message", "input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens",
    "cost_usd", "latency_ms", "ttft_ms", "attempts", "attempts_json", "cache", "key", "team", "tags", "stream",
    "dropped_params", "request", "response", "findings", "saved_usd", "usage_estimated", "overhead_ms",
    "cost_breakdown", "unpriced", "story",
)
COLUMNS = _COLUMNS   # the columns in table order, as every backend writes and copies them
_INSERT = f"INSERT OR REPLACE INTO requests ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_ROW_PLACEHOLDERS = "(" + ", ".join("?" * len(_COLUMNS)) + ")"


def insert_rows_sql(count: int) -> str:
    """One INSERT for ``count`` rows. A whole batch in one statement means one trip into SQLite (and one release
    of the GIL) per batch, so the writer thread keeps up with a busy event loop."""
    return (f"INSERT OR REPLACE INTO requests ({', '.join(_COLUMNS)}) VALUES "
            + ", ".join([_ROW_PLACEHOLDERS] * count))


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the log database (creating and migrating it unless ``readonly``)."""
    if readonly:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        db.row_factory = sqlite3.Row
        return db
    db = open_state_db(path)
    db.row_factory = sqlite3.Row
    migrate(db)
    return db


def open_state_db(path: Path, *, wait_s: float = 30.0) -> sqlite3.Connection:
    """A connection to the state file in WAL mode, creating it if needed. Another process creating or migrating
    the same file at the same moment is waited for (up to ``wait_s``), never an error."""
    make_private(path)
    db = sqlite3.connect(path, timeout=wait_s, check_same_thread=False)
    deadline = time.monotonic() + wait_s
    while True:
        try:  # switching to WAL needs a moment alone with the file; SQLite does not wait for it by itself
            db.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                db.close()
                raise
            time.sleep(0.02)
    db.execute("PRAGMA synchronous=NORMAL")
    return db


DEFAULT_FOLDER = Path("~/.llmgw").expanduser()
_GROUP_OTHER = stat.S_IRWXG | stat.S_IRWXO


def make_private(path: Path) -> None:
    """Prepare ``path`` for a state database only its owner can read (see the module contract)."""
    folder = path.parent
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    elif folder.resolve() == DEFAULT_FOLDER.resolve():
        _tighten(folder, 0o700)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        for existing in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            _tighten(existing, 0o600)


def _tighten(path: Path, mode: int) -> None:
    """Take group and other access away from ``path`` (ours) if it has any; a file we cannot change is left."""
    with contextlib.suppress(OSError):
        if os.stat(path).st_mode & _GROUP_OTHER:
            os.chmod(path, mode)


def migrate(db: sqlite3.Connection) -> None:
    """Apply the migrations this database has not seen yet, each in its own transaction."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
        with db:
            db.execute("BEGIN IMMEDIATE")
            # Another process may have migrated while we waited for the lock.
            if db.execute("PRAGMA user_version").fetchone()[0] >= number:
                continue
            migration(db)
            db.execute(f"PRAGMA user_version = {number}")


_EMPTY_JSON = MappingProxyType({list: "[]", dict: "{}", tuple: "[]"})


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    if not value and value.__class__ in _EMPTY_JSON:   # most rows' tags, dropped params, findings, breakdown
        return _EMPTY_JSON[value.__class__]
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")  # already JSON, as it travelled
    return orjson.dumps(value).decode()


def row_values(row: dict[str, Any]) -> tuple[Any, ...]:
    """Turn an :meth:`Exchange.log_row` dict into the INSERT's parameters."""
    return (
        row["id"], row["time"], row["client_format"], row["endpoint"], row["alias"], row["provider"],
        row["target"], row["status"], row["outcome"], row["error"], row["error_message"], row["input_tokens"],
        row["output_tokens"], row["cached_tokens"], row["cache_write_tokens"], row["reasoning_tokens"],
        row["cost_usd"], row["latency_ms"], row["ttft_ms"], len(row["attempts"]), _dumps(row["attempts"]),
        row["cache"], row["key"], row["team"], _dumps(row["tags"]), int(row["stream"]),
        _dumps(row["dropped_params"]), _dumps(row["request"]), _dumps(row["response"]),
        _dumps(row.get("findings") or []), row.get("saved_usd", 0.0), int(bool(row.get("usage_estimated"))),
        row.get("overhead_ms"), _dumps(row.get("cost_breakdown") or {}), int(bool(row.get("unpriced"))),
        _dumps(row.get("story") or []),
    )


class LogWriter:
    """Batches rows into SQLite from a background thread; ``write`` never blocks the event loop.

    ``write`` turns the row into the INSERT's parameters at once (a tuple of strings and numbers, which the
    cyclic GC never scans, and no Python work left for the thread to do while it holds the GIL) and appends it
    to a deque (no lock, no thread wake-up per row); the thread wakes every ``max_delay_s``, takes what is
    queued then (``batch_size`` rows per transaction) and commits it; rows written meanwhile wait for the next
    wake-up, so a busy server commits once per tick, not back to back. A row is therefore in the database at
    most about ``max_delay_s`` after it was written, plus the commit time."""

    def __init__(self, path: Path, *, batch_size: int = 2000, max_delay_s: float = 0.05) -> None:
        self.path = path
        self._batch_size = batch_size
        self._max_delay_s = max_delay_s
        self._rows: collections.deque[tuple[Any, ...]] = collections.deque()
        self._stop = threading.Event()
        self._db = connect(path)
        # A batch's INSERT runs inside the transaction, so SQLite keeps a statement journal of the pages it changes;
        # past 64 KiB (a few rows with bodies) that journal spilled to a temporary file: a file made, written and
        # deleted for every batch. In memory, it costs the writer about an eighth less CPU per row.
        self._db.execute("PRAGMA temp_store=MEMORY")
        self._closed = False
        self._statements: dict[int, str] = {}  # INSERT text by row count
        self.written = 0
        self.commits = 0       # transactions committed
        self._thread = threading.Thread(target=self._run, name="llmgw-log-writer", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        """Rows written but not yet committed to the database."""
        return len(self._rows)

    def write(self, row: dict[str, Any]) -> None:
        """Queue one row; returns at once."""
        if self._closed:
            raise RuntimeError("log writer is closed")
        try:
            values = row_values(row)
        except (TypeError, ValueError) as exc:  # a body that is not JSON-serialisable: keep the row, drop bodies
            log.warning("request %s logged without its bodies: %s", row.get("id"), exc)
            values = row_values({**row, "request": None, "response": None, "attempts": [], "findings": []})
        self._rows.append(values)

    def close(self) -> None:
        """Flush every queued row, then stop the thread and close the database."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join()
        self._db.close()

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self._max_delay_s)
            queued = len(self._rows)      # what is queued now; on the way out, everything
            while queued > 0 or (stopping and self._rows):
                batch = []
                with contextlib.suppress(IndexError):
                    while len(batch) < self._batch_size:
                        batch.append(self._rows.popleft())
                queued -= len(batch)
                self._commit(batch)
            if stopping:
                return

    def _commit(self, batch: Sequence[tuple[Any, ...]]) -> None:
        for tries in range(5):
            try:
                with self._db:
                    for part in fixed_parts(batch, SQLITE_SIZES):
                        size = len(part)
                        sql = self._statements.get(size) or self._statements.setdefault(size, insert_rows_sql(size))
                        self._db.execute(sql, [value for values in part for value in values])
                self.written += len(batch)
                self.commits += 1
                return
            except sqlite3.OperationalError as exc:  # e.g. locked by another worker for longer than timeout
                log.warning("request log busy (%s), retrying %d", exc, tries + 1)
                time.sleep(0.1 * (tries + 1))
        log.error("could not write %d request-log rows to %s", len(batch), self.path)


def write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows synchronously (for fixtures and tools that are not on an event loop)."""
    db = connect(path)
    with db:
        db.executemany(_INSERT, [row_values(r) for r in rows])
    db.close()
