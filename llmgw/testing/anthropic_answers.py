"""What the fake Anthropic upstream (:mod:`llmgw.testing.fake_anthropic`) answers, kept apart from its server: the
models it lists, the request checks Anthropic's Messages API makes (:func:`validate_request`), the deterministic
answers (:func:`anthropic_answer_for`, :func:`anthropic_input_tokens_for`; thinking and tool-use blocks) and the
named SSE events of a streamed one (:func:`stream_events`)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Final, NamedTuple

import orjson

from .answers import (
    content_text,
    last_user_text,
    message_tokens,
    part_texts,
    text_tokens,
)
from .wire import sse

# (id, display_name, created_at, max_input_tokens, max_tokens), most recently released first as the API lists.
DEFAULT_MODELS: Final = (
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z", 200_000, 64_000),
    ("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z", 200_000, 128_000),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z", 200_000, 64_000),
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z", 200_000, 64_000),
)
MIN_THINKING_BUDGET: Final = 1024


def _user_text(message: dict[str, Any]) -> str:
    """The text of a message as :func:`anthropic_answer_for` reads it."""
    content = message.get("content")
    if not isinstance(content, list):
        return content_text(content)
    texts = part_texts(content)
    if texts:
        return " ".join(texts)
    return " ".join(
        content_text(b.get("content")) for b in content if isinstance(b, dict) and b.get("type") == "tool_result"
    )


def _counted_text(content: Any) -> str:
    """Everything :func:`anthropic_input_tokens_for` counts in a message's content: text, thinking, tool_use
    inputs (as compact JSON) and tool_result texts, joined by single spaces."""
    if not isinstance(content, list):
        return content_text(content)
    parts: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            parts.append(block["thinking"])
        elif kind == "tool_use":
            parts.append(orjson.dumps(block.get("input", {})).decode())
        elif kind == "tool_result":
            parts.append(content_text(block.get("content")))
    return " ".join(parts)


def anthropic_answer_for(messages: list[dict[str, Any]], system: str | list[Any] | None = None) -> str:
    """The answer the fake gives when no fixed answer is set: ``"Echo: " + <text of the last user message>``.

    The text of a message is its ``content`` when that is a string; when it is a list of blocks, its ``text``
    blocks joined by single spaces, or -- when it has no text block -- its ``tool_result`` blocks' texts (a
    string content, or text blocks) joined by single spaces. With no user message the text is empty (answer
    ``"Echo: "``). ``system`` is accepted so that a request's fields can be passed through, and does not change
    the answer.
    """
    del system
    return f"Echo: {last_user_text(messages, _user_text)}"


def anthropic_input_tokens_for(body: dict[str, Any]) -> int:
    """The fake's ``usage.input_tokens`` and ``count_tokens`` answer for a request body.

    ``sum(ceil(len(text) / 4) + 3)`` over ``messages`` -- a message's text being its string content, or its
    text, thinking, tool_use input (compact JSON) and tool_result texts joined by single spaces -- plus
    ``ceil(len(system text) / 4)`` (a string, or text blocks joined by single spaces) plus
    ``ceil(len(compact JSON of tools) / 4)`` when ``tools`` is given. Cache tokens (:meth:`FakeAnthropic.set_usage`)
    are reported on top of this, never subtracted from it.
    """
    messages = body.get("messages")
    total = 0
    if isinstance(messages, list):
        total += message_tokens(_counted_text(m.get("content")) for m in messages if isinstance(m, dict))
    total += text_tokens(content_text(body.get("system")))
    tools = body.get("tools")
    if tools:
        total += text_tokens(orjson.dumps(tools))
    return total


def thinking_for(messages: list[dict[str, Any]]) -> str:
    """The text of the fake's ``thinking`` block, when the request enables thinking."""
    return f"The user wrote: {last_user_text(messages, _user_text)}. I will echo it."


def signature_for(thinking: str) -> str:
    """A deterministic stand-in for a thinking block's opaque signature."""
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest() * 2).decode()


class Block(NamedTuple):
    """One content block: as ``content_block_start`` announces it, its deltas, and as a whole message has it."""

    start: dict[str, Any]
    deltas: list[dict[str, Any]]
    final: dict[str, Any]


class Answer(NamedTuple):
    blocks: list[Block]
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int


def text_block(pieces: list[str]) -> Block:
    return Block(
        {"type": "text", "text": ""},
        [{"type": "text_delta", "text": p} for p in pieces],
        {"type": "text", "text": "".join(pieces)},
    )


def event_bytes(event: str, payload: dict[str, Any]) -> bytes:
    return sse(orjson.dumps(payload), event)


