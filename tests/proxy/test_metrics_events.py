"""`GET /metrics` (Prometheus text) and `GET /admin/events` (server-sent events): :class:`llmgw.proxy.metrics.Metrics`
and :class:`llmgw.proxy.events.EventHub` fed as MeterStage listeners, served from a small aiohttp application."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from llmgw.exchange import Attempt, Exchange, UpstreamReply, Usage
from llmgw.pricing import PriceTable
from llmgw.profile import Target
from llmgw.proxy.events import EventHub, events_handler
from llmgw.proxy.metrics import CONTENT_TYPE, Metrics, metrics_handler, refresh_spend_anomalies, spend_anomalies
from llmgw.stages.meter import MeterStage
from llmgw.store.log import write_rows

ADMIN_KEY = "sk-admin-canary-value-42"


def row(**overrides: Any) -> dict[str, Any]:
    """A finished request's log row, as MeterStage hands it to listeners."""
    base: dict[str, Any] = {
        "id": "req_1", "time": time.time(), "client_format": "openai", "endpoint": "chat", "alias": "fast",
        "provider": "mock", "target": "mock/mock-1", "status": 200, "outcome": "ok", "error": None,
        "error_message": None, "input_tokens": 10, "output_tokens": 5, "cached_tokens": 0, "cache_write_tokens": 0,
        "reasoning_tokens": 0, "cost_usd": 0.25, "latency_ms": 300.0, "ttft_ms": 80.0,
        "attempts": [{"n": 1, "target": "mock/mock-1", "status": 200, "latency_ms": 300.0, "error": None}],
        "cache": "miss", "key": "ci", "team": "search", "tags": [], "stream": False, "dropped_params": [],
        "request": b'{"model":"fast","messages":[{"role":"user","content":"hi"}]}',
        "response": {"choices": [{"message": {"content": "hello"}}]},
    }
    base.update(overrides)
    return base


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the rendered text, parsed by prometheus_client: {(name, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(metrics.render()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics).get((name, tuple(sorted(labels.items()))), 0.0)


# --- Metrics ---------------------------------------------------------------------------------------------------


def test_render_parses_with_every_family_before_any_traffic() -> None:
    families = {f.name: f.type for f in text_string_to_metric_families(Metrics().render())}
    assert families == {
        "llmgw_requests": "counter", "llmgw_errors": "counter", "llmgw_tokens": "counter",
        "llmgw_cost_usd": "counter", "llmgw_cache_hits": "counter", "llmgw_fallbacks": "counter",
        "llmgw_request_latency_seconds": "histogram", "llmgw_time_to_first_token_seconds": "histogram",
        "llmgw_overhead_seconds": "histogram", "llmgw_profile_reloads": "counter",
        "llmgw_spend_anomaly": "gauge",
    }


def test_counters_move_as_rows_are_observed() -> None:
    metrics = Metrics()
    metrics.observe(row())
    metrics.observe(row(cached_tokens=4, cost_usd=0.5))
    metrics.observe(row(status=502, outcome="error", error="upstream_error", cost_usd=0.0, input_tokens=0,
                        output_tokens=0, ttft_ms=None))
    metrics.observe(row(cache="hit", cost_usd=0.0))
    metrics.observe(row(cache="semantic", cost_usd=0.0))
    metrics.observe(row(attempts=[{"n": 1}, {"n": 2}], target="mock/mock-2"))
    metrics.observe(row(attempts=[{"n": 1}, {"n": 2}], status=502, error="upstream_error"))
    metrics.observe(row(status=499, outcome="client_disconnect"))
    base = {"alias": "fast", "target": "mock/mock-1", "team": "search"}
    assert value(metrics, "llmgw_requests_total", **base, status="200") == 4
    assert value(metrics, "llmgw_requests_total", **base, status="502") == 2
    assert value(metrics, "llmgw_requests_total", **{**base, "target": "mock/mock-2"}, status="200") == 1
    assert value(metrics, "llmgw_errors_total", alias="fast", target="mock/mock-1", error="upstream_error") == 2
    assert value(metrics, "llmgw_errors_total", alias="fast", target="mock/mock-1",
                 error="client_disconnect") == 1
    assert value(metrics, "llmgw_tokens_total", **base, kind="input") == 10 * 6
    assert value(metrics, "llmgw_tokens_total", **base, kind="output") == 5 * 6
    assert value(metrics, "llmgw_tokens_total", **base, kind="cached") == 4
    assert value(metrics, "llmgw_cost_usd_total", **base) == pytest.approx(0.25 * 3 + 0.5)
    assert value(metrics, "llmgw_cache_hits_total", alias="fast", kind="hit") == 1
    assert value(metrics, "llmgw_cache_hits_total", alias="fast", kind="semantic") == 1
    assert value(metrics, "llmgw_fallbacks_total", alias="fast") == 1, "only answered requests count"


def test_histograms_move_as_rows_are_observed() -> None:
    metrics = Metrics()
    for latency in (40.0, 300.0, 700.0, 9000.0, 10_000_000.0):
        metrics.observe(row(latency_ms=latency, ttft_ms=None if latency > 1000 else latency / 2))
    labels = {"alias": "fast", "target": "mock/mock-1"}
    name = "llmgw_request_latency_seconds"
    assert value(metrics, f"{name}_count", **labels) == 5
    assert value(metrics, f"{name}_sum", **labels) == pytest.approx((40 + 300 + 700 + 9000 + 10_000_000) / 1000)
    assert value(metrics, f"{name}_bucket", **labels, le="0.05") == 1
    assert value(metrics, f"{name}_bucket", **labels, le="0.5") == 2
    assert value(metrics, f"{name}_bucket", **labels, le="1.0") == 3
    assert value(metrics, f"{name}_bucket", **labels, le="10.0") == 4
    assert value(metrics, f"{name}_bucket", **labels, le="+Inf") == 5
    ttft = "llmgw_time_to_first_token_seconds"
    assert value(metrics, f"{ttft}_count", **labels) == 3, "rows without a first token are not observed"
    assert value(metrics, f"{ttft}_bucket", **labels, le="0.025") == 1
    assert value(metrics, f"{ttft}_bucket", **labels, le="0.5") == 3


def test_label_values_are_escaped() -> None:
    metrics = Metrics()
    weird = 'a"b\\c\nd'
    metrics.observe(row(team=weird, alias="x"))
    assert value(metrics, "llmgw_requests_total", alias="x", target="mock/mock-1", team=weird, status="200") == 1


def test_unknown_aliases_fold_into_one_series() -> None:
    metrics = Metrics(aliases={"fast"})
    for i in range(50):
        metrics.observe(row(alias=f"made-up-{i}", status=404, error="model_not_found", target="", provider=""))
    assert value(metrics, "llmgw_requests_total", alias="unknown", target="", team="search", status="404") == 50
    assert not any("made-up" in line for line in metrics.render().splitlines())


def test_a_flood_of_made_up_aliases_keeps_the_label_memory_bounded() -> None:
    from llmgw.proxy import metrics as module

    metrics = Metrics(aliases={"fast"})
    for i in range(module.MAX_SERIES_CACHE + 500):
        metrics.observe(row(alias=f"made-up-{i}", status=404, error="model_not_found", target="", provider=""))
    assert len(metrics._series) <= module.MAX_SERIES_CACHE
    assert value(metrics, "llmgw_requests_total", alias="unknown", target="", team="search", status="404") == \
        module.MAX_SERIES_CACHE + 500


def test_spend_anomaly_gauge_hook() -> None:
    metrics = Metrics()
    metrics.set_spend_anomalies({"team=search": True, "team=ads": False})
    assert value(metrics, "llmgw_spend_anomaly", group="team=search") == 1
    assert value(metrics, "llmgw_spend_anomaly", group="team=ads") == 0
    metrics.set_spend_anomalies({})
    assert ("llmgw_spend_anomaly", (("group", "team=search"),)) not in samples(metrics)


async def test_spend_anomalies_refresh_from_the_log(tmp_path: Path) -> None:
    now = time.time()
    rows = [row(id=f"req_old_{d}", time=now - d * 86400 - 60, team=team, cost_usd=0.2)
            for d in range(1, 6) for team in ("search", "ads")]
    rows += [row(id=f"req_new_{i}", time=now - 60, team="search", cost_usd=1.0) for i in range(3)]
    write_rows(tmp_path / "log.db", rows)
    assert spend_anomalies(tmp_path / "log.db", ("team",), now=now) == {"team=search": True, "team=ads": False}
    assert spend_anomalies(tmp_path / "absent.db") == {}
    metrics = Metrics()
    task = asyncio.create_task(refresh_spend_anomalies(metrics, tmp_path / "log.db", interval_s=60))
    for _ in range(200):
        if value(metrics, "llmgw_spend_anomaly", group="team=search") == 1:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert value(metrics, "llmgw_spend_anomaly", group="team=search") == 1


class _Writer:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)


async def test_meter_stage_feeds_metrics_and_events() -> None:
    metrics, hub, writer = Metrics(), EventHub(), _Writer()
    meter = MeterStage(PriceTable.load(), writer, listeners=[metrics.observe, hub.publish])  # type: ignore[arg-type]
    ex = Exchange("openai", "chat", alias="fast", team="search", target=Target("mock", "mock-1"),
                  usage=Usage(input_tokens=7, output_tokens=3), raw_body=b'{"model":"fast"}')
    ex.attempts = [Attempt(1, "mock/mock-1", 200, 5.0)]
    ex.reply = UpstreamReply(body={"choices": []})
    with hub.subscribe(bodies=True) as subscription:
        await meter.response(ex)
        record = await asyncio.wait_for(anext(subscription), 1)
    assert record["id"] == ex.id and record["request"] == b'{"model":"fast"}'
    assert value(metrics, "llmgw_requests_total", alias="fast", target="mock/mock-1", team="search",
                 status="200") == 1
    assert value(metrics, "llmgw_tokens_total", alias="fast", target="mock/mock-1", team="search",
                 kind="input") == 7
    assert writer.rows[0] is record


async def test_metrics_endpoint(aiohttp_client: Any) -> None:
    metrics = Metrics()
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(metrics))
    client = await aiohttp_client(app)
    metrics.observe(row())
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await response.text()
    assert 'llmgw_requests_total{alias="fast",target="mock/mock-1",team="search",status="200"} 1' in text
    assert list(text_string_to_metric_families(text))


