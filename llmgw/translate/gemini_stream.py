"""Streamed Gemini ``GenerateContentResponse`` chunks -> canonical ``chat.completion.chunk`` events.

Contract: a small state machine, no I/O (:class:`GeminiStreamToOpenAI`); usage as
:func:`~llmgw.translate.gemini.usage_from_gemini` normalises it.
"""

from __future__ import annotations

import time
from typing import Any

from ..exchange import StreamEvent, Usage
from .gemini import finish_reason, tool_call, usage_from_gemini


class GeminiStreamToOpenAI:
    """Streamed Gemini ``GenerateContentResponse`` chunks in, canonical ``chat.completion.chunk`` events out.

    ``feed(chunk)`` returns the events for one parsed SSE chunk (the caller handles ``{"error": ...}`` chunks): a
    first event with delta ``{"role": "assistant", "content": ""}``, then a ``content`` delta per text part (thought
    parts left out), one ``tool_calls`` delta per ``functionCall`` (``index``, fresh ``id``, ``type``, ``function``
    with ``name`` and the whole ``arguments`` JSON), and a finish event once a ``finishReason`` (or a prompt
    ``blockReason``) arrives. ``finish()`` ends the stream: whatever of the above is still owed, then one usage-only
    event (``choices: []``) whose :attr:`StreamEvent.usage` is the final :class:`Usage`. Usage is taken from the
    latest ``usageMetadata`` seen (Gemini repeats the running totals on every chunk). :attr:`finished` tells whether
    the upstream sent a finish reason. Events have ``raw=None`` and format ``"openai"``.
    """

    def __init__(self, model: str, response_id: str) -> None:
        self.model = model
        self.response_id = response_id
        self.created = int(time.time())
        self.usage = Usage()
        self.finished = False
        self._started = False
        self._tool_calls = 0
        self._ended = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> StreamEvent:
        return StreamEvent({"id": self.response_id, "object": "chat.completion.chunk", "created": self.created,
                            "model": self.model,
                            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    def _start(self, events: list[StreamEvent]) -> None:
        if not self._started:
            self._started = True
            events.append(self._chunk({"role": "assistant", "content": ""}))

    def feed(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        self._start(events)
        if isinstance(chunk.get("usageMetadata"), dict):
            self.usage = usage_from_gemini(chunk["usageMetadata"])
        if self.finished:
            return events
        candidates = chunk.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict) \
            else {}
        parts = (candidate.get("content") or {}).get("parts")
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict) or part.get("thought") is True:
                continue
            if isinstance(part.get("functionCall"), dict):
                call = tool_call(part["functionCall"], part.get("thoughtSignature"))
                events.append(self._chunk({"tool_calls": [{"index": self._tool_calls, **call}]}))
                self._tool_calls += 1
            elif isinstance(part.get("text"), str) and part["text"]:
                events.append(self._chunk({"content": part["text"]}))
        reason = candidate.get("finishReason")
        if reason:
            self.finished = True
            events.append(self._chunk({}, finish_reason(reason, self._tool_calls > 0)))
        elif not candidate and (chunk.get("promptFeedback") or {}).get("blockReason"):
            self.finished = True
            events.append(self._chunk({}, "content_filter"))
        return events

    def finish(self) -> list[StreamEvent]:
        """The closing events: the role event if nothing came, a ``stop`` finish if none came, then the usage event.
        Idempotent: a second call returns nothing."""
        if self._ended:
            return []
        self._ended = True
        events: list[StreamEvent] = []
        self._start(events)
        if not self.finished:
            events.append(self._chunk({}, "tool_calls" if self._tool_calls else "stop"))
        events.append(StreamEvent({"id": self.response_id, "object": "chat.completion.chunk",
                                   "created": self.created, "model": self.model, "choices": [],
                                   "usage": self.usage.to_openai()}, usage=self.usage))
        return events
