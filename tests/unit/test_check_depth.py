"""The request body's nesting limit: exactly ``MAX_DEPTH`` levels pass, one more is refused, whatever mix of
objects and arrays makes them and wherever in a wide body the deep branch is; a long body's limit is enforced by its
parse, without visiting every value."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llmgw.errors import InvalidRequest
from llmgw.formats import validate
from llmgw.formats.validate import LONG_BODY_BYTES, MAX_DEPTH, check_depth, parse_body


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


# --- parse_body: a long body's limit enforced by the parse itself --------------------------------------------


def long_doc(value: Any) -> bytes:
    """``value`` in an object padded past LONG_BODY_BYTES, as bytes."""
    return orjson.dumps({"pad": "[{" * LONG_BODY_BYTES, "value": value})


@pytest.mark.parametrize("kinds", ["d", "l", "dl", "ld"])
def test_a_long_bodys_limit_is_exact_without_a_walk(kinds: str, monkeypatch: pytest.MonkeyPatch) -> None:
    walked: list[Any] = []
    monkeypatch.setattr(validate, "check_depth", walked.append)
    fits = long_doc(nested(MAX_DEPTH - 1, kinds=kinds))       # the padding object is one more level
    assert parse_body(fits) == orjson.loads(fits)
    with pytest.raises(InvalidRequest) as refused:
        parse_body(long_doc(nested(MAX_DEPTH, kinds=kinds)))
    assert refused.value.code == "nesting_too_deep"
    assert walked == []


def test_a_short_body_is_walked() -> None:
    assert parse_body(orjson.dumps(nested(MAX_DEPTH))) == nested(MAX_DEPTH)
    with pytest.raises(InvalidRequest):
        parse_body(orjson.dumps(nested(MAX_DEPTH + 1)))


@pytest.mark.parametrize("document", [
    b'{"pad": "' + b"x" * LONG_BODY_BYTES + b'", "a": [1, 2,]}',       # not JSON, past the padding's reach
    b'{"pad": "' + b"x" * LONG_BODY_BYTES,                            # cut short
    b"[" * 2000 + b"]" * 2000 + b" " * LONG_BODY_BYTES,              # deeper than orjson parses at all
])
def test_what_is_not_json_is_told_as_such_at_its_own_position(document: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError) as failed:
        parse_body(document)
    with pytest.raises(orjson.JSONDecodeError) as plain:
        orjson.loads(document)
    assert str(failed.value) == str(plain.value)
