"""Routing through the real app: retries and backoff, non-retryable answers, fallbacks, stream failures before and
after the first byte, the layered timeouts, cooldowns, the retry budget, client disconnects and the strategies.

Misbehaving upstreams are small real aiohttp servers on 127.0.0.1 (:class:`ScriptedUpstream`): one request's
behaviour is chosen from a script (reset the connection, hang, trickle keep-alive comments, drop mid-stream, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from llmgw.proxy.app import ROUTER
from llmgw.testing import FakeAnthropic, FakeOpenAI

from .conftest import GatewayFactory, log_rows

HELLO = [{"role": "user", "content": "hello there"}]
LONG = [{"role": "user", "content": " ".join(f"word{i}" for i in range(40))}]
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}


# --- a scriptable upstream ------------------------------------------------------------------------------------

# Behaviours of one request:
#   "ok"               answer normally (JSON, or an SSE stream ending in [DONE] when the request streams)
#   "500" / "503"...   answer that status with OpenAI's error body
#   "reset"            read the request, then reset the connection without answering
#   "hang"             never answer (records when its connection closed / its handler was cancelled)
#   "trickle"          200 + SSE headers, then ": ping" comments every 50 ms forever
#   "first+trickle"    one valid chunk, then ": ping" comments every 50 ms forever
#   "first+sleep"      one valid chunk, then 1 s of silence, then the rest of the stream
#   "first+eof"        two valid chunks, then the body ends cleanly without a finish chunk or [DONE]
#   "drop"             two valid chunks (with text), then the connection is reset mid-stream
Script = Callable[[int], str]


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1,
                            "model": "scripted",
                            "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


FIRST_CHUNK = _chunk({"role": "assistant", "content": "Hello"})
TEXT_CHUNK = _chunk({"content": " from the scripted upstream"})
REST = (_chunk({}, "stop")
        + _chunk({}, usage={"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11})
        + b"data: [DONE]\n\n")
ANSWER = {"id": "chatcmpl-scripted", "object": "chat.completion", "created": 1, "model": "scripted",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "scripted answer"},
                       "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}


def _reset(request: web.Request) -> None:
    """Close the connection with a TCP reset (SO_LINGER 0), answering nothing."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class ScriptedUpstream:
    """An OpenAI-compatible upstream whose ``n``-th chat request (from 0) behaves as ``script(n)`` says."""

    def __init__(self, script: Script | list[str] | str = "ok", default: str = "ok") -> None:
        if isinstance(script, str):
            self.script: Script = lambda n, s=script: s
        elif isinstance(script, list):
            self.script = lambda n, s=script: s[n] if n < len(s) else default
        else:
            self.script = script
        self.arrivals: list[float] = []      # perf_counter() of each request's arrival
        self.behaviours: list[str] = []
        self.closed: list[float] = []        # perf_counter() when a hanging/trickling request's connection went
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    @property
    def count(self) -> int:
        return len(self.arrivals)

    async def __aenter__(self) -> ScriptedUpstream:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5,
                                     handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        n = len(self.arrivals)
        self.arrivals.append(time.perf_counter())
        behaviour = self.script(n)
        self.behaviours.append(behaviour)
        body = await request.json()
        if behaviour == "ok":
            if body.get("stream"):
                response = await self._sse(request)
                await response.write(FIRST_CHUNK + TEXT_CHUNK + REST)
                await response.write_eof()
                return response
            return web.json_response(ANSWER)
        if behaviour.isdigit():
            return web.json_response({"error": {"message": f"scripted {behaviour}", "type": "server_error"}},
                                     status=int(behaviour))
        if behaviour == "reset":
            _reset(request)
            return web.Response()
        if behaviour == "hang":
            return await self._until_closed(request, None)
        if behaviour == "trickle":
            return await self._until_closed(request, await self._sse(request))
        if behaviour == "first+trickle":
            response = await self._sse(request)
            await response.write(FIRST_CHUNK)
            return await self._until_closed(request, response)
        if behaviour == "first+sleep":
            response = await self._sse(request)
            await response.write(FIRST_CHUNK)
            await asyncio.sleep(1.0)
            await response.write(TEXT_CHUNK + REST)
            await response.write_eof()
            return response
        if behaviour == "first+eof":
            response = await self._sse(request)
            await response.write(FIRST_CHUNK + TEXT_CHUNK)
            await response.write_eof()  # a clean end of the HTTP body, but no finish chunk and no [DONE]
            return response
        if behaviour == "drop":
            response = await self._sse(request)
            await response.write(FIRST_CHUNK)
            await asyncio.sleep(0.05)
            await response.write(TEXT_CHUNK)
            await asyncio.sleep(0.05)
            _reset(request)
            return response
        raise AssertionError(f"unknown behaviour {behaviour!r}")

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        return response

    async def _until_closed(self, request: web.Request, response: web.StreamResponse | None) -> web.StreamResponse:
        """Hang (or trickle ``: ping`` comments when ``response`` is open) until the client goes away."""
        try:
            while True:
                await asyncio.sleep(0.05)
                transport = request.transport
                if transport is None or transport.is_closing():
                    break
                if response is not None:
                    await response.write(b": ping\n\n")
        except (asyncio.CancelledError, ConnectionError):
            self.closed.append(time.perf_counter())
            raise
        self.closed.append(time.perf_counter())
        return response or web.Response()


# --- helpers --------------------------------------------------------------------------------------------------


def openai_provider(url: str) -> dict[str, Any]:
    return {"kind": "openai-compatible", "base_url": url, "api_key": "sk-up-fake"}


def anthropic_provider(url: str) -> dict[str, Any]:
    return {"kind": "anthropic", "base_url": url, "api_key": "sk-ant-fake"}


