"""What a request cost: the shipped price table, the profile's overrides, and the arithmetic.

Contract:
- Prices are US dollars per one million tokens (:class:`~llmgw.profile.Price`). The shipped table is
  ``llmgw/pricing.toml`` (read through :mod:`importlib.resources`): one TOML table per model, with the
  ``provider`` it belongs to, ``input`` and ``output`` and optionally ``cached_input``, ``cache_write``,
  ``cache_write_1h``, ``reasoning``, ``audio_input``, ``checked`` (a date) and a ``long_context`` sub-table
  (``above``, ``input``, ``output`` and the optional cache and reasoning rates); and one ``[_sources.PROVIDER]``
  table per provider with the date its prices were last ``checked`` against its ``url``. :func:`load_shipped`
  raises :class:`PricingError` naming every bad entry when that file is malformed.
- :meth:`PriceTable.price_for` resolves a :class:`~llmgw.profile.Target` in this order, first hit wins:

  1. an override keyed by the full target name, ``"provider/model"``;
  2. an override keyed by the bare model name;
  3. the shipped entry for the bare model name;
  4. a dated or versioned model name (``gpt-4o-mini-2024-07-18``, ``claude-3-5-haiku-latest``,
     ``gemini-2.0-flash-001``): the LONGEST known key ``K`` such that the model name starts with ``K + "-"``.
     Keys of all three sources take part; at equal length an override by full name beats an override by
     bare name, which beats the shipped entry. Longest wins, so ``gpt-4o-mini-2024-07-18`` gets
     ``gpt-4o-mini``'s price, never ``gpt-4o``'s.

  ``None`` when nothing matches. An override replaces the whole shipped entry (its cache, reasoning and
  long-context rates too). Results (misses included) are memoised per target in an instance dict; the table is
  immutable after construction, so the memo never goes stale.
- Free providers: a target whose provider (the profile's name for it) is of a free kind (the mock) costs nothing
  when no price matches; it is *priced* (at zero), never *unpriced*. Any other target without a price is
  unpriced: :meth:`PriceTable.quote` returns ``None`` and :meth:`PriceTable.cost` ``0.0``, and the callers say so
  (the log row's ``unpriced``, budgets refusing it, ``llmgw check`` and ``serve``'s banner).
- :meth:`PriceTable.quote` breaks a cost down by token type (USD)::

      fresh = input_tokens - cached_tokens - cache_write_tokens        (clamped at 0)
      input          = fresh                                 * input
      cached_input   = cached_tokens                         * (cached_input or input)
      cache_write    = (cache_write_tokens - 1h part)        * (cache_write or input)
      cache_write_1h = cache_write_1h_tokens                 * (cache_write_1h or cache_write or input)
      output         = (output_tokens - reasoning_tokens)    * output
      reasoning      = reasoning_tokens                      * (reasoning or output)      (each / 1e6)

  A key is present only when its token count is above zero. When the price has a ``long_context`` tier and
  ``input_tokens`` (the whole prompt, cached and written parts included) is above its ``above``, every rate comes
  from the tier (a rate the tier leaves out keeps the base one). The cost is ``sum(breakdown.values())`` in that
  order, so the two always agree exactly. See :class:`~llmgw.exchange.Usage` for how tokens are counted.
"""

from __future__ import annotations

import datetime as dt
import math
import tomllib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from .exchange import Usage
from .profile import LongContext, Price, Target

if TYPE_CHECKING:
    from .profile import Profile

__all__ = ["PriceTable", "PricingError", "Quote", "ShippedTable", "Source", "budget_problems", "free_providers",
           "load_shipped", "parse_table", "unpriced_targets", "unpriced_warnings"]

PRICING_RESOURCE = "pricing.toml"
RATES = ("input", "output", "cached_input", "cache_write", "cache_write_1h", "reasoning", "audio_input")
TIER_RATES = ("input", "output", "cached_input", "cache_write", "cache_write_1h", "reasoning")
BREAKDOWN_KEYS = ("input", "cached_input", "cache_write", "cache_write_1h", "output", "reasoning")
"""The token types of a cost breakdown, in the order they are summed."""
_ENTRY_KEYS = {*RATES, "provider", "checked", "long_context"}
_NO_OVERRIDES: Mapping[str, Price] = MappingProxyType({})
_MEMO_LIMIT = 4096  # distinct targets remembered; beyond that the memo starts over


