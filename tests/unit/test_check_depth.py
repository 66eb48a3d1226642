"""The request body's nesting limit: exactly ``MAX_DEPTH`` levels pass, one more is refused, whatever mix of
objects and arrays makes them and wherever in a wide body the deep branch is."""

from __future__ import annotations

from typing import Any

import pytest

from llmgw.errors import InvalidRequest
from llmgw.formats.validate import MAX_DEPTH, check_depth


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
