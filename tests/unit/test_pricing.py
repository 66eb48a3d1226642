"""The shipped price table and the cost arithmetic of llmgw.pricing."""

from __future__ import annotations

import datetime
import tomllib
from importlib import resources

import pytest

from llmgw.exchange import Usage
from llmgw.pricing import PriceTable, PricingError, parse_table
from llmgw.profile import Price, Target

REQUIRED_MODELS = [
    "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o1", "o3", "o3-mini", "o4-mini",
    "gpt-5", "gpt-5-mini", "gpt-5-nano", "text-embedding-3-small", "text-embedding-3-large",
    "claude-3-5-haiku", "claude-3-5-sonnet", "claude-3-7-sonnet", "claude-sonnet-4", "claude-opus-4",
    "claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5",
    "gemini-1.5-flash", "gemini-1.5-pro", "gemini-2.0-flash", "gemini-2.0-flash-lite", "gemini-2.5-pro",
    "gemini-2.5-flash", "gemini-2.5-flash-lite",
]


@pytest.fixture(scope="module")
def shipped() -> PriceTable:
    return PriceTable.load()


def raw_toml() -> dict:
    """The shipped table's model entries (the ``_sources`` metadata left out)."""
    text = resources.files("llmgw").joinpath("pricing.toml").read_text(encoding="utf-8")
    return {k: v for k, v in tomllib.loads(text).items() if not k.startswith("_")}


# --- the shipped data file ----------------------------------------------------------------------------------


def test_toml_parses_and_every_entry_is_a_sane_price() -> None:
    data = raw_toml()
    assert len(data) >= len(REQUIRED_MODELS)
    for model, entry in data.items():
        assert set(entry) <= {"provider", "input", "output", "cached_input", "cache_write", "cache_write_1h",
                              "reasoning", "audio_input", "checked", "long_context"}, model
        assert entry["provider"] in ("openai", "anthropic", "gemini"), model
        assert isinstance(entry["input"], int | float) and entry["input"] >= 0, model
        assert isinstance(entry["output"], int | float) and entry["output"] >= 0, model
        if "cached_input" in entry:
            assert 0 <= entry["cached_input"] <= entry["input"], model
        if "cache_write" in entry:
            assert entry["cache_write"] >= entry["input"], model
        if "cache_write_1h" in entry:
            assert entry["cache_write_1h"] >= entry["cache_write"], model
        if "long_context" in entry:
            tier = entry["long_context"]
            assert tier["above"] >= 100_000 and tier["input"] > entry["input"], model


def test_shipped_prices_load(shipped: PriceTable) -> None:
    assert set(REQUIRED_MODELS) <= set(shipped.models())
    for model in shipped.models():
        price = shipped.price_for(Target("any", model))
        assert price is not None
        assert price.input >= 0 and price.output >= 0


def test_known_list_prices(shipped: PriceTable) -> None:
    assert shipped.price_for(Target("openai", "gpt-4o-mini")) == Price(0.15, 0.60, 0.075)
    assert shipped.price_for(Target("openai", "gpt-4o")) == Price(2.50, 10.00, 1.25)
    sonnet = shipped.price_for(Target("anthropic", "claude-sonnet-4-5"))
    assert (sonnet.input, sonnet.output, sonnet.cached_input, sonnet.cache_write, sonnet.cache_write_1h) == (
        3.00, 15.00, 0.30, 3.75, 6.00)
    pro = shipped.price_for(Target("gemini", "gemini-2.5-pro"))
    assert (pro.input, pro.output, pro.cached_input) == (1.25, 10.00, 0.125)
    assert pro.long_context is not None and (pro.long_context.above, pro.long_context.input) == (200_000, 2.50)


def test_only_anthropic_models_carry_a_cache_write_price() -> None:
    for model, entry in raw_toml().items():
        if "cache_write" in entry:
            assert model.startswith("claude-"), model
    assert raw_toml()["claude-3-5-haiku"]["cache_write"] == 1.00


# --- lookup order -------------------------------------------------------------------------------------------


def test_override_by_full_target_name_beats_bare_model_and_shipped() -> None:
    table = PriceTable.load({"openai/gpt-4o": Price(1.0, 2.0), "gpt-4o": Price(3.0, 4.0)})
    assert table.price_for(Target("openai", "gpt-4o")) == Price(1.0, 2.0)
    # Another provider serving the same model name gets the bare-model override, not the full-name one.
    assert table.price_for(Target("azure", "gpt-4o")) == Price(3.0, 4.0)