class PricingError(ValueError):
    """A malformed price table. ``problems`` holds one ``"key: message"`` line per bad entry."""

    def __init__(self, problems: list[str], source: str = PRICING_RESOURCE) -> None:
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class Source:
    """Where one provider's shipped prices come from, and when they were last checked against it."""

    provider: str
    checked: dt.date
    url: str


@dataclass(frozen=True, slots=True)
class ShippedTable:
    """The parsed ``pricing.toml``: prices by model, each model's provider and check date, and the sources."""

    prices: Mapping[str, Price]
    provider: Mapping[str, str]
    checked: Mapping[str, dt.date]
    sources: Mapping[str, Source]


class Quote(NamedTuple):
    """A priced usage: USD by token type (see the module contract) and the long-context threshold that applied
    (None: the base prices)."""

    breakdown: dict[str, float]
    long_context_above: int | None = None

    @property
    def cost(self) -> float:
        return sum(self.breakdown.values())


_NOT_MEMOISED: Any = object()


def _number(value: Any) -> float | None:
    """``value`` as a finite, non-negative float, or ``None`` if it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _rates(entry: Mapping[str, Any], names: Iterable[str], where: str, problems: list[str]) -> dict[str, float]:
    values: dict[str, float] = {}
    for name in names:
        if name not in entry:
            if name in ("input", "output"):
                problems.append(f"{where}.{name}: missing")
            continue
        number = _number(entry[name])
        if number is None:
            problems.append(f"{where}.{name}: must be a non-negative number")
        else:
            values[name] = number
    return values


def _tier(raw: Any, where: str, problems: list[str]) -> LongContext | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a table")
        return None
    unknown = sorted(set(raw) - {"above", *TIER_RATES})
    if unknown:
        problems.append(f"{where}: unknown field(s) {', '.join(unknown)}")
    above = raw.get("above")
    if isinstance(above, bool) or not isinstance(above, int) or above < 0:
        problems.append(f"{where}.above: must be a whole number of tokens")
        above = None
    values = _rates(raw, TIER_RATES, where, problems)
    if above is None or "input" not in values or "output" not in values:
        return None
    return LongContext(above, **values)


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    return value if isinstance(value, dt.date) else None


def parse_table(data: Mapping[str, Any], source: str = PRICING_RESOURCE) -> ShippedTable:
    """Validate a parsed price table (see the module contract)."""
    problems: list[str] = []
    sources: dict[str, Source] = {}
    raw_sources = data.get("_sources", {})
    if not isinstance(raw_sources, Mapping):
        problems.append("_sources: expected a table of providers")
        raw_sources = {}
    for provider, raw in raw_sources.items():
        checked = _date(raw.get("checked")) if isinstance(raw, Mapping) else None
        url = raw.get("url") if isinstance(raw, Mapping) else None
        if checked is None:
            problems.append(f"_sources.{provider}.checked: expected a date (2026-11-25)")
        if not isinstance(url, str) or not url.startswith("https://"):
            problems.append(f"_sources.{provider}.url: expected the https:// address of the price page")
        if checked is not None and isinstance(url, str):
            sources[provider] = Source(provider, checked, url)
    prices: dict[str, Price] = {}
    owner: dict[str, str] = {}
    checked_on: dict[str, dt.date] = {}
    for model, entry in data.items():
        if model.startswith("_"):
            continue
        where = f'"{model}"'
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: expected a table of prices")
            continue
        unknown = sorted(set(entry) - _ENTRY_KEYS)
        if unknown:
            problems.append(f"{where}: unknown field(s) {', '.join(unknown)}")
        provider = entry.get("provider")
        if not isinstance(provider, str) or provider not in raw_sources:
            problems.append(f"{where}.provider: expected one of the providers in _sources")
            continue
        values = _rates(entry, RATES, where, problems)
        tier = _tier(entry["long_context"], f"{where}.long_context", problems) if "long_context" in entry else None
        if "checked" in entry and _date(entry["checked"]) is None:
            problems.append(f"{where}.checked: expected a date (2026-11-25)")
        if "input" not in values or "output" not in values:
            continue
        prices[model] = Price(**values, long_context=tier)
        owner[model] = provider
        if provider in sources:
            checked_on[model] = _date(entry.get("checked")) or sources[provider].checked
    if problems:
        raise PricingError(problems, source)
    return ShippedTable(prices, owner, checked_on, sources)


def load_shipped() -> ShippedTable:
    """Read and validate the price table shipped inside the package."""
    text = resources.files("llmgw").joinpath(PRICING_RESOURCE).read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PricingError([f"not valid TOML: {exc}"]) from exc
    return parse_table(data)


def free_providers(profile: Profile) -> frozenset[str]:
    """The profile's providers whose kind answers for free (the mock) unless ``[prices]`` says otherwise."""
    from .providers.spec import SPECS  # the registry imports nothing heavy; kept local to stay out of cycles
    return frozenset(name for name, provider in profile.providers.items()
                     if (spec := SPECS.get(provider.kind)) is not None and spec.free)


