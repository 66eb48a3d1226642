"""Where the minted keys live: the SQLite state file or PostgreSQL, chosen by the profile's ``[state]``.

Contract: :func:`open_key_store` gives a :class:`~llmgw.store.keys.KeyStore` or a
:class:`~llmgw.store.keys_postgres.PostgresKeyStore` (the same interface); the PostgreSQL driver is imported only
for a postgresql:// state, and a database that cannot be reached is a one-line
:class:`~llmgw.store.database.LogUnavailable`.
"""

from __future__ import annotations

from ..profile import StateConfig
from .database import LogUnavailable
from .keys import KeyStore


def open_key_store(state: StateConfig) -> KeyStore:
    """The minted keys a profile's ``[state]`` names: in the SQLite file, or in PostgreSQL."""
    if not state.is_postgres:
        return KeyStore(state.db_path)
    from .keys_postgres import PostgresKeyStore
    from .log_backend import LogSource
    from .log_postgres import DatabaseUnavailable

    try:
        return PostgresKeyStore(state.url, LogSource.of(state).resolve_password())  # type: ignore[return-value]
    except DatabaseUnavailable as exc:
        raise LogUnavailable(str(exc)) from None
