"""The OpenAI Responses API upstream side: a Responses client's request passed through untranslated (the adapter
whose kind speaks the Responses API uses it: :class:`llmgw.providers.openai.OpenAIProvider`).

Contract (:class:`ResponsesAPI`):
- ``build`` (pure): the client's body with only ``model`` replaced and the provider's ``drop_params`` removed;
  unknown item types, fields and tools pass. Requests carry the client's forwarded headers (``openai-beta``,
  session ids) over the adapter's own.
- ``chat``: ``POST {base_url}/responses``; the answer comes back as the upstream sent it (``UpstreamReply.raw``,
  format ``responses``), its usage normalised (:func:`llmgw.translate.responses.usage_from_responses`).
- ``stream``: the upstream's typed events one by one (format ``responses``, each with its own bytes), the usage on
  ``response.completed`` / ``response.incomplete``; ``response.created`` / ``response.in_progress`` are held back
  until the answer's first event, so a failure right after them still fails over. An ``error`` or
  ``response.failed`` event raises :class:`UpstreamFailure` (after the first event, the renderer ends the
  client's stream in the API's own way); a stream that ends without a final event is a 502.
- ``count``: ``POST {base_url}/responses/input_tokens`` with the client's body, ``model`` replaced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from ..exchange import Exchange, StreamEvent, UpstreamReply
from ..sse import SSEDecoder, SSEMessage, encode_data
from ..translate.responses import RESPONSES, usage_from_responses
from .base import UpstreamFailure, encode, loads_object, transport_failure
from .params import without

if TYPE_CHECKING:
    from .base import ProviderBase

__all__ = ["RESPONSES", "ResponsesAPI"]

_FINAL = frozenset({"response.completed", "response.incomplete"})
_OPENING = frozenset({"response.created", "response.in_progress", "response.queued"})


class ResponsesAPI:
    """The Responses API calls of one adapter (see the module contract)."""

    def __init__(self, provider: ProviderBase, url: str) -> None:
        self._provider = provider
        self._url = url

    def build(self, native: dict[str, Any], model: str) -> tuple[dict[str, Any], list[str]]:
        """The payload (pure): ``native`` with ``model`` replaced and ``drop_params`` removed; ``dropped`` names
        the removed fields the client sent."""
        payload, dropped = without({**native, "model": model}, self._provider.config.drop_params)
        return payload, [name for name in dropped if native.get(name) is not None]

    @staticmethod
    def _headers(ex: Exchange, headers: dict[str, str]) -> dict[str, str]:
        return {**headers, **ex.forward_headers} if ex.forward_headers else headers

    async def chat(self, ex: Exchange, native: dict[str, Any], model: str,
                   headers: dict[str, str]) -> UpstreamReply:
        raw = await self._provider.post(self._url, encode(ex, self.build(native, model)), self._headers(ex, headers))
        answer = loads_object(raw)
        return UpstreamReply(answer, raw, usage_from_responses(answer.get("usage")), format=RESPONSES)

    async def count(self, ex: Exchange, native: dict[str, Any], model: str,
                    headers: dict[str, str]) -> dict[str, Any]:
        payload, _ = self.build(native, model)
        raw = await self._provider.post(self._url + "/input_tokens", orjson.dumps(payload),
                                        self._headers(ex, headers))
        return loads_object(raw)

    async def stream(self, ex: Exchange, native: dict[str, Any], model: str,
                     headers: dict[str, str]) -> AsyncIterator[StreamEvent]:
        payload = encode(ex, self.build(native, model))
        ctx = self._provider.ctx
        finished = False
        try:
            async with ctx.session.post(self._url, data=payload, headers=self._headers(ex, headers),
                                        timeout=ctx.stream_timeout) as resp:
                if resp.status != 200:
                    raise await self._provider.failure_from(resp)
                decoder = SSEDecoder()
                opening = _Opening()
                async for piece in resp.content.iter_any():
                    events, failure = opening.ready(decoder.feed(piece))
                    for event in events:
                        finished = finished or event.data.get("type") in _FINAL
                        yield event
                    if failure is not None:
                        raise failure
                events, failure = opening.ready(decoder.close())
                for event in events:
                    finished = finished or event.data.get("type") in _FINAL
                    yield event
                if failure is not None:
                    raise failure
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_failure(exc) from None
        if not finished:
            raise UpstreamFailure(502, "upstream stream ended before response.completed")


class _Opening:
    """Holds ``response.created`` / ``response.in_progress`` until an event of the answer itself arrives, so an
    upstream that fails right after accepting the request fails before the first event and the router can still
    try the next target."""

    def __init__(self) -> None:
        self.held: list[StreamEvent] = []
        self.started = False

    def ready(self, messages: list[SSEMessage]) -> tuple[list[StreamEvent], UpstreamFailure | None]:
        """The events of one upstream read that may go out (the last marked ``flush``), and the failure an
        ``error`` / ``response.failed`` event among them stands for (the events before it go out first)."""
        out: list[StreamEvent] = []
        failure = None
        for message in messages:
            if message.data == b"[DONE]":
                continue
            try:
                event = stream_event(message.event, message.data)
            except UpstreamFailure as exc:
                failure = exc
                break
            event.flush = False
            if not self.started and event.data.get("type") in _OPENING:
                self.held.append(event)
                continue
            self.started = True
            out.extend(self.held)
            self.held.clear()
            out.append(event)
        if out:
            out[-1].flush = True
        return out, failure


def stream_event(name: str | None, data: bytes) -> StreamEvent:
    """One upstream SSE event as a native event (see the module contract); raises on ``error`` and
    ``response.failed``."""
    parsed = loads_object(data)
    kind = parsed.get("type") or name
    if kind == "error":
        error = parsed.get("error") if isinstance(parsed.get("error"), dict) else parsed
        raise _failure(error, parsed)
    if kind == "response.failed":
        response = parsed.get("response") or {}
        raise _failure(response.get("error") if isinstance(response.get("error"), dict) else {}, parsed)
    usage = None
    if kind in _FINAL and isinstance(parsed.get("response"), dict):
        usage = usage_from_responses(parsed["response"].get("usage"))
    return StreamEvent(parsed, encode_data(data, name or kind), usage, format=RESPONSES)


def _failure(error: dict[str, Any], body: dict[str, Any]) -> UpstreamFailure:
    code = error.get("code") or error.get("type") or "error"
    status = 429 if code == "rate_limit_exceeded" else 502
    return UpstreamFailure(status, f"upstream stream error: {code}: {error.get('message') or 'stream failed'}",
                           body=body)
