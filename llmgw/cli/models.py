"""`llmgw models`: the profile's aliases, strategies, targets and prices."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ..pricing import PriceTable
from ..profile import Price
from ..providers.spec import spec_for
from .common import FORMAT_HELP, PROFILE_HELP, console, fail, load_or_exit, plain, print_json


def _usd(value: float | None) -> str:
    return "?" if value is None else f"${value:g}"


def models(
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
    format: str = typer.Option("table", "--format", metavar="FORMAT", help=FORMAT_HELP),
) -> None:
    """List model aliases with their strategy, targets and price per 1M input/output tokens.

    Example: llmgw models --profile profiles/openai.toml
    """
    if format not in ("table", "json"):
        fail(f"--format: expected table or json, got {format!r}")
    prof = load_or_exit(profile)
    prices = PriceTable.load(prof.prices)
    rows = []
    for alias, model in prof.models.items():
        for i, target in enumerate(model.targets):
            price = prices.price_for(target)
            if price is None and spec_for(prof.providers[target.provider].kind).free:
                price = Price(0.0, 0.0)  # a free kind (the mock) costs nothing unless [prices] says otherwise
            rows.append({"alias": alias, "strategy": model.strategy, "position": i + 1, "target": target.name,
                         "input_per_1m": None if price is None else price.input,
                         "output_per_1m": None if price is None else price.output})
    if format == "json":
        print_json(rows)
        return
    table = Table(title=plain(f"Models in {prof.source}"))
    for column in ("alias", "strategy", "#", "target", "input $/1M", "output $/1M"):
        table.add_column(column, justify="right" if "$" in column or column == "#" else "left")
    for row in rows:
        first = row["position"] == 1
        table.add_row(plain(row["alias"] if first else ""), row["strategy"] if first else "", str(row["position"]),
                      plain(row["target"]), _usd(row["input_per_1m"]), _usd(row["output_per_1m"]))
    console.print(table)
