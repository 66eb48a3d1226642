"""Google Gemini upstreams (the Gemini API, REST ``v1beta``), translated both ways by :mod:`llmgw.translate.gemini`
for clients of other formats.

- chat: ``POST {base_url}/v1beta/models/{model}:generateContent``;
- stream: ``POST {base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse`` (each SSE event a whole
  ``GenerateContentResponse`` holding the next piece);
- embeddings: ``POST {base_url}/v1beta/models/{model}:batchEmbedContents``;
- count tokens (Gemini clients only): ``POST {base_url}/v1beta/models/{model}:countTokens``.

A Gemini client's request (the client's format is this adapter's native format) goes out as the client sent it
(only the model in the URL replaced and the provider's ``drop_params`` removed: unknown parts and fields pass),
and the answer comes back as Gemini sent it: its bytes, or its stream events (format ``gemini``) one by one.

The key travels in the ``x-goog-api-key`` header, never in the URL (URLs end up in logs); a client's key never
goes upstream. Translated answers are canonical (``UpstreamReply.raw`` is None: the renderer serialises them).
Failures are :class:`UpstreamFailure` with Gemini's HTTP status and message, with two normalisations: Gemini answers
a bad key with 400 ``INVALID_ARGUMENT`` / ``API_KEY_INVALID``, reported here as 401 so the gateway blames its
credentials, not the client's request; and a 429's ``RetryInfo.retryDelay`` becomes ``retry_after`` when no
``Retry-After`` header came.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from ..exchange import Exchange, StreamEvent, UpstreamReply
from ..sse import SSEDecoder, encode_data
from ..translate import gemini as tr
from ..translate.gemini_stream import GeminiStreamToOpenAI
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


class GeminiProvider(ProviderBase):
    """Gemini clients pass through; every other request is translated from the canonical form."""

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        base = self.base_url
        if not base.endswith(("/v1beta", "/v1")):
            base += "/v1beta"
        self._base = base
        headers = {"Content-Type": "application/json", **ctx.config.headers}
        if ctx.api_key:
            headers["x-goog-api-key"] = ctx.api_key
        self._headers = headers

    @staticmethod
    def _name(model: str) -> str:
        return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"

    def _url(self, model: str, method: str) -> str:
        return f"{self._base}/{quote(self._name(model), safe='/-._~')}:{method}"

    def build(self, body: dict[str, Any], model: str, *, stream: bool = False,
              native: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
        """The ``GenerateContentRequest`` (pure; the model and streaming are in the URL). ``native``: the client's
        own body, already in Gemini's format: it goes out as it is, ``drop_params`` removed. Otherwise ``body`` is
        translated, refusing what Gemini cannot honour (see :data:`llmgw.providers.spec.GEMINI_PARAMS`)."""
        if native is not None:
            return without(native, self.config.drop_params)
        return tr.openai_to_gemini(body, drop=self.config.drop_params)

    def build_embeddings(self, body: dict[str, Any], model: str) -> tuple[dict[str, Any], list[str]]:
        """The ``batchEmbedContents`` request (pure), without the fields ``drop_params`` lists."""
        kept, listed = without(body, self.config.drop_params)
        request, dropped = tr.openai_embeddings_to_gemini(kept, model)
        return request, list(dict.fromkeys([*listed, *dropped]))

    async def failure_from(self, resp: UpstreamResponse) -> UpstreamFailure:
        return await _failure(resp)

    async def chat(self, ex: Exchange, body: dict[str, Any], model: str) -> UpstreamReply:
        native = self.native_body(ex)
        payload = encode(ex, self.build(body, model, native=native))
        raw = await self.post(self._url(model, "generateContent"), payload, self._headers)
        resp = loads_object(raw)
        if isinstance(resp.get("error"), dict):
            raise _error_failure(resp, None)
        usage = tr.usage_from_gemini(resp.get("usageMetadata"))
        if native is not None:
            return UpstreamReply(resp, raw, usage, format=self.native_format)
        return UpstreamReply(tr.gemini_to_openai(resp, model), None, usage)

    async def count_tokens(self, ex: Exchange, model: str) -> dict[str, Any] | None:
        """Ask the upstream to count a Gemini client's ``countTokens`` body: sent as the client sent it, the model
        of a ``generateContentRequest`` in it replaced, ``drop_params`` removed. Another client's: None."""
        native = self.native_body(ex)
        if native is None:
            return None
        body, _ = without(native, self.config.drop_params)
        inner = body.get("generateContentRequest")
        if isinstance(inner, dict):
            body = {**body, "generateContentRequest": {**inner, "model": self._name(model)}}
        resp = loads_object(await self.post(self._url(model, "countTokens"), orjson.dumps(body), self._headers))
        if isinstance(resp.get("error"), dict):
            raise _error_failure(resp, None)
        return resp

    async def embeddings(self, ex: Exchange, body: dict[str, Any], model: str) -> UpstreamReply:
        payload = encode(ex, self.build_embeddings(body, model))
        resp = loads_object(await self.post(self._url(model, "batchEmbedContents"), payload, self._headers))
        if isinstance(resp.get("error"), dict):
            raise _error_failure(resp, None)
        reply, usage = tr.gemini_embeddings_to_openai(resp, model, body.get("encoding_format"))
        return UpstreamReply(reply, None, usage)

    async def stream(self, ex: Exchange, body: dict[str, Any], model: str) -> AsyncIterator[StreamEvent]:
        native = self.native_body(ex)
        payload = encode(ex, self.build(body, model, stream=True, native=native))
        url = self._url(model, "streamGenerateContent") + "?alt=sse"
        converter = None if native is not None else GeminiStreamToOpenAI(model, "chatcmpl-" + ex.id[4:])
        passed = _Passed(self.native_format)
        try:
            async with self.ctx.session.post(url, data=payload, headers=self._headers,
                                             timeout=self.ctx.stream_timeout) as resp:
                if resp.status != 200:
                    raise await self.failure_from(resp)
                decoder = SSEDecoder()
                async for piece in resp.content.iter_any():
                    messages = decoder.feed(piece)
                    for m, message in enumerate(messages, start=1 - len(messages)):
                        events = _feed(converter, passed, message.data)
                        for e, event in enumerate(events, start=1 - len(events)):
                            event.flush = m == 0 and e == 0  # write once per upstream read
                            yield event
                for message in decoder.close():
                    for event in _feed(converter, passed, message.data):
                        yield event
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_failure(exc) from None
        if not (passed.finished if converter is None else converter.finished):
            raise UpstreamFailure(502, "upstream stream ended before a finish reason")
        for event in converter.finish() if converter is not None else ():
            yield event


