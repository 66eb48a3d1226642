"""Routing, the last stage: which target answers an alias, in which order targets are tried, retries, budgets and
cooldowns.

As a stage (:class:`Router`): ``request`` routes the exchange (a count-tokens request asks the alias's first target,
or is estimated locally); ``after_answer`` gives the served target the verdict of its stream (see
:meth:`Router.stream_ended`).

Contract (:meth:`Router.route`):
- Targets are tried in the order the alias's strategy gives: ``fallback`` as declared; ``loadbalance`` a weighted
  random first pick, then the rest in order; ``least-latency`` by the lowest moving-average latency seen so far.
  Targets in cooldown go last; the last healthy target of an alias is never skipped.
- Each target gets ``1 + retries`` attempts, with full-jitter exponential backoff (at least the upstream's
  ``Retry-After``, capped) on retryable failures (429, 5xx, 529, resets, timeouts). A non-retryable answer (400,
  401, 403, 404, 422, ...) ends routing at once, after exactly one attempt, and is mapped to the client's error.
- Every attempt after a request's first draws on a global :class:`RetryBudget`, so retries and fallbacks cannot
  multiply an outage: over time at most ``retry_budget`` extra attempts per request.
- Each attempt must produce its answer — for a stream, its first event — within ``first_token_timeout_s``; the
  whole routing within the request's deadline (``timeout_s`` from arrival). A stream counts as answered only once
  its first event has arrived, so a 200 followed by an error event fails over like any other failure.
- ``fail_targets`` (``llmgw smoke --fail``) makes those targets fail without being called.
- Every attempt is appended to ``ex.attempts``; ``ex.target`` is the target that answered (or the last tried).
- Upstream text is scrubbed where the router records it: every :class:`UpstreamFailure` (before a stream, and
  mid-stream through ``ex.scrub_stream_failure``, which the stream's writer calls) has its message and body passed
  through the :class:`~llmgw.scrub.Scrubber` built at start-up before anything (the client's error,
  ``ex.attempts``, the log) reads it. A stream whose event stream is malformed (an SSE line over the decoder's cap)
  is an upstream failure (502) like any other: before the first event it falls back, after it the stream's writer
  ends the stream with an error event.
- On failure ``route`` raises a :class:`GatewayError` in the gateway's tree.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Collection, Mapping

from ..deadline import Deadline
from ..errors import GatewayError, InvalidRequest, PayloadTooLarge, RateLimited, UpstreamError, UpstreamTimeout
from ..exchange import Attempt, Exchange, UpstreamReply
from ..formats import named
from ..profile import ModelConfig, RoutingConfig, Target
from ..providers.base import Provider, UpstreamFailure
from ..scrub import Scrubber
from ..sse import SSEError
from .base import Stage

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


class RetryBudget:
    """A token bucket shared by all requests: each request deposits ``ratio``; each extra attempt withdraws 1.

    It starts with ``reserve`` tokens and never holds more than ``reserve`` plus what ``ratio`` earned over the
    last ~100 requests, so a long calm period cannot bank an outage's worth of retries."""

    def __init__(self, ratio: float, reserve: int) -> None:
        self.ratio = ratio
        self._cap = reserve + ratio * 100
        self._balance = float(reserve)

    def deposit(self) -> None:
        self._balance = min(self._cap, self._balance + self.ratio)

    def withdraw(self) -> bool:
        """Take one extra attempt's token; False when the budget is spent."""
        if self._balance < 1.0:
            return False
        self._balance -= 1.0
        return True


class CircuitBreaker:
    """Per-target cooldown: ``failures`` consecutive failures open the circuit for ``cooldown_s``; then one
    request may probe it (half-open): success closes it, failure opens it again.

    A stream's verdict comes in two steps: its first event closes the circuit and ends a probe, but only the end
    of the stream (:meth:`Router.stream_ended`) resets the count of consecutive failures or adds one to it, so a
    target whose streams keep breaking after their first event is taken out like one that fails at once."""

    def __init__(self, failures: int, cooldown_s: float) -> None:
        self._threshold = failures
        self._cooldown_s = cooldown_s
        self._consecutive: dict[str, int] = {}
        self._open_until: dict[str, float] = {}
        self._probing: set[str] = set()

    def available(self, target: str, now: float) -> bool:
        """Whether ``target`` may be tried now (a half-open target lets exactly one probe through)."""
        until = self._open_until.get(target)
        if until is None:
            return True
        if now < until or target in self._probing:
            return False
        self._probing.add(target)
        return True

    def release(self, target: str) -> None:
        """A probe ended without a verdict (the client left): let the next request probe instead."""
        self._probing.discard(target)

    def record(self, target: str, ok: bool, now: float, *, final: bool = True) -> None:
        """One verdict on ``target``; ``final=False``: a stream that started (see the class contract)."""
        self._probing.discard(target)
        if ok:
            if final:
                self._consecutive.pop(target, None)
            self._open_until.pop(target, None)
            return
        count = self._consecutive.get(target, 0) + 1
        self._consecutive[target] = count
        if count >= self._threshold:
            self._open_until[target] = now + self._cooldown_s

    def is_open(self, target: str, now: float) -> bool:
        until = self._open_until.get(target)
        return until is not None and now < until

    def carry(self, old: CircuitBreaker, targets: Collection[str]) -> None:
        """Take over ``old``'s failure counts and cooldowns of ``targets`` (a profile reload: targets that still
        exist stay in cooldown; a probe in flight ends with its old request)."""
        self._consecutive.update({t: n for t, n in old._consecutive.items() if t in targets})
        self._open_until.update({t: u for t, u in old._open_until.items() if t in targets})


