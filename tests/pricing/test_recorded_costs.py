"""The cost of recorded upstream usage, for every shipped provider, against dollars worked out by hand.

Each case is a usage object as the provider's API reports it, normalised by the gateway's own reader, priced by the
shipped table. The expected dollars are written out by hand from the published per-million prices (in the
comments), never computed by the code under test.
"""

from __future__ import annotations

from typing import Any

import pytest

from llmgw.exchange import Usage
from llmgw.pricing import PriceTable, quote
from llmgw.profile import ProfileError, Target, parse_profile
from llmgw.translate.anthropic import usage_from_anthropic
from llmgw.translate.gemini import usage_from_gemini


@pytest.fixture(scope="module")
def shipped() -> PriceTable:
    return PriceTable.load()


# (provider, model as the API names it, reader, recorded usage, expected USD by token type)
RECORDED: list[tuple[str, str, Any, dict[str, Any], dict[str, float]]] = [
    # gpt-5: input $1.25, cached $0.125, output $10 (reasoning billed as output).
    # fresh 4,000 x 1.25 = 5,000; cached 8,000 x 0.125 = 1,000; visible output 800 x 10 = 8,000;
    # reasoning 2,200 x 10 = 22,000 (micro-dollars).
    ("openai", "gpt-5-2025-08-07", Usage.from_openai,
     {"prompt_tokens": 12_000, "completion_tokens": 3_000, "prompt_tokens_details": {"cached_tokens": 8_000},
      "completion_tokens_details": {"reasoning_tokens": 2_200}},
     {"input": 0.005, "cached_input": 0.001, "output": 0.008, "reasoning": 0.022}),
    # gpt-4o-mini: input $0.15, cached $0.075, output $0.60.
    # fresh 1,000 x 0.15 = 150; cached 1,000 x 0.075 = 75; output 500 x 0.60 = 300.
    ("openai", "gpt-4o-mini-2024-07-18", Usage.from_openai,
     {"prompt_tokens": 2_000, "completion_tokens": 500, "prompt_tokens_details": {"cached_tokens": 1_000}},
     {"input": 0.00015, "cached_input": 0.000075, "output": 0.0003}),
    # o4-mini: input $1.10, cached $0.275, output $4.40. fresh 10,000 x 1.10 = 11,000; reasoning 5,000 x 4.40 =
    # 22,000; visible output 1,000 x 4.40 = 4,400.
    ("openai", "o4-mini", Usage.from_openai,
     {"prompt_tokens": 10_000, "completion_tokens": 6_000, "completion_tokens_details": {"reasoning_tokens": 5_000}},
     {"input": 0.011, "output": 0.0044, "reasoning": 0.022}),
    # claude-sonnet-4-5: input $3, cache hit $0.30, 5-minute write $3.75, 1-hour write $6, output $15.
    # fresh 1,500 x 3 = 4,500; hits 20,000 x 0.30 = 6,000; 5m writes 3,000 x 3.75 = 11,250;
    # 1h writes 2,000 x 6 = 12,000; output 900 x 15 = 13,500.
    ("anthropic", "claude-sonnet-4-5-20250929", usage_from_anthropic,
     {"input_tokens": 1_500, "cache_read_input_tokens": 20_000, "cache_creation_input_tokens": 5_000,
      "cache_creation": {"ephemeral_5m_input_tokens": 3_000, "ephemeral_1h_input_tokens": 2_000},
      "output_tokens": 900},
     {"input": 0.0045, "cached_input": 0.006, "cache_write": 0.01125, "cache_write_1h": 0.012, "output": 0.0135}),
    # claude-3-5-haiku: input $0.80, hit $0.08, 5m write $1, output $4.
    # fresh 100,000 x 0.80 = 80,000; hits 600,000 x 0.08 = 48,000; writes 300,000 x 1 = 300,000;
    # output 100,000 x 4 = 400,000.
    ("anthropic", "claude-3-5-haiku-latest", usage_from_anthropic,
     {"input_tokens": 100_000, "cache_read_input_tokens": 600_000, "cache_creation_input_tokens": 300_000,
      "output_tokens": 100_000},
     {"input": 0.08, "cached_input": 0.048, "cache_write": 0.3, "output": 0.4}),
    # claude-opus-4-1: input $15, output $75, 1-hour write $30. fresh 1,000 x 15 = 15,000;
    # 1h writes 1,000 x 30 = 30,000; output 200 x 75 = 15,000.
    ("anthropic", "claude-opus-4-1-20250805", usage_from_anthropic,
     {"input_tokens": 1_000, "cache_creation_input_tokens": 1_000,
      "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 1_000}, "output_tokens": 200},
     {"input": 0.015, "cache_write_1h": 0.03, "output": 0.015}),
    # gemini-2.5-flash: input $0.30, context-cache read $0.03, output $2.50 (thinking billed as output).
    # fresh 4,000 x 0.30 = 1,200; cached 6,000 x 0.03 = 180; candidates 500 x 2.50 = 1,250;
    # thoughts 1,500 x 2.50 = 3,750.
    ("gemini", "gemini-2.5-flash", usage_from_gemini,
     {"promptTokenCount": 10_000, "cachedContentTokenCount": 6_000, "candidatesTokenCount": 500,
      "thoughtsTokenCount": 1_500, "totalTokenCount": 12_000},
     {"input": 0.0012, "cached_input": 0.00018, "output": 0.00125, "reasoning": 0.00375}),
    # gemini-2.0-flash: input $0.10, output $0.40. 3,000 x 0.10 = 300; 1,000 x 0.40 = 400.
    ("gemini", "gemini-2.0-flash-001", usage_from_gemini,
     {"promptTokenCount": 3_000, "candidatesTokenCount": 1_000},
     {"input": 0.0003, "output": 0.0004}),
]


@pytest.mark.parametrize(("provider", "model", "reader", "recorded", "expected"), RECORDED,
                         ids=[f"{c[0]}-{c[1]}" for c in RECORDED])
def test_recorded_usage_costs_what_the_price_page_says(shipped: PriceTable, provider: str, model: str, reader: Any,
                                                       recorded: dict[str, Any], expected: dict[str, float]) -> None:
    usage = reader(recorded)
    quote = shipped.quote(Target(provider, model), usage)
    assert quote is not None and quote.long_context_above is None
    assert quote.breakdown.keys() == expected.keys()
    for kind, dollars in expected.items():
        assert quote.breakdown[kind] == pytest.approx(dollars, rel=1e-12, abs=1e-15), kind
    assert quote.cost == pytest.approx(sum(expected.values()), rel=1e-12)
    assert shipped.cost(Target(provider, model), usage) == sum(quote.breakdown.values())   # exactly


def test_every_shipped_provider_is_covered() -> None:
    assert {case[0] for case in RECORDED} == {"openai", "anthropic", "gemini"}
    assert {case[0] for case in RECORDED} == set(PriceTable.load().table.sources)


# --- long-context tiers ------------------------------------------------------------------------------------------


LONG: list[tuple[str, str, Usage, float]] = [
    # gemini-2.5-pro over 200k prompt tokens: input $2.50, cached $0.25, output $15 (base: 1.25 / 0.125 / 10).
    # fresh 200,000 x 2.50 = 500,000; cached 50,000 x 0.25 = 12,500; output 4,000 x 15 = 60,000;
    # thoughts 6,000 x 15 = 90,000.
    ("gemini", "gemini-2.5-pro", usage_from_gemini({"promptTokenCount": 250_000, "cachedContentTokenCount": 50_000,
                                                    "candidatesTokenCount": 4_000, "thoughtsTokenCount": 6_000}),
     0.6625),
    # exactly at the threshold: the base price. 200,000 x 1.25 = 250,000.
    ("gemini", "gemini-2.5-pro", Usage(input_tokens=200_000), 0.25),
    # one token over: every token at the tier's price. 200,001 x 2.50 = 500,002.5.
    ("gemini", "gemini-2.5-pro", Usage(input_tokens=200_001), 0.5000025),
    # claude-sonnet-4-5 over 200k (cache hits count towards the prompt): input $6, hit $0.60, output $22.50.
    # fresh 150,000 x 6 = 900,000; hits 100,000 x 0.60 = 60,000; output 1,000 x 22.50 = 22,500.
    ("anthropic", "claude-sonnet-4-5", usage_from_anthropic({"input_tokens": 150_000,
                                                             "cache_read_input_tokens": 100_000,
                                                             "output_tokens": 1_000}), 0.9825),
    # gpt-5.4 over 272k: input $5, cached $0.50, output $22.50.
    # fresh 200,000 x 5 = 1,000,000; cached 100,000 x 0.50 = 50,000; output 2,000 x 22.50 = 45,000.
    ("openai", "gpt-5.4", Usage.from_openai({"prompt_tokens": 300_000, "completion_tokens": 2_000,
                                             "prompt_tokens_details": {"cached_tokens": 100_000}}), 1.095),
    # claude-haiku-5-5 over 100k: input $0.50, output $2.50 (base $0.10 / $0.50).
    # 120,000 x 0.50 = 60,000; 1,000 x 2.50 = 2,500.
    ("anthropic", "claude-haiku-5-5", Usage(input_tokens=120_000, output_tokens=1_000), 0.0625),
    # ... and at 100k, the base: 100,000 x 0.10 = 10,000; 1,000 x 0.50 = 500.
    ("anthropic", "claude-haiku-5-5", Usage(input_tokens=100_000, output_tokens=1_000), 0.0105),
]


@pytest.mark.parametrize(("provider", "model", "usage", "dollars"), LONG)
def test_long_context_tier_applies_above_its_threshold(shipped: PriceTable, provider: str, model: str, usage: Usage,
                                                       dollars: float) -> None:
    quote = shipped.quote(Target(provider, model), usage)
    assert quote is not None
    assert quote.cost == pytest.approx(dollars, rel=1e-12)
    tier = shipped.price_for(Target(provider, model)).long_context
    assert (quote.long_context_above is not None) == (usage.input_tokens > tier.above)


# --- [prices] in the profile ------------------------------------------------------------------------------------


PROFILE = {
    "providers": {"up": {"kind": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"},
                  "openai": {"kind": "openai", "api_key": "sk-x"}},
    "models": {"house": {"targets": ["up/house-model"]}, "five": {"targets": ["openai/gpt-5"]}},
    "prices": {
        "up/house-model": {"input": 1.0, "output": 4.0, "cached_input": 0.1, "cache_write": 1.5,
                           "cache_write_1h": 2.0, "reasoning": 8.0,
                           "long_context": {"above": 1000, "input": 2.0, "output": 6.0}},
        "gpt-5": {"input": 1.0, "output": 2.0},
    },
}


def test_profile_prices_override_every_field() -> None:
    profile = parse_profile(PROFILE)
    table = PriceTable.for_profile(profile)
    house = Target("up", "house-model")
    usage = Usage(input_tokens=900, cached_tokens=300, cache_write_tokens=200, cache_write_1h_tokens=50,
                  output_tokens=100, reasoning_tokens=40)
    # fresh 400 x 1 = 400; cached 300 x 0.1 = 30; 5m writes 150 x 1.5 = 225; 1h writes 50 x 2 = 100;
    # output 60 x 4 = 240; reasoning 40 x 8 = 320 -> 1,315 micro-dollars.
    quote = table.quote(house, usage)
    assert quote.breakdown == pytest.approx({"input": 0.0004, "cached_input": 0.00003, "cache_write": 0.000225,
                                             "cache_write_1h": 0.0001, "output": 0.00024, "reasoning": 0.00032})
    assert quote.cost == pytest.approx(0.001315, rel=1e-12)
    # Over the profile's own tier (1,000 prompt tokens): input $2, output $6; the rates it leaves out keep the
    # base ones. fresh 600 x 2 = 1,200; cached 30; writes 225 + 100; output 60 x 6 = 360; reasoning 320.
    usage.input_tokens = 1_100
    assert table.cost(house, usage) == pytest.approx(0.002235, rel=1e-12)
    # A bare-model override replaces the whole shipped entry: gpt-5's cached tokens now bill as input.
    # 1,000 x 1 + 100 x 2 = 1,200.
    assert table.cost(Target("openai", "gpt-5-2025-08-07"),
                      Usage(input_tokens=1_000, cached_tokens=500, output_tokens=100)) == pytest.approx(0.0012)


@pytest.mark.parametrize(("entry", "path"), [
    ({"input": 1, "output": 1, "cache_write_1h": -2}, 'prices."m/x".cache_write_1h'),
    ({"input": 1, "output": 1, "reasoning": "lots"}, 'prices."m/x".reasoning'),
    ({"input": 1, "output": 1, "long_context": {"input": 2, "output": 2}}, 'prices."m/x".long_context.above'),
    ({"input": 1, "output": 1, "long_context": {"above": 10, "input": 2}}, 'prices."m/x".long_context.output'),
    ({"input": 1, "output": 1, "long_context": {"above": 10, "input": 2, "output": 2, "bogus": 1}},
     'prices."m/x".long_context.bogus'),
    ({"input": float("inf"), "output": 1}, 'prices."m/x".input'),
])
def test_a_bad_price_field_is_named(entry: dict[str, Any], path: str) -> None:
    with pytest.raises(ProfileError) as info:
        parse_profile({"providers": {"m": {"kind": "mock"}}, "models": {"a": {"targets": ["m/x"]}},
                       "prices": {"m/x": entry}})
    assert any(p.startswith(f"{path}:") for p in info.value.problems), info.value.problems


def test_free_kinds_are_priced_at_zero_and_unknown_models_are_unpriced() -> None:
    profile = parse_profile({**PROFILE, "providers": {**PROFILE["providers"], "mock": {"kind": "mock"}},
                             "prices": {}})
    table = PriceTable.for_profile(profile)
    usage = Usage(input_tokens=10, output_tokens=10)
    free = table.quote(Target("mock", "anything"), usage)
    assert free is not None and free.breakdown == {} and free.cost == 0.0
    assert table.is_priced(Target("mock", "anything"))
    assert table.quote(Target("up", "house-model"), usage) is None
    assert table.cost(Target("up", "house-model"), usage) == 0.0
    assert table.unpriced([Target("mock", "m"), Target("up", "house-model"), Target("openai", "gpt-5")]) == [
        Target("up", "house-model")]


def test_plain_input_and_output_are_priced_as_the_general_way_prices_them() -> None:
    """The common case (no cache, no reasoning, below any long-context tier) takes a short path: it must give
    the same breakdown, to the last bit, as the general one, which a cached token forces."""
    profile = parse_profile({**PROFILE, "prices": {
        "up/m": {"input": 3.0, "output": 15.0, "cached_input": 3.0},
        "up/long": {"input": 1.25, "output": 10.0, "cached_input": 1.25,
                    "long_context": {"above": 200_000, "input": 2.5, "output": 15.0}}}})
    table = PriceTable.for_profile(profile)
    for model in ("m", "long"):
        price = table.price_for(Target("up", model))
        assert price is not None
        for prompt, output in [(0, 0), (1, 0), (0, 7), (123, 4567), (199_999, 3), (200_001, 5), (10**9, 10**6)]:
            plain = quote(price, Usage(input_tokens=prompt, output_tokens=output))
            general = quote(price, Usage(input_tokens=prompt + 1, output_tokens=output, cached_tokens=1))
            general.breakdown.pop("cached_input", None)
            assert plain == general, (model, prompt, output)
