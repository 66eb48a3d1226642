"""Small checks every client format's validation is made of. Each raises :class:`InvalidRequest` naming the
field (``param``) and changes nothing."""

from __future__ import annotations

import functools
import itertools
import json
import operator
import re
from typing import Any

import orjson

from ..errors import InvalidRequest

MAX_DEPTH = 64
_CONTAINERS = (dict, list)
LONG_BODY_BYTES = 32 * 1024   # a body at least this long is parsed inside padding (see parse_body)
_UNSET: Any = object()


def invalid_field(param: str, message: str) -> InvalidRequest:
    """A 400 for one field: ``"<param>: <message>"``."""
    return InvalidRequest(f"{param}: {message}", param=param, code="invalid_value")


def is_int(value: Any) -> bool:
    """An integer that is not a boolean."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or a float that is not a boolean."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Refuse JSON nested deeper than ``limit`` levels (iterative, one level at a time: stops at the first level
    past the limit); returns how many object keys it holds, at any depth (read on the way)."""
    level = [value]
    depth = 1
    keys = 0
    while level:
        if depth > limit:
            raise InvalidRequest(f"request body is nested deeper than {limit} levels", code="nesting_too_deep")
        below = []
        for node in level:
            if isinstance(node, dict):
                keys += len(node)
                node = node.values()
            elif not isinstance(node, list):
                continue
            for item in node:
                if isinstance(item, _CONTAINERS):
                    below.append(item)
        level = below
        depth += 1
    return keys


def _orjson_depth() -> int | None:
    """How many levels of nesting orjson parses (1024 in orjson 3), or None when it parses 4,096."""
    low, high = 1, 4096
    if _parses(high):
        return None
    while low < high - 1:   # low parses, high does not
        middle = (low + high) // 2
        low, high = (middle, high) if _parses(middle) else (low, middle)
    return low


def _parses(levels: int) -> bool:
    try:
        orjson.loads(b"[" * levels + b"]" * levels)
    except orjson.JSONDecodeError:
        return False
    return True


_ORJSON_DEPTH = _orjson_depth()
_PAD = _ORJSON_DEPTH - MAX_DEPTH if _ORJSON_DEPTH is not None and _ORJSON_DEPTH > MAX_DEPTH else 0
_OPEN, _CLOSE = b"[" * _PAD, b"]" * _PAD


def parse_body(raw: bytes) -> Any:
    """``raw`` parsed as JSON, refused (:class:`InvalidRequest`, ``nesting_too_deep``) when nested deeper than
    :data:`MAX_DEPTH`; raises ``orjson.JSONDecodeError`` for what is not JSON. A body of at least
    :data:`LONG_BODY_BYTES` is parsed inside as many levels of arrays as orjson's own nesting limit leaves beyond
    :data:`MAX_DEPTH`, so that the parse itself enforces the limit (a 225 kB body of a coding agent: 0.44 ms instead
    of 0.37 to parse and 0.5 more to visit every value with :func:`check_depth`); a shorter one is visited."""
    return parse_counted(raw)[0]


def parse_counted(raw: bytes) -> tuple[Any, int | None]:
    """:func:`parse_body`, and how many object keys the value holds when that was counted on the way (a body
    shorter than :data:`LONG_BODY_BYTES`, whose nesting is visited), else None: what :func:`duplicate_key` compares
    with the key ends of ``raw`` without parsing it again."""
    if not _PAD or len(raw) < LONG_BODY_BYTES:
        value = orjson.loads(raw)
        return value, check_depth(value)
    return _parse_padded(raw), None


def _parse_padded(raw: bytes) -> Any:
    try:
        padded = orjson.loads(_OPEN + raw + _CLOSE)
    except orjson.JSONDecodeError:
        orjson.loads(raw)   # what is not JSON is told as such, at its own position
        raise InvalidRequest(f"request body is nested deeper than {MAX_DEPTH} levels",
                             code="nesting_too_deep") from None
    return functools.reduce(operator.getitem, itertools.repeat(0, _PAD), padded)


