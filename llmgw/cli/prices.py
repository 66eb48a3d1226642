"""`llmgw prices [MODEL]` and `llmgw prices check`: the price table, where it comes from, and whether it is fresh.

Contract:
- ``llmgw prices [MODEL]`` lists the shipped table (``llmgw/pricing.toml``) and the profile's ``[prices]``
  overrides: every rate in USD per 1M tokens, the long-context tier, the date each entry was checked and its
  source page. MODEL keeps the entries whose name contains it (case-insensitive); none matching is exit 1.
  ``--format json`` prints one object per entry (``model``, ``provider``, the rates of
  :class:`~llmgw.profile.Price` with ``null`` for a rate that falls back, ``long_context``, ``checked``,
  ``source``, ``origin``: ``shipped`` or ``profile``).
- ``llmgw prices check`` exits 1 when a provider's prices, or an entry's own date, were checked more than
  ``--max-age-days`` (90) days before ``--as-of`` (today, UTC), one line each; 0 otherwise (for CI).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from ..pricing import PriceTable, ShippedTable, Source
from ..profile import Price
from .common import FORMAT_HELP, PROFILE_HELP, console, err_console, fail, load_or_exit, plain, plural, print_json

MAX_AGE_DAYS = 90
CHECK = "check"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _record(model: str, price: Price, *, provider: str, checked: dt.date | None, source: str,
            origin: str) -> dict[str, Any]:
    tier = price.long_context
    return {"model": model, "provider": provider, "input": price.input, "output": price.output,
            "cached_input": price.cached_input, "cache_write": price.cache_write,
            "cache_write_1h": price.cache_write_1h, "reasoning": price.reasoning, "audio_input": price.audio_input,
            "long_context": None if tier is None else {
                "above": tier.above, "input": tier.input, "output": tier.output, "cached_input": tier.cached_input,
                "cache_write": tier.cache_write, "cache_write_1h": tier.cache_write_1h, "reasoning": tier.reasoning},
            "checked": None if checked is None else checked.isoformat(), "source": source, "origin": origin}


def price_records(prices: PriceTable, profile_source: str) -> list[dict[str, Any]]:
    """Every shipped entry (by provider, then model) followed by the profile's overrides."""
    table = prices.table
    records = []
    if table is not None:
        for model in sorted(table.prices, key=lambda m: (table.provider[m], m)):
            provider = table.provider[model]
            source = table.sources[provider]
            records.append(_record(model, table.prices[model], provider=provider, checked=table.checked[model],
                                   source=source.url, origin="shipped"))
    for key, price in sorted(prices.overrides().items()):
        provider = key.split("/", 1)[0] if "/" in key else "-"
        records.append(_record(key, price, provider=provider, checked=None, source=f"{profile_source} [prices]",
                               origin="profile"))
    return records


def _tier_cell(record: dict[str, Any]) -> str:
    tier = record["long_context"]
    if tier is None:
        return ""
    return f">{tier['above'] // 1000}k: {tier['input']:g} / {tier['output']:g}"


