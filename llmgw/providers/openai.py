"""OpenAI Chat Completions upstreams: OpenAI itself and every OpenAI-compatible server (vLLM, TGI, Ollama,
llama.cpp). The canonical form *is* this wire format, so requests go out with only ``model`` replaced (and a usage
request added to streams) and the provider's ``drop_params`` removed, and answers come back as the upstream sent
them, raw bytes kept for forwarding.

A kind that also speaks the Responses API (``openai``: its ``native_formats`` in the registry) passes a Responses
client through to ``{base_url}/responses`` (and ``/responses/input_tokens``): the client's body with only ``model``
replaced and ``drop_params`` removed, the client's ``openai-beta`` / session headers kept, and the upstream's own
answer, or its typed events one by one, back (:mod:`llmgw.providers.responses_api`). Other kinds get the canonical
translation of such a client (Chat Completions).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from ..exchange import CANONICAL, Exchange, StreamEvent, UpstreamReply, Usage
from ..sse import SSEDecoder
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
from .openai_chunks import TextTemplate, chunk_events
from .params import without
from .responses_api import RESPONSES, ResponsesAPI


class OpenAIProvider(ProviderBase):
    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        self._chat_url = f"{self.base_url}/chat/completions"
        self._embeddings_url = f"{self.base_url}/embeddings"
        headers = {"Content-Type": "application/json", **ctx.config.headers}
        if ctx.api_key:
            headers["Authorization"] = f"Bearer {ctx.api_key}"
        self._headers = headers
        self._responses = ResponsesAPI(self, f"{self.base_url}/responses")

    def build(self, body: dict[str, Any], model: str, *, stream: bool = False) -> tuple[dict[str, Any], list[str]]:
        """The chat payload (pure): ``body`` with ``model`` replaced, a usage request added to a stream, and
        ``drop_params`` removed; ``dropped`` names the removed fields the client sent."""
        payload = {**body, "model": model}
        if stream:
            payload["stream"] = True
            payload["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return self._without_dropped(body, payload)

    def build_embeddings(self, body: dict[str, Any], model: str) -> tuple[dict[str, Any], list[str]]:
        """The embeddings payload (pure): ``body`` with ``model`` replaced and ``drop_params`` removed."""
        return self._without_dropped(body, {**body, "model": model})

    def _without_dropped(self, body: dict[str, Any], payload: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        payload, dropped = without(payload, self.config.drop_params)
        return payload, [name for name in dropped if body.get(name) is not None]

    async def failure_from(self, resp: UpstreamResponse) -> UpstreamFailure:
        return await _failure(resp)

    def responses_body(self, ex: Exchange) -> dict[str, Any] | None:
        """The client's own body when it is a Responses API request this kind passes through, else None."""
        return self.native_body(ex) if ex.client_format == RESPONSES else None

    async def count_tokens(self, ex: Exchange, model: str) -> dict[str, Any] | None:
        """The upstream's count of a Responses client's ``input_tokens`` request; None for other clients."""
        native = self.responses_body(ex)
        return None if native is None else await self._responses.count(ex, native, model, self._headers)

    async def chat(self, ex: Exchange, body: dict[str, Any], model: str) -> UpstreamReply:
        native = self.responses_body(ex)
        if native is not None:
            return await self._responses.chat(ex, native, model, self._headers)
        raw = await self.post(self._chat_url, encode(ex, self.build(body, model)), self._headers)
        reply = loads_object(raw)
        return UpstreamReply(reply, raw, Usage.from_openai(reply.get("usage")))

    async def embeddings(self, ex: Exchange, body: dict[str, Any], model: str) -> UpstreamReply:
        raw = await self.post(self._embeddings_url, encode(ex, self.build_embeddings(body, model)), self._headers)
        reply = loads_object(raw)
        return UpstreamReply(reply, raw, Usage.from_openai(reply.get("usage")))

    async def stream(self, ex: Exchange, body: dict[str, Any], model: str) -> AsyncIterator[StreamEvent]:
        native = self.responses_body(ex)
        if native is not None:
            async for event in self._responses.stream(ex, native, model, self._headers):
                yield event
            return
        payload = encode(ex, self.build(body, model, stream=True))
        try:
            async with self.ctx.session.post(self._chat_url, data=payload, headers=self._headers,
                                             timeout=self.ctx.stream_timeout) as resp:
                if resp.status != 200:
                    raise await self.failure_from(resp)
                decoder = SSEDecoder()
                finished = False
                merge = ex.client_format == CANONICAL   # the client gets the raw bytes: exactly what was sent
                template = TextTemplate() if merge else None
                async for piece in resp.content.iter_any():
                    datas = decoder.feed_data(piece)
                    if not datas:
                        continue
                    done = _DONE in datas
                    if done:
                        datas = datas[:datas.index(_DONE)]
                    if datas:
                        events, finishes = chunk_events(datas, merge=merge, template=template)
                        finished = finished or finishes
                        if done and resp.content.at_eof():   # the whole answer is in: one write, with the end
                            events[-1].flush = False
                        for event in events:
                            yield event
                    if done:
                        await _drain(resp)
                        return
                last = [data for data in (m.data for m in decoder.close()) if data != _DONE]
                if last:
                    events, finishes = chunk_events(last, merge=False)
                    finished = finished or finishes
                    for event in events:
                        yield event
                if not finished:  # no [DONE] and no finish reason: the answer was cut, not completed
                    raise UpstreamFailure(502, "upstream stream ended before it finished")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_failure(exc) from None


_DONE = b"[DONE]"


async def _drain(resp: UpstreamResponse) -> None:
    """Read what is left of a finished stream (usually just the end of the chunked body), so that the connection
    goes back to the pool instead of being closed: a new connection per stream costs more than the stream."""
    async for _ in resp.content.iter_any():
        pass


async def _failure(resp: UpstreamResponse) -> UpstreamFailure:
    """Turn a non-200 answer into an :class:`UpstreamFailure` carrying the upstream's own message."""
    body = await error_body(resp)
    message = f"HTTP {resp.status}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = str(body["error"].get("message") or message)
    elif isinstance(body, dict) and isinstance(body.get("error"), str):
        message = body["error"]
    return UpstreamFailure(resp.status, message, retry_after=retry_after_seconds(resp.headers.get("Retry-After")),
                           body=body if isinstance(body, dict) else None)
