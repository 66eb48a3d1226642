"""The request log, the minted keys and the spend in PostgreSQL (``[state] url = "postgresql://…"``).

Contracts:
- The schema is :data:`llmgw.store.log.PG_MIGRATIONS` (the SQLite migrations' twin, one entry per version), applied
  in order by :func:`migrate` under an advisory lock and recorded in ``llmgw_schema``; the ``requests`` table has
  exactly the SQLite table's columns in the same order, and the minted keys' ``meta``/``keys`` tables those of
  :mod:`llmgw.store.keys`.
- Every SQL difference from SQLite (``%s`` placeholders, ``ON CONFLICT`` for ``INSERT OR REPLACE``) stays in this
  module and :mod:`llmgw.store.keys_postgres`; callers go through :mod:`llmgw.store.log_backend`.
- :class:`PostgresLogWriter` has :class:`~llmgw.store.log.LogWriter`'s interface: ``write`` never blocks (it
  appends to a deque); a thread commits batches, each one ``COPY`` (multi-row upserts when a row is already
  there: writing is idempotent by request id). While the database cannot be reached, rows
  go to a bounded on-disk :class:`~llmgw.store.spool.Spool` and are written when it is back (nothing lost, also
  across a restart of the gateway); when the spool is full, further rows are dropped, counted in ``dropped`` and
  reported on the server log at ERROR. ``backlog`` is the rows queued in memory plus those spooled.
- Errors name the database as :func:`describe` shows it: never a password.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row

from .batches import fixed_parts
from .database import describe_url as describe
from .log import COLUMNS, PG_MIGRATIONS, row_values
from .log_read import ID_PREFIX, where_clause
from .spool import Spool

log = logging.getLogger("llmgw.log")

_LOCK_ID = 0x6C6C6D6777   # "llmgw": the advisory lock that serialises migrations across processes
KEY_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS keys (id TEXT COLLATE \"C\" PRIMARY KEY, hash TEXT NOT NULL UNIQUE,"
    " team TEXT NOT NULL, name TEXT NOT NULL DEFAULT '', created DOUBLE PRECISION NOT NULL,"
    " expires DOUBLE PRECISION, revoked DOUBLE PRECISION)",
)
_QUOTED = ", ".join(f'"{c}"' for c in COLUMNS)
_ROW = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
_UPSERT_TAIL = " ON CONFLICT (id) DO UPDATE SET " + ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in COLUMNS[1:])
_STATEMENT_SIZES = (500, 100, 20, 5, 1)   # rows per INSERT; 500 x 36 parameters stay under PostgreSQL's 65,535


class DatabaseUnavailable(Exception):
    """PostgreSQL cannot be reached or refused us; the message is one line and names no password."""


def one_line(exc: BaseException, password: str | None = None) -> str:
    """A driver error as one line (PostgreSQL's messages span several), with no password in it."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text.replace(password, "***") if password else text


def connect(url: str, password: str | None = None, *, timeout_s: float = 5.0) -> psycopg.Connection[Any]:
    """A connection in autocommit mode whose rows are dicts, or :class:`DatabaseUnavailable`."""
    try:
        return psycopg.connect(url, password=password, connect_timeout=max(1, round(timeout_s)),
                               autocommit=True, row_factory=dict_row, application_name="llmgw",  # type: ignore[arg-type]
                               keepalives=1, keepalives_idle=10, keepalives_interval=3, keepalives_count=3)
    except (psycopg.Error, ValueError) as exc:
        raise DatabaseUnavailable(f"cannot connect to the request log at {describe(url)}: "
                                  f"{one_line(exc, password)}") from None


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Bring the log and key tables up to the newest schema (each version in its own transaction, under an
    advisory lock so that processes starting together take turns); returns the version."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute("CREATE TABLE IF NOT EXISTS llmgw_schema (name TEXT PRIMARY KEY, version BIGINT NOT NULL)")
        for statement in KEY_SCHEMA:
            conn.execute(statement)
    version = 0
    for number, statements in enumerate(PG_MIGRATIONS, start=1):
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            found = conn.execute("SELECT version FROM llmgw_schema WHERE name = 'requests'").fetchone()
            version = int(found["version"]) if found else 0
            if version >= number:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO llmgw_schema VALUES ('requests', %s) ON CONFLICT (name) DO UPDATE"
                         " SET version = EXCLUDED.version", (number,))
            version = number
    return version


