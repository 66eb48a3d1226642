"""Traces of requests through the app (``aiohttp_client``), received by a real OTLP/HTTP collector: the server span
and one client span per attempt, their parent/child links, the GenAI attributes, the client's trace continued and
each attempt's ``traceparent`` sent upstream."""

from __future__ import annotations

import re
from typing import Any

from llmgw.profile import Target
from llmgw.proxy.app import PIPELINE, SESSION
from llmgw.telemetry.hooks import TraceStage
from llmgw.testing import FakeOpenAI

from .conftest import CLIENT, ERROR, SERVER, UNSET, Collector, GatewayFactory

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
CHAT = {"model": "real", "messages": [{"role": "user", "content": "hello traces"}]}


def upstream_traceparents(fake: FakeOpenAI) -> list[str | None]:
    return [r["headers"].get("traceparent") for r in fake.requests if r["path"].endswith("/chat/completions")]


async def test_a_request_is_a_server_span_with_an_attempt_below_it(gateway: GatewayFactory, upstream: FakeOpenAI,
                                                                   collector: Collector) -> None:
    client = await gateway(upstream=upstream.base_url, telemetry={"otlp_endpoint": collector.url},
                           teams={"core": {}}, keys={"k1": {"key": "sk-team-key-1", "team": "core"}})
    resp = await client.post("/v1/chat/completions", json=CHAT, headers={
        "Authorization": "Bearer sk-team-key-1", "traceparent": TRACEPARENT, "tracestate": "vendor=abc"})
    assert resp.status == 200
    body = await resp.json()
    request_id = resp.headers["x-llmgw-request-id"]
    await client.close()   # the app's shutdown flushes the queue

    spans = await collector.wait_for(2)
    assert len(spans) == 2
    (server,), (attempt,) = collector.named(SERVER), collector.named(CLIENT)
    # The client's trace goes on: same trace id, the client's span is the server span's parent.
    assert server["trace_id"] == attempt["trace_id"] == CLIENT_TRACE
    assert server["parent_span_id"] == CLIENT_SPAN
    assert attempt["parent_span_id"] == server["span_id"]
    assert server["trace_state"] == "vendor=abc"
    assert server["name"] == "chat real"
    assert attempt["name"] == "chat gpt-4o-mini"
    assert server["resource"]["service.name"] == "llmgw"
    assert server["scope"] == "llmgw"

    a = server["attributes"]
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "real" and a["llmgw.alias"] == "real"
    assert a["gen_ai.response.model"] == "gpt-4o-mini"
    assert a["gen_ai.provider.name"] == "openai-compatible"
    assert a["gen_ai.usage.input_tokens"] == body["usage"]["prompt_tokens"] > 0
    assert a["gen_ai.usage.output_tokens"] == body["usage"]["completion_tokens"] > 0
    assert a["http.response.status_code"] == 200
    assert a["llmgw.request_id"] == request_id
    assert a["llmgw.team"] == "core" and a["llmgw.key"] == "k1"
    assert a["llmgw.cache"] == "miss"
    assert a["llmgw.attempts"] == 1
    assert isinstance(a["llmgw.cost_usd"], float)
    assert "llmgw.guard.outcome" not in a       # no guardrail configured
    assert server["status"] == UNSET
    # Nothing secret or private rides along: not the key, not the prompt.
    flat = repr(spans)
    assert "sk-team-key-1" not in flat and "hello traces" not in flat

    b = attempt["attributes"]
    assert b["gen_ai.request.model"] == b["gen_ai.response.model"] == "gpt-4o-mini"
    assert b["gen_ai.usage.input_tokens"] == body["usage"]["prompt_tokens"]
    assert b["http.response.status_code"] == 200
    assert b["server.address"] == "127.0.0.1"
    assert b["llmgw.target"] == "up/gpt-4o-mini" and b["llmgw.attempt"] == 1
    # Times: the attempt lies within the request.
    assert server["start"] <= attempt["start"] <= attempt["end"] <= server["end"]
    assert server["end"] - server["start"] < 30e9

    # The upstream was called with the attempt's traceparent (and the client's tracestate).
    (sent,) = upstream_traceparents(upstream)
    assert sent == f"00-{CLIENT_TRACE}-{attempt['span_id']}-01"
    assert upstream.requests[-1]["headers"].get("tracestate") == "vendor=abc"


