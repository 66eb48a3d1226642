"""Visiting texts in place: the pieces every wire format's text walk is made of.

The walks themselves belong to the formats (:meth:`llmgw.formats.base.WireFormat.request_texts` and
``answer_texts``). Contract: each visit calls ``fn(text, where)`` for every text in the body, in document order, where
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
"""``fn(text, where) -> text``: called for each text with its key path; a different return value replaces it."""


def text_at(container: dict[str, Any] | list[Any], key: Any, where: str, fn: TextFn) -> None:
    """Visit the string at ``container[key]`` (if it is a non-empty string)."""
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


def json_text_at(container: dict[str, Any], key: str, where: str, fn: TextFn) -> None:
    """A JSON document held as a string (tool-call arguments)."""
    raw = container.get(key)
    if not isinstance(raw, str) or not raw:
        return
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text_at(container, key, where, fn)
        return
    if not isinstance(parsed, dict | list):
        text_at(container, key, where, fn)
        return
    before = orjson.dumps(parsed)
    after = orjson.dumps(visit_value(parsed, where, fn))
    if after != before:
        container[key] = after.decode()


def content_text(content: Any) -> str:
    """The text of a message ``content``: the string itself, or the ``text`` of its parts joined by spaces (OpenAI
    content parts and Anthropic text blocks alike); "" for anything else."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""