def test_override_by_bare_model_beats_shipped() -> None:
    table = PriceTable.load({"gpt-4o-mini": Price(9.0, 9.0, 1.0)})
    assert table.price_for(Target("openai", "gpt-4o-mini")) == Price(9.0, 9.0, 1.0)


def test_override_can_price_a_model_the_table_does_not_know() -> None:
    table = PriceTable.load({"mock/echo": Price(1.0, 1.0)})
    assert table.price_for(Target("mock", "echo")) == Price(1.0, 1.0)
    assert table.cost(Target("mock", "echo"), Usage(input_tokens=1_000_000)) == 1.0


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("gemini-2.0-flash-lite-001", "gemini-2.0-flash-lite"),
        ("gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite"),
    ],
)
def test_dated_suffix_resolves_to_the_longest_known_key(shipped: PriceTable, model: str, key: str) -> None:
    expected = shipped.price_for(Target("x", key))
    assert expected is not None
    assert shipped.price_for(Target("x", model)) == expected


def test_longest_prefix_wins_and_a_bare_prefix_needs_a_dash(shipped: PriceTable) -> None:
    mini = shipped.price_for(Target("openai", "gpt-4o-mini"))
    full = shipped.price_for(Target("openai", "gpt-4o"))
    assert mini != full
    assert shipped.price_for(Target("openai", "gpt-4o-mini-2024-07-18")) == mini
    assert shipped.price_for(Target("openai", "gpt-4o-2024-11-20")) == full
    # Opus 4.5 is a third of Opus 4's price: the dated 4.5 id must not fall back to "claude-opus-4".
    assert shipped.price_for(Target("anthropic", "claude-opus-4-5-20251101")).input == 5.00
    assert shipped.price_for(Target("anthropic", "claude-opus-4-20250514")).input == 15.00
    # No dash after the key: not a match.
    assert shipped.price_for(Target("openai", "gpt-4oz")) is None
    assert shipped.price_for(Target("openai", "o3x")) is None


def test_longest_prefix_considers_overrides_too() -> None:
    table = PriceTable.load({"gpt-4o-mini-2024": Price(7.0, 7.0), "openai/gpt-4o": Price(5.0, 5.0)})
    assert table.price_for(Target("openai", "gpt-4o-mini-2024-07-18")) == Price(7.0, 7.0)
    assert table.price_for(Target("openai", "gpt-4o-2024-08-06")) == Price(5.0, 5.0)
    assert table.price_for(Target("azure", "gpt-4o-2024-08-06")) == Price(2.50, 10.00, 1.25)


def test_unknown_model_has_no_price(shipped: PriceTable) -> None:
    assert shipped.price_for(Target("mock", "echo")) is None
    assert shipped.price_for(Target("openai", "no-such-model")) is None


def test_lookups_are_memoised_and_stable(shipped: PriceTable) -> None:
    target = Target("openai", "gpt-4.1-mini-2025-04-14")
    first = shipped.price_for(target)
    assert shipped.price_for(target) is first
    assert target in shipped._memo
    assert shipped.price_for(Target("mock", "nothing")) is None
    assert shipped.price_for(Target("mock", "nothing")) is None


# --- cost arithmetic ----------------------------------------------------------------------------------------


def test_cost_plain_input_and_output(shipped: PriceTable) -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=500_000)
    assert shipped.cost(Target("openai", "gpt-4o-mini"), usage) == pytest.approx(0.15 + 0.30, abs=1e-12)


def test_cost_cached_tokens_use_the_cached_price() -> None:
    table = PriceTable({"m": Price(2.0, 8.0, 0.5)})
    usage = Usage(input_tokens=1000, output_tokens=100, cached_tokens=400)
    # 600 fresh * 2.0 + 400 cached * 0.5 + 100 out * 8.0 = 1200 + 200 + 800 = 2200 per 1e6
    assert table.cost(Target("p", "m"), usage) == pytest.approx(0.0022, abs=1e-15)


def test_cost_cached_tokens_without_a_cached_price_bill_as_input() -> None:
    table = PriceTable({"m": Price(2.0, 8.0)})
    usage = Usage(input_tokens=1000, cached_tokens=400)
    assert table.cost(Target("p", "m"), usage) == pytest.approx(0.002, abs=1e-15)