def open_migrated(url: str, password: str | None = None, *, timeout_s: float = 5.0) -> psycopg.Connection[Any]:
    """:func:`connect` then :func:`migrate`; any failure is :class:`DatabaseUnavailable`."""
    conn = connect(url, password, timeout_s=timeout_s)
    try:
        migrate(conn)
    except psycopg.Error as exc:
        conn.close()
        raise DatabaseUnavailable(f"cannot prepare the request log at {describe(url)}: "
                                  f"{one_line(exc, password)}") from None
    return conn


def _clean(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL characters (SQLite's can): they become U+FFFD."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


def _unique(batch: Sequence[tuple[Any, ...]]) -> Sequence[tuple[Any, ...]]:
    """One row per id, the last one written winning (an upsert may not touch a row twice in one statement)."""
    ids = {values[0] for values in batch}
    if len(ids) == len(batch):
        return batch
    return list({values[0]: values for values in batch}.values())


_COPY = f"COPY requests ({_QUOTED}) FROM STDIN"


def write_batch(conn: psycopg.Connection[Any], batch: Sequence[tuple[Any, ...]]) -> None:
    """Write ``batch`` in one transaction as cheaply as PostgreSQL allows: one COPY (far less work for the server
    than an INSERT with parameters); when a row's id is already there (a spooled row written before, a rewrite),
    the whole batch is written again with :func:`upsert`, which replaces it."""
    try:
        with conn.transaction(), conn.cursor() as cur, cur.copy(_COPY) as copy:
            for values in batch:
                copy.write_row([_clean(v) for v in values])
    except psycopg.errors.UniqueViolation:
        upsert(conn, batch)


def upsert(conn: psycopg.Connection[Any], batch: Sequence[tuple[Any, ...]]) -> None:
    """Write ``batch`` (INSERT parameters in :data:`~llmgw.store.log.COLUMNS` order) in one transaction; a row
    whose id is already there is replaced, as SQLite's ``INSERT OR REPLACE`` does."""
    batch = _unique(batch)
    with conn.transaction(), conn.cursor() as cur:
        for part in fixed_parts(batch, _STATEMENT_SIZES):
            sql = f"INSERT INTO requests ({_QUOTED}) VALUES " + ", ".join([_ROW] * len(part)) + _UPSERT_TAIL
            cur.execute(sql, [_clean(v) for values in part for v in values], prepare=True)


# --- reading ---------------------------------------------------------------------------------------------------


def _pg(sql: str) -> str:
    """The shared WHERE clauses (:func:`llmgw.store.log_read.where_clause`) use ``?``; psycopg takes ``%s``."""
    return sql.replace("?", "%s")


def _where_of(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    """:func:`llmgw.store.log_read.where_clause` for the filters of :func:`query` and :func:`count`."""
    return where_clause(filters.get("since"), filters.get("until"), filters.get("model"), filters.get("team"),
                        filters.get("status"))


def query(conn: psycopg.Connection[Any], *, limit: int | None = 50, **filters: Any) -> list[dict[str, Any]]:
    """:func:`llmgw.store.log_read.query` against PostgreSQL (rows are dicts)."""
    where, params = _where_of(filters)
    sql = f"SELECT * FROM requests{_pg(where)} ORDER BY time DESC"
    if limit is not None:
        sql += " LIMIT %s"
        params.append(limit)
    return conn.execute(sql, params).fetchall()


def count(conn: psycopg.Connection[Any], **filters: Any) -> int:
    """:func:`llmgw.store.log_read.count` against PostgreSQL."""
    where, params = _where_of(filters)
    return int(conn.execute(f"SELECT COUNT(*) AS n FROM requests{_pg(where)}", params).fetchone()["n"])


def find_all(conn: psycopg.Connection[Any], request_id: str, *, limit: int = 10) -> list[dict[str, Any]]:
    """:func:`llmgw.store.log_read.find_all` against PostgreSQL (``id`` compares bytewise, as in SQLite)."""
    candidates = [request_id] if request_id.startswith(ID_PREFIX) else [request_id, ID_PREFIX + request_id]
    candidates = [_clean(c) for c in candidates]
    for candidate in candidates:
        row = conn.execute("SELECT * FROM requests WHERE id = %s", (candidate,)).fetchone()
        if row is not None:
            return [row]
    if not request_id:
        return []
    clauses = " OR ".join("(id >= %s AND id < %s)" for _ in candidates)
    params: list[Any] = [v for c in candidates for v in (c, c + "\x7f")]
    return conn.execute(f"SELECT * FROM requests WHERE {clauses} ORDER BY time DESC LIMIT %s",
                        [*params, limit]).fetchall()


def latest(conn: psycopg.Connection[Any], limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` rows, newest first."""
    return conn.execute("SELECT * FROM requests ORDER BY time DESC LIMIT %s", (limit,)).fetchall()


def rows_between(conn: psycopg.Connection[Any], columns: Sequence[str], since: float | None,
                 until: float | None, *, chunk: int = 5000) -> Iterator[tuple[Any, ...]]:
    """``columns`` of the rows logged in ``[since, until)`` (either end open when None), in time order, fetched
    ``chunk`` rows at a time through a server-side cursor."""
    where, params = [], []
    if since is not None:
        where.append("time >= %s")
        params.append(since)
    if until is not None:
        where.append("time < %s")
        params.append(until)
    sql = (f"SELECT {', '.join(chr(34) + c + chr(34) for c in columns)} FROM requests"
           + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY time, id")
    with conn.transaction(), conn.cursor(name="llmgw_rows", row_factory=tuple_row) as cur:
        cur.itersize = chunk
        cur.execute(sql, params)
        yield from cur


def key_rows(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """Every minted key as (id, hash, team, name, created, expires, revoked)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute("SELECT id, hash, team, name, created, expires, revoked FROM keys"
                           " ORDER BY created").fetchall()


# --- writing ---------------------------------------------------------------------------------------------------


class PostgresLogWriter:
    """Batches rows into PostgreSQL from a background thread; ``write`` never blocks the event loop (see the
    module contract for the spool)."""

    def __init__(self, url: str, password: str | None, spool_path: Path, *, batch_size: int = 2000,
                 max_delay_s: float = 0.05, spool_rows: int = 200_000, retry_s: float = 1.0,
                 connect_timeout_s: float = 3.0, connect_now: bool = True) -> None:
        self.url = url
        self.path = spool_path        # what the server names as "the request log" on disk: the spool
        self._password = password
        self._batch_size = batch_size
        self._max_delay_s = max_delay_s
        self._retry_s = retry_s
        self._timeout_s = connect_timeout_s
        self._rows: collections.deque[tuple[Any, ...]] = collections.deque()
        self._stop = threading.Event()
        self._closed = False
        self._conn: psycopg.Connection[Any] | None = None
        self._down_since: float | None = None
        self._next_try = 0.0
        self._spool = Spool(spool_path, spool_rows)
        self._spooled = self._spool.count()
        self.written = 0
        self.dropped = 0
        self._drain_s = 10.0
        if connect_now:   # a wrong url or password is an error at start-up, not a spool filling up
            self._conn = open_migrated(url, password, timeout_s=connect_timeout_s)
        self._thread = threading.Thread(target=self._run, name="llmgw-log-writer", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        """Rows written but not yet committed (in memory)."""
        return len(self._rows)

    @property
    def backlog(self) -> int:
        """Rows not in the database yet: queued in memory plus spooled on disk."""
        return len(self._rows) + self._spooled

    def write(self, row: dict[str, Any]) -> None:
        """Queue one row; returns at once."""
        if self._closed:
            raise RuntimeError("log writer is closed")
        try:
            values = row_values(row)
        except (TypeError, ValueError) as exc:
            log.warning("request %s logged without its bodies: %s", row.get("id"), exc)
            values = row_values({**row, "request": None, "response": None, "attempts": [], "findings": []})
        self._rows.append(values)

    def close(self, drain_s: float = 10.0) -> None:
        """Write every queued row (to PostgreSQL, else to the spool), spend up to ``drain_s`` writing spooled
        rows, then stop the thread. What is still spooled is written by the next writer to start."""
        if self._closed:
            return
        self._closed = True
        self._drain_s = drain_s
        self._stop.set()
        self._thread.join()
        if self._conn is not None:
            self._conn.close()
        self._spool.close()

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self._max_delay_s)
            try:
                self._cycle()
                if self._spooled:
                    self._drain(time.monotonic() + (self._drain_s if stopping else 1.0))
            except Exception:   # the thread must live on: a bug here must not silently end the request log
                log.exception("request-log writer error")
            if stopping and not self._rows:
                return

    def _cycle(self) -> None:
        while self._rows:
            batch: list[tuple[Any, ...]] = []
            with contextlib.suppress(IndexError):
                while len(batch) < self._batch_size:
                    batch.append(self._rows.popleft())
            if not self._insert(batch):
                self._to_spool(batch)

    def _drain(self, deadline: float) -> None:
        """Write spooled rows (oldest first) while the database answers, until ``deadline``."""
        while time.monotonic() < deadline:
            token, batch = self._spool.peek(self._batch_size)
            if not batch:
                break
            if not self._insert(batch):
                break
            self._spool.remove(token)
        self._spooled = self._spool.count()

    def _connection(self) -> psycopg.Connection[Any] | None:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        now = time.monotonic()
        if now < self._next_try:
            return None
        try:
            self._conn = open_migrated(self.url, self._password, timeout_s=self._timeout_s)
        except DatabaseUnavailable as exc:
            self._next_try = now + self._retry_s
            self._outage(str(exc))
            return None
        if self._down_since is not None:
            log.warning("request log: %s is reachable again; writing the %d spooled rows", describe(self.url),
                        self._spooled)
            self._down_since = None
        return self._conn

    def _outage(self, why: str) -> None:
        if self._down_since is None:
            self._down_since = time.time()
            log.error("request log unreachable (%s); spooling rows to %s until it is back", why, self.path)

    def _insert(self, batch: Sequence[tuple[Any, ...]]) -> bool:
        conn = self._connection()
        if conn is None:
            return False
        try:
            write_batch(conn, batch)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:   # the connection, not the rows
            with contextlib.suppress(psycopg.Error):
                conn.close()
            self._conn = None
            self._next_try = time.monotonic() + self._retry_s
            self._outage(one_line(exc, self._password))
            return False
        except psycopg.Error as exc:   # a row PostgreSQL refuses: keep the others
            log.error("request log refused a batch of %d rows (%s); writing them one by one", len(batch),
                      one_line(exc, self._password))
            for values in batch:
                try:
                    upsert(conn, [values])
                except psycopg.Error as one:
                    self.dropped += 1
                    log.error("request %s not logged: %s", values[0], one_line(one, self._password))
        self.written += len(batch)
        return True

    def _to_spool(self, batch: Sequence[tuple[Any, ...]]) -> None:
        try:
            stored = self._spool.put(batch)
        except Exception as exc:   # a full disk, an unwritable folder: the rows have nowhere to go
            stored = 0
            log.error("request log spool %s cannot be written: %s", self.path, exc)
        self._spooled = self._spool.count() if stored else self._spooled
        lost = len(batch) - stored
        if lost:
            self.dropped += lost
            log.error("REQUEST-LOG ROWS DROPPED: the spool %s is full (%d rows) while %s is unreachable: %d rows"
                      " dropped now, %d in all", self.path, self._spool.max_rows, describe(self.url), lost,
                      self.dropped)
