"""OpenAI Chat Completions upstreams: OpenAI itself and every OpenAI-compatible server (vLLM, TGI, Ollama,
llama.cpp). The canonical form *is* this wire format, so requests go out with only ``model`` replaced (and a usage
request added to streams), and answers come back as the upstream sent them, raw bytes kept for forwarding.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ..exchange import Exchange, StreamEvent, UpstreamReply, Usage
from ..sse import SSEDecoder
from .base import (
    ProviderBase,
    ProviderContext,
    UpstreamFailure,
    error_body,
    loads_object,
    retry_after_seconds,
    transport_failure,
)


class OpenAIProvider(ProviderBase):
    kind = "openai"

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        base = ctx.config.base_url or "https://api.openai.com/v1"
        self._chat_url = f"{base}/chat/completions"
        self._embeddings_url = f"{base}/embeddings"
        headers = {"Content-Type": "application/json", **ctx.config.headers}
        if ctx.api_key:
            headers["Authorization"] = f"Bearer {ctx.api_key}"
        self._headers = headers

    def _payload(self, body: dict[str, Any], model: str, **extra: Any) -> bytes:
        out = {**body, "model": model, **extra}
        for name in self.config.drop_params:
            out.pop(name, None)
        return orjson.dumps(out)

    async def failure_from(self, resp: aiohttp.ClientResponse) -> UpstreamFailure:
        return await _failure(resp)

    async def chat(self, ex: Exchange, body: dict[str, Any], model: str) -> UpstreamReply:
        raw = await self.post(self._chat_url, self._payload(body, model), self._headers)
        reply = loads_object(raw)
        return UpstreamReply(reply, raw, Usage.from_openai(reply.get("usage")))

    async def embeddings(self, ex: Exchange, body: dict[str, Any], model: str) -> UpstreamReply:
        raw = await self.post(self._embeddings_url, self._payload(body, model), self._headers)
        reply = loads_object(raw)
        return UpstreamReply(reply, raw, Usage.from_openai(reply.get("usage")))

    async def stream(self, ex: Exchange, body: dict[str, Any], model: str) -> AsyncIterator[StreamEvent]:
        options = {**(body.get("stream_options") or {}), "include_usage": True}
        payload = self._payload(body, model, stream=True, stream_options=options)
        try:
            async with self.ctx.session.post(self._chat_url, data=payload, headers=self._headers,
                                             timeout=self.ctx.stream_timeout) as resp:
                if resp.status != 200:
                    raise await self.failure_from(resp)
                decoder = SSEDecoder()
                finished = False
                async for piece in resp.content.iter_any():
                    messages = decoder.feed(piece)
                    if not messages:
                        continue
                    done = messages[-1].data == b"[DONE]"
                    last = len(messages) - (2 if done else 1)   # the last event of this read: write then
                    for i, message in enumerate(messages):
                        if message.data == b"[DONE]":
                            await _drain(resp)
                            return
                        event = _event(message.data)
                        event.flush = i == last
                        if not finished:
                            finished = _has_finish(event.data)
                        yield event
                for message in decoder.close():
                    if message.data != b"[DONE]":
                        event = _event(message.data)
                        finished = finished or _has_finish(event.data)
                        yield event
                if not finished:  # no [DONE] and no finish reason: the answer was cut, not completed
                    raise UpstreamFailure(502, "upstream stream ended before it finished")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_failure(exc) from None


async def _drain(resp: aiohttp.ClientResponse) -> None:
    """Read what is left of a finished stream (usually just the end of the chunked body), so that the connection
    goes back to the pool instead of being closed: a new connection per stream costs more than the stream."""
    async for _ in resp.content.iter_any():
        pass


def _has_finish(chunk: dict[str, Any]) -> bool:
    choices = chunk.get("choices")
    if not choices:
        return False
    if len(choices) == 1:   # the common case, without a generator
        return bool(choices[0].get("finish_reason"))
    return any(c.get("finish_reason") for c in choices)


def _event(data: bytes) -> StreamEvent:
    chunk = loads_object(data)
    if "error" in chunk and "choices" not in chunk:
        raise _stream_error(chunk)
    usage = chunk.get("usage")
    return StreamEvent(chunk, b"data: " + data + b"\n\n", Usage.from_openai(usage) if usage else None)


async def _failure(resp: aiohttp.ClientResponse) -> UpstreamFailure:
    """Turn a non-200 answer into an :class:`UpstreamFailure` carrying the upstream's own message."""
    body = await error_body(resp)
    message = f"HTTP {resp.status}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = str(body["error"].get("message") or message)
    elif isinstance(body, dict) and isinstance(body.get("error"), str):
        message = body["error"]
    return UpstreamFailure(resp.status, message, retry_after=retry_after_seconds(resp.headers.get("Retry-After")),
                           body=body if isinstance(body, dict) else None)


def _stream_error(chunk: dict[str, Any]) -> UpstreamFailure:
    error = chunk.get("error")
    message = error.get("message", "stream error") if isinstance(error, dict) else str(error)
    return UpstreamFailure(502, f"upstream stream error: {message}", body=chunk)
