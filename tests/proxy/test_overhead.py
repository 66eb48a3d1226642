"""``x-llmgw-overhead-ms``: the time spent in the gateway itself, not waiting on upstreams — on every answer, in
the log row and on ``/metrics`` — measured against slow upstreams, whole and streamed."""

from __future__ import annotations

from pathlib import Path

from llmgw.testing import FakeOpenAI

from .conftest import GatewayFactory, log_rows

HI = [{"role": "user", "content": "hi there"}]


async def test_overhead_of_a_whole_answer_excludes_the_upstream(gateway: GatewayFactory, tmp_path: Path) -> None:
    client = await gateway(providers={"mock": {"kind": "mock", "latency_ms": 300}})
    resp = await client.post("/v1/chat/completions", json={"model": "fast", "messages": HI})
    assert resp.status == 200
    overhead = float(resp.headers["x-llmgw-overhead-ms"])
    assert 0 <= overhead < 150          # the upstream took 300 ms of the total; the gateway far less
    refused = await client.post("/v1/chat/completions", json={"model": "nope", "messages": HI})
    assert refused.status == 404 and float(refused.headers["x-llmgw-overhead-ms"]) >= 0
    metrics = await (await client.get("/metrics")).text()
    assert 'llmgw_overhead_seconds_count{alias="fast"} 1' in metrics
    await client.close()
    row = log_rows(tmp_path)[0]
    assert row["latency_ms"] >= 300 and 0 <= row["overhead_ms"] < row["latency_ms"] - 250


async def test_overhead_of_a_stream_excludes_the_waits_between_events(gateway: GatewayFactory, upstream: FakeOpenAI,
                                                                      tmp_path: Path) -> None:
    upstream.chunk_delay_s = 0.05
    client = await gateway(upstream=upstream.base_url)
    resp = await client.post("/v1/chat/completions", json={"model": "real", "stream": True, "messages": HI})
    assert resp.status == 200 and float(resp.headers["x-llmgw-overhead-ms"]) < 150
    body = await resp.read()
    assert body.endswith(b"data: [DONE]\n\n")
    await client.close()
    row = log_rows(tmp_path)[0]
    assert row["latency_ms"] >= 150                       # several events, 50 ms apart
    assert 0 <= row["overhead_ms"] < row["latency_ms"] / 2