def unpriced_targets(profile: Profile, prices: PriceTable | None = None) -> dict[str, list[Target]]:
    """Every alias of ``profile`` with a target whose cost is unknown (no price and not a free kind), with those
    targets, in profile order; ``prices`` defaults to the table a server started from ``profile`` would use."""
    prices = prices if prices is not None else PriceTable.for_profile(profile)
    found = {alias: prices.unpriced(model.targets) for alias, model in profile.models.items()}
    return {alias: targets for alias, targets in found.items() if targets}


def _fix(target: Target) -> str:
    return f'add [prices] "{target.name}" = {{ input = …, output = … }} (USD per 1M tokens)'


def unpriced_warnings(unpriced: Mapping[str, list[Target]]) -> list[str]:
    """One ``models.ALIAS.targets: …`` line per alias with unpriced targets (``llmgw check``'s warnings)."""
    return [f"models.{alias}.targets: {', '.join(t.name for t in targets)} has no price: its requests are logged"
            f" as unpriced and count $0 in cost reports; {_fix(targets[0])}"
            for alias, targets in unpriced.items()]


def budget_problems(profile: Profile, unpriced: Mapping[str, list[Target]]) -> list[str]:
    """One line per team or profile key with a budget that can reach an alias with unpriced targets: every such
    request would be refused (403 ``unpriced_model``), since a budget cannot be kept on an unknown price."""
    problems = []
    owners = [(f"teams.{name}", team.budget, team.models) for name, team in profile.teams.items()]
    for name, key in profile.keys.items():
        team = profile.teams.get(key.team)
        owners.append((f"keys.{name}", key.budget, key.models if key.models is not None else
                       team.models if team is not None else None))
    for path, budget, allowed in owners:
        if budget.daily is None and budget.monthly is None:
            continue
        for alias, targets in unpriced.items():
            if allowed is None or alias in allowed:
                problems.append(f"{path}.budget_usd: requests to model {alias!r} would be refused (403"
                                f" unpriced_model): {', '.join(t.name for t in targets)} has no price and a budget"
                                f" cannot be kept on an unknown price; {_fix(targets[0])}")
    return problems


