"""Virtual keys: minted keys stored as salted hashes, profile keys hashed at start-up, lookup by hash only.

Contracts:
- A minted secret is ``sk-llmgw-`` + 40 URL-safe random characters, shown once by :meth:`KeyStore.create` and
  never stored: the ``keys`` table holds ``sha256(salt || secret)`` with a per-store random salt (table ``meta``).
- :meth:`KeyIndex.lookup` hashes the presented secret once and finds the key by that hash in a dict; it answers
  None for unknown, revoked and expired keys alike (the caller gives the same 401 for all).
- Minted keys live in the same SQLite file as the request log; the schema is owned here and migrated like it.
  With a postgresql:// ``[state] url`` they live in PostgreSQL (:mod:`llmgw.store.keys_postgres`):
  :func:`llmgw.store.key_backend.open_key_store` chooses.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..profile import Budget, KeyConfig, Profile, TeamConfig
from .log import open_state_db

PREFIX = "sk-llmgw-"
SECRET_BYTES = 30
MINTED_LENGTH = len(PREFIX) + 40   # the prefix and SECRET_BYTES random bytes in URL-safe base64


def could_be_minted(secret: str) -> bool:
    """Whether ``secret`` has the shape of a minted key (the only keys that can appear after start-up)."""
    return len(secret) == MINTED_LENGTH and secret.startswith(PREFIX)


@dataclass(frozen=True)
class KeyRecord:
    """Who a key is: its id (shown in logs), team, and the limits that apply to it."""

    id: str
    team: str
    name: str = ""
    rpm: int | None = None
    tpm: int | None = None
    budget: Budget = field(default_factory=Budget)
    models: tuple[str, ...] | None = None
    expires: float | None = None
    revoked: bool = False


def _schema(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("""CREATE TABLE IF NOT EXISTS keys (
        id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, team TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL, expires REAL, revoked REAL)""")


def hash_secret(salt: str, secret: str) -> str:
    return hashlib.sha256(salt.encode() + secret.encode()).hexdigest()


class KeyStore:
    """The minted keys in the state database."""

    def __init__(self, path: Path) -> None:
        self._db = open_state_db(path)
        with self._db:
            _schema(self._db)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('key_salt', ?)", (secrets.token_hex(16),))
        self.salt: str = self._db.execute("SELECT value FROM meta WHERE name = 'key_salt'").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def create(self, team: str, name: str = "", expires: float | None = None) -> tuple[str, str]:
        """Mint a key; returns ``(id, secret)``. The secret is not kept anywhere."""
        secret = PREFIX + secrets.token_urlsafe(SECRET_BYTES)
        key_id = "key_" + secrets.token_hex(6)
        with self._db:
            self._db.execute("INSERT INTO keys (id, hash, team, name, created, expires) VALUES (?, ?, ?, ?, ?, ?)",
                             (key_id, hash_secret(self.salt, secret), team, name, time.time(), expires))
        return key_id, secret

    def matching(self, ident: str) -> list[dict[str, object]]:
        """The minted keys whose id is ``ident`` or, when none has that id, whose name is ``ident``."""
        rows = self.rows()
        return [r for r in rows if r["id"] == ident] or [r for r in rows if r["name"] == ident]

    def revoke(self, key_id: str) -> bool:
        """Revoke the key with id ``key_id``; False when there is no such active key."""
        with self._db:
            cur = self._db.execute("UPDATE keys SET revoked = ? WHERE id = ? AND revoked IS NULL",
                                   (time.time(), key_id))
        return cur.rowcount == 1

    def rows(self) -> list[dict[str, object]]:
        cur = self._db.execute("SELECT id, team, name, created, expires, revoked FROM keys ORDER BY created")
        return [dict(zip(("id", "team", "name", "created", "expires", "revoked"), r, strict=True)) for r in cur]

    def hashed(self) -> Iterable[tuple[str, KeyRecord]]:
        """Every minted key as (hash, record)."""
        for key_id, digest, team, name, expires, revoked in self._db.execute(
                "SELECT id, hash, team, name, expires, revoked FROM keys"):
            yield digest, KeyRecord(id=key_id, team=team, name=name, expires=expires, revoked=revoked is not None)


def key_names(db: sqlite3.Connection) -> dict[str, str]:
    """Minted keys' names by id, for reports (``{}`` when the database has no keys table yet)."""
    try:
        rows = db.execute("SELECT id, name FROM keys WHERE name != ''").fetchall()
    except sqlite3.OperationalError:
        return {}
    return {str(key_id): str(name) for key_id, name in rows}


class KeyIndex:
    """All keys a server accepts, by hash: the profile's and the minted ones."""

    def __init__(self, salt: str, records: dict[str, KeyRecord], teams: dict[str, TeamConfig]) -> None:
        self._salt = salt
        self._records = records
        self.teams = teams

    @classmethod
    def load(cls, profile: Profile, store: KeyStore) -> KeyIndex:
        """Resolve and hash the profile's keys; read the minted ones (whose team must still exist)."""
        records: dict[str, KeyRecord] = {}
        for digest, record in store.hashed():
            if record.team in profile.teams:
                records[digest] = record
        for key in profile.keys.values():
            records[hash_secret(store.salt, key.key.resolve())] = _from_config(key)
        return cls(store.salt, records, dict(profile.teams))

    def replace(self, fresh: KeyIndex) -> None:
        """Take over another index's keys (a refresh), in one assignment."""
        self._records = fresh._records

    def lookup(self, secret: str, now: float | None = None) -> KeyRecord | None:
        record = self._records.get(hash_secret(self._salt, secret))
        if record is None or record.revoked:
            return None
        if record.expires is not None and (time.time() if now is None else now) >= record.expires:
            return None
        return record


def _from_config(key: KeyConfig) -> KeyRecord:
    return KeyRecord(id=key.name, team=key.team, name=key.name, rpm=key.rpm, tpm=key.tpm, budget=key.budget,
                     models=key.models)
