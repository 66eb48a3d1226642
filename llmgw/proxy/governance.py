"""Wiring of keys and shared state for a running server: opening them, keeping them fresh, seeding budgets.

Contracts:
- ``open_keys`` reads the minted keys and hashes the profile's (blocking: call it in a thread).
- ``refresh_keys`` re-reads minted keys every ``interval_s`` so that ``llmgw keys create``/``revoke`` take effect
  on a running server within seconds.
  It asks for the reloader each time: a profile reload replaces it with the new profile's.
- :class:`KeyReloader` makes a freshly minted key work on its very first request: a request with a key the index
  does not know (and shaped like a minted one) waits for a re-read of the key store that *starts after it
  arrived*, then is looked up again. Re-reads run in a thread, one at a time, at most one per ``min_interval_s``
  however many unknown keys arrive (concurrent misses share one re-read), so a client sending made-up keys can
  make a request wait at most ``min_interval_s`` plus one read, and the database sees at most one read per
  interval from misses.
- ``scrubber(profile)`` is the one :class:`~llmgw.scrub.Scrubber` of a running server: every secret the profile
  configures, resolved (provider keys, custom provider header values and base-URL passwords, the admin key, the
  profile's keys) and the shared-state URL's password.
- ``open_shared_state`` gives Redis when ``[state] shared`` is set, a SQLite file beside the request log for
  several workers on one machine, else the in-process store; budget counters
  that the store does not have yet start from the spend already in the request log (the log is the ledger).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime

from ..profile import Profile, SecretError
from ..scrub import Scrubber, url_password
from ..stages.limits import budget_counter, periods
from ..store.key_backend import open_key_store
from ..store.keys import KeyIndex, could_be_minted
from ..store.log_backend import LogSource, LogUnavailable
from ..store.shared import MemoryState, SharedState, StateUnavailable

log = logging.getLogger("llmgw.proxy.governance")


def open_keys(profile: Profile) -> KeyIndex:
    store = open_key_store(profile.state)   # the SQLite file or PostgreSQL
    try:
        return KeyIndex.load(profile, store)
    finally:
        store.close()


class KeyReloader:
    """Re-reads of the key store into ``index``: periodic, and on demand for unknown keys (see the module
    contract). ``load`` is blocking and runs in a thread."""

    def __init__(self, index: KeyIndex, load: Callable[[], KeyIndex], *, min_interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.index = index
        self.min_interval_s = min_interval_s
        self.reads = 0                     # re-reads started (periodic and on demand)
        self._load = load
        self._clock = clock
        self._lock = asyncio.Lock()
        self._last_start = float("-inf")

    async def reload(self) -> None:
        """Re-read the key store now (after any re-read in progress); a failure is logged, the old keys kept."""
        async with self._lock:
            await self._read()

    async def fresh(self, secret: str | None) -> None:
        """Return once a re-read that started after this call has finished, if ``secret`` could be a minted key
        (otherwise at once). Re-reads are spaced at least ``min_interval_s`` apart."""
        if not secret or not could_be_minted(secret):
            return
        wanted = self.reads + 1
        async with self._lock:
            if self.reads >= wanted:  # a re-read started after we arrived, and has finished: it is enough
                return
            wait = self._last_start + self.min_interval_s - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._read()

    async def _read(self) -> None:
        self.reads += 1
        self._last_start = self._clock()
        try:
            fresh = await asyncio.to_thread(self._load)
        except (sqlite3.Error, OSError, LogUnavailable) as exc:
            log.warning("could not re-read keys: %s", exc)
            return
        self.index.replace(fresh)


async def refresh_keys(reloader: Callable[[], KeyReloader | None], interval_s: float = 2.0) -> None:
    """Re-read the key store every ``interval_s`` until cancelled, through the reloader ``reloader()`` returns then
    (the serving profile's, which a profile reload replaces; None: an open proxy, nothing to read)."""
    while True:
        await asyncio.sleep(interval_s)
        current = reloader()
        if current is not None:
            await current.reload()


def scrubber(profile: Profile) -> Scrubber:
    """The scrubber of every secret ``profile`` configures (see the module contract)."""
    values: list[str | None] = []
    for _path, secret in profile.secrets():
        try:
            values.append(secret.resolve())
        except SecretError:
            continue
    for provider in profile.providers.values():
        values.extend(provider.headers.values())
        values.append(url_password(provider.base_url))
    values.append(url_password(profile.state.shared))
    values.append(url_password(profile.state.url))
    return Scrubber(values)


def _spend_so_far(profile: Profile, now: float) -> dict[str, float]:
    """Spend per budget counter for the current day and month, from the request log (a PostgreSQL log is read
    through a copy of this month's rows: :meth:`~llmgw.store.log_backend.LogReader.report_db`)."""
    path = profile.state.db_path
    if not profile.state.is_postgres and not path.exists():
        return {}
    owners = [("team", name) for name, team in profile.teams.items() if team.budget.daily or team.budget.monthly]
    owners += [("key", name) for name, key in profile.keys.items() if key.budget.daily or key.budget.monthly]
    out: dict[str, float] = {}
    if not owners:
        return out
    with contextlib.closing(_month_db(profile, now)) as db:
        for _, suffix, _resets, _ttl in periods(now):
            start = _period_start(suffix)
            for column, name in owners:
                row = db.execute(f"SELECT COALESCE(SUM(MAX(cost_usd, 0)), 0) FROM requests"   # never below 0
                                 f" WHERE {column} = ? AND time >= ?", (name, start)).fetchone()
                out[budget_counter(f"{column}:{name}", suffix)] = float(row[0])
    return out


def _month_db(profile: Profile, now: float) -> sqlite3.Connection:
    """The log to total past spend in: the SQLite file, or this month's rows of the PostgreSQL log."""
    if not profile.state.is_postgres:
        return sqlite3.connect(f"file:{profile.state.db_path}?mode=ro", uri=True)
    from ..store.log_backend import open_reader

    start = min(_period_start(suffix) for _, suffix, _resets, _ttl in periods(now))
    reader = open_reader(LogSource.of(profile.state))
    try:
        return reader.report_db(start, None)
    finally:
        reader.close()


def _period_start(suffix: str) -> float:
    kind, _, value = suffix.partition(":")
    fmt = "%Y-%m-%d" if kind == "day" else "%Y-%m"
    return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()


async def open_shared_state(profile: Profile) -> SharedState:
    if profile.state.shared:
        from ..store.shared_redis import RedisState

        state: SharedState = RedisState(profile.state.shared)
    elif profile.state.is_postgres:   # every gateway on this database shares one budget and one rate window
        from ..store.shared_postgres import PostgresState

        state = PostgresState(profile.state.url, LogSource.of(profile.state).resolve_password())
    elif profile.server.workers > 1:  # several processes on one machine share a SQLite file
        from ..store.shared_sqlite import SQLiteState

        state = SQLiteState(profile.state.db_path.with_name("shared-state.db"))
    else:
        state = MemoryState()
    if profile.governed:
        await seed_budgets(profile, state)
    return state


async def seed_budgets(profile: Profile, state: SharedState) -> None:
    """Start the budget counters of ``profile``'s teams and keys that ``state`` does not have yet from the spend in
    the request log (at start-up, and after a profile reload for the owners it adds)."""
    now = time.time()
    try:
        spent = await asyncio.to_thread(_spend_so_far, profile, now)
    except (sqlite3.Error, LogUnavailable) as exc:
        log.warning("could not read past spend from the request log: %s", exc)
        return
    for key, amount in spent.items():
        ttl = 40 * 86400 if ":month:" in key else 2 * 86400
        try:
            await state.seed(key, amount, ttl)
        except StateUnavailable as exc:  # one timeout is enough: do not delay start-up once per counter
            log.warning("could not seed budget counters: %s", exc)
            return