class _Passed:
    """A Gemini client's stream, passed through: each chunk an event of the native format, with its own bytes and
    the usage so far; ``finished`` once a chunk gave a finish reason (or blocked the prompt)."""

    def __init__(self, native_format: str) -> None:
        self.format = native_format
        self.finished = False

    def event(self, chunk: dict[str, Any], data: bytes) -> StreamEvent:
        meta = chunk.get("usageMetadata")
        candidates = chunk.get("candidates")
        if isinstance(candidates, list) and candidates:
            finished = any(isinstance(c, dict) and c.get("finishReason") for c in candidates)
        else:
            finished = bool((chunk.get("promptFeedback") or {}).get("blockReason"))
        self.finished = self.finished or finished
        usage = tr.usage_from_gemini(meta) if isinstance(meta, dict) else None
        return StreamEvent(chunk, encode_data(data), usage, format=self.format)


def _feed(converter: GeminiStreamToOpenAI | None, passed: _Passed, data: bytes) -> list[StreamEvent]:
    if not data.strip():
        return []
    chunk = loads_object(data)
    if isinstance(chunk.get("error"), dict) and "candidates" not in chunk:
        raise _error_failure(chunk, None, prefix="upstream stream error: ")
    return converter.feed(chunk) if converter is not None else [passed.event(chunk, data)]


def _retry_delay(error: dict[str, Any]) -> float | None:
    """``RetryInfo.retryDelay`` (a protobuf Duration such as ``"37s"`` or ``"1.5s"``) in seconds."""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return max(0.0, float(delay[:-1]))
                except ValueError:
                    return None
    return None


def _key_invalid(error: dict[str, Any]) -> bool:
    return any(isinstance(d, dict) and d.get("reason") == "API_KEY_INVALID" for d in error.get("details") or [])


def _error_failure(body: dict[str, Any], http_status: int | None, *, prefix: str = "",
                   retry_after: float | None = None) -> UpstreamFailure:
    """Gemini's ``{"error": {"code", "message", "status", "details"}}`` as an :class:`UpstreamFailure`.

    The status is ``http_status`` when the error came as an HTTP answer, else the error's ``code`` (502 when it has
    none); a 400 for an invalid key becomes 401.
    """
    error = body["error"]
    code = error.get("code")
    status = http_status or (code if isinstance(code, int) and 400 <= code <= 599 else 502)
    if status == 400 and _key_invalid(error):
        status = 401
    message = str(error.get("message") or error.get("status") or f"HTTP {status}")
    if retry_after is None:
        retry_after = _retry_delay(error)
    return UpstreamFailure(status, prefix + message, retry_after=retry_after, body=body)


async def _failure(resp: UpstreamResponse) -> UpstreamFailure:
    """A non-200 answer as an :class:`UpstreamFailure` carrying Gemini's own message."""
    body = await error_body(resp)
    # Gemini sometimes wraps the error object in a one-element array.
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    header_delay = retry_after_seconds(resp.headers.get("Retry-After"))
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return _error_failure(body, resp.status, retry_after=header_delay)
    return UpstreamFailure(resp.status, f"HTTP {resp.status}", retry_after=header_delay,
                           body=body if isinstance(body, dict) else None)
