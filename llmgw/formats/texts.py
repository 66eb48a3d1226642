"""Visiting texts in place: the pieces every wire format's text walk is made of.

The walks themselves belong to the formats (:meth:`llmgw.formats.base.WireFormat.request_texts` and
``answer_texts``, whose docstring states the conventions). Contract: each visit calls ``fn(text, where)`` for every
text in the body, in document order, where ``where`` is a readable key path (``messages[1].content[0].text``,
``system[0].text``, ``messages[2].content[1].input.city``); when ``fn`` returns a different string it replaces that
text in place.

- :func:`visit_value` visits every string of a JSON value, object keys included (each key before its value; a
  renamed key keeps its place). A key appears in a path only when it is a plain name (letters and underscores, a
  digit or two at the end); any other key — it may itself be a value such as an address — is named by its
  position, ``arguments{2}``, and visited as ``arguments{key 2}``.
- :func:`json_text_at`: tool-call arguments held as a JSON string are parsed and visited with
  :func:`visit_value` (re-serialised only when something changed, or always when the string repeats a key: the
  upstream must read what was judged); arguments that are not JSON are visited as one text.
- :func:`schema_texts` visits what a JSON schema says in words (``description``, ``title``, ``$comment``, and the
  strings of ``enum``, ``const``, ``default``, ``examples``), at any depth; names and structure are left alone.

Nothing else is touched: images, audio, files, signed thinking and unknown block types are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from .validate import duplicate_key

TextFn = Callable[[str, str], str]
"""``fn(text, where) -> text``: called for each text with its key path; a different return value replaces it."""


def text_at(container: dict[str, Any] | list[Any], key: Any, where: str, fn: TextFn) -> None:
    """Visit the string at ``container[key]`` (if it is a non-empty string)."""
    value = container[key]
    if isinstance(value, str) and value:
        new = fn(value, where)
        if new != value:
            container[key] = new


_PLAIN_KEY = re.compile(r"[A-Za-z_]{1,40}[0-9]{0,2}")


def key_path(where: str, key: str, position: int) -> str:
    """The path of the value under ``key`` (see the module contract: plain names only)."""
    return f"{where}.{key}" if _PLAIN_KEY.fullmatch(key) else f"{where}{{{position}}}"


def visit_value(value: Any, where: str, fn: TextFn) -> Any:
    """Visit every string inside a JSON value, keys included (in place for objects and arrays); returns the value,
    replaced when it was itself a string."""
    if isinstance(value, str):
        return fn(value, where) if value else value
    if isinstance(value, dict):
        renamed = False
        items = []
        for position, (key, item) in enumerate(list(value.items())):
            new_key = fn(key, f"{where}{{key {position}}}") if isinstance(key, str) and key else key
            renamed |= new_key != key
            items.append((new_key, visit_value(item, key_path(where, key, position), fn)))
        if renamed:
            value.clear()
        value.update(items)
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
    repeated = duplicate_key(raw, parsed) is not None
    before = orjson.dumps(parsed)
    after = orjson.dumps(visit_value(parsed, where, fn))
    if after != before or repeated:
        container[key] = after.decode()


_SCHEMA_WORDS = frozenset({"description", "title", "$comment"})
_SCHEMA_VALUES = frozenset({"enum", "const", "default", "examples"})
_SCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties", "dependentSchemas"})


def schema_texts(schema: Any, where: str, fn: TextFn) -> None:
    """What a JSON schema says in words, at any depth, in place (see the module contract)."""
    stack: list[tuple[Any, str]] = [(schema, where)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, list):
            stack.extend((item, f"{at}[{i}]") for i, item in reversed(list(enumerate(node))))
            continue
        if not isinstance(node, dict):
            continue
        later: list[tuple[Any, str]] = []
        for position, (key, value) in enumerate(node.items()):
            path = key_path(at, key, position)
            if key in _SCHEMA_WORDS and isinstance(value, str):
                text_at(node, key, path, fn)
            elif key in _SCHEMA_VALUES:
                node[key] = visit_value(value, path, fn)
            elif key in _SCHEMA_MAPS and isinstance(value, dict):
                later.extend((sub, key_path(path, name, i)) for i, (name, sub) in enumerate(value.items()))
            elif isinstance(value, dict | list):
                later.append((value, path))
        stack.extend(reversed(later))


def content_text(content: Any) -> str:
    """The text of a message ``content``: the string itself, or the ``text`` of its parts joined by spaces (OpenAI
    content parts and Anthropic text blocks alike); "" for anything else."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""