async def test_a_new_trace_when_the_client_sends_none_or_a_bad_one(gateway: GatewayFactory, upstream: FakeOpenAI,
                                                                   collector: Collector) -> None:
    client = await gateway(upstream=upstream.base_url, telemetry={"otlp_endpoint": collector.url})
    for header in (None, "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "garbage", "ff-" + "a" * 52):
        resp = await client.post("/v1/chat/completions", json=CHAT,
                                 headers={"traceparent": header} if header else {})
        assert resp.status == 200
    await client.close()
    servers = [s for s in await collector.wait_for(8) if s["kind"] == SERVER]
    assert len(servers) == 4
    assert all(s["parent_span_id"] == "" for s in servers)
    assert len({s["trace_id"] for s in servers}) == 4
    for sent, server in zip(upstream_traceparents(upstream), servers, strict=True):
        assert re.fullmatch(rf"00-{server['trace_id']}-[0-9a-f]{{16}}-01", sent or "")


async def test_a_fallback_is_two_attempt_spans_each_sent_upstream(gateway: GatewayFactory, upstream: FakeOpenAI,
                                                                  collector: Collector) -> None:
    client = await gateway(upstream=upstream.base_url, telemetry={"otlp_endpoint": collector.url},
                           models={"pair": {"targets": ["up/gpt-a", "up/gpt-b"]}})
    upstream.fail_next(500)
    resp = await client.post("/v1/chat/completions", json={**CHAT, "model": "pair"},
                             headers={"traceparent": TRACEPARENT})
    assert resp.status == 200
    assert resp.headers["x-llmgw-attempts"] == "2"
    await client.close()
    await collector.wait_for(3)
    (server,) = collector.named(SERVER)
    first, second = sorted(collector.named(CLIENT), key=lambda s: s["attributes"]["llmgw.attempt"])
    assert first["parent_span_id"] == second["parent_span_id"] == server["span_id"]
    assert first["span_id"] != second["span_id"]
    assert first["name"] == "chat gpt-a" and second["name"] == "chat gpt-b"
    assert first["status"] == ERROR and first["attributes"]["http.response.status_code"] == 500
    assert first["attributes"]["error.type"] == "500"
    assert "gen_ai.usage.input_tokens" not in first["attributes"]
    assert second["status"] == UNSET and second["attributes"]["gen_ai.usage.output_tokens"] > 0
    assert first["end"] <= second["start"]
    assert server["attributes"]["llmgw.attempts"] == 2
    assert server["attributes"]["gen_ai.response.model"] == "gpt-b"
    # Each upstream request carried its own attempt's span as the parent.
    assert upstream_traceparents(upstream) == [f"00-{CLIENT_TRACE}-{first['span_id']}-01",
                                               f"00-{CLIENT_TRACE}-{second['span_id']}-01"]


async def test_a_cache_hit_is_a_server_span_without_attempts(gateway: GatewayFactory, upstream: FakeOpenAI,
                                                             collector: Collector) -> None:
    client = await gateway(upstream=upstream.base_url, telemetry={"otlp_endpoint": collector.url},
                           cache={"semantic": False})
    for _ in range(2):
        resp = await client.post("/v1/chat/completions", json=CHAT)
        assert resp.status == 200
    assert resp.headers["x-llmgw-cache"] == "hit"
    await client.close()
    await collector.wait_for(3)
    servers = collector.named(SERVER)
    assert [s["attributes"]["llmgw.cache"] for s in servers] == ["miss", "hit"]
    assert len(collector.named(CLIENT)) == 1      # only the miss went upstream
    hit = servers[1]["attributes"]
    assert hit["llmgw.attempts"] == 0
    assert hit["gen_ai.usage.output_tokens"] == servers[0]["attributes"]["gen_ai.usage.output_tokens"]
    assert len(upstream_traceparents(upstream)) == 1


async def test_failures_refusals_streams_and_embeddings(gateway: GatewayFactory, upstream: FakeOpenAI,
                                                        collector: Collector) -> None:
    client = await gateway(upstream=upstream.base_url, telemetry={"otlp_endpoint": collector.url},
                           guardrails=[{"name": "no-secrets", "kind": "regex", "pattern": "forbidden-word",
                                        "action": "block"}])
    upstream.fail_next(503)
    assert (await client.post("/v1/chat/completions", json=CHAT)).status == 502
    assert (await client.post("/v1/chat/completions", json={**CHAT, "model": "nope"})).status == 404
    blocked = {**CHAT, "messages": [{"role": "user", "content": "say forbidden-word"}]}
    assert (await client.post("/v1/chat/completions", json=blocked)).status == 403
    stream = await client.post("/v1/chat/completions", json={**CHAT, "stream": True,
                                                             "stream_options": {"include_usage": True}})
    assert stream.status == 200
    await stream.read()
    assert (await client.post("/v1/embeddings", json={"model": "real-embed", "input": "hi"})).status == 200
    await client.close()
    await collector.wait_for(8)
    servers = collector.named(SERVER)
    by_status = {s["attributes"]["http.response.status_code"]: s for s in servers}
    failed = by_status[502]
    assert failed["status"] == ERROR and failed["attributes"]["error.type"] == failed["status_message"]
    assert "gen_ai.usage.input_tokens" not in failed["attributes"]
    (failed_attempt,) = [s for s in collector.named(CLIENT) if s["parent_span_id"] == failed["span_id"]]
    assert failed_attempt["status"] == ERROR and failed_attempt["attributes"]["http.response.status_code"] == 503
    unknown = by_status[404]
    assert unknown["status"] == UNSET and unknown["attributes"]["error.type"]
    guarded = by_status[403]
    assert guarded["attributes"]["llmgw.guard.outcome"] == "block"
    assert guarded["attributes"]["error.type"] == "guardrail_blocked"
    assert "forbidden-word" not in repr(collector.spans)
    streamed = [s for s in servers if s["attributes"].get("gen_ai.request.stream")]
    assert len(streamed) == 1 and streamed[0]["attributes"]["gen_ai.usage.output_tokens"] > 0
    assert streamed[0]["attributes"]["gen_ai.response.finish_reasons"] == ["stop"]
    assert streamed[0]["attributes"]["llmgw.guard.outcome"] == "pass"
    (embedded,) = [s for s in servers if s["attributes"]["gen_ai.operation.name"] == "embeddings"]
    assert embedded["name"] == "embeddings real-embed"


async def test_an_unsampled_client_trace_is_passed_on_but_not_recorded(gateway: GatewayFactory, upstream: FakeOpenAI,
                                                                       collector: Collector) -> None:
    client = await gateway(upstream=upstream.base_url, telemetry={"otlp_endpoint": collector.url})
    resp = await client.post("/v1/chat/completions", json=CHAT,
                             headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"})
    assert resp.status == 200
    await client.close()
    assert collector.spans == []
    (sent,) = upstream_traceparents(upstream)
    assert re.fullmatch(rf"00-{CLIENT_TRACE}-[0-9a-f]{{16}}-00", sent or "")


async def test_sample_ratio_zero_records_no_new_trace(gateway: GatewayFactory, upstream: FakeOpenAI,
                                                      collector: Collector) -> None:
    client = await gateway(upstream=upstream.base_url,
                           telemetry={"otlp_endpoint": collector.url, "sample_ratio": 0.0})
    assert (await client.post("/v1/chat/completions", json=CHAT)).status == 200
    assert (await client.post("/v1/chat/completions", json=CHAT, headers={"traceparent": TRACEPARENT})).status == 200
    await client.close()
    spans = await collector.wait_for(2)
    assert {s["trace_id"] for s in spans} == {CLIENT_TRACE}    # only the trace the client asked to record


async def test_telemetry_off_adds_nothing_and_invents_no_traceparent(gateway: GatewayFactory,
                                                                     upstream: FakeOpenAI) -> None:
    client = await gateway(upstream=upstream.base_url)
    resp = await client.post("/v1/chat/completions", json=CHAT, headers={"traceparent": TRACEPARENT})
    assert resp.status == 200
    app = client.server.app
    assert not any(isinstance(s, TraceStage) for s in app[PIPELINE].stages)
    assert app[SESSION].on_request is None
    assert not [m for m in app.middlewares if m.__module__.startswith("llmgw.telemetry")]   # no traceparent reader
    await client.close()
    (request,) = upstream.requests
    assert request["headers"].get("traceparent") is None
    assert request["headers"].get("tracestate") is None


async def test_export_headers_reach_the_collector(gateway: GatewayFactory, upstream: FakeOpenAI,
                                                  collector: Collector, monkeypatch: Any) -> None:
    monkeypatch.setenv("OTLP_TEST_TOKEN", "collector-token-1")
    client = await gateway(upstream=upstream.base_url,
                           telemetry={"otlp_endpoint": collector.url + "/v1/traces", "service_name": "edge-gw",
                                      "headers": {"authorization": "env:OTLP_TEST_TOKEN"}})
    assert (await client.post("/v1/chat/completions", json=CHAT)).status == 200
    await client.close()
    spans = await collector.wait_for(2)
    assert spans and spans[0]["resource"]["service.name"] == "edge-gw"
    assert collector.posts[0].get("authorization") == "collector-token-1"


def test_target_names_map_to_genai_provider_names() -> None:
    from llmgw.profile import ProviderConfig
    from llmgw.telemetry.spans import upstreams

    found = upstreams({
        "oa": ProviderConfig("oa", "openai"), "an": ProviderConfig("an", "anthropic"),
        "ge": ProviderConfig("ge", "gemini"), "mock": ProviderConfig("mock", "mock"),
        "groq": ProviderConfig("groq", "openai-compatible", base_url="https://api.groq.com/openai/v1"),
    })
    assert {k: v.provider_name for k, v in found.items()} == {
        "oa": "openai", "an": "anthropic", "ge": "gcp.gemini", "mock": "mock", "groq": "groq"}
    assert (found["oa"].address, found["oa"].port) == ("api.openai.com", 443)
    assert Target("oa", "m").name == "oa/m"


async def test_every_adapter_sends_the_attempt_traceparent(gateway: GatewayFactory, collector: Collector,
                                                           monkeypatch: Any) -> None:
    """The header is added on the upstream session, so an Anthropic stream (passed through) and a Gemini answer
    (translated) carry it like an OpenAI call."""
    from llmgw.testing import FakeAnthropic, FakeGemini

    monkeypatch.setenv("FAKE_AN_KEY", "an-key")
    monkeypatch.setenv("FAKE_GE_KEY", "ge-key")
    async with FakeAnthropic(api_key="an-key") as anthropic, FakeGemini(api_key="ge-key") as gemini:
        client = await gateway(
            telemetry={"otlp_endpoint": collector.url},
            providers={"an": {"kind": "anthropic", "base_url": anthropic.base_url, "api_key": "env:FAKE_AN_KEY"},
                       "ge": {"kind": "gemini", "base_url": gemini.base_url, "api_key": "env:FAKE_GE_KEY"}},
            models={"claude": {"targets": ["an/claude-test"]}, "gem": {"targets": ["ge/gemini-test"]}})
        resp = await client.post("/v1/messages", headers={"traceparent": TRACEPARENT}, json={
            "model": "claude", "max_tokens": 50, "stream": True,
            "messages": [{"role": "user", "content": "hello"}]})
        assert resp.status == 200
        await resp.read()
        resp = await client.post("/v1/chat/completions", json={**CHAT, "model": "gem"},
                                 headers={"traceparent": TRACEPARENT})
        assert resp.status == 200
        await client.close()
        await collector.wait_for(4)
        attempts = {s["attributes"]["gen_ai.provider.name"]: s for s in collector.named(CLIENT)}
        assert set(attempts) == {"anthropic", "gcp.gemini"}
        for fake, name in ((anthropic, "anthropic"), (gemini, "gcp.gemini")):
            (request,) = [r for r in fake.requests if r["method"] == "POST"]
            assert request["headers"].get("traceparent") == f"00-{CLIENT_TRACE}-{attempts[name]['span_id']}-01"