# --- EventHub and GET /admin/events ----------------------------------------------------------------------------


async def events_client(aiohttp_client: Any, hub: EventHub, admin_key: str | None = None,
                        keepalive_s: float = 15.0) -> TestClient:
    app = web.Application()
    app.router.add_get("/admin/events", events_handler(hub, admin_key, keepalive_s=keepalive_s))
    return await aiohttp_client(app)


async def next_event(response: Any, timeout: float = 2.0) -> bytes:
    """The next SSE event (without its blank-line terminator), comments included."""
    return (await asyncio.wait_for(response.content.readuntil(b"\n\n"), timeout))[:-2]


async def next_data(response: Any) -> dict[str, Any]:
    while True:
        event = await next_event(response)
        if event.startswith(b"data: "):
            return orjson.loads(event[len(b"data: "):])


async def test_subscriber_receives_published_records_as_sse(aiohttp_client: Any) -> None:
    hub = EventHub()
    client = await events_client(aiohttp_client, hub)
    response = await client.get("/admin/events")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert await next_event(response) == b": connected"
    assert hub.subscribers == 1
    published = [row(id="req_a"), row(id="req_b", status=502, error="upstream_error")]
    snapshot = copy.deepcopy(published)
    for r in published:
        hub.publish(r)
    first, second = await next_data(response), await next_data(response)
    assert (first["id"], second["id"]) == ("req_a", "req_b")
    assert second["status"] == 502 and second["error"] == "upstream_error"
    assert first["team"] == "search" and first["attempts"][0]["target"] == "mock/mock-1"
    assert "request" not in first and "response" not in first, "bodies only with ?bodies=1"
    assert published == snapshot, "published rows are not mutated"
    response.close()


