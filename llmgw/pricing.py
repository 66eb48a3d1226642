"""What a request cost: the shipped price table, the profile's overrides, and the arithmetic.

Contract:
- Prices are US dollars per one million tokens. The shipped table is ``llmgw/pricing.toml`` (read through
  :mod:`importlib.resources`), one TOML table per model with ``input`` and ``output`` and optionally
  ``cached_input`` and ``cache_write``; :meth:`PriceTable.load` raises :class:`PricingError` naming every bad
  entry when that file is malformed.
- :meth:`PriceTable.price_for` resolves a :class:`~llmgw.profile.Target` in this order, first hit wins:

  1. an override keyed by the full target name, ``"provider/model"``;
  2. an override keyed by the bare model name;
  3. the shipped entry for the bare model name;
  4. a dated or versioned model name (``gpt-4o-mini-2024-07-18``, ``claude-3-5-haiku-latest``,
     ``gemini-2.0-flash-001``): the LONGEST known key ``K`` such that the model name starts with ``K + "-"``.
     Keys of all three sources take part; at equal length an override by full name beats an override by
     bare name, which beats the shipped entry. Longest wins, so ``gpt-4o-mini-2024-07-18`` gets
     ``gpt-4o-mini``'s price, never ``gpt-4o``'s.

  ``None`` when nothing matches. Results (misses included) are memoised per target in an instance dict; the
  table is immutable after construction, so the memo never goes stale.
- :meth:`PriceTable.cost` returns USD as a float::

      fresh = input_tokens - cached_tokens - cache_write_tokens      (clamped at 0)
      cost  = (fresh * input + cached_tokens * (cached_input or input)
               + cache_write_tokens * (cache_write or input) + output_tokens * output) / 1e6

  ``input_tokens`` includes the cached and cache-written tokens (see :class:`~llmgw.exchange.Usage`).
  ``cache_write`` comes from the shipped table only: an overridden price has none, so its cache writes are
  billed at its ``input`` price. An unknown model costs ``0.0``; mock providers' models are not in the shipped
  table, so they cost nothing unless the profile prices them.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType
from typing import Any, NamedTuple

from .exchange import Usage
from .profile import Price, Target

__all__ = ["PriceTable", "PricingError", "load_shipped", "parse_table"]

PRICING_RESOURCE = "pricing.toml"
_FIELDS = ("input", "output", "cached_input", "cache_write")
_NO_OVERRIDES: Mapping[str, Price] = MappingProxyType({})
_MEMO_LIMIT = 4096  # distinct targets remembered; beyond that the memo starts over


class PricingError(ValueError):
    """A malformed price table. ``problems`` holds one ``"key: message"`` line per bad entry."""

    def __init__(self, problems: list[str], source: str = PRICING_RESOURCE) -> None:
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class _Rate(NamedTuple):
    price: Price
    cache_write: float | None


_NOT_MEMOISED: Any = object()


def _number(value: Any) -> float | None:
    """``value`` as a finite, non-negative float, or ``None`` if it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def parse_table(data: Mapping[str, Any], source: str = PRICING_RESOURCE) -> tuple[
        dict[str, Price], dict[str, float]]:
    """Validate a parsed price table: ``(prices by model, 5-minute cache-write price by model)``."""
    prices: dict[str, Price] = {}
    cache_write: dict[str, float] = {}
    problems: list[str] = []
    for model, entry in data.items():
        if not isinstance(entry, Mapping):
            problems.append(f'"{model}": expected a table of prices')
            continue
        unknown = sorted(set(entry) - set(_FIELDS))
        if unknown:
            problems.append(f'"{model}": unknown field(s) {", ".join(unknown)}')
        values: dict[str, float | None] = {}
        for name in _FIELDS:
            if name not in entry:
                values[name] = None
                if name in ("input", "output"):
                    problems.append(f'"{model}".{name}: missing')
                continue
            values[name] = _number(entry[name])
            if values[name] is None:
                problems.append(f'"{model}".{name}: must be a non-negative number')
        input_price, output_price = values["input"], values["output"]
        if input_price is None or output_price is None:
            continue
        prices[model] = Price(input_price, output_price, values["cached_input"])
        if values["cache_write"] is not None:
            cache_write[model] = values["cache_write"]
    if problems:
        raise PricingError(problems, source)
    return prices, cache_write


