"""Minted keys in PostgreSQL: :class:`~llmgw.store.keys.KeyStore`'s interface over the ``meta``/``keys`` tables
that :func:`llmgw.store.log_postgres.migrate` creates (the SQLite tables' twins). The SQL differences stay here."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterable, Iterator

import psycopg

from .database import LogUnavailable
from .keys import PREFIX, SECRET_BYTES, KeyRecord, hash_secret
from .log_postgres import DatabaseUnavailable, connect, describe, migrate, one_line


@contextlib.contextmanager
def _errors(url: str) -> Iterator[None]:
    """A driver error as :class:`~llmgw.store.database.LogUnavailable` (one line): what the key reloader and the
    commands catch."""
    try:
        yield
    except psycopg.Error as exc:
        raise LogUnavailable(f"minted keys at {describe(url)}: {one_line(exc)}") from None


class PostgresKeyStore:
    """The minted keys in the PostgreSQL state database (driver errors after opening are
    :class:`~llmgw.store.database.LogUnavailable`)."""

    def __init__(self, url: str, password: str | None) -> None:
        # servers re-read the keys every few seconds: migrate only a database that has no key table yet
        self._db = connect(url, password)
        try:
            if self._db.execute("SELECT to_regclass('keys') AS t").fetchone()["t"] is None:
                migrate(self._db)
        except psycopg.Error as exc:
            self._db.close()
            raise DatabaseUnavailable(f"cannot prepare the minted keys at {describe(url)}:"
                                      f" {one_line(exc, password)}") from None
        self._url = url
        with _errors(url), self._db.transaction():
            self._db.execute("INSERT INTO meta VALUES ('key_salt', %s) ON CONFLICT (name) DO NOTHING",
                             (secrets.token_hex(16),))
            self.salt: str = self._db.execute("SELECT value FROM meta WHERE name = 'key_salt'").fetchone()["value"]

    def close(self) -> None:
        self._db.close()

    def create(self, team: str, name: str = "", expires: float | None = None) -> tuple[str, str]:
        """Mint a key; returns ``(id, secret)``. The secret is not kept anywhere."""
        secret = PREFIX + secrets.token_urlsafe(SECRET_BYTES)
        key_id = "key_" + secrets.token_hex(6)
        with _errors(self._url):
            self._db.execute("INSERT INTO keys (id, hash, team, name, created, expires)"
                             " VALUES (%s, %s, %s, %s, %s, %s)",
                             (key_id, hash_secret(self.salt, secret), team, name, time.time(), expires))
        return key_id, secret

    def matching(self, ident: str) -> list[dict[str, object]]:
        """The minted keys whose id is ``ident`` or, when none has that id, whose name is ``ident``."""
        rows = self.rows()
        return [r for r in rows if r["id"] == ident] or [r for r in rows if r["name"] == ident]

    def revoke(self, key_id: str) -> bool:
        """Revoke the key with id ``key_id``; False when there is no such active key."""
        with _errors(self._url):
            cur = self._db.execute("UPDATE keys SET revoked = %s WHERE id = %s AND revoked IS NULL",
                                   (time.time(), key_id))
        return cur.rowcount == 1

    def rows(self) -> list[dict[str, object]]:
        with _errors(self._url):
            found = self._db.execute("SELECT id, team, name, created, expires, revoked FROM keys"
                                     " ORDER BY created").fetchall()
        return [dict(r) for r in found]

    def hashed(self) -> Iterable[tuple[str, KeyRecord]]:
        """Every minted key as (hash, record)."""
        with _errors(self._url):
            found = self._db.execute("SELECT id, hash, team, name, expires, revoked FROM keys").fetchall()
        for r in found:
            yield r["hash"], KeyRecord(id=r["id"], team=r["team"], name=r["name"], expires=r["expires"],
                                       revoked=r["revoked"] is not None)