def _print_table(records: list[dict[str, Any]], sources: Iterable[Source]) -> None:
    table = Table(title="prices, USD per 1M tokens (standard tier)", title_justify="left", pad_edge=False)
    for name in ("model", "provider"):
        table.add_column(name, overflow="fold")
    for name in ("input", "cached", "write 5m", "write 1h", "output", "reasoning", "audio in"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("long context (in / out)", no_wrap=True)
    table.add_column("checked", no_wrap=True)
    for r in records:
        reasoning = _rate(r["reasoning"]) if r["reasoning"] is not None else "= output"
        table.add_row(plain(r["model"]), plain(r["provider"]), _rate(r["input"]), _rate(r["cached_input"]),
                      _rate(r["cache_write"]), _rate(r["cache_write_1h"]), _rate(r["output"]), reasoning,
                      _rate(r["audio_input"]), _tier_cell(r), r["checked"] or r["origin"])
    shown = {r["provider"] for r in records if r["origin"] == "shipped"}
    notes = [f"{s.provider}: checked {s.checked.isoformat()} at {s.url}" for s in sources if s.provider in shown]
    notes.append("'-': billed as input (cache reads and writes) or as the 5-minute write (1-hour writes);"
                 " '= output': reasoning tokens are billed as output tokens")
    if any(r["origin"] == "profile" for r in records):
        notes.append("entries checked 'profile' come from the profile's [prices] and replace shipped ones")
    table.caption = Text("\n".join(notes))
    table.caption_justify = "left"
    console.print(table)


def stale_lines(table: ShippedTable, today: dt.date, max_age_days: int) -> list[str]:
    """One line per provider whose prices, and per entry whose own date, is older than ``max_age_days``."""
    lines = []
    for provider, source in sorted(table.sources.items()):
        age = (today - source.checked).days
        if age > max_age_days:
            lines.append(f"{provider}: prices checked {source.checked.isoformat()}, {age} days ago (more than"
                         f" {max_age_days}): re-check them at {source.url}")
    for model, checked in sorted(table.checked.items()):
        source = table.sources[table.provider[model]]
        age = (today - checked).days
        if checked != source.checked and age > max_age_days:
            lines.append(f"{model}: checked {checked.isoformat()}, {age} days ago (more than {max_age_days}):"
                         f" re-check it at {source.url}")
    return lines


def _check(max_age_days: int, as_of: str | None, format: str) -> None:
    try:
        today = dt.date.fromisoformat(as_of) if as_of else dt.datetime.now(dt.UTC).date()
    except ValueError:
        fail(f"--as-of: expected a date like 2026-12-31, got {as_of!r}")
    table = PriceTable.load().table
    assert table is not None
    lines = stale_lines(table, today, max_age_days)
    if format == "json":
        print_json([{"provider": p, "checked": s.checked.isoformat(), "url": s.url,
                     "age_days": (today - s.checked).days, "stale": (today - s.checked).days > max_age_days}
                    for p, s in sorted(table.sources.items())])
    else:
        for line in lines:
            err_console.print(f"stale: {line}", highlight=False, soft_wrap=True, markup=False)
        if not lines:
            console.print(f"prices: ok — {plural(len(table.sources), 'provider')}, {plural(len(table.prices), 'model')}"
                          f", every one checked within {max_age_days} days of {today.isoformat()}",
                          highlight=False, soft_wrap=True, markup=False)
    if lines:
        raise typer.Exit(1)


def prices(
    model: str | None = typer.Argument(None, metavar="[MODEL|check]",
                                       help="Show only models whose name contains this; 'check': see below."),
    format: str = typer.Option("table", "--format", metavar="FORMAT", help=FORMAT_HELP),
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
    max_age_days: int = typer.Option(MAX_AGE_DAYS, "--max-age-days", metavar="N", min=0,
                                     help="prices check: how old a check date may be."),
    as_of: str | None = typer.Option(None, "--as-of", metavar="DATE",
                                     help="prices check: the day to measure ages from (default: today, UTC)."),
) -> None:
    """List the price table (USD per 1M tokens) with the date each provider's prices were checked and the
    page they come from, plus the profile's [prices] overrides. `llmgw prices check` exits 1 when any provider's
    prices were checked more than 90 days ago (for CI).

    Example: llmgw prices claude --format json
    """
    if format not in ("table", "json"):
        fail(f"--format: expected table or json, got {format!r}")
    if model == CHECK:
        _check(max_age_days, as_of, format)
        return
    prof = load_or_exit(profile)
    table = PriceTable.load(prof.prices)
    records = price_records(table, prof.source)
    if model:
        needle = model.lower()
        records = [r for r in records if needle in r["model"].lower()]
        if not records:
            fail(f"no price matches {model!r}; `llmgw prices` lists them all, and [prices] in the profile adds one")
    if format == "json":
        print_json(records)
    else:
        _print_table(records, table.table.sources.values() if table.table is not None else ())
