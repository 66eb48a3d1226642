"""A streaming client that hangs up once it has read the answer's last event got the whole answer: its log row is a
200, not a client disconnect. Codex CLI does so, closing its connection at ``response.completed`` while the gateway
is still ending the stream (the upstream lingers before it closes its own). A client that hangs up before the end
is still a 499 (tests/proxy/test_routing.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from llmgw.formats.streaming import StreamRecorder

from .conftest import GatewayFactory, log_rows

USAGE = {"input_tokens": 7, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 2,
         "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 9}


def frame(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


async def lingering_responses(request: web.Request) -> web.StreamResponse:
    """``/v1/responses``: a streamed answer, then half a second before the stream closes."""
    shell = {"id": "resp_1", "object": "response", "status": "in_progress", "model": "gpt-4o-mini", "output": []}
    item = {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "Hi there", "annotations": []}]}
    events = [{"type": "response.created", "response": shell},
              {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0,
               "delta": "Hi there"},
              {"type": "response.output_item.done", "output_index": 0, "item": item},
              {"type": "response.completed",
               "response": {**shell, "status": "completed", "output": [item], "usage": USAGE}}]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for number, event in enumerate(events):
        await response.write(frame({**event, "sequence_number": number}))
    await asyncio.sleep(0.5)
    await response.write_eof()
    return response


async def test_a_client_that_hangs_up_after_the_last_event_got_its_answer(
        gateway: GatewayFactory, aiohttp_server: Any, tmp_path: Path) -> None:
    app = web.Application()
    app.router.add_post("/v1/responses", lingering_responses)
    upstream = await aiohttp_server(app)
    client = await gateway(providers={"up": {"kind": "openai", "base_url": str(upstream.make_url("/v1")),
                                             "api_key": "sk-up-fake"}},
                           models={"codex": {"targets": ["up/gpt-4o-mini"]}})
    received = b""
    async with aiohttp.ClientSession() as raw:
        resp = await raw.post(str(client.make_url("/v1/responses")),
                              json={"model": "codex", "input": "Hello", "stream": True})
        assert resp.status == 200
        while b"response.completed" not in received:
            piece = await resp.content.readany()
            assert piece, "the stream ended before its last event"
            received += piece
        resp.close()   # hang up at once, as Codex CLI does
    await asyncio.sleep(0.8)   # the upstream closes; the gateway ends the stream to a client that is gone
    await client.close()
    [row] = log_rows(tmp_path)
    assert (row["status"], row["outcome"], row["error"]) == (200, "ok", None)
    assert (row["input_tokens"], row["output_tokens"]) == (7, 2)


async def test_a_fault_of_the_gateway_mid_stream_ends_the_stream_with_an_error(
        gateway: GatewayFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """An unexpected exception while a stream is forwarded (a bug, not the upstream) is logged, and the client gets
    an error event and the stream's end: not a stream left open until the client gives up."""
    def broken(self: StreamRecorder, event: Any) -> None:
        raise RuntimeError("recorder bug")

    monkeypatch.setattr(StreamRecorder, "__call__", broken)
    client = await gateway()
    async with asyncio.timeout(10):
        resp = await client.post("/v1/chat/completions", json={"model": "fast", "stream": True,
                                                               "messages": [{"role": "user", "content": "hi"}]})
        body = await resp.read()
    await client.close()
    assert resp.status == 200
    error = orjson.loads(body.rstrip().rsplit(b"data: ", 1)[1])["error"]
    assert error["message"] == "the gateway failed mid-stream (see its log)" and "recorder bug" not in body.decode()
    assert "unexpected error mid-stream" in caplog.text and "recorder bug" in caplog.text
    [row] = log_rows(tmp_path)
    assert row["status"] == 500 and row["error"] == "internal_error" and row["outcome"] == "error"
