"""Routing: which target answers an alias, in which order targets are tried, and retries between them.

Contract (:meth:`Router.route`):
- Targets are tried in the order the alias's strategy gives: ``fallback`` as declared; ``loadbalance`` a weighted
  random first pick, then the rest in order; ``least-latency`` by the lowest moving-average latency seen so far.
- Each target gets ``1 + retries`` attempts, with exponential backoff and jitter (honouring ``Retry-After``, capped)
  on retryable failures; a non-retryable upstream answer (400, 401, 403, 404, 422, ...) ends routing at once.
- A stream counts as answered only once its first event has arrived, so a stream that fails before that fails
  over like any other attempt. The first event is kept and replayed to the renderer.
- Every attempt is appended to ``ex.attempts``; ``ex.target`` is the target that answered (or the last tried).
- On failure ``route`` raises a :class:`GatewayError` in the gateway's tree.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping

from .errors import GatewayError, InvalidRequest, PayloadTooLarge, RateLimited, UpstreamError, UpstreamTimeout
from .exchange import Attempt, Exchange
from .profile import ModelConfig, Target
from .providers.base import Provider, UpstreamFailure

_BACKOFF_BASE_S = 0.1
_BACKOFF_CAP_S = 4.0


class LatencyTracker:
    """Exponentially weighted moving average of each target's latency, for ``least-latency``."""

    def __init__(self, alpha: float = 0.2) -> None:
        self._alpha = alpha
        self._ewma: dict[str, float] = {}

    def observe(self, target: str, latency_ms: float) -> None:
        old = self._ewma.get(target)
        self._ewma[target] = latency_ms if old is None else old + self._alpha * (latency_ms - old)

    def get(self, target: str) -> float:
        return self._ewma.get(target, 0.0)


class Router:
    """Sends an exchange to its alias's targets. Holds the providers and the routing state it learns."""

    def __init__(self, providers: Mapping[str, Provider], rng: random.Random | None = None) -> None:
        self.providers = providers
        self.rng = rng or random.Random()
        self.latency = LatencyTracker()

    def order(self, model: ModelConfig) -> list[Target]:
        """The targets in the order they will be tried."""
        targets = list(model.targets)
        if len(targets) < 2:
            return targets
        if model.strategy == "loadbalance":
            weights = list(model.weights) or [1.0] * len(targets)
            if sum(weights) > 0:
                first = self.rng.choices(range(len(targets)), weights=weights)[0]
                targets.insert(0, targets.pop(first))
        elif model.strategy == "least-latency":
            targets.sort(key=lambda t: self.latency.get(t.name))
        return targets

    async def route(self, ex: Exchange) -> None:
        """Answer ``ex`` from the first target that can: sets ``ex.reply`` or ``ex.events`` and ``ex.target``."""
        assert ex.model is not None
        last: UpstreamFailure | None = None
        for target in self.order(ex.model):
            provider = self.providers[target.provider]
            for retry in range(ex.model.retries + 1):
                if retry:
                    await asyncio.sleep(_backoff(retry, last, self.rng))
                ex.target = target
                started = time.perf_counter()
                try:
                    await self._attempt(ex, provider, target)
                except UpstreamFailure as failure:
                    latency = (time.perf_counter() - started) * 1000.0
                    ex.attempts.append(Attempt(len(ex.attempts) + 1, target.name, failure.status, latency,
                                               failure.message))
                    if not failure.retryable:
                        raise client_error(failure, target) from None
                    last = failure
                    continue
                latency = (time.perf_counter() - started) * 1000.0
                ex.attempts.append(Attempt(len(ex.attempts) + 1, target.name, 200, latency))
                self.latency.observe(target.name, latency)
                return
        raise exhausted_error(last, ex)

    async def _attempt(self, ex: Exchange, provider: Provider, target: Target) -> None:
        if provider.native_format != ex.client_format:
            if ex.translation_error is not None:
                raise ex.translation_error
            ex.dropped_params = list(dict.fromkeys([*ex.dropped_params, *ex.translation_dropped]))
        if ex.endpoint == "embeddings":
            ex.reply = await provider.embeddings(ex, ex.body, target.model)
        elif not ex.stream:
            ex.reply = await provider.chat(ex, ex.body, target.model)
        else:
            events = provider.stream(ex, ex.body, target.model)
            try:
                first = await anext(events)
            except StopAsyncIteration:
                raise UpstreamFailure(502, "upstream closed the stream without an event") from None
            except BaseException:
                await events.aclose()
                raise
            ex.mark_first_token()
            ex.first_event, ex.events = first, events


def _backoff(retry: int, last: UpstreamFailure | None, rng: random.Random) -> float:
    """Full-jitter exponential backoff, at least the upstream's ``Retry-After`` (capped)."""
    delay = rng.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2 ** (retry - 1)))
    if last is not None and last.retry_after is not None:
        delay = max(delay, min(last.retry_after, _BACKOFF_CAP_S))
    return delay


def client_error(failure: UpstreamFailure, target: Target) -> GatewayError:
    """Map a non-retryable upstream answer to what the client gets."""
    where = f"upstream {target.name}"
    if failure.status in (400, 422):
        return InvalidRequest(f"{where} rejected the request: {failure.message}", code="upstream_invalid_request")
    if failure.status == 413:
        return PayloadTooLarge(f"{where}: request too large: {failure.message}")
    if failure.status in (401, 403):
        return UpstreamError(f"{where} refused the gateway's credentials ({failure.status}); check the provider's"
                             " api_key in the profile", upstream_status=failure.status, code="upstream_auth")
    if failure.status == 404:
        return GatewayError(f"{where} does not know this model or endpoint: {failure.message}", status=404,
                            code="upstream_not_found")
    return UpstreamError(f"{where} failed: {failure.message}", upstream_status=failure.status)


def exhausted_error(last: UpstreamFailure | None, ex: Exchange) -> GatewayError:
    """What the client gets when every attempt failed."""
    tried = ", ".join(dict.fromkeys(a.target for a in ex.attempts)) or "no target"
    if last is None:
        return UpstreamError(f"model {ex.alias!r} has no target to try")
    if last.timeout:
        return UpstreamTimeout(f"every target timed out ({tried})")
    if all(a.status == 429 for a in ex.attempts):
        return RateLimited(f"every target is rate limited ({tried})", retry_after=last.retry_after or 1.0,
                           code="upstream_rate_limited")
    return UpstreamError(f"every target failed ({tried}); last: {last.message}", upstream_status=last.status)
