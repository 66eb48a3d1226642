"""Where the request log lives — a SQLite file or a PostgreSQL database — behind one small interface.

Contracts:
- :class:`LogSource` names a log: ``sqlite:///PATH`` or ``postgresql://USER@HOST:PORT/DB`` with the password as a
  :class:`~llmgw.profile.Secret` (``[state] password``). :meth:`LogSource.describe` never shows a password.
- :func:`open_reader` gives a :class:`LogReader` whatever the backend: ``query``/``count``/``find``/``find_all``/
  ``latest`` return rows that :func:`llmgw.store.log_read.record_from_row` and
  :func:`~llmgw.store.log_read.event_from_row` read (``sqlite3.Row`` or dicts, both indexed by column name), and
  ``report_db(since, until)`` a SQLite connection holding the ``requests`` rows of that window (and the minted
  keys' names) for the SQL of :mod:`llmgw.tools.report`: the file itself for SQLite, an in-memory copy of the
  window (without bodies) for PostgreSQL. It raises :class:`LogMissing` when a SQLite log does not exist yet and
  :class:`LogUnavailable` (one line, no secret) when a log cannot be opened.
- :func:`open_writer` gives the server's writer: :class:`~llmgw.store.log.LogWriter` or
  :class:`~llmgw.store.log_postgres.PostgresLogWriter` (which spools to ``log-spool.db`` in the state folder).
- Readers are blocking: call them from a thread when on an event loop. The PostgreSQL driver is imported only when
  a PostgreSQL log is used.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import log as request_log
from . import log_read
from .database import LogMissing, LogUnavailable, describe_url

if TYPE_CHECKING:
    from ..profile import Secret, StateConfig

SPOOL_NAME = "log-spool.db"
# what a report reads: every column but the bodies, the attempt log, the findings and the story
REPORT_COLUMNS = tuple(c for c in request_log.COLUMNS
                       if c not in ("request", "response", "attempts_json", "findings", "story", "dropped_params"))


@dataclass(frozen=True)
class LogSource:
    """A request log: ``url`` (``sqlite:///PATH`` or ``postgresql://…``) and the PostgreSQL password."""

    url: str
    password: Secret | None = None
    password_name: str = "state.password"   # what an error about the password calls it

    @classmethod
    def of(cls, state: StateConfig) -> LogSource:
        """The log a profile's ``[state]`` names."""
        return cls(state.url, state.password) if state.is_postgres else cls.file(state.db_path)

    @classmethod
    def file(cls, path: Path) -> LogSource:
        return cls(f"sqlite:///{path.expanduser()}")

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith(("postgresql://", "postgres://"))

    @property
    def path(self) -> Path:
        """The SQLite file (only for a ``sqlite:///`` source)."""
        return Path(self.url.removeprefix("sqlite:///")).expanduser()

    def describe(self) -> str:
        """The log for people: the file, or the url without its password."""
        if self.is_postgres:
            return describe_url(self.url)
        return str(self.path)

    def resolve_password(self) -> str | None:
        """The password's value, or :class:`LogUnavailable` naming the reference."""
        if self.password is None:
            return None
        from ..profile import SecretError

        try:
            return self.password.resolve()
        except SecretError as exc:
            raise LogUnavailable(f"{self.password_name}: {exc}") from None


Row = Any   # sqlite3.Row or dict: both indexed by column name


class LogReader(Protocol):
    source: LogSource

    def query(self, *, since: float | None = None, until: float | None = None, model: str | None = None,
              team: str | None = None, status: str | None = None, limit: int | None = 50) -> list[Row]: ...

    def count(self, *, since: float | None = None, until: float | None = None, model: str | None = None,
              team: str | None = None, status: str | None = None) -> int: ...

    def find(self, request_id: str) -> Row | None: ...

    def find_all(self, request_id: str, *, limit: int = 10) -> list[Row]: ...

    def latest(self, limit: int) -> list[Row]: ...

    def report_db(self, since: float | None, until: float | None) -> sqlite3.Connection: ...

    def close(self) -> None: ...

    def __enter__(self) -> LogReader: ...

    def __exit__(self, *exc: object) -> None: ...


class SQLiteLogReader:
    """The log in its SQLite file, opened read-only."""

    def __init__(self, source: LogSource) -> None:
        self.source = source
        if not source.path.exists():
            raise LogMissing(f"no request log at {source.path} yet")
        try:
            self._db = request_log.connect(source.path, readonly=True)
        except sqlite3.Error as exc:
            raise LogUnavailable(f"cannot open the request log at {source.path}: {exc}") from None

    def query(self, **filters: Any) -> list[Row]:
        return log_read.query(self._db, **filters)

    def count(self, **filters: Any) -> int:
        return log_read.count(self._db, **filters)

    def find(self, request_id: str) -> Row | None:
        return log_read.find(self._db, request_id)

    def find_all(self, request_id: str, *, limit: int = 10) -> list[Row]:
        return log_read.find_all(self._db, request_id, limit=limit)

    def latest(self, limit: int) -> list[Row]:
        return self._db.execute("SELECT * FROM requests ORDER BY time DESC LIMIT ?", (limit,)).fetchall()

    def report_db(self, since: float | None, until: float | None) -> sqlite3.Connection:
        return request_log.connect(self.source.path, readonly=True)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SQLiteLogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PostgresLogReader:
    """The log in PostgreSQL (migrated to the newest schema on opening)."""

    def __init__(self, source: LogSource, *, timeout_s: float = 5.0) -> None:
        from . import log_postgres as pg

        self.source = source
        self._pg = pg
        self._password = source.resolve_password()
        self._conn = pg.open_migrated(source.url, self._password, timeout_s=timeout_s)

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self._conn, *args, **kwargs)
        except self._pg.psycopg.Error as exc:
            raise LogUnavailable(f"cannot read the request log at {self.source.describe()}: "
                                 f"{self._pg.one_line(exc, self._password)}") from None

    def query(self, **filters: Any) -> list[Row]:
        return self._run(self._pg.query, **filters)

    def count(self, **filters: Any) -> int:
        return self._run(self._pg.count, **filters)

    def find(self, request_id: str) -> Row | None:
        rows = self.find_all(request_id, limit=2)
        return rows[0] if len(rows) == 1 else None

    def find_all(self, request_id: str, *, limit: int = 10) -> list[Row]:
        return self._run(self._pg.find_all, request_id, limit=limit)

    def latest(self, limit: int) -> list[Row]:
        return self._run(self._pg.latest, limit)

    def report_db(self, since: float | None, until: float | None) -> sqlite3.Connection:
        """An in-memory SQLite database with this window's rows (no bodies) and the minted keys."""
        from .keys import _schema as key_schema

        mem = sqlite3.connect(":memory:")
        mem.row_factory = sqlite3.Row
        request_log.migrate(mem)
        key_schema(mem)
        insert = (f"INSERT INTO requests ({', '.join(REPORT_COLUMNS)}) VALUES "
                  f"({', '.join('?' * len(REPORT_COLUMNS))})")

        def copy(conn: Any) -> None:
            chunk: list[tuple[Any, ...]] = []
            for values in self._pg.rows_between(conn, REPORT_COLUMNS, since, until):
                chunk.append(values)
                if len(chunk) >= 5000:
                    mem.executemany(insert, chunk)
                    chunk.clear()
            mem.executemany(insert, chunk)
            mem.executemany("INSERT INTO keys VALUES (?, ?, ?, ?, ?, ?, ?)", self._pg.key_rows(conn))

        with mem:
            self._run(copy)
        return mem

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> PostgresLogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_reader(source: LogSource) -> SQLiteLogReader | PostgresLogReader:
    """A reader of ``source`` (see the module contract for its errors)."""
    if source.is_postgres:
        from .log_postgres import DatabaseUnavailable

        try:
            return PostgresLogReader(source)
        except DatabaseUnavailable as exc:
            raise LogUnavailable(str(exc)) from None
    return SQLiteLogReader(source)