async def test_bodies_only_when_asked(aiohttp_client: Any) -> None:
    hub = EventHub()
    client = await events_client(aiohttp_client, hub)
    with_bodies = await client.get("/admin/events?bodies=1")
    without = await client.get("/admin/events")
    await next_event(with_bodies)
    await next_event(without)
    hub.publish(row())
    full, lean = await next_data(with_bodies), await next_data(without)
    assert full["request"] == {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
    assert full["response"] == {"choices": [{"message": {"content": "hello"}}]}
    assert "request" not in lean and "response" not in lean
    assert {k: v for k, v in full.items() if k not in ("request", "response")} == lean
    with_bodies.close()
    without.close()


async def test_keep_alive_comments(aiohttp_client: Any) -> None:
    client = await events_client(aiohttp_client, EventHub(), keepalive_s=0.05)
    response = await client.get("/admin/events")
    assert await next_event(response) == b": connected"
    assert await next_event(response) == b": keep-alive"
    response.close()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"x-api-key": "wrong"},
                                     {"Authorization": f"Basic {ADMIN_KEY}"}])
async def test_admin_key_required_when_set(aiohttp_client: Any, headers: dict[str, str]) -> None:
    hub = EventHub()
    client = await events_client(aiohttp_client, hub, admin_key=ADMIN_KEY)
    response = await client.get("/admin/events", headers=headers)
    assert response.status == 401
    body = await response.json()
    assert body["error"]["type"] == "authentication_error"
    assert set(body["error"]) >= {"message", "type", "code"}
    assert ADMIN_KEY not in await response.text()
    assert hub.subscribers == 0


