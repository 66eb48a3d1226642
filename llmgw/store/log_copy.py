"""Copying a request log and its minted keys from one backend to another (``llmgw db migrate``).

Contracts:
- :func:`copy_log` reads the source's ``requests`` rows in time order, in batches, and writes each batch to the
  target in one transaction, replacing a row with the same id (so copying again, or after an interrupted copy,
  gives the same table: idempotent). Every column is copied as it is; the target is migrated first.
- Minted keys are copied with the source's salt: their hashes are only valid with it. A target without minted keys
  takes the source's salt; a target whose keys were hashed with another salt is refused before anything is
  copied (:class:`CopyError`), since merging the two would invalidate one side's keys.
- Blocking; a source that does not exist is :class:`~llmgw.store.log_backend.LogMissing`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from . import log as request_log
from .log_backend import LogMissing, LogSource, LogUnavailable

_KEY_COLUMNS = ("id", "hash", "team", "name", "created", "expires", "revoked")


class CopyError(Exception):
    """The copy cannot be done as asked; one line."""


@dataclass
class CopyCounts:
    """What :func:`copy_log` did."""

    requests: int = 0          # rows read from the source and written
    new_requests: int = 0      # rows the target did not have before
    keys: int = 0
    target_total: int = 0      # rows in the target afterwards


class _Side:
    """One end of a copy: its rows, keys and salt, and how to write them."""

    def __init__(self, source: LogSource, *, create: bool) -> None:
        self.source = source
        self.pg: Any = None
        if source.is_postgres:
            from . import log_postgres as pg

            self.pg = pg
            try:
                self.conn: Any = pg.open_migrated(source.url, source.resolve_password())
            except pg.DatabaseUnavailable as exc:
                raise LogUnavailable(str(exc)) from None
        else:
            if not create and not source.path.exists():
                raise LogMissing(f"no request log at {source.path}")
            self.conn = request_log.connect(source.path)   # an older log is migrated first: every column is read
            if create:
                from .keys import _schema

                with self.conn:
                    _schema(self.conn)

    def close(self) -> None:
        self.conn.close()

    def count(self) -> int:
        if self.pg is not None:
            return int(self.conn.execute("SELECT COUNT(*) AS n FROM requests").fetchone()["n"])
        return int(self.conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0])

    def rows(self, batch: int) -> Iterator[list[tuple[Any, ...]]]:
        """Every row, all columns, in time order, ``batch`` at a time."""
        if self.pg is not None:
            chunk: list[tuple[Any, ...]] = []
            for values in self.pg.rows_between(self.conn, request_log.COLUMNS, None, None, chunk=batch):
                chunk.append(tuple(values))
                if len(chunk) >= batch:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk
            return
        cur = self.conn.execute(f"SELECT {', '.join(request_log.COLUMNS)} FROM requests ORDER BY time, id")
        cur.row_factory = None
        while chunk := cur.fetchmany(batch):
            yield [tuple(r) for r in chunk]

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if self.pg is not None:
            self.pg.write_batch(self.conn, rows)
            return
        with self.conn:
            self.conn.executemany(request_log._INSERT, rows)

    def salt(self) -> str | None:
        sql = "SELECT value FROM meta WHERE name = 'key_salt'"
        try:
            found = self.conn.execute(sql).fetchone()
        except sqlite3.OperationalError:   # a log that never had minted keys
            return None
        if found is None:
            return None
        return str(found["value"] if self.pg is not None else found[0])

    def keys(self) -> list[tuple[Any, ...]]:
        sql = f"SELECT {', '.join(_KEY_COLUMNS)} FROM keys ORDER BY created"
        if self.pg is not None:
            return [tuple(r.values()) for r in self.conn.execute(sql).fetchall()]
        try:
            return [tuple(r) for r in self.conn.execute(sql).fetchall()]
        except sqlite3.OperationalError:
            return []

    def write_keys(self, salt: str, keys: Sequence[tuple[Any, ...]]) -> None:
        columns = ", ".join(_KEY_COLUMNS)
        if self.pg is not None:
            with self.conn.transaction():
                self.conn.execute("INSERT INTO meta VALUES ('key_salt', %s) ON CONFLICT (name) DO UPDATE"
                                  " SET value = EXCLUDED.value", (salt,))
                with self.conn.cursor() as cur:
                    cur.executemany(f"INSERT INTO keys ({columns}) VALUES ({', '.join(['%s'] * 7)})"
                                    " ON CONFLICT (id) DO UPDATE SET revoked = EXCLUDED.revoked,"
                                    " expires = EXCLUDED.expires, name = EXCLUDED.name", keys)
            return
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('key_salt', ?)", (salt,))
            self.conn.executemany(f"INSERT OR REPLACE INTO keys ({columns}) VALUES ({', '.join('?' * 7)})", keys)


def copy_log(source: LogSource, target: LogSource, *, batch: int = 5000,
             progress: Callable[[int], None] | None = None) -> CopyCounts:
    """Copy ``source``'s request log and minted keys into ``target`` (see the module contract); ``progress`` is
    called with the number of rows copied so far after each batch."""
    if source.url == target.url:
        raise CopyError("--from and --to name the same database")
    src = _Side(source, create=False)
    try:
        dst = _Side(target, create=True)
    except BaseException:
        src.close()
        raise
    counts = CopyCounts()
    try:
        keys = src.keys()
        salt = src.salt()
        if keys and salt is not None:
            theirs, existing = dst.salt(), dst.keys()
            if existing and theirs != salt:
                raise CopyError(f"{target.describe()} already has {len(existing)} minted keys hashed with another"
                                " salt: its keys and the source's cannot live in one store (revoke and re-mint"
                                " one side's keys, or copy into an empty database)")
            dst.write_keys(salt, keys)
            counts.keys = len(keys)
        before = dst.count()
        for rows in src.rows(batch):
            dst.write(rows)
            counts.requests += len(rows)
            if progress is not None:
                progress(counts.requests)
        counts.target_total = dst.count()
        counts.new_requests = counts.target_total - before
    except sqlite3.Error as exc:
        raise CopyError(f"copy failed: {exc}") from None
    except Exception as exc:
        if src.pg is not None or dst.pg is not None:
            pg = src.pg or dst.pg
            if isinstance(exc, pg.psycopg.Error):
                raise CopyError(f"copy failed: {pg.one_line(exc)}") from None
        raise
    finally:
        with contextlib.suppress(Exception):
            src.close()
        with contextlib.suppress(Exception):
            dst.close()
    return counts
