"""Anthropic Messages upstreams.

An Anthropic client's request goes out untouched but for ``model`` (unknown fields such as ``thinking``,
``cache_control``, ``context_management`` pass through, and so do ``anthropic-version``/``anthropic-beta``), and
the answer comes back as Anthropic sent it. Any other client's canonical request is translated both ways by
:mod:`llmgw.translate.anthropic`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ..exchange import Exchange, StreamEvent, UpstreamReply
from ..sse import SSEDecoder
from ..translate import anthropic as tr
from ..translate.anthropic_stream import AnthropicStreamToOpenAI
from .base import (
    ProviderBase,
    ProviderContext,
    UpstreamFailure,
    error_body,
    loads_object,
    retry_after_seconds,
    transport_failure,
)

API_VERSION = "2023-06-01"
# Anthropic's error types and the status each stands for when it arrives inside a stream.
_STREAM_ERROR_STATUS = {"overloaded_error": 529, "rate_limit_error": 429, "api_error": 500,
                        "invalid_request_error": 400, "request_too_large": 413, "timeout_error": 504}


class AnthropicProvider(ProviderBase):
    kind = "anthropic"
    native_format = "anthropic"

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        base = ctx.config.base_url or "https://api.anthropic.com"
        self._messages_url = f"{base}/v1/messages"
        self._count_url = f"{base}/v1/messages/count_tokens"
        headers = {"Content-Type": "application/json", "anthropic-version": API_VERSION, **ctx.config.headers}
        if ctx.api_key:
            headers["x-api-key"] = ctx.api_key
        self._headers = headers

    async def failure_from(self, resp: aiohttp.ClientResponse) -> UpstreamFailure:
        return await _failure(resp)

    def _request(self, ex: Exchange, model: str, stream: bool) -> tuple[bytes, dict[str, str], bool]:
        """(payload, headers, passthrough)"""
        headers = {**self._headers, **ex.forward_headers} if ex.forward_headers else self._headers
        if ex.client_format == "anthropic":
            body = {**ex.client_body, "model": model}
            for name in self.config.drop_params:
                body.pop(name, None)
            return orjson.dumps(body), headers, True
        body, dropped = tr.openai_request_to_anthropic(ex.body, drop=self.config.drop_params)
        ex.dropped_params.extend(d for d in dropped if d not in ex.dropped_params)
        body["model"] = model
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
        return orjson.dumps(body), headers, False

    async def chat(self, ex: Exchange, body: dict[str, Any], model: str) -> UpstreamReply:
        payload, headers, passthrough = self._request(ex, model, stream=False)
        raw = await self.post(self._messages_url, payload, headers)
        answer = loads_object(raw)
        if passthrough:
            return UpstreamReply(answer, raw, tr.usage_from_anthropic(answer.get("usage")), format="anthropic")
        canonical, usage = tr.anthropic_response_to_openai(answer)
        return UpstreamReply(canonical, None, usage)

    async def count_tokens(self, ex: Exchange, model: str) -> dict[str, Any]:
        """Ask the upstream to count an Anthropic-format request's input tokens."""
        body = {k: v for k, v in ex.client_body.items() if k in ("messages", "system", "tools", "tool_choice",
                                                                  "thinking", "mcp_servers")}
        headers = {**self._headers, **ex.forward_headers}
        return loads_object(await self.post(self._count_url, orjson.dumps({**body, "model": model}), headers))

    async def embeddings(self, ex: Exchange, body: dict[str, Any], model: str) -> UpstreamReply:
        raise UpstreamFailure(400, "Anthropic has no embeddings API; route embeddings to another provider")

    async def stream(self, ex: Exchange, body: dict[str, Any], model: str) -> AsyncIterator[StreamEvent]:
        payload, headers, passthrough = self._request(ex, model, stream=True)
        converter = None if passthrough else AnthropicStreamToOpenAI()
        running: dict[str, Any] = {}
        try:
            async with self.ctx.session.post(self._messages_url, data=payload, headers=headers,
                                             timeout=self.ctx.stream_timeout) as resp:
                if resp.status != 200:
                    raise await self.failure_from(resp)
                decoder = SSEDecoder()
                async for piece in resp.content.iter_any():
                    messages = decoder.feed(piece)
                    for m, message in enumerate(messages, start=1 - len(messages)):
                        events = _events(message.event, message.data, converter, running)  # may raise: error event
                        for e, event in enumerate(events, start=1 - len(events)):
                            event.flush = m == 0 and e == 0  # write once per upstream read
                            yield event
                for message in decoder.close():
                    for event in _events(message.event, message.data, converter, running):
                        yield event
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_failure(exc) from None



def _events(name: str | None, data: bytes, converter: AnthropicStreamToOpenAI | None,
            running: dict[str, Any]) -> list[StreamEvent]:
    """One upstream SSE event as the events to yield (native ones, or their canonical translation)."""
    parsed = loads_object(data)
    kind = parsed.get("type") or name
    if kind == "error":
        error = parsed.get("error") or {}
        status = _STREAM_ERROR_STATUS.get(error.get("type", ""), 502)
        raise UpstreamFailure(status, f"{error.get('type', 'error')}: {error.get('message', 'stream error')}",
                              body=parsed)
    if converter is not None:
        return converter.feed(name, parsed)
    usage = None
    if kind == "message_start":
        running.update((parsed.get("message") or {}).get("usage") or {})
        usage = tr.usage_from_anthropic(running)
    elif kind == "message_delta":
        running.update({k: v for k, v in (parsed.get("usage") or {}).items() if v is not None})
        usage = tr.usage_from_anthropic(running)
    raw = b"event: " + (name or kind or "message").encode() + b"\ndata: " + data + b"\n\n"
    return [StreamEvent(parsed, raw, usage, format="anthropic")]


async def _failure(resp: aiohttp.ClientResponse) -> UpstreamFailure:
    body = await error_body(resp)
    message = f"HTTP {resp.status}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        message = f"{error.get('type', 'error')}: {error.get('message', message)}"
    return UpstreamFailure(resp.status, message, retry_after=retry_after_seconds(resp.headers.get("retry-after")),
                           body=body if isinstance(body, dict) else None)
