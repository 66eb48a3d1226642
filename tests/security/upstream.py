"""An OpenAI-compatible upstream that behaves as an attacker (or a broken server) would need it to: long answers
when no limit is sent, streams without usage, negative usage, errors that quote every header it received, and
SSE lines without end. It records every request it got."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

OPENAI_PATHS = ("/v1/chat/completions", "/chat/completions")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class AttackUpstream:
    """Knobs (change them between requests): ``answer_tokens`` is what the model writes when no limit is sent;
    ``usage`` is ``"honest"``, ``"none"`` or ``"negative"``; ``chunks``/``chunk_delay_s`` shape a stream;
    ``fail_status`` answers every request with that status and a message quoting every header it got;
    ``stream_error`` ends a stream after its first chunk (and a pause, so that the chunk is read on its own) with an
    error event quoting the headers;
    ``endless_line`` streams that many bytes of one ``data:`` line without a newline (after one whole chunk and a
    pause with ``endless_after_chunk``); ``set_cookie`` is sent as a ``Set-Cookie`` header with every answer."""

    answer_tokens: int = 20_000
    usage: str = "honest"
    chunks: int = 4
    chunk_delay_s: float = 0.0
    fail_status: int | None = None
    stream_error: bool = False
    endless_line: int = 0
    endless_after_chunk: bool = False
    set_cookie: str | None = None
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> AttackUpstream:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.on_response_prepare.append(self._cookie)
        for path in OPENAI_PATHS:
            app.router.add_post(path, self._chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _cookie(self, request: web.Request, response: web.StreamResponse) -> None:
        if self.set_cookie is not None:
            response.headers["Set-Cookie"] = self.set_cookie

    def quoted_headers(self, request: web.Request) -> str:
        return "; ".join(f"{k}: {v}" for k, v in request.headers.items())

    def _tokens(self, body: dict[str, Any]) -> int:
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        return min(self.answer_tokens, limit) if isinstance(limit, int) else self.answer_tokens

    def _usage(self, raw: bytes, tokens: int) -> dict[str, int] | None:
        if self.usage == "none":
            return None
        if self.usage == "negative":
            return {"prompt_tokens": -10**9, "completion_tokens": -10**9, "total_tokens": -2 * 10**9}
        prompt = max(1, len(raw) // 4)
        return {"prompt_tokens": prompt, "completion_tokens": tokens, "total_tokens": prompt + tokens}

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw)
        self.received.append(Received(body, dict(request.headers)))
        if self.fail_status is not None:
            message = f"invalid request; you sent {self.quoted_headers(request)}"
            return web.json_response({"error": {"message": message, "type": "invalid_request_error"}},
                                     status=self.fail_status)
        tokens = self._tokens(body)
        text = "abcd" * tokens
        usage = self._usage(raw, tokens)
        if not body.get("stream"):
            answer: dict[str, Any] = {
                "id": "chatcmpl-attack", "object": "chat.completion", "created": 0, "model": body.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
            if usage is not None:
                answer["usage"] = usage
            return web.Response(body=orjson.dumps(answer), content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if self.endless_line:
            if self.endless_after_chunk:
                chunk = {"id": "chatcmpl-attack", "object": "chat.completion.chunk", "model": body.get("model"),
                         "choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}]}
                await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                await asyncio.sleep(0.05)   # read on its own: the long line comes mid-stream
            await response.write(b"data: {\"choices\": [{\"delta\": {\"content\": \"")
            piece = b"x" * 65536
            sent = 0
            while sent < self.endless_line:
                await response.write(piece)
                sent += len(piece)
            return response
        size = max(1, -(-len(text) // self.chunks))
        for i in range(0, len(text), size):
            chunk = {"id": "chatcmpl-attack", "object": "chat.completion.chunk", "model": body.get("model"),
                     "choices": [{"index": 0, "delta": {"content": text[i:i + size]}, "finish_reason": None}]}
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            if self.stream_error:
                await asyncio.sleep(0.05)   # the first chunk reaches the client on its own: the error is mid-stream
                error = {"error": {"message": f"overloaded; you sent {self.quoted_headers(request)}"}}
                await response.write(b"data: " + orjson.dumps(error) + b"\n\n")
                return response
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
        last = {"id": "chatcmpl-attack", "object": "chat.completion.chunk", "model": body.get("model"),
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await response.write(b"data: " + orjson.dumps(last) + b"\n\n")
        if usage is not None and (body.get("stream_options") or {}).get("include_usage"):
            tail = {"id": "chatcmpl-attack", "object": "chat.completion.chunk", "choices": [], "usage": usage}
            await response.write(b"data: " + orjson.dumps(tail) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        return response
