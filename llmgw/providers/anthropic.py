"""Anthropic Messages upstreams.

An Anthropic client's request (a client whose format is this adapter's native format) goes out untouched but for
``model`` and the provider's ``drop_params`` (unknown fields such as ``thinking``, ``cache_control``,
``context_management`` pass through, and so do ``anthropic-version``/``anthropic-beta``), and the answer comes back
as Anthropic sent it. Any other client's canonical request is translated both ways by
:mod:`llmgw.translate.anthropic`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ..exchange import Exchange, StreamEvent, UpstreamReply
from ..sse import SSEDecoder, encode_data
from ..translate import anthropic as tr
from ..translate.anthropic_stream import AnthropicStreamToOpenAI
from .base import (
    ProviderBase,
    ProviderContext,
    UpstreamFailure,
    encode,
    error_body,
    loads_object,
    retry_after_seconds,
    transport_failure,
)
from .http_client import UpstreamResponse
from .params import without

API_VERSION = "2023-06-01"
# Anthropic's error types and the status each stands for when it arrives inside a stream.
_STREAM_ERROR_STATUS = {"overloaded_error": 529, "rate_limit_error": 429, "api_error": 500,
                        "invalid_request_error": 400, "request_too_large": 413, "timeout_error": 504}


class AnthropicProvider(ProviderBase):
    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        self._messages_url = f"{self.base_url}/v1/messages"
        self._count_url = f"{self.base_url}/v1/messages/count_tokens"
        headers = {"Content-Type": "application/json", "anthropic-version": API_VERSION, **ctx.config.headers}
        if ctx.api_key:
            headers["x-api-key"] = ctx.api_key
        self._headers = headers

    async def failure_from(self, resp: UpstreamResponse) -> UpstreamFailure:
        return await _failure(resp)

    def build(self, body: dict[str, Any], model: str, *, stream: bool = False,
              native: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
        """The Messages payload (pure). ``native``: the client's own body, already in Anthropic's format: it goes
        out with only ``model`` replaced and ``drop_params`` removed. Otherwise the canonical ``body`` is
        translated (refusing what Anthropic cannot honour, see :data:`llmgw.providers.spec.ANTHROPIC_PARAMS`)."""
        if native is not None:
            return without({**native, "model": model}, self.config.drop_params)
        payload, dropped = tr.openai_request_to_anthropic(body, drop=self.config.drop_params)
        payload["model"] = model
        if stream:
            payload["stream"] = True
        else:
            payload.pop("stream", None)
        return payload, dropped

    def _headers_for(self, ex: Exchange) -> dict[str, str]:
        """The adapter's headers, plus the client's forwarded ones when its request passes through (a client of
        another format forwards headers meant for its own API)."""
        if ex.forward_headers and self.speaks(ex.client_format):
            return {**self._headers, **ex.forward_headers}
        return self._headers

    async def chat(self, ex: Exchange, body: dict[str, Any], model: str) -> UpstreamReply:
        native = self.native_body(ex)
        payload = encode(ex, self.build(body, model, native=native))
        raw = await self.post(self._messages_url, payload, self._headers_for(ex))
        answer = loads_object(raw)
        if native is not None:
            return UpstreamReply(answer, raw, tr.usage_from_anthropic(answer.get("usage")), format=self.native_format)
        canonical, usage = tr.anthropic_response_to_openai(answer)
        return UpstreamReply(canonical, None, usage)

    async def count_tokens(self, ex: Exchange, model: str) -> dict[str, Any]:
        """Ask the upstream to count an Anthropic-format request's input tokens: the client's body goes out untouched
        but for ``model`` and ``drop_params``, like a messages request (fields newer than the gateway included)."""
        body, _ = without({**ex.client_body, "model": model}, self.config.drop_params)
        return loads_object(await self.post(self._count_url, orjson.dumps(body), self._headers_for(ex)))

    async def embeddings(self, ex: Exchange, body: dict[str, Any], model: str) -> UpstreamReply:
        raise UpstreamFailure(400, "Anthropic has no embeddings API; route embeddings to another provider")

    async def stream(self, ex: Exchange, body: dict[str, Any], model: str) -> AsyncIterator[StreamEvent]:
        native = self.native_body(ex)
        payload = encode(ex, self.build(body, model, stream=True, native=native))
        converter = None if native is not None else AnthropicStreamToOpenAI()
        running: dict[str, Any] = {}
        try:
            async with self.ctx.session.post(self._messages_url, data=payload, headers=self._headers_for(ex),
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
    return [StreamEvent(parsed, encode_data(data, name or kind or "message"), usage, format="anthropic")]


async def _failure(resp: UpstreamResponse) -> UpstreamFailure:
    body = await error_body(resp)
    message = f"HTTP {resp.status}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        message = f"{error.get('type', 'error')}: {error.get('message', message)}"
    return UpstreamFailure(resp.status, message, retry_after=retry_after_seconds(resp.headers.get("retry-after")),
                           body=body if isinstance(body, dict) else None)