class PriceTable:
    """Shipped prices plus profile overrides; answers "what does this target cost" on the hot path."""

    def __init__(self, shipped: Mapping[str, Price], overrides: Mapping[str, Price] = _NO_OVERRIDES, *,
                 free: Collection[str] = (), table: ShippedTable | None = None) -> None:
        self._shipped: dict[str, Price] = dict(shipped)
        self._by_target: dict[str, Price] = {k: v for k, v in overrides.items() if "/" in k}
        self._by_model: dict[str, Price] = {k: v for k, v in overrides.items() if "/" not in k}
        self._free = frozenset(free)
        self._memo: dict[Target, Price | None] = {}
        self.table = table

    @classmethod
    def load(cls, overrides: Mapping[str, Price] = _NO_OVERRIDES, *, free: Collection[str] = ()) -> PriceTable:
        """The shipped table with ``overrides`` (a profile's ``[prices]``) applied on top; ``free`` names the
        providers that cost nothing when unpriced."""
        table = load_shipped()
        return cls(table.prices, overrides, free=free, table=table)

    @classmethod
    def for_profile(cls, profile: Profile) -> PriceTable:
        """The price table a server started from ``profile`` uses."""
        return cls.load(profile.prices, free=free_providers(profile))

    def models(self) -> list[str]:
        """Every model name the shipped table prices, sorted."""
        return sorted(self._shipped)

    def overrides(self) -> dict[str, Price]:
        """The profile's ``[prices]`` entries, by the key they were given under."""
        return {**self._by_model, **self._by_target}

    def price_for(self, target: Target) -> Price | None:
        """The price that applies to ``target``, or ``None`` when none does (see the module contract)."""
        price = self._memo.get(target, _NOT_MEMOISED)
        if price is _NOT_MEMOISED:
            price = self._resolve(target.provider, target.model)
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[target] = price
        return price

    def is_priced(self, target: Target) -> bool:
        """Whether ``target``'s cost is known: it has a price, or its provider is free."""
        return self.price_for(target) is not None or target.provider in self._free

    def unpriced(self, targets: Iterable[Target]) -> list[Target]:
        """The targets among ``targets`` whose cost is unknown, in order."""
        return [t for t in targets if not self.is_priced(t)]

    def quote(self, target: Target, usage: Usage) -> Quote | None:
        """``usage`` on ``target`` priced by token type; ``None`` when ``target`` is unpriced. A free provider's
        target without a price gets an empty breakdown (it cost nothing)."""
        price = self.price_for(target)
        if price is None:
            return Quote({}) if target.provider in self._free else None
        return quote(price, usage)

    def cost(self, target: Target, usage: Usage) -> float:
        """USD cost of ``usage`` on ``target``; ``0.0`` for an unpriced or free one."""
        priced = self.quote(target, usage)
        return priced.cost if priced is not None else 0.0

    def _resolve(self, provider: str, model: str) -> Price | None:
        full = f"{provider}/{model}"
        if full in self._by_target:
            return self._by_target[full]
        if model in self._by_model:
            return self._by_model[model]
        if model in self._shipped:
            return self._shipped[model]
        # Dated / versioned name: longest known key followed by "-"; at equal length the earlier source wins.
        best: tuple[int, int] | None = None
        found: Price | None = None
        target_prefix = f"{provider}/"
        candidates = (
            (0, ((k.removeprefix(target_prefix), v) for k, v in self._by_target.items()
                 if k.startswith(target_prefix))),
            (1, self._by_model.items()),
            (2, self._shipped.items()),
        )
        for rank, entries in candidates:
            for key, price in entries:
                if not model.startswith(key + "-"):
                    continue
                score = (len(key), -rank)
                if best is None or score > best:
                    best, found = score, price
        return found


def quote(price: Price, usage: Usage) -> Quote:
    """``usage`` priced at ``price`` by token type (see the module contract)."""
    tier = price.long_context
    above = tier.above if tier is not None and usage.input_tokens > tier.above else None
    if above is None and not (usage.cached_tokens or usage.cache_write_tokens or usage.reasoning_tokens) \
            and usage.input_tokens >= 0 and usage.output_tokens >= 0:   # the common case, priced the same way
        plain: dict[str, float] = {}
        if usage.input_tokens:
            plain["input"] = usage.input_tokens * (price.input or 0.0) / 1e6
        if usage.output_tokens:
            plain["output"] = usage.output_tokens * (price.output or 0.0) / 1e6
        return Quote(plain)
    rates: Price | LongContext = tier if above is not None and tier is not None else price

    def rate(name: str) -> float | None:
        value: float | None = getattr(rates, name)
        return getattr(price, name) if value is None else value

    input_rate = rate("input") or 0.0
    output_rate = rate("output") or 0.0
    write_rate = rate("cache_write")
    write_rate = input_rate if write_rate is None else write_rate
    write_1h_rate = rate("cache_write_1h")
    cached_rate = rate("cached_input")
    reasoning_rate = rate("reasoning")
    written = usage.cache_write_tokens
    written_1h = min(usage.cache_write_1h_tokens, written)
    reasoning = min(usage.reasoning_tokens, usage.output_tokens)
    counts = (
        ("input", max(usage.input_tokens - usage.cached_tokens - written, 0), input_rate),
        ("cached_input", usage.cached_tokens, input_rate if cached_rate is None else cached_rate),
        ("cache_write", written - written_1h, write_rate),
        ("cache_write_1h", written_1h, write_rate if write_1h_rate is None else write_1h_rate),
        ("output", usage.output_tokens - reasoning, output_rate),
        ("reasoning", reasoning, output_rate if reasoning_rate is None else reasoning_rate),
    )
    return Quote({name: tokens * per_million / 1e6 for name, tokens, per_million in counts if tokens > 0}, above)