class Router(Stage):
    """Sends an exchange to its alias's targets. Holds the providers and the routing state it learns."""

    def __init__(self, providers: Mapping[str, Provider], routing: RoutingConfig | None = None, *,
                 first_token_timeout_s: float = 300.0, rng: random.Random | None = None,
                 fail_targets: Collection[str] = (), scrub: Scrubber | None = None) -> None:
        routing = routing or RoutingConfig()
        self.scrub = scrub or Scrubber()
        self.providers = providers
        self.rng = rng or random.Random()
        self.latency = LatencyTracker()
        self.budget = RetryBudget(routing.retry_budget, routing.retry_reserve)
        self.breaker = CircuitBreaker(routing.cooldown_failures, routing.cooldown_s)
        self.first_token_timeout_s = first_token_timeout_s
        self.fail_targets = frozenset(fail_targets)

    def order(self, model: ModelConfig, now: float | None = None) -> list[Target]:
        """The targets in the order they will be tried: by strategy, targets in cooldown last."""
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
        now = time.monotonic() if now is None else now
        cooling = [t for t in targets if self.breaker.is_open(t.name, now)]
        if cooling and len(cooling) < len(targets):
            targets = [t for t in targets if t not in cooling] + cooling
        return targets

    async def request(self, ex: Exchange) -> None:
        if ex.endpoint == "count_tokens":
            await self.count_tokens(ex)
            return
        await self.route(ex)
        if ex.reply is not None and ex.reply.usage is not None:
            ex.usage = ex.reply.usage

    def after_answer(self, ex: Exchange) -> None:
        self.stream_ended(ex)

    async def count_tokens(self, ex: Exchange) -> None:
        """Answer a count-tokens request from the alias's first target when its adapter can count, else with a
        local estimate (a pre-flight count is better estimated than refused). Not a billed call."""
        assert ex.model is not None
        target = ex.model.targets[0]
        provider = self.providers.get(target.provider)
        wire = named(ex.client_format)
        counted = None
        if provider is not None and provider.speaks(ex.client_format):
            try:
                counted = await provider.count_tokens(ex, target.model)
            except UpstreamFailure:
                counted = None
        ex.target = target
        if counted is None:
            counted = wire.count_tokens_answer(wire.estimate_input_tokens(ex.client_body))
        ex.reply = UpstreamReply(counted, None, None, format=ex.client_format)

    async def route(self, ex: Exchange) -> None:
        """Answer ``ex`` from the first target that can: sets ``ex.reply`` or ``ex.events`` and ``ex.target``."""
        assert ex.model is not None
        self.budget.deposit()
        model = ex.model
        last: UpstreamFailure | None = None
        now = time.monotonic()
        targets = self.order(model, now)
        ex.note("route", "order", strategy=model.strategy, targets=[t.name for t in targets], retries=model.retries,
                cooling=[t.name for t in targets if self.breaker.is_open(t.name, now)] if len(targets) > 1 else [])
        for position, target in enumerate(targets):
            now = time.monotonic()
            last_resort = position == len(targets) - 1 and last is None
            if not last_resort and not self.breaker.available(target.name, now):
                ex.note("route", "skipped", target=target.name, reason="cooldown")
                continue
            provider = self.providers.get(target.provider)
            for retry in range(model.retries + 1):
                if ex.attempts and not self.budget.withdraw():
                    ex.note("route", "retry_budget_spent", target=target.name)
                    self.breaker.release(target.name)
                    raise exhausted_error(last, ex, budget_spent=True)
                if retry:
                    delay = _backoff(retry, last, self.rng)
                    if time.perf_counter() + delay >= ex.deadline:
                        ex.note("route", "skipped", target=target.name, reason="no time to retry")
                        break  # no time to wait for this target: try the next one
                    await asyncio.sleep(delay)
                    ex.upstream_ms += delay * 1000.0
                failure = await self._try(ex, provider, target)
                if failure is None:
                    return
                if not failure.retryable:
                    ex.note("route", "not_retryable", target=target.name, status=failure.status)
                    raise client_error(failure, target)
                last = failure
        raise exhausted_error(last, ex)

    async def _try(self, ex: Exchange, provider: Provider | None, target: Target) -> UpstreamFailure | None:
        """One attempt; records it and its outcome. Returns the failure, or None when answered."""
        ex.target = target
        started = time.perf_counter()
        remaining = ex.deadline - started
        if remaining <= 0:
            self.breaker.release(target.name)
            raise _deadline_error(ex)
        try:
            if provider is None or target.name in self.fail_targets:
                raise UpstreamFailure(503, "target made to fail (--fail)" if provider else "provider not available")
            # One timer per attempt: the first-token limit, or what is left of the request's deadline.
            with Deadline(started + min(self.first_token_timeout_s, remaining)):
                await self._attempt(ex, provider, target)
        except TimeoutError:
            if time.perf_counter() >= ex.deadline:
                self._record_cut(ex, target, started, "request deadline passed", failed=True)
                raise _deadline_error(ex) from None
            failure: UpstreamFailure | None = UpstreamFailure(0, "no first token within first_token_timeout_s",
                                                              timeout=True)
        except UpstreamFailure as exc:
            failure = self.scrubbed(exc)
        except SSEError as exc:
            failure = UpstreamFailure(502, f"upstream sent a malformed event stream: {exc}")
        except GatewayError:  # the request itself cannot go to this target: no verdict on the target
            self.breaker.release(target.name)
            raise
        except asyncio.CancelledError:  # the client went away: no verdict on the target
            self._record_cut(ex, target, started, "client disconnected", failed=False)
            raise
        else:
            failure = None
        latency = (time.perf_counter() - started) * 1000.0
        ex.upstream_ms += latency
        ex.attempts.append(Attempt(len(ex.attempts) + 1, target.name, 200 if failure is None else failure.status,
                                   latency, None if failure is None else failure.message))
        self.breaker.record(target.name, failure is None or not failure.retryable, time.monotonic(),
                            final=not (failure is None and ex.stream))
        if failure is None:
            self.latency.observe(target.name, latency)
        return failure

    def stream_ended(self, ex: Exchange) -> None:
        """The final verdict on the target that served ``ex``'s stream (see :class:`CircuitBreaker`): a failure
        when the upstream broke or timed out mid-stream, a success when the stream completed; none when the client
        left, when the answer came from a stage (a cache hit) or when no target started a stream."""
        target = ex.target
        if not ex.stream or target is None or not ex.attempts or ex.attempts[-1].status != 200 \
                or ex.attempts[-1].target != target.name or ex.outcome == "client_disconnect":
            return
        if ex.error is None:
            self.breaker.record(target.name, True, time.monotonic())
        elif isinstance(ex.error, UpstreamError):
            self.breaker.record(target.name, False, time.monotonic())

    def _record_cut(self, ex: Exchange, target: Target, started: float, why: str, *, failed: bool) -> None:
        """An attempt ended from outside (deadline, client gone): log it; a deadline counts against the target."""
        latency = (time.perf_counter() - started) * 1000.0
        ex.upstream_ms += latency
        ex.attempts.append(Attempt(len(ex.attempts) + 1, target.name, 0, latency, why))
        if failed:
            self.breaker.record(target.name, False, time.monotonic())
        else:
            self.breaker.release(target.name)

    async def _attempt(self, ex: Exchange, provider: Provider, target: Target) -> None:
        if not provider.speaks(ex.client_format):
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
                await events.aclose()  # type: ignore[attr-defined]
                raise
            ex.mark_first_token()
            ex.first_event, ex.events, ex.scrub_stream_failure = first, events, self.scrubbed

    def scrubbed(self, failure: UpstreamFailure) -> UpstreamFailure:
        """``failure`` with its message and body scrubbed of secrets (in place)."""
        failure.message = self.scrub(failure.message)
        failure.args = (failure.message,)
        if failure.body is not None:
            failure.body = self.scrub.value(failure.body)
        return failure


def _deadline_error(ex: Exchange) -> UpstreamTimeout:
    return UpstreamTimeout(f"no answer within the request's deadline, timeout_s (tried: {_tried(ex)})")


def _tried(ex: Exchange) -> str:
    return ", ".join(dict.fromkeys(a.target for a in ex.attempts)) or "no target"


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


def exhausted_error(last: UpstreamFailure | None, ex: Exchange, *, budget_spent: bool = False) -> GatewayError:
    """What the client gets when every attempt failed (or the retry budget allowed no more)."""
    tried = _tried(ex)
    spent = "; the retry budget is spent" if budget_spent else ""
    if last is None:
        return UpstreamError(f"model {ex.alias!r} has no target to try")
    if last.timeout:
        return UpstreamTimeout(f"every target timed out ({tried}){spent}")
    if all(a.status == 429 for a in ex.attempts):
        return RateLimited(f"every target is rate limited ({tried}){spent}", retry_after=last.retry_after or 1.0,
                           code="upstream_rate_limited")
    return UpstreamError(f"every target failed ({tried}){spent}; last: {last.message}", upstream_status=last.status)
