"""Canonical answers (OpenAI Chat Completions) -> a Gemini ``generateContent`` client: whole answers as a
``GenerateContentResponse`` (:func:`openai_response_to_gemini`) and streams chunk by chunk
(:class:`OpenAIStreamToGemini`). The request half is :mod:`llmgw.translate.gemini_client`.

Contract (:func:`openai_response_to_gemini`): one candidate per choice (its ``index`` kept): the text, a refusal's
text, then one ``functionCall`` part per tool call (``id``, ``name``, ``args`` parsed from the arguments JSON, the
thought signature back on the part); ``finishReason`` from :data:`FINISH_TO_GEMINI`; ``usageMetadata`` from the
normalised :class:`~llmgw.exchange.Usage` (:func:`usage_metadata`, the inverse of
:func:`llmgw.translate.gemini.usage_from_gemini`); ``modelVersion`` the answer's model, ``responseId`` its id.
Pure functions and a small state machine: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..exchange import Usage
from .gemini_client import get

FINISH_TO_GEMINI: Mapping[str, str] = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP",
                                       "function_call": "STOP", "content_filter": "SAFETY"}
"""The canonical finish reason -> Gemini's ``finishReason`` (anything else: ``STOP``)."""


def finish_to_gemini(reason: Any) -> str:
    """Gemini's ``finishReason`` for a canonical finish reason."""
    return FINISH_TO_GEMINI.get(reason, "STOP") if isinstance(reason, str) else "STOP"


def usage_metadata(usage: Usage) -> dict[str, Any]:
    """A normalised usage as Gemini's ``usageMetadata``: ``candidatesTokenCount`` leaves the thoughts out, as
    Gemini counts them (``thoughtsTokenCount``); ``cachedContentTokenCount`` and ``thoughtsTokenCount`` only when
    there are some."""
    meta: dict[str, Any] = {"promptTokenCount": usage.input_tokens,
                            "candidatesTokenCount": max(0, usage.output_tokens - usage.reasoning_tokens),
                            "totalTokenCount": usage.input_tokens + usage.output_tokens}
    if usage.cached_tokens:
        meta["cachedContentTokenCount"] = usage.cached_tokens
    if usage.reasoning_tokens:
        meta["thoughtsTokenCount"] = usage.reasoning_tokens
    return meta


def function_call_part(call_id: Any, name: Any, arguments: Any, extra: Any = None) -> dict[str, Any]:
    """A canonical tool call's pieces as a Gemini ``functionCall`` part (arguments that are not a JSON object are
    kept under ``args.arguments``)."""
    try:
        args = orjson.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except orjson.JSONDecodeError:
        args = {"arguments": arguments}
    if not isinstance(args, dict):
        args = {"arguments": args}
    call: dict[str, Any] = {"name": str(name or ""), "args": args}
    if call_id:
        call["id"] = str(call_id)
    part: dict[str, Any] = {"functionCall": call}
    signature = get(get(extra, "google"), "thought_signature")
    if isinstance(signature, str) and signature:
        part["thoughtSignature"] = signature
    return part


def _message_parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    if isinstance(content, str) and content:
        parts.append({"text": content})
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append({"text": message["refusal"]})
    for call in message.get("tool_calls") or []:
        if isinstance(call, dict):
            function = call.get("function") or {}
            parts.append(function_call_part(call.get("id"), function.get("name"), function.get("arguments"),
                                            call.get("extra_content")))
    legacy = message.get("function_call")
    if isinstance(legacy, dict) and not message.get("tool_calls"):
        parts.append(function_call_part(None, legacy.get("name"), legacy.get("arguments")))
    return parts