def stream_events(start_message: dict[str, Any], answer: Answer, usage: dict[str, Any]) -> list[bytes]:
    """The whole event stream of an answer, one ``event:``/``data:`` pair per item."""
    events = [
        event_bytes("message_start", {"type": "message_start", "message": start_message}),
        event_bytes("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(answer.blocks):
        events.append(
            event_bytes("content_block_start",
                        {"type": "content_block_start", "index": index, "content_block": block.start})
        )
        events.extend(
            event_bytes("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            for delta in block.deltas
        )
        events.append(event_bytes("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta_usage = {
        "input_tokens": usage["input_tokens"],
        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
        "output_tokens": usage["output_tokens"],
    }
    stop = {"stop_reason": answer.stop_reason, "stop_sequence": answer.stop_sequence}
    events.append(event_bytes("message_delta", {"type": "message_delta", "delta": stop, "usage": delta_usage}))
    events.append(event_bytes("message_stop", {"type": "message_stop"}))
    return events


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_request(body: Any, *, generation: bool) -> str | None:
    """The 400 message Anthropic answers an invalid messages (``generation``) or count_tokens body with, or None.

    Messages follow the API's pydantic-style wording (``"max_tokens: Field required"``).
    """
    if not isinstance(body, dict):
        return "Input should be a valid dictionary"
    if "model" not in body:
        return "model: Field required"
    if not isinstance(body["model"], str) or not body["model"]:
        return "model: Input should be a valid string"
    max_tokens = body.get("max_tokens")
    if generation:
        if "max_tokens" not in body:
            return "max_tokens: Field required"
        if not _is_int(max_tokens):
            return "max_tokens: Input should be a valid integer"
        if max_tokens < 1:
            return "max_tokens: Input should be greater than or equal to 1"
    if "messages" not in body:
        return "messages: Field required"
    messages = body["messages"]
    if not isinstance(messages, list):
        return "messages: Input should be a valid list"
    if not messages:
        return "messages: at least one message is required"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages.{i}: Input should be a valid dictionary"
        role = message.get("role")
        if role not in ("user", "assistant", "system"):
            return f"messages.{i}.role: Input should be 'user', 'assistant' or 'system'"
        if role == "system" and "content" not in message and "output_config" not in message:
            return f"messages.{i}: a system message needs content or output_config"
        if role != "system" and "content" not in message:
            return f"messages.{i}.content: Field required"
        content = message.get("content", "")
        if isinstance(content, list):
            for j, block in enumerate(content):
                if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                    return f"messages.{i}.content.{j}: Input should be a valid dictionary with a 'type'"
        elif not isinstance(content, str):
            return f"messages.{i}.content: Input should be a valid string or list"
    turns = [m for m in messages if m["role"] != "system"]
    if not turns or turns[0]["role"] != "user":
        return 'messages: first message must use the "user" role'
    system = body.get("system")
    system_ok = system is None or isinstance(system, str)
    if not system_ok and isinstance(system, list):
        system_ok = all(
            isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) for b in system
        )
    if not system_ok:
        return "system: Input should be a valid string or a list of text blocks"
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        return "stop_sequences: Input should be a valid list of strings"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "stream: Input should be a valid boolean"
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        return "tools: Input should be a valid list"
    thinking = body.get("thinking")
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind not in ("enabled", "disabled", "adaptive"):
            return (
                f"thinking: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
                "'enabled', 'disabled', 'adaptive'"
            )
        if kind == "enabled":
            budget = thinking.get("budget_tokens")
            if not _is_int(budget):
                return "thinking.enabled.budget_tokens: Field required"
            if budget < MIN_THINKING_BUDGET:
                return (
                    f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_THINKING_BUDGET}"
                )
            if generation and max_tokens <= budget:
                return "`max_tokens` must be greater than `thinking.budget_tokens`"
    return None


def model_object(model_id: str) -> dict[str, Any]:
    """A model object: a known model's, or one made up for any other id (the fake serves every model)."""
    known = next((m for m in DEFAULT_MODELS if m[0] == model_id), None)
    _, display_name, created_at, max_input, max_output = known or (
        model_id,
        model_id,
        "2025-01-01T00:00:00Z",
        200_000,
        8_192,
    )
    return {
        "type": "model",
        "id": model_id,
        "display_name": display_name,
        "created_at": created_at,
        "max_input_tokens": max_input,
        "max_tokens": max_output,
        "lifecycle": "active",
    }


# ----------------------------------------------------------------------------------------------------------
# The fake
# ----------------------------------------------------------------------------------------------------------