def load_shipped() -> tuple[dict[str, Price], dict[str, float]]:
    """Read and validate the price table shipped inside the package."""
    text = resources.files("llmgw").joinpath(PRICING_RESOURCE).read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PricingError([f"not valid TOML: {exc}"]) from exc
    return parse_table(data)


class PriceTable:
    """Shipped prices plus profile overrides; answers "what does this target cost" on the hot path."""

    def __init__(self, shipped: Mapping[str, Price], cache_write: Mapping[str, float] | None = None,
                 overrides: Mapping[str, Price] = _NO_OVERRIDES) -> None:
        self._shipped: dict[str, Price] = dict(shipped)
        self._cache_write: dict[str, float] = dict(cache_write or {})
        self._by_target: dict[str, Price] = {k: v for k, v in overrides.items() if "/" in k}
        self._by_model: dict[str, Price] = {k: v for k, v in overrides.items() if "/" not in k}
        self._memo: dict[Target, _Rate | None] = {}

    @classmethod
    def load(cls, overrides: Mapping[str, Price] = _NO_OVERRIDES) -> PriceTable:
        """The shipped table with ``overrides`` (a profile's ``[prices]``) applied on top."""
        shipped, cache_write = load_shipped()
        return cls(shipped, cache_write, overrides)

    def models(self) -> list[str]:
        """Every model name the shipped table prices, sorted."""
        return sorted(self._shipped)

    def price_for(self, target: Target) -> Price | None:
        """The price that applies to ``target``, or ``None`` when it is unknown (see the module contract)."""
        rate = self._rate(target)
        return rate.price if rate is not None else None

    def cost(self, target: Target, usage: Usage) -> float:
        """USD cost of ``usage`` on ``target``; ``0.0`` for an unknown model."""
        rate = self._rate(target)
        if rate is None:
            return 0.0
        price = rate.price
        cached = usage.cached_tokens
        written = usage.cache_write_tokens
        fresh = max(usage.input_tokens - cached - written, 0)
        cached_price = price.cached_input if price.cached_input is not None else price.input
        write_price = rate.cache_write if rate.cache_write is not None else price.input
        total = (fresh * price.input + cached * cached_price + written * write_price
                 + usage.output_tokens * price.output)
        return total / 1e6

    def _rate(self, target: Target) -> _Rate | None:
        rate = self._memo.get(target, _NOT_MEMOISED)
        if rate is _NOT_MEMOISED:
            rate = self._resolve(target.provider, target.model)
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[target] = rate
        return rate

    def _resolve(self, provider: str, model: str) -> _Rate | None:
        full = f"{provider}/{model}"
        if full in self._by_target:
            return _Rate(self._by_target[full], None)
        if model in self._by_model:
            return _Rate(self._by_model[model], None)
        if model in self._shipped:
            return _Rate(self._shipped[model], self._cache_write.get(model))
        # Dated / versioned name: longest known key followed by "-"; at equal length the earlier source wins.
        best: tuple[int, int] | None = None
        found: _Rate | None = None
        target_prefix = f"{provider}/"
        candidates = (
            (0, ((k.removeprefix(target_prefix), v, None) for k, v in self._by_target.items()
                 if k.startswith(target_prefix))),
            (1, ((k, v, None) for k, v in self._by_model.items())),
            (2, ((k, v, self._cache_write.get(k)) for k, v in self._shipped.items())),
        )
        for rank, entries in candidates:
            for key, price, write in entries:
                if not model.startswith(key + "-"):
                    continue
                score = (len(key), -rank)
                if best is None or score > best:
                    best, found = score, _Rate(price, write)
        return found
