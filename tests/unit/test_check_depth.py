"""The request body's nesting limit: exactly ``MAX_DEPTH`` levels pass, one more is refused, whatever mix of
objects and arrays makes them and wherever in a wide body the deep branch is; a long body's depth is read from its
bytes, and strings that look structural never change it."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from llmgw.errors import InvalidRequest
from llmgw.formats import validate
from llmgw.formats.validate import MAX_DEPTH, RAW_DEPTH_BYTES, check_depth


def nested(levels: int, *, kinds: str = "do") -> Any:
    """A value of exactly ``levels`` containers, alternating as ``kinds`` says (d: object, l: array)."""
    value: Any = "leaf"
    for i in range(levels):
        value = {"k": value} if kinds[i % len(kinds)] == "d" else [value]
    return value


@pytest.mark.parametrize("kinds", ["d", "l", "dl", "ld"])
def test_the_limit_is_exact(kinds: str) -> None:
    check_depth(nested(MAX_DEPTH, kinds=kinds))
    with pytest.raises(InvalidRequest) as refused:
        check_depth(nested(MAX_DEPTH + 1, kinds=kinds))
    assert refused.value.code == "nesting_too_deep"


def test_a_deep_branch_among_many_shallow_ones_is_found() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}] * 500,
            "metadata": [{"a": 1}] * 300 + [nested(MAX_DEPTH)]}
    with pytest.raises(InvalidRequest):
        check_depth(body)
    body["metadata"][-1] = nested(MAX_DEPTH - 2)
    check_depth(body)


def test_scalars_and_empty_containers_count_as_they_are() -> None:
    check_depth("text")
    check_depth([nested(MAX_DEPTH - 1)])
    with pytest.raises(InvalidRequest):
        check_depth([[nested(MAX_DEPTH - 1)]])
    check_depth({"a": [], "b": {}})


# --- a long document's depth read from its bytes ---------------------------------------------------------------

HOSTILE = ['a[b{', ']}]}', 'x\\"[', '\\\\', '\\\\"]', '"{"', '', 'é[😀]', '\\u005b']   # strings that look structural


def long_doc(value: Any) -> tuple[Any, bytes]:
    """``value`` in an object padded past RAW_DEPTH_BYTES with a string full of brackets, and its bytes."""
    doc = {"pad": "[{" * RAW_DEPTH_BYTES, "value": value}
    return doc, orjson.dumps(doc)


@pytest.mark.parametrize("kinds", ["d", "l", "dl", "ld"])
def test_a_long_documents_limit_is_exact_from_its_bytes(kinds: str, monkeypatch: pytest.MonkeyPatch) -> None:
    walked: list[bool] = []
    real = validate._bytes_depth
    monkeypatch.setattr(validate, "_bytes_depth", lambda raw, limit: walked.append(True) or real(raw, limit))
    fits, raw = long_doc(nested(MAX_DEPTH - 1, kinds=kinds))      # the padding object is one more level
    check_depth(fits, raw=raw)
    deeper, raw = long_doc(nested(MAX_DEPTH, kinds=kinds))
    with pytest.raises(InvalidRequest) as refused:
        check_depth(deeper, raw=raw)
    assert refused.value.code == "nesting_too_deep"
    assert walked == [True, True]


def random_value(rng: random.Random, depth: int) -> Any:
    """A chain of ``depth`` containers, objects and arrays at random, each with hostile strings, numbers and small
    containers beside the deeper one."""
    if depth == 0:
        return rng.choice([*HOSTILE, 3, 2.5, None, True])
    inner = random_value(rng, depth - 1)
    siblings: list[Any] = [rng.choice([*HOSTILE, [], {}, ["]"], {"}": "{"}]) for _ in range(rng.randint(0, 3))]
    items = [*siblings, inner]
    rng.shuffle(items)
    if rng.random() < 0.5:
        return items
    return {rng.choice(HOSTILE) + str(i): item for i, item in enumerate(items)}


def test_the_bytes_agree_with_the_walk_on_hostile_documents() -> None:
    """Strings full of brackets, quotes, escaped quotes and backslashes never change the depth read from bytes."""
    rng = random.Random(17)
    for _ in range(3000):
        doc, raw = long_doc(random_value(rng, rng.randint(0, 90)))
        limit = rng.randint(2, 80)
        try:
            check_depth(doc, limit)
            walked = True
        except InvalidRequest:
            walked = False
        try:
            check_depth(doc, limit, raw=raw)
            read = True
        except InvalidRequest:
            read = False
        assert read == walked, raw[-300:]


def test_bytes_that_do_not_reduce_as_json_are_walked_instead() -> None:
    deep = nested(MAX_DEPTH + 1)
    assert validate._bytes_depth(b"[" * RAW_DEPTH_BYTES, MAX_DEPTH) is None
    with pytest.raises(InvalidRequest):
        check_depth(deep, raw=b"[" * RAW_DEPTH_BYTES)    # not the document's bytes: the value itself is walked
    check_depth(nested(3), raw=b"]" * RAW_DEPTH_BYTES)
