"""POST /v1/chat/completions through the real app: mock and a fake OpenAI upstream, streaming and not."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from llmgw.testing import FakeOpenAI, answer_for
from tests.conftest import CANARY

from .conftest import GatewayFactory, log_rows

HELLO = [{"role": "user", "content": "hello there"}]


def sse_events(text: str) -> list[str]:
    return [block[len("data: "):] for block in text.split("\n\n") if block.startswith("data: ")]


async def test_mock_answers_with_gateway_headers(gateway: GatewayFactory) -> None:
    client = await gateway()
    resp = await client.post("/v1/chat/completions", json={"model": "fast", "messages": HELLO})
    assert resp.status == 200
    body = await resp.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Mock answer: hello there"
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0
    assert resp.headers["x-llmgw-request-id"].startswith("req_")
    assert resp.headers["x-llmgw-target"] == "mock/mock-1"
    assert resp.headers["x-llmgw-attempts"] == "1"
    assert resp.headers["x-llmgw-cache"] == "miss"
    assert float(resp.headers["x-llmgw-cost-usd"]) == 0.0


async def test_unprefixed_path_is_served_too(gateway: GatewayFactory) -> None:
    client = await gateway()
    resp = await client.post("/chat/completions", json={"model": "fast", "messages": HELLO})
    assert resp.status == 200


async def test_forwards_to_openai_upstream_with_model_replaced(
        gateway: GatewayFactory, upstream: FakeOpenAI, tmp_path: Path) -> None:
    client = await gateway(upstream=upstream.base_url)
    resp = await client.post("/v1/chat/completions",
                             json={"model": "real", "messages": HELLO, "temperature": 0.2, "user": "u-1"})
    assert resp.status == 200
    body = await resp.json()
    assert body["choices"][0]["message"]["content"] == answer_for(HELLO)
    sent = upstream.requests[-1]
    assert sent["body"]["model"] == "gpt-4o-mini"
    assert sent["body"]["temperature"] == 0.2 and sent["body"]["user"] == "u-1"  # unknown fields pass through
    assert sent["headers"]["Authorization"].startswith("Bearer ")
    assert resp.headers["x-llmgw-target"] == "up/gpt-4o-mini"
    expected_cost = (body["usage"]["prompt_tokens"] * 0.15 + body["usage"]["completion_tokens"] * 0.60) / 1e6
    assert abs(float(resp.headers["x-llmgw-cost-usd"]) - expected_cost) < 1e-8
    await client.close()
    [row] = log_rows(tmp_path)
    assert row["input_tokens"] == body["usage"]["prompt_tokens"]
    assert row["output_tokens"] == body["usage"]["completion_tokens"]
    assert abs(row["cost_usd"] - expected_cost) < 1e-12
    assert row["target"] == "up/gpt-4o-mini" and row["provider"] == "up" and row["alias"] == "real"


async def _stream(client: Any, **extra: Any) -> tuple[Any, list[dict[str, Any]], list[str]]:
    resp = await client.post("/v1/chat/completions",
                             json={"model": extra.pop("model", "real"), "messages": HELLO, "stream": True, **extra})
    text = await resp.text()
    raw = sse_events(text)
    return resp, [json.loads(e) for e in raw if e != "[DONE]"], raw


async def gateway_to(chat: Any, gateway: GatewayFactory, aiohttp_server: Any) -> Any:
    """A gateway whose alias ``real`` goes to an OpenAI-compatible upstream served by the handler ``chat``."""
    from aiohttp import web

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    upstream = await aiohttp_server(app)
    return await gateway(providers={"up": {"kind": "openai-compatible", "base_url": str(upstream.make_url("/v1"))}},
                         models={"real": {"targets": ["up/m"]}})


async def test_stream_hides_usage_chunk_not_asked_for_but_logs_usage(
        gateway: GatewayFactory, upstream: FakeOpenAI, tmp_path: Path) -> None:
    client = await gateway(upstream=upstream.base_url)
    resp, chunks, raw = await _stream(client)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    assert raw[-1] == "[DONE]"
    assert all(c["choices"] for c in chunks), "a usage-only chunk reached a client that did not ask for it"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == answer_for(HELLO)
    assert upstream.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    await client.close()
    [row] = log_rows(tmp_path)
    assert row["output_tokens"] == len(answer_for(HELLO).split())
    assert row["input_tokens"] > 0 and row["stream"] == 1 and row["ttft_ms"] is not None
    assert json.loads(row["response"])["choices"][0]["message"]["content"] == answer_for(HELLO)


async def test_stream_shows_usage_chunk_when_asked(gateway: GatewayFactory, upstream: FakeOpenAI) -> None:
    client = await gateway(upstream=upstream.base_url)
    _, chunks, _ = await _stream(client, stream_options={"include_usage": True})
    usage_chunks = [c for c in chunks if not c["choices"]]
    assert len(usage_chunks) == 1 and usage_chunks[0]["usage"]["completion_tokens"] > 0


async def test_mock_streams_in_several_chunks(gateway: GatewayFactory, tmp_path: Path) -> None:
    client = await gateway()
    messages = [{"role": "user", "content": "one two three four five six seven eight"}]
    resp = await client.post("/v1/chat/completions", json={"model": "fast", "messages": messages, "stream": True})
    raw = sse_events(await resp.text())
    chunks = [json.loads(e) for e in raw if e != "[DONE]"]
    content = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert len([c for c in content if c]) >= 3
    assert "".join(c or "" for c in content) == "Mock answer: " + messages[0]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    await client.close()
    [row] = log_rows(tmp_path)
    assert row["output_tokens"] > 0


async def test_upstream_error_statuses_are_mapped(gateway: GatewayFactory, upstream: FakeOpenAI) -> None:
    client = await gateway(upstream=upstream.base_url)
    upstream.fail_next(400, message="bad parameter foo")
    resp = await client.post("/v1/chat/completions", json={"model": "real", "messages": HELLO})
    assert resp.status == 400
    assert "bad parameter foo" in (await resp.json())["error"]["message"]
    upstream.fail_next(500)
    resp = await client.post("/v1/chat/completions", json={"model": "real", "messages": HELLO})
    assert resp.status == 502
    assert (await resp.json())["error"]["type"] == "upstream_error"
    upstream.fail_next(401)
    resp = await client.post("/v1/chat/completions", json={"model": "real", "messages": HELLO})
    assert resp.status == 502, "an upstream 401 is the gateway's credential problem, not the client's"
    text = await resp.text()
    assert CANARY not in text


async def test_fallback_to_next_target_when_first_fails(
        gateway: GatewayFactory, upstream: FakeOpenAI, tmp_path: Path) -> None:
    client = await gateway(upstream=upstream.base_url,
                           models={"both": {"targets": ["up/gpt-4o-mini", "mock/mock-2"]}})
    upstream.fail_next(503)
    resp = await client.post("/v1/chat/completions", json={"model": "both", "messages": HELLO})
    assert resp.status == 200
    assert resp.headers["x-llmgw-target"] == "mock/mock-2"
    assert resp.headers["x-llmgw-attempts"] == "2"
    await client.close()
    [row] = log_rows(tmp_path)
    attempts = json.loads(row["attempts_json"])
    assert [(a["target"], a["status"]) for a in attempts] == [("up/gpt-4o-mini", 503), ("mock/mock-2", 200)]


async def test_stream_failing_before_first_event_falls_back(gateway: GatewayFactory, upstream: FakeOpenAI) -> None:
    client = await gateway(upstream=upstream.base_url,
                           models={"both": {"targets": ["up/gpt-4o-mini", "mock/mock-2"]}})
    upstream.fail_next(500)
    resp, chunks, raw = await _stream(client, model="both")
    assert chunks[0]["model"] == "mock-2"
    assert resp.status == 200 and raw[-1] == "[DONE]"
    assert resp.headers["x-llmgw-target"] == "mock/mock-2"


async def test_mock_fault_injection(gateway: GatewayFactory) -> None:
    client = await gateway(providers={"flaky": {"kind": "mock", "fail_rate": 1.0, "fail_status": 503}},
                           models={"flaky": {"targets": ["flaky/m"]}})
    resp = await client.post("/v1/chat/completions", json={"model": "flaky", "messages": HELLO})
    assert resp.status == 502
    assert "mock failure" in (await resp.json())["error"]["message"]


async def test_embeddings_models_health_ready(gateway: GatewayFactory, upstream: FakeOpenAI) -> None:
    client = await gateway(upstream=upstream.base_url)
    resp = await client.post("/v1/embeddings", json={"model": "embed", "input": ["a", "b"]})
    body = await resp.json()
    assert resp.status == 200 and len(body["data"]) == 2 and body["usage"]["prompt_tokens"] >= 0
    resp = await client.post("/v1/embeddings", json={"model": "real-embed", "input": "hello"})
    assert resp.status == 200 and upstream.requests[-1]["body"]["model"] == "text-embedding-3-small"
    models = await (await client.get("/v1/models")).json()
    assert {m["id"] for m in models["data"]} == {"fast", "embed", "real", "real-embed"}
    assert (await client.get("/health")).status == 200
    ready = await client.get("/ready")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"


async def test_finished_streams_give_their_upstream_connection_back(gateway: GatewayFactory,
                                                                    aiohttp_server: Any) -> None:
    """A stream read to its end returns the connection to the pool, also when the end of the chunked body comes
    after ``[DONE]`` in a later read: the next request reuses the connection."""
    import asyncio

    from aiohttp import web

    peers: list[Any] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}
        await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n")
        await asyncio.sleep(0.02)
        await resp.write_eof()
        return resp

    client = await gateway_to(chat, gateway, aiohttp_server)
    for _ in range(3):
        _, chunks, raw = await _stream(client)
        assert raw[-1] == "[DONE]" and chunks[0]["choices"][0]["delta"]["content"] == "hi"
    assert len(peers) == 3 and len(set(peers)) == 1, f"a new upstream connection per stream: {peers}"


async def test_a_stream_that_arrives_in_one_read_is_written_once(gateway: GatewayFactory, aiohttp_server: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """An upstream that sends its whole stream and the chunked end in one write: the client gets the status line,
    the headers, every event, ``[DONE]`` and the chunked end in one write; a stream whose end comes later gets the
    headers with its first bytes, not alone."""
    from aiohttp import http_writer, web

    writes: dict[int, list[bytes]] = {}
    real_write, real_writelines = http_writer.StreamWriter._write, http_writer.StreamWriter._writelines

    def record(writer: Any, data: bytes) -> None:
        writes.setdefault(id(writer), []).append(bytes(data))

    def write(self: Any, chunk: Any) -> None:
        record(self, chunk)
        real_write(self, chunk)

    def writelines(self: Any, chunks: Any) -> None:
        record(self, b"".join(chunks))
        real_writelines(self, chunks)

    monkeypatch.setattr(http_writer.StreamWriter, "_write", write)
    monkeypatch.setattr(http_writer.StreamWriter, "_writelines", writelines)
    chunks = [{"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
               "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]} for text in ("a", "b")]
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    late_end: list[bool] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if late_end:
            await resp.write(body)
            await asyncio.sleep(0.05)
            await resp.write_eof()
        else:
            await resp.write_eof(body)
        return resp

    client = await gateway_to(chat, gateway, aiohttp_server)

    def to_client() -> list[bytes]:
        [out] = [w for w in writes.values() if w[0].startswith(b"HTTP/1.1 200") and b"x-llmgw-request-id" in w[0]]
        return out

    _, got, raw = await _stream(client)
    assert raw[-1] == "[DONE]" and "".join(c["choices"][0]["delta"]["content"] for c in got) == "ab"
    [once] = to_client()
    assert once.count(b"data: ") == 3 and once.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
    writes.clear()
    late_end.append(True)
    _, got, raw = await _stream(client)
    assert raw[-1] == "[DONE]" and "".join(c["choices"][0]["delta"]["content"] for c in got) == "ab"
    first, *rest = to_client()
    assert b"data: " in first and rest, "the headers went alone, or the late end was not waited for"
