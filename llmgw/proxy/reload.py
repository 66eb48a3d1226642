"""Changing a running server's profile without a restart: SIGHUP, ``serve --watch``, ``llmgw reload``.

Contracts:
- :class:`ProfileSource` is where a server re-reads its profile: the file it started from, with the command line's
  ``--workers`` applied again (and ``--host``, which the validation checks an open proxy against).
- :func:`profile_problems` is what ``llmgw check`` refuses (beyond the parse): unresolvable secrets, an open proxy
  on a public host, a budget on an alias with an unpriced target, a semantic cache without its model. The server
  and ``llmgw reload`` refuse a profile with any of them, one ``source: key.path: why`` line each.
- :meth:`ProfileReloader.reload` validates the new profile first; a bad one is refused (each problem logged on
  its own line, ``llmgw_profile_reloads_total{result="refused"}``) and the old generation keeps serving. A good
  one is built into a complete new :class:`~.generation.Generation` off the event loop and swapped in with one
  assignment; requests that arrived before keep the generation they took. Settings that are applied only at start
  (:data:`RESTART_ONLY`: the listening socket, the workers, the state store, telemetry, spend alerts, the admin
  key, connection limits) keep their running values and are logged as "needs a restart"; the rest applies.
  Turning an open proxy into a governed one or back is refused as a whole: its browser guard and admin key are set
  at start.
- Reloads run one at a time; a reload asked for while one runs (:meth:`ProfileReloader.request`, from a signal)
  runs once more after it, however many were asked for.
- :meth:`ProfileReloader.watch` polls the file every ``interval_s`` (size, mtime and inode, then a hash of the
  content) and reloads when the content changed and has held still for ``settle_s`` (an editor's write in progress
  is not read half-way; a file briefly missing during an editor's rename is not a change).
- A generation that was replaced is retired once no request holds it: what it built that the serving generation
  does not use (a cache stage after a ``[cache]`` change) is closed then.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..cache.embed import EmbedderError, resolve_model_path
from ..pricing import budget_problems, unpriced_targets
from ..profile import Profile, ProfileError, host_problems, load_profile, secret_problems
from .generation import Generation, Shared, alias_names, build_generation
from .metrics import Metrics

log = logging.getLogger("llmgw.proxy.reload")

POLL_INTERVAL_S = 0.5
SETTLE_S = 0.05

# [server] settings applied only when the server starts (the socket, the processes, the app's limits).
RESTART_ONLY = ("host", "port", "workers", "max_body_mb", "max_connections", "header_timeout_s",
                "keepalive_timeout_s", "admin_key", "metrics_auth")


@dataclass(frozen=True)
class ProfileSource:
    """The profile file a server re-reads, and the command line's settings applied to it as at start."""

    path: Path
    workers: int | None = None   # ``--workers``, which replaces ``[server] workers``
    host: str | None = None      # ``--host``, which an open proxy is checked against

    @classmethod
    def of(cls, profile: Profile, *, workers: int | None = None, host: str | None = None) -> ProfileSource | None:
        """The source of a profile loaded from a file; None for the built-in demo or a profile built in code."""
        if profile.source.startswith("<"):
            return None
        return cls(Path(profile.source), workers, host)

    def load(self) -> Profile:
        """The profile as the file says now (blocking); raises :class:`ProfileError` with every problem."""
        profile = load_profile(self.path)
        if self.workers is not None and self.workers != profile.server.workers:
            profile = dataclasses.replace(profile, server=dataclasses.replace(profile.server, workers=self.workers))
        return profile


def profile_problems(profile: Profile, host: str | None = None) -> list[str]:
    """Every reason ``llmgw check`` would refuse ``profile`` once parsed (see the module contract); blocking."""
    problems = secret_problems(profile) + host_problems(profile, host)
    problems += budget_problems(profile, unpriced_targets(profile))
    config = profile.cache
    if config.enabled and config.semantic:
        try:
            resolve_model_path(config.model, allow_download=False)
        except EmbedderError as exc:
            problems.append(f"cache.model: {exc}")
    return problems


def restart_needed(running: Profile, new: Profile) -> list[str]:
    """The key paths whose new value applies only after a restart (:data:`RESTART_ONLY`, ``[state]``,
    ``[telemetry]``, ``[[alerts]]``: the alert engine is started with the server); values are not shown (some are
    secrets)."""
    changed = [f"server.{name}" for name in RESTART_ONLY
               if getattr(running.server, name) != getattr(new.server, name)]
    if running.state != new.state:
        changed.append("state")
    if running.telemetry != new.telemetry:
        changed.append("telemetry")
    if running.alerts != new.alerts:
        changed.append("alerts")
    return changed


def pinned(running: Profile, new: Profile) -> Profile:
    """``new`` with the settings that only a restart applies kept at their running values."""
    server = dataclasses.replace(new.server, **{name: getattr(running.server, name) for name in RESTART_ONLY})
    return dataclasses.replace(new, server=server, state=running.state, telemetry=running.telemetry,
                               alerts=running.alerts)


