"""Parameter tables (llmgw.providers.params): what each kind accepts, drops or refuses, the ranges it checks
(never clamps), and the one helper that applies drop_params."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from llmgw.errors import InvalidRequest
from llmgw.providers.params import PASS_THROUGH, ParamTable, is_set, without
from llmgw.providers.spec import ANTHROPIC_PARAMS, GEMINI_PARAMS, MOCK_PARAMS, SPECS
from llmgw.translate.gemini import openai_to_gemini

TABLE = ParamTable("Test", refuses=("logprobs", "n", "response_format"), drops=("seed", "user"),
                   ranges={"temperature": (0.0, 1.0)})
HI = [{"role": "user", "content": "hi"}]


def test_dispositions() -> None:
    assert [TABLE.disposition(n) for n in ("logprobs", "seed", "temperature", "tools")] == \
        ["refuse", "drop", "accept", "accept"]
    assert PASS_THROUGH.disposition("logprobs") == "accept"
    assert ANTHROPIC_PARAMS.disposition("response_format") == "refuse"
    assert GEMINI_PARAMS.disposition("response_format") == "accept"   # json_object/json_schema are translated
    assert GEMINI_PARAMS.disposition("parallel_tool_calls") == "drop"
    assert SPECS["anthropic"].params is ANTHROPIC_PARAMS and SPECS["gemini"].params is GEMINI_PARAMS
    assert all(SPECS[k].params is PASS_THROUGH for k in ("openai", "openai-compatible"))
    assert [MOCK_PARAMS.disposition(n) for n in ("n", "response_format", "logprobs", "tools", "temperature")] == \
        ["refuse", "refuse", "refuse", "accept", "accept"]
    assert SPECS["mock"].params is MOCK_PARAMS


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("logprobs", True, True), ("logprobs", False, False), ("logprobs", None, False), ("top_logprobs", 0, False),
    ("n", 1, False), ("n", 2, True), ("n", True, False), ("response_format", {"type": "text"}, False),
    ("response_format", {"type": "json_object"}, True), ("modalities", ["text"], False),
    ("modalities", ["text", "audio"], True), ("logit_bias", {}, True),
])
def test_what_counts_as_set(name: str, value: Any, expected: bool) -> None:
    assert is_set(name, value) is expected


def test_screen_refuses_a_set_parameter_naming_it() -> None:
    with pytest.raises(InvalidRequest) as info:
        TABLE.screen({"messages": HI, "logprobs": True})
    assert (info.value.status, info.value.param, info.value.code) == (400, "logprobs", "unsupported_parameter")
    assert info.value.message == ("logprobs: not supported by Test targets; remove it or list it in the provider's"
                                  " drop_params")


@pytest.mark.parametrize("temperature", [1.5, -0.1, 2])
def test_screen_refuses_a_number_out_of_range_never_clamps_it(temperature: float) -> None:
    with pytest.raises(InvalidRequest) as info:
        TABLE.screen({"messages": HI, "temperature": temperature})
    assert (info.value.status, info.value.param, info.value.code) == (400, "temperature", "unsupported_value")
    assert f"temperature: {temperature:g} is out of range for Test targets, which accept 0 to 1" in info.value.message


def test_screen_drops_what_drop_params_lists_and_names_it_refused_first_then_listed_then_hints() -> None:
    body = {"messages": HI, "logprobs": True, "temperature": 3, "tools": [], "seed": 1, "user": None, "n": 4}
    before = copy.deepcopy(body)
    kept, dropped = TABLE.screen(body, ["n", "tools", "temperature", "logprobs", "absent"])
    assert dropped == ["logprobs", "n", "temperature", "tools", "seed"]
    assert kept == {"messages": HI, "seed": 1, "user": None}
    assert body == before, "screen never changes the request it is given"


def test_screen_accepts_in_range_and_neutral_values_untouched() -> None:
    body = {"messages": HI, "temperature": 1, "n": 1, "response_format": {"type": "text"}, "logprobs": False}
    kept, dropped = TABLE.screen(body)
    assert kept is body and dropped == []


def test_without_is_the_one_drop_params_helper() -> None:
    body = {"a": 1, "b": None, "c": 3}
    same, none = without(body, ["x"])
    assert same is body and none == []
    kept, dropped = without(body, ["c", "b", "x"])
    assert kept == {"a": 1} and dropped == ["c"]   # b had no value: removed, not reported
    assert body == {"a": 1, "b": None, "c": 3}


def test_gemini_refuses_temperature_above_two_and_takes_two() -> None:
    out, _ = openai_to_gemini({"messages": HI, "temperature": 2})
    assert out["generationConfig"] == {"temperature": 2}
    with pytest.raises(InvalidRequest) as info:
        openai_to_gemini({"messages": HI, "temperature": 2.5})
    assert info.value.param == "temperature" and "Gemini targets, which accept 0 to 2" in info.value.message