@pytest.mark.parametrize("headers", [{"Authorization": f"Bearer {ADMIN_KEY}"}, {"x-api-key": ADMIN_KEY}])
async def test_admin_key_accepted(aiohttp_client: Any, headers: dict[str, str]) -> None:
    hub = EventHub()
    client = await events_client(aiohttp_client, hub, admin_key=ADMIN_KEY)
    response = await client.get("/admin/events", headers=headers)
    assert response.status == 200
    await next_event(response)
    hub.publish(row(id="req_ok"))
    assert (await next_data(response))["id"] == "req_ok"
    response.close()


async def test_slow_subscriber_never_blocks_publish() -> None:
    hub = EventHub(queue_size=10)
    slow = hub.subscribe()            # never read
    fast = hub.subscribe()
    received = []

    async def read() -> None:
        async for record in fast:
            received.append(record["id"])

    reader = asyncio.create_task(read())
    started = time.perf_counter()
    for i in range(5000):
        hub.publish(row(id=f"req_{i}"))
        if i % 5 == 4:
            await asyncio.sleep(0)    # let the fast reader keep up
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0)
    assert elapsed < 2.0
    assert slow.dropped == 5000 - 10
    assert fast.dropped == 0
    hub.close()
    await asyncio.wait_for(reader, 1)
    assert len(received) == 5000


async def test_slow_http_subscriber_never_blocks_publish(aiohttp_client: Any) -> None:
    hub = EventHub(queue_size=5)
    client = await events_client(aiohttp_client, hub)
    stalled = await client.get("/admin/events?bodies=1")   # connected, then never read
    await next_event(stalled)
    big = row(response={"text": "x" * 100_000})
    started = time.perf_counter()
    for _ in range(2000):
        hub.publish(big)
    assert time.perf_counter() - started < 1.0
    live = await client.get("/admin/events")
    await next_event(live)
    hub.publish(row(id="req_after"))
    assert (await next_data(live))["id"] == "req_after"
    stalled.close()
    live.close()


async def test_close_ends_every_stream(aiohttp_client: Any) -> None:
    hub = EventHub()
    client = await events_client(aiohttp_client, hub)
    response = await client.get("/admin/events")
    await next_event(response)
    hub.close()
    assert await asyncio.wait_for(response.content.read(), 2) == b""
    assert hub.subscribers == 0
    after = hub.subscribe()
    hub.publish(row())
    assert [r async for r in after] == []


async def test_client_disconnect_unsubscribes(aiohttp_client: Any) -> None:
    hub = EventHub()
    client = await events_client(aiohttp_client, hub, keepalive_s=0.02)
    response = await client.get("/admin/events")
    await next_event(response)
    assert hub.subscribers == 1
    response.close()
    for _ in range(100):
        if hub.subscribers == 0:
            break
        hub.publish(row())
        await asyncio.sleep(0.02)
    assert hub.subscribers == 0


def test_render_adds_other_workers_snapshots_and_ignores_malformed_parts(tmp_path: Path) -> None:
    from llmgw.proxy.metrics_share import read_others, write_snapshot

    mine, other = Metrics(), Metrics()
    mine.observe(row())
    other.observe(row())
    other.observe(row(alias="smart", target="mock/mock-2", team="ads", status=429, error="rate_limited"))
    write_snapshot(tmp_path, other.snapshot(), pid=111)
    write_snapshot(tmp_path, {"counters": {"llmgw_requests_total": [[["too", "few"], 5], "junk"]},
                              "histograms": {"llmgw_request_latency_seconds": [[["fast", "mock/mock-1"], [1, 2]]]}},
                   pid=222)
    (tmp_path / "worker-333.json").write_text("{not json")
    write_snapshot(tmp_path, mine.snapshot(), pid=444)   # this process's own file is not added twice
    others = read_others(tmp_path, pid=444)
    assert len(others) == 2
    parsed = {}
    for family in text_string_to_metric_families(mine.render(others)):
        for sample in family.samples:
            parsed[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    fast = (("alias", "fast"), ("status", "200"), ("target", "mock/mock-1"), ("team", "search"))
    assert parsed[("llmgw_requests_total", fast)] == 2
    assert parsed[("llmgw_requests_total", (("alias", "smart"), ("status", "429"), ("target", "mock/mock-2"),
                                            ("team", "ads")))] == 1
    latency = (("alias", "fast"), ("target", "mock/mock-1"))
    assert parsed[("llmgw_request_latency_seconds_count", latency)] == 2
    assert parsed[("llmgw_request_latency_seconds_sum", latency)] == pytest.approx(0.6)
    assert parsed[("llmgw_cost_usd_total", (*latency, ("team", "search")))] == pytest.approx(0.5)
    assert value(mine, "llmgw_requests_total", alias="fast", status="200", target="mock/mock-1", team="search") == 1