async def post(client: TestClient, alias: str, *, stream: bool = False, fmt: str = "openai",
               messages: list[dict[str, Any]] | None = None) -> aiohttp.ClientResponse:
    if fmt == "openai":
        body: dict[str, Any] = {"model": alias, "messages": messages or HELLO}
        if stream:
            body["stream"] = True
        return await client.post("/v1/chat/completions", json=body)
    body = {"model": alias, "max_tokens": 128, "messages": messages or HELLO}
    if stream:
        body["stream"] = True
    return await client.post("/v1/messages", json=body, headers=ANTHROPIC_HEADERS)


def attempts_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    return json.loads(row["attempts_json"])


def data_events(text: str) -> list[str]:
    return [block[len("data: "):] for block in text.split("\n\n") if block.startswith("data: ")]


def anthropic_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in lines and "data" in lines:
            out.append((lines["event"], json.loads(lines["data"])))
    return out


async def wait_for(condition: Callable[[], object], what: str, timeout: float = 2.0) -> None:
    """Poll ``condition`` until it holds; fail (never hang) after ``timeout`` seconds."""
    deadline = time.perf_counter() + timeout
    while not condition():
        assert time.perf_counter() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def router_of(client: TestClient) -> Any:
    return client.server.app[ROUTER]


# --- 1. retries with backoff, honouring Retry-After -----------------------------------------------------------


