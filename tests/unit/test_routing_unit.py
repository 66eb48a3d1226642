"""Routing's parts on their own: RetryBudget, CircuitBreaker, LatencyTracker, backoff, error mapping, target
order, and Router.route against in-process stub providers (no HTTP)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

import pytest

from llmgw.errors import (
    GatewayError,
    InvalidRequest,
    PayloadTooLarge,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from llmgw.exchange import Attempt, Exchange, UpstreamReply
from llmgw.formats import named
from llmgw.profile import ModelConfig, RoutingConfig, Target
from llmgw.providers.base import UpstreamFailure
from llmgw.stages.route import (
    _BACKOFF_BASE_S,
    _BACKOFF_CAP_S,
    CircuitBreaker,
    LatencyTracker,
    RetryBudget,
    Router,
    _backoff,
    client_error,
    exhausted_error,
)

T = Target("up", "m")


# --- RetryBudget --------------------------------------------------------------------------------------------------


def test_budget_starts_with_the_reserve() -> None:
    budget = RetryBudget(0.2, 3)
    assert [budget.withdraw() for _ in range(4)] == [True, True, True, False]


def test_budget_without_reserve_or_ratio_allows_nothing() -> None:
    budget = RetryBudget(0.0, 0)
    for _ in range(1000):
        budget.deposit()
    assert not budget.withdraw()


def test_budget_earns_ratio_per_request() -> None:
    budget = RetryBudget(0.2, 0)
    for _ in range(4):
        budget.deposit()
    assert not budget.withdraw(), "four requests earn 0.8 of a retry"
    budget.deposit()
    assert budget.withdraw(), "five requests earn one retry"
    assert not budget.withdraw()


def test_budget_balance_is_capped() -> None:
    budget = RetryBudget(0.2, 10)
    for _ in range(10_000):  # a long calm period
        budget.deposit()
    allowed = 0
    while budget.withdraw():
        allowed += 1
    assert allowed == 10 + 20, "at most the reserve plus what ~100 requests earn"


@pytest.mark.parametrize(("ratio", "reserve"), [(0.2, 10), (0.1, 0), (1.0, 5), (0.5, 3)])
def test_budget_bounds_extra_attempts_over_an_outage(ratio: float, reserve: int) -> None:
    budget = RetryBudget(ratio, reserve)
    n = 2000
    extra = 0
    for _ in range(n):
        budget.deposit()
        while budget.withdraw():  # every request wants as many retries as it can get
            extra += 1
    assert extra <= ratio * n + reserve
    assert extra >= ratio * n + reserve - 2


# --- CircuitBreaker ---------------------------------------------------------------------------------------------


def test_breaker_closed_until_threshold() -> None:
    breaker = CircuitBreaker(3, 10.0)
    for _ in range(2):
        breaker.record("a", False, 0.0)
    assert breaker.available("a", 0.0) and not breaker.is_open("a", 0.0)
    breaker.record("a", False, 0.0)
    assert breaker.is_open("a", 1.0)
    assert not breaker.available("a", 1.0)
    assert not breaker.available("a", 9.99)


def test_breaker_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(3, 10.0)
    for _ in range(5):
        breaker.record("a", False, 0.0)
        breaker.record("a", False, 0.0)
        breaker.record("a", True, 0.0)
    assert not breaker.is_open("a", 0.0) and breaker.available("a", 0.0)


def test_breaker_half_open_lets_exactly_one_probe_through() -> None:
    breaker = CircuitBreaker(1, 5.0)
    breaker.record("a", False, 100.0)
    assert not breaker.available("a", 104.9)
    assert not breaker.is_open("a", 105.0)
    assert breaker.available("a", 105.0), "the first request after the cooldown probes"
    assert [breaker.available("a", 105.0 + i) for i in range(5)] == [False] * 5, "one probe at a time"


def test_breaker_probe_success_closes() -> None:
    breaker = CircuitBreaker(2, 5.0)
    breaker.record("a", False, 0.0)
    breaker.record("a", False, 0.0)
    assert breaker.available("a", 6.0)
    breaker.record("a", True, 6.1)
    assert all(breaker.available("a", 6.2) for _ in range(5))
    assert not breaker.is_open("a", 6.2)
    breaker.record("a", False, 7.0)
    assert breaker.available("a", 7.0), "closed again: the count starts over"


def test_breaker_probe_failure_reopens_for_a_full_cooldown() -> None:
    breaker = CircuitBreaker(2, 5.0)
    breaker.record("a", False, 0.0)
    breaker.record("a", False, 0.0)
    assert breaker.available("a", 6.0)
    breaker.record("a", False, 6.5)
    assert breaker.is_open("a", 7.0)
    assert not breaker.available("a", 11.4)
    assert breaker.available("a", 11.5), "open until the probe's failure plus cooldown_s, then probed again"
    assert not breaker.available("a", 11.6)


def test_breaker_release_frees_the_probe_slot() -> None:
    breaker = CircuitBreaker(1, 1.0)
    breaker.record("a", False, 0.0)
    assert breaker.available("a", 2.0)
    assert not breaker.available("a", 2.0)
    breaker.release("a")
    assert breaker.available("a", 2.0)


def test_breaker_targets_are_independent() -> None:
    breaker = CircuitBreaker(1, 10.0)
    breaker.record("a", False, 0.0)
    assert not breaker.available("a", 1.0)
    assert breaker.available("b", 1.0) and not breaker.is_open("b", 1.0)


# --- LatencyTracker ---------------------------------------------------------------------------------------------


def test_latency_tracker_ewma() -> None:
    tracker = LatencyTracker(alpha=0.2)
    assert tracker.get("a") == 0.0, "an unseen target looks fastest, so it gets tried"
    tracker.observe("a", 100.0)
    assert tracker.get("a") == 100.0
    tracker.observe("a", 200.0)
    assert tracker.get("a") == pytest.approx(120.0)
    for _ in range(100):
        tracker.observe("a", 10.0)
    assert tracker.get("a") == pytest.approx(10.0, abs=0.01)
    assert tracker.get("b") == 0.0


# --- backoff ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("retry", [1, 2, 3, 4, 6, 10, 30])
def test_backoff_full_jitter_bounds(retry: int) -> None:
    rng = random.Random(retry)
    ceiling = min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2 ** (retry - 1))
    delays = [_backoff(retry, None, rng) for _ in range(2000)]
    assert all(0.0 <= d <= ceiling for d in delays)
    assert max(delays) > 0.9 * ceiling and min(delays) < 0.1 * ceiling, "full jitter spans [0, ceiling]"
    assert sum(delays) / len(delays) == pytest.approx(ceiling / 2, rel=0.1)


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    rng = random.Random(1)
    assert max(_backoff(1, None, rng) for _ in range(500)) <= 0.1
    assert max(_backoff(3, None, rng) for _ in range(500)) > 0.3
    assert max(_backoff(20, None, rng) for _ in range(500)) <= 4.0


def test_backoff_honours_retry_after() -> None:
    rng = random.Random(2)
    failure = UpstreamFailure(429, "slow down", retry_after=0.7)
    assert all(0.7 <= _backoff(1, failure, rng) <= 0.7 + 1e-9 for _ in range(200))
    assert all(0.7 <= _backoff(5, failure, rng) <= 1.6 for _ in range(200))


def test_backoff_caps_a_huge_retry_after() -> None:
    rng = random.Random(3)
    failure = UpstreamFailure(503, "later", retry_after=3600)
    assert all(_backoff(1, failure, rng) == _BACKOFF_CAP_S for _ in range(50))


def test_backoff_without_retry_after_ignores_the_failure() -> None:
    failure = UpstreamFailure(500, "boom")
    a = [_backoff(2, failure, random.Random(9)) for _ in range(1)]
    b = [_backoff(2, None, random.Random(9)) for _ in range(1)]
    assert a == b


# --- retryable ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [0, 408, 409, 429, 500, 502, 503, 504, 529])
def test_retryable_statuses(status: int) -> None:
    assert UpstreamFailure(status, "x").retryable


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_non_retryable_statuses(status: int) -> None:
    assert not UpstreamFailure(status, "x").retryable


def test_timeout_is_retryable() -> None:
    assert UpstreamFailure(0, "slow", timeout=True).retryable


# --- client_error / exhausted_error ---------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "cls", "client_status", "code"), [
    (400, InvalidRequest, 400, "upstream_invalid_request"),
    (422, InvalidRequest, 400, "upstream_invalid_request"),
    (413, PayloadTooLarge, 413, "request_too_large"),
    (401, UpstreamError, 502, "upstream_auth"),
    (403, UpstreamError, 502, "upstream_auth"),
    (404, GatewayError, 404, "upstream_not_found"),
    (418, UpstreamError, 502, "upstream_error"),
])
def test_client_error_mapping(status: int, cls: type, client_status: int, code: str) -> None:
    error = client_error(UpstreamFailure(status, "upstream says no"), T)
    assert isinstance(error, cls)
    assert error.status == client_status
    assert error.code == code
    assert "up/m" in error.message
    assert named("openai").error_body(error)["error"]["code"] == code
    assert named("anthropic").error_body(error)["type"] == "error"


def test_client_error_auth_never_echoes_the_upstream_message() -> None:
    error = client_error(UpstreamFailure(401, "Incorrect API key provided: sk-abc...xyz"), T)
    assert "sk-abc" not in error.message
    assert isinstance(error, UpstreamError) and error.upstream_status == 401


def _ex_with(*statuses: int) -> Exchange:
    ex = Exchange("openai", "chat", alias="fast")
    ex.attempts = [Attempt(i + 1, "up/m" if i % 2 == 0 else "other/m", s, 1.0) for i, s in enumerate(statuses)]
    return ex


def test_exhausted_without_any_target() -> None:
    error = exhausted_error(None, Exchange("openai", "chat", alias="fast"))
    assert isinstance(error, UpstreamError) and error.status == 502
    assert "fast" in error.message


def test_exhausted_after_timeouts_is_504() -> None:
    error = exhausted_error(UpstreamFailure(0, "slow", timeout=True), _ex_with(500, 0))
    assert isinstance(error, UpstreamTimeout) and error.status == 504
    assert "up/m" in error.message and "other/m" in error.message


def test_exhausted_all_rate_limited_is_429_with_retry_after() -> None:
    error = exhausted_error(UpstreamFailure(429, "slow down", retry_after=7), _ex_with(429, 429))
    assert isinstance(error, RateLimited) and error.status == 429
    assert error.retry_after == 7
    assert error.headers() == {"Retry-After": "7"}
    default = exhausted_error(UpstreamFailure(429, "slow down"), _ex_with(429))
    assert default.retry_after == 1.0


def test_exhausted_mixed_failures_is_502_with_last_status() -> None:
    error = exhausted_error(UpstreamFailure(503, "unavailable"), _ex_with(429, 503))
    assert isinstance(error, UpstreamError) and not isinstance(error, RateLimited)
    assert error.status == 502 and error.upstream_status == 503
    assert "unavailable" in error.message


def test_exhausted_says_when_the_budget_is_spent() -> None:
    error = exhausted_error(UpstreamFailure(500, "boom"), _ex_with(500), budget_spent=True)
    assert "retry budget" in error.message
    assert "retry budget" not in exhausted_error(UpstreamFailure(500, "boom"), _ex_with(500)).message


# --- Router.order -------------------------------------------------------------------------------------------------


def _model(*names: str, **kw: Any) -> ModelConfig:
    return ModelConfig("alias", tuple(Target(*n.split("/")) for n in names), **kw)


def _router(routing: RoutingConfig | None = None, seed: int = 0, **providers: Any) -> Router:
    return Router(providers, routing or RoutingConfig(), rng=random.Random(seed))


def test_order_fallback_is_declared_order() -> None:
    router = _router()
    model = _model("a/1", "b/1", "c/1")
    assert [t.name for t in router.order(model)] == ["a/1", "b/1", "c/1"]


def test_order_puts_cooling_targets_last() -> None:
    router = _router(RoutingConfig(cooldown_failures=1, cooldown_s=10))
    model = _model("a/1", "b/1", "c/1")
    router.breaker.record("a/1", False, 100.0)
    assert [t.name for t in router.order(model, now=101.0)] == ["b/1", "c/1", "a/1"]
    assert [t.name for t in router.order(model, now=111.0)] == ["a/1", "b/1", "c/1"]


def test_order_with_every_target_cooling_keeps_the_strategy_order() -> None:
    router = _router(RoutingConfig(cooldown_failures=1, cooldown_s=10))
    model = _model("a/1", "b/1")
    for name in ("a/1", "b/1"):
        router.breaker.record(name, False, 0.0)
    assert [t.name for t in router.order(model, now=1.0)] == ["a/1", "b/1"]


def test_order_loadbalance_follows_weights() -> None:
    router = _router(seed=42)
    model = _model("a/1", "b/1", "c/1", strategy="loadbalance", weights=(6.0, 3.0, 1.0))
    firsts = Counter(router.order(model)[0].name for _ in range(20_000))
    assert firsts["a/1"] / 20_000 == pytest.approx(0.6, abs=0.02)
    assert firsts["b/1"] / 20_000 == pytest.approx(0.3, abs=0.02)
    assert firsts["c/1"] / 20_000 == pytest.approx(0.1, abs=0.02)
    order = router.order(model)
    assert sorted(t.name for t in order) == ["a/1", "b/1", "c/1"], "every target is still there to fall back to"


def test_order_loadbalance_zero_weight_is_never_first() -> None:
    router = _router(seed=1)
    model = _model("a/1", "b/1", strategy="loadbalance", weights=(0.0, 1.0))
    assert {router.order(model)[0].name for _ in range(500)} == {"b/1"}


def test_order_least_latency() -> None:
    router = _router()
    model = _model("a/1", "b/1", "c/1", strategy="least-latency")
    router.latency.observe("a/1", 50.0)
    router.latency.observe("b/1", 5.0)
    router.latency.observe("c/1", 20.0)
    assert [t.name for t in router.order(model)] == ["b/1", "c/1", "a/1"]


# --- Router.route with stub providers ---------------------------------------------------------------------------


class Stub:
    """A provider whose chat answers follow a script: an int status (200: answer), or "hang"."""

    def speaks(self, client_format: str) -> bool:
        return client_format == "openai"

    def __init__(self, *script: int | str, default: int | str = 200, retry_after: float | None = None) -> None:
        self.script = list(script)
        self.default = default
        self.retry_after = retry_after
        self.calls: list[float] = []

    async def chat(self, ex: Exchange, body: dict[str, Any], model: str) -> UpstreamReply:
        self.calls.append(time.perf_counter())
        step = self.script.pop(0) if self.script else self.default
        if step == "hang":
            await asyncio.sleep(3600)
        if step != 200:
            raise UpstreamFailure(int(step), f"stub {step}", retry_after=self.retry_after)
        return UpstreamReply({"choices": []})


def _exchange(model: ModelConfig, deadline_s: float = 60.0) -> Exchange:
    ex = Exchange("openai", "chat", alias=model.alias, model=model, body={"messages": []})
    ex.deadline = ex.started + deadline_s
    return ex


async def test_route_retries_then_falls_back_recording_every_attempt() -> None:
    a, b = Stub(500, 503), Stub()
    router = _router(a=a, b=b)
    model = _model("a/1", "b/1", retries=1)
    ex = _exchange(model)
    await router.route(ex)
    assert ex.target is not None and ex.target.name == "b/1"
    assert [(x.number, x.target, x.status) for x in ex.attempts] == [(1, "a/1", 500), (2, "a/1", 503), (3, "b/1", 200)]
    assert ex.reply is not None


async def test_route_non_retryable_stops_at_once() -> None:
    a, b = Stub(400), Stub()
    router = _router(a=a, b=b)
    ex = _exchange(_model("a/1", "b/1", retries=3))
    with pytest.raises(InvalidRequest):
        await router.route(ex)
    assert len(a.calls) == 1 and not b.calls
    assert len(ex.attempts) == 1


async def test_route_honours_retry_after_between_attempts() -> None:
    a = Stub(429, retry_after=0.2)
    router = _router(a=a)
    await router.route(_exchange(_model("a/1", retries=1)))
    assert len(a.calls) == 2
    assert a.calls[1] - a.calls[0] >= 0.2


async def test_route_gives_up_when_retry_after_exceeds_the_deadline() -> None:
    """No sleeping past the deadline: the target is given up at once and the client hears it is rate limited
    (429 with the upstream's Retry-After) rather than a timeout."""
    a = Stub(429, retry_after=3.0)
    router = _router(a=a)
    started = time.perf_counter()
    with pytest.raises(RateLimited):
        await router.route(_exchange(_model("a/1", retries=1), deadline_s=0.5))
    assert time.perf_counter() - started < 0.3, "no point sleeping past the deadline"
    assert len(a.calls) == 1


async def test_route_first_token_timeout_per_attempt() -> None:
    a, b = Stub("hang"), Stub()
    router = Router({"a": a, "b": b}, RoutingConfig(), rng=random.Random(0), first_token_timeout_s=0.1)
    ex = _exchange(_model("a/1", "b/1"))
    await router.route(ex)
    assert [(x.target, x.status) for x in ex.attempts] == [("a/1", 0), ("b/1", 200)]
    assert 90 <= ex.attempts[0].latency_ms < 400


async def test_route_deadline_raises_504_and_records_the_attempt() -> None:
    a = Stub("hang")
    router = _router(a=a)
    ex = _exchange(_model("a/1", retries=3), deadline_s=0.2)
    started = time.perf_counter()
    with pytest.raises(UpstreamTimeout):
        await router.route(ex)
    assert 0.18 <= time.perf_counter() - started < 0.5
    assert [(x.target, x.status) for x in ex.attempts] == [("a/1", 0)]


async def test_route_budget_bounds_attempts_over_an_outage() -> None:
    a, b, c = Stub(default=500), Stub(default=503), Stub(default=529)
    router = Router({"a": a, "b": b, "c": c}, RoutingConfig(retry_budget=0.2, retry_reserve=10,
                                                            cooldown_failures=10**9), rng=random.Random(0))
    model = _model("a/1", "b/1", "c/1")  # fallbacks only: every request would like 2 extra attempts
    n = 500
    total = 0
    for _ in range(n):
        ex = _exchange(model)
        with pytest.raises(UpstreamError):
            await router.route(ex)
        total += len(ex.attempts)
    assert total == len(a.calls) + len(b.calls) + len(c.calls)
    assert n + 0.2 * n + 10 - 2 <= total <= 1.2 * n + 10


async def test_route_budget_spent_says_so() -> None:
    a, b = Stub(default=500), Stub(default=500)
    router = Router({"a": a, "b": b}, RoutingConfig(retry_budget=0.0, retry_reserve=1), rng=random.Random(0))
    model = _model("a/1", "b/1")
    first = _exchange(model)
    with pytest.raises(UpstreamError):
        await router.route(first)
    assert len(first.attempts) == 2, "the reserve pays for one fallback"
    second = _exchange(model)
    with pytest.raises(UpstreamError, match="retry budget"):
        await router.route(second)
    assert len(second.attempts) == 1


async def test_route_skips_a_target_in_cooldown_but_never_the_last_one() -> None:
    a, b = Stub(default=500), Stub()
    router = _router(RoutingConfig(cooldown_failures=2, cooldown_s=60), a=a, b=b)
    model = _model("a/1", "b/1")
    for _ in range(5):
        await router.route(_exchange(model))
    assert len(a.calls) == 2 and len(b.calls) == 5
    only_a = _model("a/1")
    for _ in range(3):
        with pytest.raises(UpstreamError):
            await router.route(_exchange(only_a))
    assert len(a.calls) == 5


async def test_route_tries_the_last_target_even_when_all_are_cooling() -> None:
    a, b = Stub(default=500), Stub(default=500)
    router = _router(RoutingConfig(cooldown_failures=1, cooldown_s=60), a=a, b=b)
    model = _model("a/1", "b/1")
    with pytest.raises(UpstreamError):
        await router.route(_exchange(model))
    assert len(a.calls) == 1 and len(b.calls) == 1
    b.default = 200
    ex = _exchange(model)
    await router.route(ex)
    assert ex.target is not None and ex.target.name == "b/1"


async def test_route_fail_targets_fail_without_being_called() -> None:
    a, b = Stub(), Stub()
    router = Router({"a": a, "b": b}, RoutingConfig(), rng=random.Random(0), fail_targets={"a/1"})
    ex = _exchange(_model("a/1", "b/1"))
    await router.route(ex)
    assert not a.calls and len(b.calls) == 1
    assert [(x.target, x.status) for x in ex.attempts] == [("a/1", 503), ("b/1", 200)]


async def test_route_unknown_provider_counts_as_failed_attempt() -> None:
    b = Stub()
    router = _router(b=b)
    ex = _exchange(_model("gone/1", "b/1"))
    await router.route(ex)
    assert [(x.target, x.status) for x in ex.attempts] == [("gone/1", 503), ("b/1", 200)]


class Blocking(Stub):
    """Fails with a retryable status after blocking the event loop (so no timer can cut it short)."""

    def __init__(self, block_s: float) -> None:
        super().__init__(default=500)
        self.block_s = block_s

    async def chat(self, ex: Exchange, body: dict[str, Any], model: str) -> UpstreamReply:
        time.sleep(self.block_s)
        return await super().chat(ex, body, model)


async def test_route_cancelled_records_the_attempt_and_frees_the_probe() -> None:
    a = Stub("hang")
    router = _router(RoutingConfig(cooldown_failures=1, cooldown_s=0.0), a=a, b=Stub())
    router.breaker.record("a/1", False, time.monotonic())
    model = _model("a/1", "b/1")
    ex = _exchange(model)
    task = asyncio.ensure_future(router.route(ex))
    while not a.calls:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [(x.target, x.status) for x in ex.attempts] == [("a/1", 0)]
    assert router.breaker.available("a/1", time.monotonic()), "the probe slot was given back"


async def test_route_deadline_before_a_fallback_frees_its_probe() -> None:
    """The deadline passes while the first target fails; the half-open second target was claimed as a probe but
    never called: its probe slot must not stay claimed."""
    a, b, c = Blocking(0.25), Stub(), Stub()
    router = _router(RoutingConfig(cooldown_failures=1, cooldown_s=0.0, retry_reserve=5), a=a, b=b, c=c)
    router.breaker.record("b/1", False, time.monotonic())  # b: cooldown over, half-open
    with pytest.raises(UpstreamTimeout):
        await router.route(_exchange(_model("a/1", "b/1"), deadline_s=0.2))
    assert not b.calls
    ex = _exchange(_model("b/1", "c/1"))
    await router.route(ex)
    assert len(b.calls) == 1, "b must be probed by the next request"
    assert ex.target is not None and ex.target.name == "b/1"
