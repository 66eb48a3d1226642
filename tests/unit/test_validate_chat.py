"""The Chat Completions body checks: each optional field the gateway relies on is refused naming the field when its
value is wrong, accepted when it is right or (for all but the booleans) null, and absent fields cost nothing."""

from __future__ import annotations

from typing import Any

import pytest

from llmgw.errors import InvalidRequest
from llmgw.formats.openai_chat import validate_chat

MESSAGES = [{"role": "user", "content": "hi"}]

WRONG: list[tuple[str, Any]] = [
    ("stream", "yes"), ("stream", None), ("stream", 1), ("logprobs", 0), ("parallel_tool_calls", None),
    ("stream_options", True), ("stream_options", {"include_usage": "yes"}), ("stream_options", []),
    ("temperature", 2.5), ("temperature", "hot"), ("temperature", True), ("top_p", -0.1),
    ("presence_penalty", 3), ("frequency_penalty", -2.01),
    ("max_tokens", 0), ("max_tokens", 1.5), ("max_tokens", True), ("max_completion_tokens", -1), ("n", 0),
    ("top_logprobs", -1), ("top_logprobs", "3"),
    ("stop", 3), ("stop", ["a", 1]), ("stop", {"a": 1}),
    ("tools", {}), ("tools", [{"type": "function"}, "x"]),
]

RIGHT: list[tuple[str, Any]] = [
    ("stream", False), ("logprobs", True), ("parallel_tool_calls", False),
    ("stream_options", None), ("stream_options", {}), ("stream_options", {"include_usage": True, "other": 1}),
    ("temperature", None), ("temperature", 0), ("temperature", 2.0), ("top_p", 1), ("presence_penalty", -2),
    ("frequency_penalty", 2), ("max_tokens", None), ("max_tokens", 1), ("max_completion_tokens", 10**6),
    ("n", 2), ("top_logprobs", 0), ("stop", None), ("stop", "END"), ("stop", []), ("stop", ["a", "b"]),
    ("tools", None), ("tools", []), ("tools", [{"type": "function"}]),
]


@pytest.mark.parametrize("name, value", WRONG)
def test_a_wrong_value_is_refused_naming_its_field(name: str, value: Any) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate_chat({"model": "m", "messages": MESSAGES, name: value})
    assert caught.value.param == name
    assert caught.value.status == 400
    assert str(caught.value).startswith(f"{name}: ")


@pytest.mark.parametrize("name, value", RIGHT)
def test_a_right_value_passes(name: str, value: Any) -> None:
    validate_chat({"model": "m", "messages": MESSAGES, name: value})


def test_of_several_wrong_fields_one_is_named_and_always_the_same() -> None:
    body = {"model": "m", "messages": MESSAGES, "tools": 1, "stop": 2, "n": 0, "stream": "x"}
    names = set()
    for order in (body, dict(reversed(list(body.items())))):
        with pytest.raises(InvalidRequest) as caught:
            validate_chat(order)
        names.add(caught.value.param)
    assert len(names) == 1


def test_unknown_fields_pass_untouched() -> None:
    body = {"model": "m", "messages": MESSAGES, "brand_new_option": {"x": [1, 2]}, "temperature": 1}
    validate_chat(body)
    assert body["brand_new_option"] == {"x": [1, 2]}