def test_cost_cache_write_uses_the_shipped_cache_write_price() -> None:
    table = PriceTable({"m": Price(3.0, 15.0, 0.3, cache_write=3.75)})
    usage = Usage(input_tokens=10_000, output_tokens=1_000, cached_tokens=2_000, cache_write_tokens=4_000)
    # fresh 4000*3 = 12000; cached 2000*0.3 = 600; write 4000*3.75 = 15000; out 1000*15 = 15000 -> 42600 / 1e6
    assert table.cost(Target("anthropic", "m"), usage) == pytest.approx(0.0426, abs=1e-15)


def test_cost_shipped_anthropic_cache_arithmetic_exact(shipped: PriceTable) -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cached_tokens=600_000,
                  cache_write_tokens=300_000)
    # claude-3-5-haiku: fresh 100k*0.80=0.08; cached 600k*0.08=0.048; write 300k*1.00=0.30; out 100k*4=0.40
    got = shipped.cost(Target("anthropic", "claude-3-5-haiku-20241022"), usage)
    assert got == pytest.approx(0.828, abs=1e-12)


def test_overridden_price_bills_cache_writes_at_its_input_price() -> None:
    table = PriceTable({"m": Price(3.0, 15.0, 0.3, cache_write=3.75)}, {"m": Price(2.0, 10.0, 0.2)})
    usage = Usage(input_tokens=1_000_000, cache_write_tokens=1_000_000)
    assert table.cost(Target("p", "m"), usage) == pytest.approx(2.0, abs=1e-12)


def test_cost_never_goes_negative_on_inconsistent_usage() -> None:
    table = PriceTable({"m": Price(1.0, 1.0, 0.5)})
    usage = Usage(input_tokens=10, cached_tokens=100)
    assert table.cost(Target("p", "m"), usage) == pytest.approx(100 * 0.5 / 1e6, abs=1e-15)


def test_unknown_and_mock_models_cost_nothing(shipped: PriceTable) -> None:
    usage = Usage(input_tokens=123_456, output_tokens=7_890, cached_tokens=1_000)
    assert shipped.cost(Target("mock", "echo"), usage) == 0.0
    assert shipped.cost(Target("openai", "not-a-model"), usage) == 0.0


def test_embedding_cost_is_input_only(shipped: PriceTable) -> None:
    usage = Usage(input_tokens=2_000_000)
    assert shipped.cost(Target("openai", "text-embedding-3-small"), usage) == pytest.approx(0.04, abs=1e-12)


# --- validation ---------------------------------------------------------------------------------------------


SOURCES = {"_sources": {"p": {"checked": datetime.date(2026, 11, 25), "url": "https://example.com/pricing"}}}


def test_parse_table_reports_every_bad_entry() -> None:
    with pytest.raises(PricingError) as info:
        parse_table({**SOURCES, "a": {"provider": "p", "input": -1, "output": 1},
                     "b": {"provider": "p", "output": 1}, "c": 3,
                     "d": {"provider": "p", "input": 1, "output": "x", "bogus": 1},
                     "e": {"provider": "nobody", "input": 1, "output": 1},
                     "f": {"provider": "p", "input": 1, "output": 1, "long_context": {"input": 2, "output": 2}}})
    problems = "\n".join(info.value.problems)
    assert '"a".input' in problems
    assert '"b".input: missing' in problems
    assert '"c"' in problems
    assert '"d".output' in problems and "bogus" in problems
    assert '"e".provider' in problems
    assert '"f".long_context.above' in problems


def test_parse_table_keeps_optional_fields() -> None:
    table = parse_table({**SOURCES, "m": {"provider": "p", "input": 3, "output": 15, "cached_input": 0.3,
                                          "cache_write": 3.75, "checked": datetime.date(2026, 1, 2)},
                         "n": {"provider": "p", "input": 1, "output": 2}})
    assert table.prices["m"] == Price(3.0, 15.0, 0.3, cache_write=3.75)
    assert table.checked == {"m": datetime.date(2026, 1, 2), "n": datetime.date(2026, 11, 25)}
    assert table.provider == {"m": "p", "n": "p"}


def test_parse_table_needs_dated_sources() -> None:
    with pytest.raises(PricingError) as info:
        parse_table({"_sources": {"p": {"checked": "yesterday", "url": "http://x"}}})
    problems = "\n".join(info.value.problems)
    assert "_sources.p.checked" in problems and "_sources.p.url" in problems