def latest_events(source: LogSource, limit: int, *, bodies: bool = False) -> list[dict[str, Any]]:
    """The newest ``limit`` logged requests as events (:func:`~llmgw.store.log_read.event_from_row`), oldest first;
    none without a log yet. Blocking: call it in a thread."""
    if limit <= 0:
        return []
    try:
        reader = open_reader(source)
    except LogMissing:
        return []
    try:
        rows = reader.latest(limit)
    finally:
        reader.close()
    return [log_read.event_from_row(row, bodies=bodies) for row in reversed(rows)]


def open_writer(state: StateConfig, **options: Any) -> Any:
    """The server's writer for ``state``: a :class:`~llmgw.store.log.LogWriter` on the SQLite file, or a
    :class:`~llmgw.store.log_postgres.PostgresLogWriter` spooling to the state folder. A PostgreSQL log that
    cannot be reached or prepared at start-up is :class:`LogUnavailable` (one line)."""
    if not state.is_postgres:
        return request_log.LogWriter(state.db_path, **options)
    from .log_postgres import DatabaseUnavailable, PostgresLogWriter

    source = LogSource.of(state)
    try:
        return PostgresLogWriter(state.url, source.resolve_password(), state.db_path.with_name(SPOOL_NAME),
                                 **options)
    except DatabaseUnavailable as exc:
        raise LogUnavailable(str(exc)) from None


def check(state: StateConfig) -> str | None:
    """Why the server could not open its PostgreSQL log (one line), or None: reachable and migrated, or SQLite."""
    if not state.is_postgres:
        return None
    try:
        open_reader(LogSource.of(state)).close()
    except LogUnavailable as exc:
        return str(exc)
    return None


def write_rows(source: LogSource, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows synchronously to either backend (fixtures and tools off the event loop)."""
    if not source.is_postgres:
        request_log.write_rows(source.path, rows)
        return
    from . import log_postgres as pg

    conn = pg.open_migrated(source.url, source.resolve_password())
    try:
        pg.write_batch(conn, [request_log.row_values(r) for r in rows])
    finally:
        conn.close()
