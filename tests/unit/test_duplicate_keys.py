"""Duplicate keys in a request body are found by counting key ends in C (llmgw.formats.validate.duplicate_key)."""

from __future__ import annotations

from typing import Any

import pytest

from llmgw.formats import validate
from llmgw.formats.validate import duplicate_key

TRICKY_VALUES: list[Any] = [
    {},
    {"a": 1},
    {"a": {"b": [{"c": None}, {"d": [1, {"e": {}}]}]}},
    {"text": 'a ":" b', "k": 'ends with \\":', "kk": "\\\\\":", "x": "\\"},
    {'key "with": quotes': {"\\": '":'}, "": ""},
    {"emoji": "👋", "日本": {"\u2028": "\n\t\r"}},
    [{"a": 1}, "b", [{"c": 2, "d": 3}]],
    {"n": 1.5, "t": True, "f": False, "z": None, "big": 2**63 - 1},
    # quotes followed by white space and a colon inside keys and strings (orjson writes no white space of its own)
    {'a" :': 'b\" :', "q": '"\t:', 'k\\" \n:': {'"\r :': "\\\" :"}},
]


def walked(value: Any) -> int:
    count, stack = 0, [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            count += len(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


@pytest.mark.parametrize("value", TRICKY_VALUES)
def test_the_key_count_in_c_is_the_walked_one(value: Any) -> None:
    assert validate._keys_in(value) == walked(value)


def test_a_value_json_cannot_hold_is_walked() -> None:
    assert validate._keys_in({1: {"a": 2}, "b": [{"c": 2**70}]}) == 4


def test_a_duplicate_is_found_in_the_raw_body_alone() -> None:
    raw = b'{"model": "m", "messages": [{"role": "user", "content": "hi", "content": "smuggled"}]}'
    assert duplicate_key(raw) == "messages[0].content"
    clean = b'{"model": "m", "messages": [{"role": "user", "content": "a \\":\\" b", "c\\"d": 1}]}'
    assert duplicate_key(clean) is None


@pytest.mark.parametrize("value", [v for v in TRICKY_VALUES if isinstance(v, dict)])
def test_the_parse_counts_the_keys_it_visits(value: Any) -> None:
    import orjson

    parsed, keys = validate.parse_counted(orjson.dumps(value))
    assert parsed == value and keys == walked(value)


def test_a_long_body_is_not_counted_and_is_parsed_again_for_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = b'{"model": "m", "pad": "' + b"x" * validate.LONG_BODY_BYTES + b'", "model": "n"}'
    parsed, keys = validate.parse_counted(raw)
    assert parsed["model"] == "n" and (keys is None) == bool(validate._PAD)   # padded: the parse was not visited
    assert duplicate_key(raw, keys=keys) == "model"


def test_the_counted_keys_spare_a_second_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = b'{"model": "m", "messages": [{"role": "user", "content": "hi", "content": "smuggled"}]}'
    clean = b'{"model": "m", "messages": [{"role": "user", "content": "a \\":\\" b", "c\\"d": 1}]}'
    counted = {body: validate.parse_counted(body)[1] for body in (raw, clean)}
    parses: list[bytes] = []
    real = validate.orjson.loads
    monkeypatch.setattr(validate.orjson, "loads", lambda data: parses.append(data) or real(data))
    assert duplicate_key(clean, keys=counted[clean]) is None
    assert parses == [], "a clean body is judged by its key ends and the parse's count alone"
    assert duplicate_key(raw, keys=counted[raw]) == "messages[0].content"
