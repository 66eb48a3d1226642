"""One generation of a running server: a profile and everything built from it, swapped as one on a reload.

Contracts:
- :class:`Shared` is what a server opens once and every generation uses: the pooled upstream session (so
  connections are reused across reloads; idle ones to upstreams no longer configured close after the connector's
  keep-alive), the request-log writer, the shared rate/budget counters (existing counts continue), the metrics and
  event listeners, the router's random source, ``fail_targets`` and the cache's embedder override.
- :class:`Generation` is immutable: its number, the profile, the stages built from it (auth with its key index,
  limits, guardrails, cache, router with its providers, meter with its price table) and the pipeline of those
  stages, and the browser guard of an open proxy. A request takes the current generation once, when it arrives,
  and uses it to its end; only ``inflight`` (how many requests hold it) changes.
- :func:`build_generation` builds a complete generation (blocking work, such as hashing keys, opening the cache
  store or loading guardrail detectors, runs in a thread) and never changes ``previous``: it carries over what
  must survive a reload — the router's latencies, its retry budget (same settings) and the cooldowns of targets
  that still exist, the guardrail counts, the limits' fail-open count and, when ``[cache]`` is unchanged, the
  cache stage itself (its store, index and write-behind queue). Budget counters of owners that the shared store
  does not have yet start from the request log, as at start-up.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field

from aiohttp import web

from ..cache.embed import Embedder
from ..pricing import PriceTable
from ..profile import Profile
from ..providers.base import Provider, ProviderContext, adapter_for
from ..providers.http_client import UpstreamClient
from ..stages.auth import AuthStage
from ..stages.base import Stage
from ..stages.cache import CacheStage
from ..stages.guardrails import GuardrailStage
from ..stages.limits import LimitsStage
from ..stages.meter import MeterStage, RowListener
from ..stages.route import Router
from ..store.log import LogWriter
from ..store.shared import SharedState
from .browser_guard import browser_guard
from .governance import KeyReloader, open_keys, scrubber, seed_budgets
from .pipeline import Pipeline

log = logging.getLogger("llmgw.proxy.generation")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Shared:
    """What survives every reload (see the module contract)."""

    session: UpstreamClient
    writer: LogWriter
    state: SharedState
    listeners: list[RowListener]
    rng: random.Random = field(default_factory=random.Random)
    fail_targets: frozenset[str] = frozenset()
    embedder: Embedder | None = None
    leading: tuple[Stage, ...] = ()     # stages that come before the meter (tracing), set up at start


class InFlight:
    """How many requests hold a generation; :meth:`drained` waits until none does."""

    __slots__ = ("_idle", "count")

    def __init__(self) -> None:
        self.count = 0
        self._idle: asyncio.Event | None = None

    def enter(self) -> None:
        self.count += 1

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0 and self._idle is not None:
            self._idle.set()

    async def drained(self) -> None:
        """Return once no request holds the generation (at once if none does)."""
        while self.count > 0:
            self._idle = asyncio.Event()
            await self._idle.wait()


@dataclass(frozen=True, eq=False)
class Generation:
    """A profile and everything built from it (see the module contract)."""

    number: int
    profile: Profile
    pipeline: Pipeline
    auth: AuthStage
    limits: LimitsStage
    guard: GuardrailStage
    cache: CacheStage
    router: Router
    prices: PriceTable
    reloader: KeyReloader | None
    browser: Middleware | None          # the open proxy's guard against web pages (its allowed_hosts)
    inflight: InFlight = field(default_factory=InFlight)


def build_providers(profile: Profile, session: UpstreamClient,
                    rng: random.Random) -> dict[str, Provider]:
    """One adapter per ``[providers.*]`` entry, keys resolved now (``llmgw check`` reports missing ones)."""
    providers: dict[str, Provider] = {}
    for name, config in profile.providers.items():
        factory = adapter_for(config.kind)
        api_key = config.api_key.resolve() if config.api_key else None
        providers[name] = factory(ProviderContext(config, session, api_key, rng,
                                                  connect_timeout_s=profile.server.connect_timeout_s,
                                                  idle_timeout_s=profile.server.idle_timeout_s))
    return providers


def _targets(profile: Profile) -> set[str]:
    return {t.name for model in profile.models.values() for t in model.targets}


def _router(profile: Profile, shared: Shared, previous: Generation | None) -> Router:
    scrub = scrubber(profile)   # every configured secret, kept out of what upstreams say
    router = Router(build_providers(profile, shared.session, shared.rng), profile.routing, rng=shared.rng,
                    first_token_timeout_s=profile.server.first_token_timeout_s,
                    fail_targets=shared.fail_targets, scrub=scrub)
    if previous is not None:
        old, routing = previous.router, previous.profile.routing
        router.latency = old.latency
        if (routing.retry_budget, routing.retry_reserve) == (profile.routing.retry_budget,
                                                             profile.routing.retry_reserve):
            router.budget = old.budget
        router.breaker.carry(old.breaker, _targets(profile))
    return router


def _cache(profile: Profile, shared: Shared, previous: Generation | None) -> CacheStage:
    if previous is not None and previous.profile.cache == profile.cache:
        return previous.cache
    return CacheStage.from_profile(profile, embedder=shared.embedder)


def _build_blocking(number: int, profile: Profile, shared: Shared, previous: Generation | None) -> Generation:
    router = _router(profile, shared, previous)
    prices = PriceTable.for_profile(profile)  # the mock is free, not unpriced
    meter = MeterStage(prices, shared.writer, listeners=shared.listeners, scrub=router.scrub)
    keys = open_keys(profile) if profile.governed else None
    reloader = KeyReloader(keys, lambda: open_keys(profile)) if keys is not None else None
    auth = AuthStage(profile.models, keys, reloader.fresh if reloader is not None else None)
    limits = LimitsStage(shared.state, prices, profile.teams, default_max_tokens=profile.server.default_max_tokens)
    guard = GuardrailStage.from_profile(profile)
    if previous is not None:
        guard.counts = previous.guard.counts
        limits.open_on_error = previous.limits.open_on_error
    # The cache comes after limits (hits count against rpm, not budgets) and after the guard (its keys and
    # stored answers hold placeholders, never redacted values; it stores nothing for an exchange with findings).
    cache = _cache(profile, shared, previous)
    stages = [*shared.leading, meter, auth, limits, *([guard] if guard.active else []),
              *([cache] if cache.active else []), router]
    browser = None if profile.governed else browser_guard(profile.server.allowed_hosts)
    return Generation(number, profile, Pipeline(stages), auth, limits, guard, cache, router, prices, reloader,
                      browser)


async def build_generation(number: int, profile: Profile, shared: Shared,
                           previous: Generation | None = None) -> Generation:
    """A complete generation for ``profile`` (see the module contract). Raises what building raises (an
    unresolvable secret, a cache store that cannot be opened); ``previous`` is left as it was."""
    generation = await asyncio.to_thread(_build_blocking, number, profile, shared, previous)
    if previous is not None and profile.governed:
        await seed_budgets(profile, shared.state)
    return generation


def alias_names(*profiles: Profile) -> Collection[str]:
    """Every alias of ``profiles`` (the metrics' alias labels across a reload)."""
    return {alias for profile in profiles for alias in profile.models}
