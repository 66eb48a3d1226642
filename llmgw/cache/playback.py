"""Turning a cached canonical answer back into a reply or a stream, and an answer into a cacheable one.

Contract:
- :func:`canonical_answer` returns the canonical OpenAI ``chat.completion`` of a finished exchange (a whole reply in
  either wire format, or a stream's text) and its finish reason, or ``None`` when there is none to cache: more than
  one choice, or a stream that produced no text.
- :func:`replay_stream` returns ``(first_event, events)``: canonical ``chat.completion.chunk`` events (role, the
  text in a few pieces, tool calls, the finish reason, then a usage-only chunk) that every client renderer turns
  into its own SSE. All but the last event are marked ``flush=False`` so the stream is written in one go.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from ..exchange import Exchange, StreamEvent, Usage
from ..formats import FORMATS

PIECE = 48  # characters per replayed content chunk


def canonical_answer(ex: Exchange) -> tuple[dict[str, Any], str | None] | None:
    """The exchange's answer as a canonical chat.completion and its finish reason (see the module contract)."""
    if ex.reply is not None:
        wire = FORMATS.get(ex.reply.format)
        if wire is None:
            return None
        body = wire.canonical_answer(ex.reply.body)
        choices = body.get("choices")
        if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
            return None
        return body, choices[0].get("finish_reason")
    if ex.stream and ex.streamed_text:
        text = "".join(ex.streamed_text)
        answer = {"id": "chatcmpl-" + ex.id, "object": "chat.completion", "created": int(time.time()),
                  "model": ex.target.model if ex.target else ex.alias,
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                               "finish_reason": ex.finish_reason}]}
        return answer, ex.finish_reason
    return None


def _chunk(base: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def replay_events(answer: dict[str, Any], usage: Usage) -> list[StreamEvent]:
    """The canonical chunks that replay ``answer`` (see the module contract)."""
    base = {"id": answer.get("id", "chatcmpl-cached"), "object": "chat.completion.chunk",
            "created": answer.get("created", int(time.time())), "model": answer.get("model", "")}
    choice = answer["choices"][0]
    message = choice.get("message") or {}
    chunks = [_chunk(base, {"role": "assistant", "content": ""})]
    content = message.get("content")
    if isinstance(content, str):
        chunks.extend(_chunk(base, {"content": content[i:i + PIECE]}) for i in range(0, len(content), PIECE))
    for index, call in enumerate(message.get("tool_calls") or []):
        chunks.append(_chunk(base, {"tool_calls": [{"index": index, **call}]}))
    chunks.append(_chunk(base, {}, choice.get("finish_reason") or "stop"))
    events = [StreamEvent(c, flush=False) for c in chunks]
    events.append(StreamEvent({**base, "choices": [], "usage": usage.to_openai()}, usage=usage, flush=True))
    return events


async def _iterate(events: list[StreamEvent]) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event


def replay_stream(answer: dict[str, Any], usage: Usage) -> tuple[StreamEvent, AsyncIterator[StreamEvent]]:
    """``(first_event, rest)`` for ``ex.first_event`` / ``ex.events``."""
    events = replay_events(answer, usage)
    return events[0], _iterate(events[1:])
