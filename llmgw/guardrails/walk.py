"""Every text a request or an answer carries, in each wire format, visited in place.

Contract: each ``visit_*`` calls ``fn(text, where)`` for every text in the body, in document order, where
``where`` is a readable key path (``messages[1].content[0].text``, ``system[0].text``,
``messages[2].content[1].input.city``); when ``fn`` returns a different string it replaces that text in place.
Tool-call arguments that are JSON strings are parsed and their string values visited one by one (re-serialised
only when something changed); arguments that are not JSON are visited as one text. Nothing else is touched:
images, audio, thinking blocks (signed by the upstream) and unknown block types are left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

TextFn = Callable[[str, str], str]


def _text(container: dict[str, Any] | list[Any], key: Any, where: str, fn: TextFn) -> None:
    value = container[key]
    if isinstance(value, str) and value:
        new = fn(value, where)
        if new != value:
            container[key] = new


def visit_value(value: Any, where: str, fn: TextFn) -> Any:
    """Visit every string inside a JSON value (in place for objects and arrays); returns the value, replaced when
    it was itself a string."""
    if isinstance(value, str):
        return fn(value, where) if value else value
    if isinstance(value, dict):
        for key in value:
            value[key] = visit_value(value[key], f"{where}.{key}", fn)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = visit_value(item, f"{where}[{i}]", fn)
    return value


def _json_text(container: dict[str, Any], key: str, where: str, fn: TextFn) -> None:
    """A JSON document held as a string (tool-call arguments)."""
    raw = container.get(key)
    if not isinstance(raw, str) or not raw:
        return
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        _text(container, key, where, fn)
        return
    if not isinstance(parsed, dict | list):
        _text(container, key, where, fn)
        return
    before = orjson.dumps(parsed)
    after = orjson.dumps(visit_value(parsed, where, fn))
    if after != before:
        container[key] = after.decode()


def _openai_message(message: dict[str, Any], where: str, fn: TextFn) -> None:
    content = message.get("content")
    if isinstance(content, str):
        _text(message, "content", f"{where}.content", fn)
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text") \
                    and "text" in part:
                _text(part, "text", f"{where}.content[{j}].text", fn)
    if isinstance(message.get("refusal"), str):
        _text(message, "refusal", f"{where}.refusal", fn)
    for k, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            _json_text(function, "arguments", f"{where}.tool_calls[{k}].function.arguments", fn)
    function_call = message.get("function_call")
    if isinstance(function_call, dict):
        _json_text(function_call, "arguments", f"{where}.function_call.arguments", fn)


def visit_openai_request(body: dict[str, Any], fn: TextFn) -> None:
    """A Chat Completions request: every message's content (string or text parts), tool-call arguments, tool
    results."""
    for i, message in enumerate(body.get("messages") or []):
        if isinstance(message, dict):
            _openai_message(message, f"messages[{i}]", fn)


def visit_embeddings_request(body: dict[str, Any], fn: TextFn) -> None:
    """An embeddings request's ``input`` (a string or an array of strings)."""
    value = body.get("input")
    if isinstance(value, str):
        _text(body, "input", "input", fn)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                _text(value, i, f"input[{i}]", fn)


def _anthropic_blocks(blocks: list[Any], where: str, fn: TextFn) -> None:
    for j, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        kind, at = block.get("type"), f"{where}[{j}]"
        if kind == "text" and "text" in block:
            _text(block, "text", f"{at}.text", fn)
        elif kind in ("tool_use", "server_tool_use") and "input" in block:
            block["input"] = visit_value(block["input"], f"{at}.input", fn)
        elif kind == "tool_result":
            content = block.get("content")
            if isinstance(content, str):
                _text(block, "content", f"{at}.content", fn)
            elif isinstance(content, list):
                _anthropic_blocks(content, f"{at}.content", fn)
        elif kind == "document":
            source = block.get("source")
            if isinstance(source, dict) and source.get("type") == "text" and "data" in source:
                _text(source, "data", f"{at}.source.data", fn)
            elif isinstance(source, dict) and source.get("type") == "content" and isinstance(source.get("content"),
                                                                                              list):
                _anthropic_blocks(source["content"], f"{at}.source.content", fn)


def visit_anthropic_request(body: dict[str, Any], fn: TextFn) -> None:
    """A Messages request: ``system`` (string or text blocks) and every message's content (string, text,
    tool_use input, tool_result content, text documents)."""
    system = body.get("system")
    if isinstance(system, str):
        _text(body, "system", "system", fn)
    elif isinstance(system, list):
        _anthropic_blocks(system, "system", fn)
    for i, message in enumerate(body.get("messages") or []):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            _text(message, "content", f"messages[{i}].content", fn)
        elif isinstance(content, list):
            _anthropic_blocks(content, f"messages[{i}].content", fn)


def visit_openai_reply(body: dict[str, Any], fn: TextFn) -> None:
    """A ``chat.completion``: each choice's message (content, refusal, tool-call arguments)."""
    for i, choice in enumerate(body.get("choices") or []):
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            _openai_message(message, f"choices[{i}].message", fn)


def visit_anthropic_reply(body: dict[str, Any], fn: TextFn) -> None:
    """An Anthropic ``message``: text blocks and tool_use input."""
    content = body.get("content")
    if isinstance(content, list):
        _anthropic_blocks(content, "content", fn)


def visit_request(endpoint: str, client_format: str, body: dict[str, Any], fn: TextFn) -> None:
    """Dispatch on the request's kind: embeddings, Anthropic Messages, or Chat Completions."""
    if endpoint == "embeddings":
        visit_embeddings_request(body, fn)
    elif client_format == "anthropic":
        visit_anthropic_request(body, fn)
    else:
        visit_openai_request(body, fn)


def visit_reply(reply_format: str, body: dict[str, Any], fn: TextFn) -> None:
    """Dispatch on the answer's wire format."""
    if reply_format == "anthropic":
        visit_anthropic_reply(body, fn)
    elif body.get("object") != "list":   # embeddings answers carry no text
        visit_openai_reply(body, fn)