async def test_429_with_retry_after_is_retried_no_sooner_than_asked(gateway: GatewayFactory, tmp_path: Path) -> None:
    async with FakeOpenAI() as up:
        up.fail_next(429, retry_after=0.3)
        client = await gateway(providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/gpt-4o-mini"], "retries": 1}})
        started = time.perf_counter()
        resp = await post(client, "real")
        elapsed = time.perf_counter() - started
        assert resp.status == 200, await resp.text()
        assert resp.headers["x-llmgw-attempts"] == "2"
        assert len(up.requests) == 2
        await client.close()
    assert elapsed >= 0.3
    [row] = log_rows(tmp_path)
    attempts = attempts_of(row)
    assert [(a["n"], a["status"]) for a in attempts] == [(1, 429), (2, 200)]
    gap_ms = row["latency_ms"] - sum(a["latency_ms"] for a in attempts)
    assert gap_ms >= 300, f"the retry came {gap_ms:.0f} ms after the 429, Retry-After asked for 300"


async def test_retry_without_retry_after_uses_short_jittered_backoff(gateway: GatewayFactory, tmp_path: Path) -> None:
    async with FakeOpenAI() as up:
        up.fail_next(503)
        client = await gateway(providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/gpt-4o-mini"], "retries": 1}})
        resp = await post(client, "real")
        assert resp.status == 200
        await client.close()
    [row] = log_rows(tmp_path)
    attempts = attempts_of(row)
    assert [a["status"] for a in attempts] == [503, 200]
    gap_ms = row["latency_ms"] - sum(a["latency_ms"] for a in attempts)
    assert gap_ms <= 100 + 50, "the first retry's backoff is at most 100 ms (full jitter) plus overhead"


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_openai_retryable_statuses_are_retried(gateway: GatewayFactory, tmp_path: Path, status: int) -> None:
    async with FakeOpenAI() as up:
        up.fail_next(status, times=2)
        client = await gateway(providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/gpt-4o-mini"], "retries": 2}})
        resp = await post(client, "real")
        assert resp.status == 200, await resp.text()
        assert resp.headers["x-llmgw-attempts"] == "3"
        assert len(up.requests) == 3
        await client.close()
    [row] = log_rows(tmp_path)
    assert [a["status"] for a in attempts_of(row)] == [status, status, 200]
    assert row["status"] == 200 and row["outcome"] == "ok"


@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
async def test_anthropic_529_is_retried(gateway: GatewayFactory, tmp_path: Path, fmt: str) -> None:
    async with FakeAnthropic() as up:
        up.fail_next(529, message="Overloaded")
        client = await gateway(providers={"ant": anthropic_provider(up.base_url)},
                               models={"claude": {"targets": ["ant/claude-sonnet-4-5"], "retries": 1}})
        resp = await post(client, "claude", fmt=fmt)
        assert resp.status == 200, await resp.text()
        assert len(up.requests) == 2
        await client.close()
    [row] = log_rows(tmp_path)
    assert [a["status"] for a in attempts_of(row)] == [529, 200]


@pytest.mark.parametrize("stream", [False, True])
async def test_connection_reset_is_retried(gateway: GatewayFactory, tmp_path: Path, stream: bool) -> None:
    async with ScriptedUpstream(["reset"]) as up:
        client = await gateway(providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m"], "retries": 1}})
        resp = await post(client, "real", stream=stream)
        text = await resp.text()
        assert resp.status == 200, text
        assert up.behaviours == ["reset", "ok"]
        if stream:
            assert data_events(text)[-1] == "[DONE]"
        await client.close()
    [row] = log_rows(tmp_path)
    attempts = attempts_of(row)
    assert [a["status"] for a in attempts] == [0, 200]
    assert "connection" in attempts[0]["error"]


@pytest.mark.parametrize("stream", [False, True])
async def test_first_token_timeout_is_retried(gateway: GatewayFactory, tmp_path: Path, stream: bool) -> None:
    async with ScriptedUpstream(["hang"]) as up:
        client = await gateway(server={"first_token_timeout_s": 0.3, "timeout_s": 5},
                               providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m"], "retries": 1}})
        started = time.perf_counter()
        resp = await post(client, "real", stream=stream)
        assert resp.status == 200, await resp.text()
        elapsed = time.perf_counter() - started
        assert up.behaviours == ["hang", "ok"]
        await client.close()
    assert 0.3 <= elapsed < 1.0
    [row] = log_rows(tmp_path)
    attempts = attempts_of(row)
    assert [a["status"] for a in attempts] == [0, 200]
    assert 280 <= attempts[0]["latency_ms"] < 600


async def test_retries_give_up_after_one_plus_retries(gateway: GatewayFactory, tmp_path: Path) -> None:
    async with FakeOpenAI() as up:
        up.fail_next(500, times=10)
        client = await gateway(providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/gpt-4o-mini"], "retries": 2}})
        resp = await post(client, "real")
        assert resp.status == 502
        body = await resp.json()
        assert body["error"]["type"] == "upstream_error"
        assert resp.headers["x-llmgw-attempts"] == "3"
        assert len(up.requests) == 3
        await client.close()
    [row] = log_rows(tmp_path)
    assert row["status"] == 502 and row["attempts"] == 3


async def test_every_attempt_rate_limited_answers_429_with_retry_after(gateway: GatewayFactory) -> None:
    async with FakeOpenAI() as up:
        up.fail_next(429, times=2, retry_after=0.05)
        client = await gateway(providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/gpt-4o-mini"], "retries": 1}})
        resp = await post(client, "real")
        assert resp.status == 429
        assert (await resp.json())["error"]["code"] == "upstream_rate_limited"
        assert "Retry-After" in resp.headers


# --- 2. never retried ------------------------------------------------------------------------------------------

NON_RETRYABLE = [(400, 400), (401, 502), (403, 502), (404, 404), (422, 400)]


@pytest.mark.parametrize(("upstream_status", "client_status"), NON_RETRYABLE)
async def test_non_retryable_openai(gateway: GatewayFactory, tmp_path: Path, upstream_status: int,
                                    client_status: int) -> None:
    async with FakeOpenAI() as up:
        up.fail_next(upstream_status, times=5)
        client = await gateway(providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/gpt-4o-mini", "mock/mock-1"], "retries": 2}})
        resp = await post(client, "real")
        assert resp.status == client_status
        body = await resp.json()
        assert set(body) == {"error"}
        assert {"message", "type", "param", "code"} <= set(body["error"])
        assert "up/gpt-4o-mini" in body["error"]["message"]
        assert resp.headers["x-llmgw-attempts"] == "1"
        assert len(up.requests) == 1
        await client.close()
    [row] = log_rows(tmp_path)
    assert row["status"] == client_status and row["attempts"] == 1
    assert attempts_of(row)[0]["status"] == upstream_status


@pytest.mark.parametrize(("upstream_status", "client_status"), NON_RETRYABLE)
async def test_non_retryable_anthropic(gateway: GatewayFactory, tmp_path: Path, upstream_status: int,
                                       client_status: int) -> None:
    async with FakeAnthropic() as up:
        up.fail_next(upstream_status, times=5)
        client = await gateway(providers={"ant": anthropic_provider(up.base_url)},
                               models={"claude": {"targets": ["ant/claude-sonnet-4-5", "mock/mock-1"],
                                                  "retries": 2}})
        resp = await post(client, "claude", fmt="anthropic")
        assert resp.status == client_status
        body = await resp.json()
        assert body["type"] == "error"
        assert set(body["error"]) == {"type", "message"}
        expected_type = {400: "invalid_request_error", 404: "not_found_error", 502: "api_error"}[client_status]
        assert body["error"]["type"] == expected_type
        assert len(up.requests) == 1
        assert resp.headers["x-llmgw-attempts"] == "1"
        await client.close()
    [row] = log_rows(tmp_path)
    assert row["attempts"] == 1 and row["status"] == client_status


async def test_non_retryable_stream_answers_an_error_not_a_stream(gateway: GatewayFactory) -> None:
    async with FakeOpenAI() as up:
        up.fail_next(400, times=5)
        client = await gateway(providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/gpt-4o-mini", "mock/mock-1"], "retries": 2}})
        resp = await post(client, "real", stream=True)
        assert resp.status == 400
        assert resp.content_type == "application/json"
        assert len(up.requests) == 1


# --- 3. fallback after retries ------------------------------------------------------------------------------------


async def test_fallback_after_retries_exhausted_records_every_attempt(gateway: GatewayFactory,
                                                                      tmp_path: Path) -> None:
    async with FakeOpenAI() as up:
        up.fail_next(500, times=2)
        client = await gateway(providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/gpt-4o-mini", "mock/mock-1"], "retries": 1}})
        resp = await post(client, "real")
        assert resp.status == 200
        body = await resp.json()
        assert body["choices"][0]["message"]["content"] == "Mock answer: hello there"
        assert resp.headers["x-llmgw-target"] == "mock/mock-1"
        assert resp.headers["x-llmgw-attempts"] == "3"
        assert len(up.requests) == 2
        await client.close()
    [row] = log_rows(tmp_path)
    attempts = attempts_of(row)
    assert [(a["n"], a["target"], a["status"]) for a in attempts] == [
        (1, "up/gpt-4o-mini", 500), (2, "up/gpt-4o-mini", 500), (3, "mock/mock-1", 200)]
    assert all(a["latency_ms"] > 0 for a in attempts)
    assert row["attempts"] == 3 and row["target"] == "mock/mock-1" and row["provider"] == "mock"


async def test_all_targets_fail_reports_last_target_and_every_attempt(gateway: GatewayFactory,
                                                                     tmp_path: Path) -> None:
    async with FakeOpenAI() as up, ScriptedUpstream("reset") as second:
        up.fail_next(503, times=5)
        client = await gateway(providers={"up": openai_provider(up.base_url), "two": openai_provider(second.base_url)},
                               models={"real": {"targets": ["up/a", "two/b"], "retries": 1}})
        resp = await post(client, "real")
        assert resp.status == 502
        assert resp.headers["x-llmgw-attempts"] == "4"
        assert resp.headers["x-llmgw-target"] == "two/b"
        await client.close()
    [row] = log_rows(tmp_path)
    assert [(a["target"], a["status"]) for a in attempts_of(row)] == [
        ("up/a", 503), ("up/a", 503), ("two/b", 0), ("two/b", 0)]


async def test_retry_after_beyond_the_deadline_falls_back_instead_of_timing_out(gateway: GatewayFactory,
                                                                               tmp_path: Path) -> None:
    """When a target's Retry-After leaves no time for its own retry, the remaining targets are still tried: the
    healthy fallback answers; the client does not get a 504 from a router that never called it."""
    async with FakeOpenAI() as up:
        up.fail_next(429, retry_after=3)
        client = await gateway(server={"timeout_s": 1.0}, providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/gpt-4o-mini", "mock/mock-1"], "retries": 1}})
        resp = await post(client, "real")
        assert resp.status == 200, await resp.text()
        assert resp.headers["x-llmgw-target"] == "mock/mock-1"
        await client.close()
    [row] = log_rows(tmp_path)
    assert [(a["target"], a["status"]) for a in attempts_of(row)] == [("up/gpt-4o-mini", 429), ("mock/mock-1", 200)]


# --- 4. streams: failures before and after the first byte ------------------------------------------------------


@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
async def test_stream_error_as_first_event_fails_over(gateway: GatewayFactory, tmp_path: Path, fmt: str) -> None:
    async with FakeAnthropic() as up:
        up.fail_mid_stream("overloaded_error", after_events=0)
        client = await gateway(providers={"ant": anthropic_provider(up.base_url)},
                               models={"claude": {"targets": ["ant/claude-sonnet-4-5", "mock/mock-1"]}})
        resp = await post(client, "claude", stream=True, fmt=fmt)
        text = await resp.text()
        assert resp.status == 200
        assert resp.headers["x-llmgw-target"] == "mock/mock-1"
        assert resp.headers["x-llmgw-attempts"] == "2"
        if fmt == "openai":
            events = data_events(text)
            assert events[-1] == "[DONE]"
            assert not any('"error"' in e for e in events)
            chunks = [json.loads(e) for e in events[:-1]]
            assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) \
                == "Mock answer: hello there"
        else:
            events = anthropic_events(text)
            names = [name for name, _ in events]
            assert names[0] == "message_start" and names[-1] == "message_stop"
            assert "error" not in names
        await client.close()
    [row] = log_rows(tmp_path)
    assert [(a["target"], a["status"]) for a in attempts_of(row)] == [("ant/claude-sonnet-4-5", 529),
                                                                      ("mock/mock-1", 200)]
    assert row["status"] == 200 and row["outcome"] == "ok"


async def test_anthropic_failure_after_first_byte_ends_with_error_event(gateway: GatewayFactory,
                                                                        tmp_path: Path) -> None:
    async with FakeAnthropic(chunk_delay_s=0.02) as up:
        up.fail_mid_stream("overloaded_error", after_events=4)
        client = await gateway(providers={"ant": anthropic_provider(up.base_url)},
                               models={"claude": {"targets": ["ant/claude-sonnet-4-5", "mock/mock-1"]}})
        resp = await post(client, "claude", stream=True, fmt="anthropic")
        text = await resp.text()
        assert resp.status == 200
        events = anthropic_events(text)
        names = [name for name, _ in events]
        assert names[:4] == ["message_start", "ping", "content_block_start", "content_block_delta"]
        assert names[-1] == "error"
        assert "message_stop" not in names
        assert events[-1][1]["type"] == "error"
        assert events[-1][1]["error"]["type"] == "overloaded_error"
        assert len(up.requests) == 1, "a stream that already reached the client is never retried"
        await client.close()
    [row] = log_rows(tmp_path)
    assert row["status"] == 502 and row["outcome"] == "error"
    assert row["output_tokens"] > 0


def _anthropic_sse(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def test_anthropic_events_arriving_with_the_error_still_reach_the_client(
        gateway: GatewayFactory, aiohttp_server: Any, tmp_path: Path) -> None:
    """Mid-stream, the text an upstream sent in the same network read as its error event is part of what it
    answered: the client gets it before the error event (as for OpenAI upstreams)."""
    start = _anthropic_sse("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [], "stop_reason": None,
        "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}}})
    rest = (_anthropic_sse("content_block_start", {"type": "content_block_start", "index": 0,
                                                   "content_block": {"type": "text", "text": ""}})
            + _anthropic_sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                     "delta": {"type": "text_delta", "text": "partial answer"}})
            + _anthropic_sse("error", {"type": "error",
                                       "error": {"type": "overloaded_error", "message": "Overloaded"}}))

    async def messages(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(start)
        await asyncio.sleep(0.1)
        await response.write(rest)  # the text and the error in one read
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    server = await aiohttp_server(app)
    client = await gateway(providers={"ant": anthropic_provider(str(server.make_url("")).rstrip("/"))},
                           models={"claude": {"targets": ["ant/claude-sonnet-4-5"]}})
    resp = await post(client, "claude", stream=True, fmt="anthropic")
    text = await resp.text()
    assert resp.status == 200
    events = anthropic_events(text)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-1] == "error"
    deltas = [d["delta"]["text"] for name, d in events if name == "content_block_delta"]
    assert deltas == ["partial answer"], f"text the upstream sent before failing was lost: {names}"


async def test_openai_client_drop_after_first_byte_ends_with_error_event(gateway: GatewayFactory,
                                                                         tmp_path: Path) -> None:
    async with ScriptedUpstream("drop") as up:
        client = await gateway(providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m", "mock/mock-1"], "retries": 1}})
        resp = await post(client, "real", stream=True)
        text = await resp.text()
        assert resp.status == 200
        events = data_events(text)
        assert "[DONE]" not in events
        last = json.loads(events[-1])
        assert set(last) == {"error"} and last["error"]["type"] == "upstream_error"
        first = json.loads(events[0])
        assert first["choices"][0]["delta"]["content"] == "Hello"
        assert up.count == 1
        await client.close()
    [row] = log_rows(tmp_path)
    assert row["status"] == 502 and row["outcome"] == "error"
    assert row["output_tokens"] > 0
    assert row["target"] == "up/m"


@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
async def test_stream_cut_without_its_terminator_is_not_passed_off_as_complete(gateway: GatewayFactory,
                                                                             tmp_path: Path, fmt: str) -> None:
    """An OpenAI stream that ends before ``[DONE]`` (no finish chunk either) was cut short: the client must not
    get a clean ``[DONE]`` / ``message_stop`` that makes a truncated answer look complete."""
    async with ScriptedUpstream("first+eof") as up:
        client = await gateway(providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m"]}})
        resp = await post(client, "real", stream=True, fmt=fmt)
        text = await resp.text()
        assert resp.status == 200
        if fmt == "openai":
            events = data_events(text)
            assert "[DONE]" not in events
            assert "error" in json.loads(events[-1])
        else:
            names = [name for name, _ in anthropic_events(text)]
            assert "message_stop" not in names and names[-1] == "error"
        await client.close()
    [row] = log_rows(tmp_path)
    assert row["status"] == 502 and row["outcome"] == "error"


async def test_anthropic_client_drop_after_first_byte_from_openai_upstream(gateway: GatewayFactory,
                                                                           tmp_path: Path) -> None:
    async with ScriptedUpstream("drop") as up:
        client = await gateway(providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m"]}})
        resp = await post(client, "real", stream=True, fmt="anthropic")
        text = await resp.text()
        assert resp.status == 200
        names = [name for name, _ in anthropic_events(text)]
        assert names[0] == "message_start"
        assert names[-1] == "error" and "message_stop" not in names
        await client.close()
    [row] = log_rows(tmp_path)
    assert row["status"] == 502 and row["output_tokens"] > 0


# --- 5. timeouts --------------------------------------------------------------------------------------------------


async def test_first_token_timeout_falls_back_to_next_target(gateway: GatewayFactory, tmp_path: Path) -> None:
    async with FakeOpenAI(chunk_delay_s=1.0) as up:
        client = await gateway(server={"first_token_timeout_s": 0.3},
                               providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/gpt-4o-mini", "mock/mock-1"]}})
        started = time.perf_counter()
        resp = await post(client, "real", stream=True)
        text = await resp.text()
        elapsed = time.perf_counter() - started
        assert resp.status == 200
        assert resp.headers["x-llmgw-target"] == "mock/mock-1"
        assert data_events(text)[-1] == "[DONE]"
        await client.close()
    assert elapsed < 0.9
    [row] = log_rows(tmp_path)
    attempts = attempts_of(row)
    assert [(a["target"], a["status"]) for a in attempts] == [("up/gpt-4o-mini", 0), ("mock/mock-1", 200)]
    assert 280 <= attempts[0]["latency_ms"] < 700


async def test_idle_timeout_mid_stream_ends_with_error_event(gateway: GatewayFactory, tmp_path: Path) -> None:
    async with ScriptedUpstream("first+sleep") as up:
        client = await gateway(server={"idle_timeout_s": 0.2},
                               providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m", "mock/mock-1"]}})
        started = time.perf_counter()
        resp = await post(client, "real", stream=True)
        text = await resp.text()
        elapsed = time.perf_counter() - started
        assert resp.status == 200
        events = data_events(text)
        assert json.loads(events[0])["choices"][0]["delta"]["content"] == "Hello"
        assert "[DONE]" not in events
        assert "error" in json.loads(events[-1])
        await client.close()
    assert elapsed < 0.8, "the idle timeout (0.2 s) should end the stream long before the upstream's 1 s pause"
    [row] = log_rows(tmp_path)
    assert row["status"] == 502 and row["outcome"] == "error"


async def test_deadline_ends_a_trickling_stream(gateway: GatewayFactory, tmp_path: Path) -> None:
    """Keep-alive comments count as reads for the idle timeout but never extend the request's deadline."""
    async with ScriptedUpstream("first+trickle") as up:
        client = await gateway(server={"timeout_s": 0.6, "idle_timeout_s": 0.2},
                               providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m"]}})
        started = time.perf_counter()
        async with asyncio.timeout(3):  # fail, not hang, if the deadline is not enforced
            resp = await post(client, "real", stream=True)
            text = await resp.text()
        elapsed = time.perf_counter() - started
        assert resp.status == 200
        events = data_events(text)
        assert "[DONE]" not in events
        error = json.loads(events[-1])["error"]
        assert "deadline" in error["message"]
        await asyncio.sleep(0.3)
        assert up.closed, "the upstream request should be closed when the deadline passes"
        await client.close()
    assert 0.55 <= elapsed < 1.0
    [row] = log_rows(tmp_path)
    assert row["status"] == 502 and row["outcome"] == "error"


async def test_deadline_with_only_keepalive_comments_answers_504(gateway: GatewayFactory, tmp_path: Path) -> None:
    async with ScriptedUpstream("trickle") as up:
        client = await gateway(server={"timeout_s": 0.6, "idle_timeout_s": 0.2},
                               providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m"]}})
        started = time.perf_counter()
        async with asyncio.timeout(3):
            resp = await post(client, "real", stream=True)
        elapsed = time.perf_counter() - started
        assert resp.status == 504
        assert (await resp.json())["error"]["type"] == "timeout_error"
        await asyncio.sleep(0.3)
        assert up.closed
        await client.close()
    assert 0.55 <= elapsed < 1.0


async def test_hanging_upstream_non_streamed_gets_504_at_the_deadline(gateway: GatewayFactory,
                                                                      tmp_path: Path) -> None:
    async with ScriptedUpstream("hang") as up:
        client = await gateway(server={"timeout_s": 0.5},
                               providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m"], "retries": 3}})
        started = time.perf_counter()
        async with asyncio.timeout(3):
            resp = await post(client, "real")
        elapsed = time.perf_counter() - started
        assert resp.status == 504
        body = await resp.json()
        assert body["error"]["type"] == "timeout_error" and body["error"]["code"] == "upstream_timeout"
        await asyncio.sleep(0.3)
        assert len(up.closed) == 1, "the hanging upstream request should be cancelled at the deadline"
        assert up.closed[0] - up.arrivals[0] < 1.0
        await client.close()
    assert 0.45 <= elapsed < 0.9
    [row] = log_rows(tmp_path)
    assert row["status"] == 504 and row["error"] == "upstream_timeout"
    assert row["target"] == "up/m"


async def test_attempt_cut_by_the_deadline_is_recorded(gateway: GatewayFactory, tmp_path: Path) -> None:
    """The router's contract: every attempt is appended to ``ex.attempts`` — also the one the deadline cut."""
    async with ScriptedUpstream("hang") as up:
        client = await gateway(server={"timeout_s": 0.5},
                               providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m"]}})
        resp = await post(client, "real")
        assert resp.status == 504
        assert resp.headers.get("x-llmgw-attempts") == "1"
        await client.close()
    [row] = log_rows(tmp_path)
    attempts = attempts_of(row)
    assert len(attempts) == 1 and attempts[0]["target"] == "up/m" and attempts[0]["status"] == 0
    assert "up/m" in row["error_message"]


# --- 6. cooldown ----------------------------------------------------------------------------------------------------


COOLDOWN = {"cooldown_failures": 2, "cooldown_s": 0.5}


async def test_cooldown_ejects_failing_target_then_lets_one_probe_through(gateway: GatewayFactory) -> None:
    async with ScriptedUpstream("500") as up:
        client = await gateway(routing=COOLDOWN, providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m", "mock/mock-1"]}})
        for _ in range(2):
            resp = await post(client, "real")
            assert resp.status == 200 and resp.headers["x-llmgw-attempts"] == "2"
        assert up.count == 2
        for _ in range(5):
            resp = await post(client, "real")
            assert resp.status == 200
            assert resp.headers["x-llmgw-target"] == "mock/mock-1"
            assert resp.headers["x-llmgw-attempts"] == "1"
        assert up.count == 2, "a target in cooldown must not be called"
        await asyncio.sleep(0.6)
        resps = await asyncio.gather(*(post(client, "real") for _ in range(8)))
        assert all(r.status == 200 for r in resps)
        assert up.count == 3, "after the cooldown exactly one probe reaches the target"
        assert sorted(r.headers["x-llmgw-attempts"] for r in resps) == ["1"] * 7 + ["2"]
        # the probe failed: the target is out again for another cooldown
        for _ in range(3):
            assert (await post(client, "real")).status == 200
        assert up.count == 3


async def test_streams_that_break_after_their_first_event_send_the_target_to_cooldown(
        gateway: GatewayFactory) -> None:
    async with ScriptedUpstream("drop") as up:
        client = await gateway(routing=COOLDOWN, providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m", "mock/mock-1"]}})
        for _ in range(2):   # each starts on up/m (its first event arrives), then breaks: no fallback is possible
            resp = await post(client, "real", stream=True)
            assert resp.headers["x-llmgw-target"] == "up/m"
            assert b"upstream_error" in await resp.read()
        for _ in range(3):
            resp = await post(client, "real", stream=True)
            assert resp.headers["x-llmgw-target"] == "mock/mock-1", "two broken streams in a row: cooldown"
            assert (await resp.read()).endswith(b"data: [DONE]\n\n")
        assert up.count == 2


async def test_a_completed_stream_resets_the_failure_count(gateway: GatewayFactory) -> None:
    async with ScriptedUpstream(["drop", "ok", "drop", "ok", "drop"]) as up:
        client = await gateway(routing=COOLDOWN, providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m", "mock/mock-1"]}})
        for _ in range(5):
            resp = await post(client, "real", stream=True)
            await resp.read()
            assert resp.headers["x-llmgw-target"] == "up/m", "never two failures in a row: never in cooldown"
        assert up.count == 5


async def test_successful_probe_closes_the_circuit(gateway: GatewayFactory) -> None:
    async with ScriptedUpstream(["500", "500"]) as up:
        client = await gateway(routing=COOLDOWN, providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m", "mock/mock-1"]}})
        for _ in range(3):
            await post(client, "real")
        assert up.count == 2
        await asyncio.sleep(0.6)
        resp = await post(client, "real")
        assert resp.headers["x-llmgw-target"] == "up/m"
        for _ in range(3):
            resp = await post(client, "real")
            assert resp.headers["x-llmgw-target"] == "up/m" and resp.headers["x-llmgw-attempts"] == "1"
        assert up.count == 6


async def test_single_target_alias_is_never_ejected(gateway: GatewayFactory) -> None:
    async with ScriptedUpstream("500") as up:
        client = await gateway(routing=COOLDOWN, providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m"]}})
        for i in range(6):
            resp = await post(client, "real")
            assert resp.status == 502
            assert up.count == i + 1, "the only target of an alias is tried on every request"


async def test_cooldown_for_target_shared_by_two_aliases(gateway: GatewayFactory) -> None:
    """The breaker is per target: failures through one alias take the target out of the other's rotation too,
    while an alias whose only target it is still tries it."""
    async with ScriptedUpstream("500") as up:
        client = await gateway(routing=COOLDOWN, providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m", "mock/mock-1"]},
                                       "only": {"targets": ["up/m"]}})
        for _ in range(2):
            await post(client, "real")
        assert up.count == 2
        assert (await post(client, "real")).headers["x-llmgw-target"] == "mock/mock-1"
        assert up.count == 2
        assert (await post(client, "only")).status == 502
        assert up.count == 3


@pytest.mark.parametrize("cut_by", ["client_disconnect", "deadline"])
async def test_probe_cut_short_does_not_eject_the_target_forever(gateway: GatewayFactory, cut_by: str) -> None:
    """A half-open probe that never finishes (its client went away, or the request's deadline passed) must not
    keep the target out of rotation for good: a later request probes it again."""
    server = {"timeout_s": 0.3 if cut_by == "deadline" else 5}
    async with ScriptedUpstream(["500", "500", "hang"]) as up:
        client = await gateway(server=server, routing=COOLDOWN, providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m", "mock/mock-1"]}})
        for _ in range(2):
            assert (await post(client, "real")).status == 200
        await asyncio.sleep(0.6)
        probe = asyncio.ensure_future(post(client, "real"))
        await wait_for(lambda: up.count == 3, "the probe to reach the upstream")
        if cut_by == "client_disconnect":
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
        else:
            assert (await probe).status == 504
        await wait_for(lambda: up.closed, "the probe's upstream request to be closed")
        await asyncio.sleep(0.6)
        resp = await post(client, "real")
        assert resp.status == 200
        assert up.count == 4, "after the cooldown the target must get a new probe"
        assert resp.headers["x-llmgw-target"] == "up/m"


async def test_probe_refused_by_the_spent_budget_does_not_eject_the_target_forever(gateway: GatewayFactory) -> None:
    """A target whose cooldown ended, reached as a fallback when the retry budget is spent, is not tried; that
    must not use up its half-open probe for good."""
    async with ScriptedUpstream(["500"]) as b, FakeOpenAI() as a:
        a.fail_next(500)
        client = await gateway(routing={"retry_budget": 0, "retry_reserve": 0, "cooldown_failures": 1,
                                        "cooldown_s": 0.3},
                               providers={"a": openai_provider(a.base_url), "b": openai_provider(b.base_url)},
                               models={"only_b": {"targets": ["b/m"]}, "a_then_b": {"targets": ["a/m", "b/m"]},
                                       "b_then_mock": {"targets": ["b/m", "mock/mock-1"]}})
        assert (await post(client, "only_b")).status == 502  # b fails once: in cooldown for 0.3 s
        await asyncio.sleep(0.35)
        resp = await post(client, "a_then_b")  # a fails; b would be the fallback, but the budget is spent
        assert resp.status == 502 and resp.headers["x-llmgw-attempts"] == "1"
        assert b.count == 1
        await asyncio.sleep(0.35)
        resp = await post(client, "b_then_mock")
        assert resp.status == 200
        assert b.count == 2, "b's cooldown is long over: it must be probed"
        assert resp.headers["x-llmgw-target"] == "b/m"


async def test_attempts_cut_by_the_deadline_count_towards_cooldown(gateway: GatewayFactory) -> None:
    """A target that hangs until the request's deadline, request after request, is a failing target: it must
    go into cooldown so that the fallback gets to answer, instead of every request timing out on it."""
    async with ScriptedUpstream("hang") as up:
        client = await gateway(server={"timeout_s": 0.3}, routing=COOLDOWN,
                               providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m", "mock/mock-1"]}})
        for _ in range(2):
            assert (await post(client, "real")).status == 504
        assert up.count == 2
        resp = await post(client, "real")
        assert resp.status == 200, "after 2 failures up/m should be in cooldown and the fallback should answer"
        assert resp.headers["x-llmgw-target"] == "mock/mock-1"
        assert up.count == 2


async def test_probe_ended_by_an_untranslatable_request_does_not_eject_the_target(gateway: GatewayFactory) -> None:
    """An Anthropic request that cannot be translated for an OpenAI target fails on it without calling it; if it
    was the half-open probe, the slot must be given back, or the target stays out of rotation for good."""
    async with ScriptedUpstream(["500", "500"]) as up:
        client = await gateway(routing=COOLDOWN, providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m", "mock/mock-1"]}})
        for _ in range(2):
            assert (await post(client, "real")).status == 200
        await asyncio.sleep(0.6)
        server_tool = {"model": "real", "max_tokens": 64, "messages": HELLO,
                       "tools": [{"type": "web_search_20250305", "name": "web_search"}]}
        resp = await client.post("/v1/messages", json=server_tool, headers=ANTHROPIC_HEADERS)
        assert resp.status == 400
        assert up.count == 2
        resp = await post(client, "real")
        assert resp.status == 200
        assert up.count == 3, "the target's cooldown is over: the next request must probe it"
        assert resp.headers["x-llmgw-target"] == "up/m"


# --- 7. retry budget --------------------------------------------------------------------------------------------------


async def test_retry_budget_caps_attempts_when_every_target_is_down(gateway: GatewayFactory,
                                                                    tmp_path: Path) -> None:
    n = 300
    client = await gateway(routing={"retry_budget": 0.2, "retry_reserve": 10, "cooldown_failures": 1_000_000},
                           providers={"mock": {"fail_rate": 1.0}, "other": {"kind": "mock", "fail_rate": 1.0}},
                           models={"down": {"targets": ["mock/a", "other/b"], "retries": 2}})
    sem = asyncio.Semaphore(50)

    async def one() -> int:
        async with sem:
            resp = await post(client, "down")
            await resp.read()
            return resp.status

    statuses = await asyncio.gather(*(one() for _ in range(n)))
    assert set(statuses) == {502}
    await client.close()
    rows = log_rows(tmp_path)
    assert len(rows) == n
    total = sum(r["attempts"] for r in rows)
    assert total <= 1.2 * n + 10
    assert total >= n + 10, "the reserve and the earned budget should have been used for retries"
    spent = [r for r in rows if "retry budget is spent" in (r["error_message"] or "")]
    assert spent, "requests refused further attempts say so"


async def test_retry_budget_still_allows_occasional_retries(gateway: GatewayFactory) -> None:
    """A calm service keeps earning: after the reserve is gone, roughly one retry per five requests is allowed."""
    async with FakeOpenAI() as up:
        client = await gateway(routing={"retry_budget": 0.2, "retry_reserve": 0, "cooldown_failures": 1000},
                               providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/gpt-4o-mini"], "retries": 1}})
        for _ in range(4):
            assert (await post(client, "real")).status == 200
        up.fail_next(500)
        resp = await post(client, "real")  # 5 deposits of 0.2: one token
        assert resp.status == 200 and resp.headers["x-llmgw-attempts"] == "2"
        up.fail_next(500)
        resp = await post(client, "real")  # spent: no retry
        assert resp.status == 502 and resp.headers["x-llmgw-attempts"] == "1"


# --- 8. client disconnect ---------------------------------------------------------------------------------------------


async def test_client_disconnect_while_waiting_for_first_token(gateway: GatewayFactory, tmp_path: Path) -> None:
    async with ScriptedUpstream("hang") as up:
        client = await gateway(server={"timeout_s": 5}, providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m"]}})
        url = str(client.make_url("/v1/chat/completions"))
        async with aiohttp.ClientSession() as raw:
            task = asyncio.ensure_future(raw.post(url, json={"model": "real", "messages": HELLO, "stream": True}))
            await wait_for(lambda: up.count == 1, "the request to reach the upstream")
            await asyncio.sleep(0.3)
            hung_up = time.perf_counter()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await wait_for(lambda: up.closed, "the upstream request to be cancelled after the hang-up", timeout=1.0)
        assert up.closed[0] - hung_up < 1.0
        await client.close()
    [row] = log_rows(tmp_path)
    assert row["outcome"] == "client_disconnect" and row["status"] == 499
    assert row["stream"] == 1


async def test_attempt_cut_by_client_disconnect_is_recorded(gateway: GatewayFactory, tmp_path: Path) -> None:
    """The router's contract: every attempt is appended to ``ex.attempts`` — also the one a hang-up cut."""
    async with ScriptedUpstream("hang") as up:
        client = await gateway(server={"timeout_s": 5}, providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/m"]}})
        url = str(client.make_url("/v1/chat/completions"))
        async with aiohttp.ClientSession() as raw:
            task = asyncio.ensure_future(raw.post(url, json={"model": "real", "messages": HELLO}))
            await wait_for(lambda: up.count == 1, "the request to reach the upstream")
            await asyncio.sleep(0.1)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await wait_for(lambda: up.closed, "the upstream request to be cancelled after the hang-up")
        await client.close()
    [row] = log_rows(tmp_path)
    assert row["outcome"] == "client_disconnect" and row["status"] == 499
    assert row["target"] == "up/m"
    assert [(a["target"], a["status"]) for a in attempts_of(row)] == [("up/m", 0)], \
        "the upstream was called: the attempt belongs in the log row"


async def test_client_disconnect_mid_stream_counts_streamed_tokens(gateway: GatewayFactory, tmp_path: Path) -> None:
    async with FakeOpenAI(chunk_delay_s=0.05) as up:
        client = await gateway(providers={"up": openai_provider(up.base_url)},
                               models={"real": {"targets": ["up/gpt-4o-mini"]}})
        url = str(client.make_url("/v1/chat/completions"))
        received = b""
        async with aiohttp.ClientSession() as raw:
            resp = await raw.post(url, json={"model": "real", "messages": LONG, "stream": True})
            assert resp.status == 200
            while received.count(b"data: ") < 4:
                piece = await resp.content.readany()
                assert piece, "the stream ended before the client could hang up"
                received += piece
            resp.close()  # hang up, mid-stream
        await asyncio.sleep(0.3)
        n_sent = len(up.requests)
        await client.close()
    assert n_sent == 1
    [row] = log_rows(tmp_path)
    assert row["outcome"] == "client_disconnect" and row["status"] == 499
    assert row["output_tokens"] > 0
    # LONG's answer has 40+ words; the client hung up after a few chunks: only the streamed part is counted
    assert row["output_tokens"] < 40


# --- 10. strategies -------------------------------------------------------------------------------------------------


async def test_loadbalance_splits_by_weight(gateway: GatewayFactory) -> None:
    client = await gateway(providers={"mock2": {"kind": "mock"}},
                           models={"lb": {"targets": ["mock/a", "mock2/b"], "strategy": "loadbalance",
                                          "weights": [3, 1]}})
    router_of(client).rng = random.Random(20240601)
    counts: dict[str, int] = {}
    for _ in range(400):
        resp = await post(client, "lb")
        assert resp.status == 200
        target = resp.headers["x-llmgw-target"]
        counts[target] = counts.get(target, 0) + 1
    assert set(counts) == {"mock/a", "mock2/b"}
    ratio = counts["mock/a"] / counts["mock2/b"]
    assert 2.4 <= ratio <= 3.8, counts


async def test_loadbalance_falls_back_to_the_other_target(gateway: GatewayFactory) -> None:
    async with FakeOpenAI() as up:
        up.fail_next(500, times=1000)
        client = await gateway(routing={"cooldown_failures": 1000, "retry_reserve": 100},
                               providers={"up": openai_provider(up.base_url)},
                               models={"lb": {"targets": ["up/a", "mock/b"], "strategy": "loadbalance",
                                              "weights": [1, 1]}})
        router_of(client).rng = random.Random(5)
        for _ in range(20):
            resp = await post(client, "lb")
            assert resp.status == 200 and resp.headers["x-llmgw-target"] == "mock/b"
        assert 0 < len(up.requests) < 20


async def test_least_latency_prefers_the_faster_target(gateway: GatewayFactory) -> None:
    client = await gateway(providers={"slow": {"kind": "mock", "latency_ms": 50}, "quick": {"kind": "mock"}},
                           models={"ll": {"targets": ["slow/m", "quick/m"], "strategy": "least-latency"}})
    for _ in range(4):  # warm-up: both targets get measured
        assert (await post(client, "ll")).status == 200
    targets = [(await post(client, "ll")).headers["x-llmgw-target"] for _ in range(20)]
    assert targets == ["quick/m"] * 20
    latency = router_of(client).latency
    assert latency.get("slow/m") >= 40 > latency.get("quick/m")