def changes(old: Profile, new: Profile) -> list[str]:
    """What a reload changed, in short phrases: aliases added, removed and re-routed, keys and teams changed, and
    the sections that differ."""
    out = []
    added = [a for a in new.models if a not in old.models]
    removed = [a for a in old.models if a not in new.models]
    rerouted = [a for a in new.models if a in old.models and new.models[a] != old.models[a]]
    for label, names in (("aliases added", added), ("aliases removed", removed), ("aliases changed", rerouted)):
        if names:
            out.append(f"{label}: {', '.join(names)}")
    for label, before, after in (("keys", old.keys, new.keys), ("teams", old.teams, new.teams),
                                 ("providers", old.providers, new.providers)):
        count = sum(before.get(n) != after.get(n) for n in {*before, *after})
        if count:
            out.append(f"{count} {label[:-1] if count == 1 else label} changed")
    sections = [("prices", old.prices != new.prices), ("routing", old.routing != new.routing),
                ("guardrails", old.extra.get("guardrails") != new.extra.get("guardrails")),
                ("cache", old.cache != new.cache), ("server", old.server != new.server)]
    out += [f"{name} changed" for name, differ in sections if differ]
    return out or ["no changes"]


def _fingerprint(path: Path, last: tuple[tuple[int, int, int], str] | None) -> tuple[tuple[int, int, int], str] | None:
    """``(stat key, content hash)`` of ``path``, hashing only when the stat changed; None when it cannot be read."""
    try:
        st = os.stat(path)
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if last is not None and last[0] == key:
            return last
        return key, hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class ProfileReloader:
    """The serving generation and its reloads (see the module contract). ``current`` is read by each request once;
    only :meth:`reload` assigns it."""

    def __init__(self, current: Generation, shared: Shared, metrics: Metrics,
                 source: ProfileSource | None = None) -> None:
        self.current = current
        self.shared = shared
        self.metrics = metrics
        self.source = source
        self._lock = asyncio.Lock()
        self._pending = False
        self._task: asyncio.Task[None] | None = None
        self._retired: list[Generation] = []
        self._retiring: set[asyncio.Task[None]] = set()

    def request(self) -> None:
        """Reload from the source soon (a signal handler's call); coalesces with a reload already waiting."""
        self._pending = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain_requests())

    async def _drain_requests(self) -> None:
        while self._pending:
            self._pending = False
            await self.reload()

    async def reload(self, profile: Profile | None = None) -> bool:
        """Validate and apply ``profile`` (default: re-read the source); True when it is now serving."""
        async with self._lock:
            return await self._reload(profile)

    async def _reload(self, profile: Profile | None) -> bool:
        old = self.current
        if profile is None:
            if self.source is None:
                return self._refuse(old, old.profile.source, ["no profile file to re-read (the server was started"
                                                              " from a profile that is not a file)"])
            try:
                profile = await asyncio.to_thread(self.source.load)
            except ProfileError as exc:
                return self._refuse(old, exc.source, exc.problems)
        host = self.source.host if self.source is not None else None
        problems = await asyncio.to_thread(profile_problems, profile, host or old.profile.server.host)
        if profile.governed != old.profile.governed:
            problems.append("keys: adding the first [keys]/[teams] entry to an open proxy, or removing the last,"
                            " needs a restart (the browser guard and the admin key are set at start)")
        if problems:
            return self._refuse(old, profile.source, problems)
        restart = restart_needed(old.profile, profile)
        effective = pinned(old.profile, profile)
        try:
            new = await build_generation(old.number + 1, effective, self.shared, old)
        except Exception as exc:   # whatever fails while building, the old generation keeps serving
            return self._refuse(old, profile.source, [f"could not apply the profile: {type(exc).__name__}: {exc}"])
        self.current = new
        self.metrics.aliases = frozenset(alias_names(old.profile, new.profile)) | (self.metrics.aliases or set())
        self.metrics.reloads.inc(("ok",))
        log.info("profile reloaded: generation %d from %s (%s)", new.number, profile.source,
                 "; ".join(changes(old.profile, effective)))
        for key in restart:
            log.warning("%s: %s changed: needs a restart (the running server keeps its value until then)",
                        profile.source, key)
        task = asyncio.get_running_loop().create_task(self._retire(old))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        return True

    def _refuse(self, old: Generation, source: str, problems: list[str]) -> bool:
        for problem in problems:
            log.error("%s: %s", source, problem)
        log.error("profile reload refused (%d problem%s); still serving generation %d", len(problems),
                  "" if len(problems) == 1 else "s", old.number)
        self.metrics.reloads.inc(("refused",))
        return False

    async def _retire(self, old: Generation) -> None:
        """Close what ``old`` built once no request holds it, unless a serving or draining generation uses it."""
        self._retired.append(old)
        try:
            await old.inflight.drained()
        finally:
            self._retired.remove(old)
        cache = old.cache
        if cache is self.current.cache or any(g.cache is cache for g in self._retired):
            return
        await asyncio.to_thread(cache.close)

    async def watch(self, interval_s: float = POLL_INTERVAL_S, settle_s: float = SETTLE_S) -> None:
        """Reload whenever the source file's content changes (see the module contract), until cancelled."""
        if self.source is None:
            return
        path = self.source.path
        seen = await asyncio.to_thread(_fingerprint, path, None)
        while True:
            await asyncio.sleep(interval_s)
            now = await asyncio.to_thread(_fingerprint, path, seen)
            if now is None or seen is None or now[1] == seen[1]:
                seen = now or seen
                continue
            await asyncio.sleep(settle_s)
            if await asyncio.to_thread(_fingerprint, path, None) != now:
                continue   # still being written: look again at the next poll
            seen = now
            await self.reload()

    async def close(self) -> None:
        """At shutdown: stop pending work and close the caches of the serving and retired generations."""
        caches = {id(g.cache): g.cache for g in (self.current, *self._retired)}
        tasks = [t for t in (self._task, *self._retiring) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for cache in caches.values():
            await asyncio.to_thread(cache.close)