def openai_response_to_gemini(body: Mapping[str, Any], usage: Usage | None = None) -> dict[str, Any]:
    """A canonical ``chat.completion`` as a Gemini ``GenerateContentResponse`` (see the module contract); ``usage``
    defaults to the answer's own."""
    candidates = []
    for i, choice in enumerate(body.get("choices") or []):
        if not isinstance(choice, dict):
            continue
        parts = _message_parts(choice.get("message") or {})
        candidates.append({"content": {"role": "model", "parts": parts or [{"text": ""}]},
                           "finishReason": finish_to_gemini(choice.get("finish_reason")),
                           "index": choice.get("index", i)})
    if usage is None:
        usage = Usage.from_openai(body.get("usage"))
    out: dict[str, Any] = {"candidates": candidates, "usageMetadata": usage_metadata(usage)}
    if body.get("model"):
        out["modelVersion"] = body["model"]
    if body.get("id"):
        out["responseId"] = body["id"]
    return out


class OpenAIStreamToGemini:
    """Canonical ``chat.completion.chunk`` events in, Gemini ``GenerateContentResponse`` chunks (dicts) out.

    ``feed(chunk, usage)`` returns the chunks for one canonical event: one chunk per choice whose delta carries text
    (``content`` or ``refusal``), as it arrives. Tool-call fragments are gathered per choice and call and sent whole
    (Gemini streams each ``functionCall`` in one piece). A choice's finish reason is held back, with its function
    calls, until the usage-only event (``choices: []``) or :meth:`finish`: then one last chunk carries, for every
    finished choice, its ``functionCall`` parts (an empty text part when it has none) and ``finishReason``, and
    ``usageMetadata`` (the latest usage seen), as Gemini's last chunk does. ``finish()`` sends what is still owed
    (nothing twice). Every chunk has ``modelVersion`` and ``responseId`` from the canonical events (``model`` and
    ``id``).
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.response_id = ""
        self.usage = Usage()
        self._calls: dict[tuple[int, int], dict[str, Any]] = {}
        self._finish: dict[int, str] = {}
        self._closed = False

    def _chunk(self, candidates: list[dict[str, Any]], usage: Usage | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"candidates": candidates}
        if usage is not None:
            out["usageMetadata"] = usage_metadata(usage)
        out["modelVersion"] = self.model
        if self.response_id:
            out["responseId"] = self.response_id
        return out

    def feed(self, chunk: Mapping[str, Any], usage: Usage | None = None) -> list[dict[str, Any]]:
        if self._closed:
            return []
        if usage is not None:
            self.usage = usage
        self.model = str(chunk.get("model") or self.model)
        self.response_id = self.response_id or str(chunk.get("id") or "")
        choices = chunk.get("choices") or []
        out = []
        for choice in choices:
            index = choice.get("index", 0)
            delta = choice.get("delta") or {}
            texts = [t for t in (delta.get("content"), delta.get("refusal")) if isinstance(t, str) and t]
            if texts:
                out.append(self._chunk([{"content": {"role": "model", "parts": [{"text": "".join(texts)}]},
                                         "index": index}]))
            for call in delta.get("tool_calls") or []:
                self._gather(index, call)
            if choice.get("finish_reason"):
                self._finish[index] = choice["finish_reason"]
        if not choices and (self._finish or self._calls):
            out.extend(self.finish())
        return out

    def _gather(self, index: int, call: Mapping[str, Any]) -> None:
        slot = self._calls.setdefault((index, call.get("index", 0)),
                                      {"id": None, "name": "", "arguments": "", "extra": None})
        function = call.get("function") or {}
        slot["id"] = call.get("id") or slot["id"]
        slot["name"] = function.get("name") or slot["name"]
        slot["extra"] = call.get("extra_content") or slot["extra"]
        if isinstance(function.get("arguments"), str):
            slot["arguments"] += function["arguments"]

    def finish(self) -> list[dict[str, Any]]:
        """The last chunk (see the class contract); nothing when it was sent already."""
        if self._closed:
            return []
        self._closed = True
        indexes = sorted({*self._finish, *(i for i, _ in self._calls)}) or [0]
        candidates = []
        for index in indexes:
            parts = [function_call_part(slot["id"], slot["name"], slot["arguments"], slot["extra"])
                     for (i, _), slot in sorted(self._calls.items()) if i == index]
            candidates.append({"content": {"role": "model", "parts": parts or [{"text": ""}]},
                               "finishReason": finish_to_gemini(self._finish.get(index)), "index": index})
        return [self._chunk(candidates, self.usage)]