def check_model(body: Any) -> None:
    """``model``: a required non-empty string (the alias to call)."""
    model = body.get("model")
    if model is None:
        raise invalid_field("model", "required (the model alias to call)")
    if not isinstance(model, str) or not model:
        raise invalid_field("model", "must be a non-empty string")


_SPACED_KEY_END = re.compile(rb'"[ \t\r\n]+:')
_SPACED_ESCAPED_END = re.compile(rb'\\"[ \t\r\n]+:')
_QUOTE_SPACE = re.compile(rb'"[ \t\r\n]')


def _key_ends(data: bytes, *, compact: bool = False) -> int:
    """How many object keys ``data`` (a JSON document) holds: the closing quotes followed by a colon, less the
    escaped ones (after dropping pairs of backslashes, a backslash before a quote escapes it). All in C.
    ``compact``: ``data`` is orjson's output, which never puts white space between a key and its colon."""
    if data.find(b"\\\\") != -1:
        data = data.replace(b"\\\\", b"")
    ends = data.count(b'":') - data.count(b'\\":')
    if not compact and _QUOTE_SPACE.search(data) is not None:
        ends += len(_SPACED_KEY_END.findall(data)) - len(_SPACED_ESCAPED_END.findall(data))
    return ends


def _keys_in(value: Any) -> int:
    """How many object keys a parsed JSON value holds, at any depth: the key ends of its JSON text as orjson writes
    it (no spaces, every quote in a string escaped), all in C; walked, one step per object or array, when the
    value has something JSON cannot hold."""
    try:
        return _key_ends(orjson.dumps(value), compact=True)
    except TypeError:   # orjson.JSONEncodeError too: a key that is not a string, an int beyond 64 bits
        pass
    count = 0
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            count += len(node)
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))
    return count


def duplicate_key(raw: bytes | str, parsed: Any = _UNSET, *, keys: int | None = None) -> str | None:
    """The first object key that appears twice in one object of the JSON document ``raw``, as a key path
    (``messages[0].content``), or ``None``.

    JSON parsers disagree on duplicated keys (orjson keeps the last value, others the first), so a gateway that
    reads one value while the upstream reads another would judge a text the upstream never sees. The fast path
    counts the key ends in ``raw`` and the keys of ``parsed``, all in C; ``parsed`` must be ``raw`` as parsed and
    not changed since (a key added to it would hide a repeated one), else leave it out and ``raw`` is parsed
    again; ``keys``, the key count of ``raw`` as parsed (:func:`parse_counted`), spares even that. Only when the
    counts differ is the document parsed again, slowly, to name the key."""
    data = raw.encode() if isinstance(raw, str) else raw
    if keys is None:
        if parsed is _UNSET:
            parsed = orjson.loads(data)
        keys = _keys_in(parsed)
    if _key_ends(data) == keys:
        return None
    if parsed is _UNSET:   # to name the key
        parsed = orjson.loads(data)
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen and not found:
                found.append(key)
            seen[key] = value
        return seen

    json.loads(data, object_pairs_hook=pairs)
    return _path_of(parsed, found[0]) if found else None


def _path_of(value: Any, key: str) -> str:
    """A readable path to an object holding ``key`` (the first found, depth first), for the error message."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            if key in node:
                return f"{path}.{key}".lstrip(".") if key.isidentifier() else (path or "(the body)")
            stack.extend((v, f"{path}.{k}" if str(k).isidentifier() else path) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(node))
    return "(the body)"


def check_duplicate_keys(raw: bytes, parsed: Any = _UNSET, *, keys: int | None = None) -> None:
    """Refuse (400 ``duplicate_key``) a body with a key twice in one object (see :func:`duplicate_key`)."""
    where = duplicate_key(raw, parsed, keys=keys)
    if where is not None:
        raise InvalidRequest(f"{where}: the key appears twice in one object; send each key once (parsers "
                             "disagree on which value counts)", param=where, code="duplicate_key")
