"""Turning a record into what the TUI shows: the table's cells (:func:`row_cells`) and the detail view
(:func:`detail`).

Contract: pure functions of an :class:`~.feed.Entry`; a record may lack any field (a missing one shows as ``-``;
the tags cell of a request without tags is empty).
Every cell is a :class:`rich.text.Text` (never markup, so names with brackets show as they are); the first is a
:class:`TimeCell` carrying the entry's ``seq`` so the table can order rows newest first. Bodies shown in the detail
view pass through :func:`~.redact.redact` and are cut at ``max_body_chars``.
"""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple

from rich.console import Group, RenderableType
from rich.json import JSON
from rich.table import Table
from rich.text import Text

from .feed import Entry
from .redact import redact, redact_text
from .source import Record


class Column(NamedTuple):
    key: str
    label: str
    width: int


COLUMNS = (
    Column("time", "time", 8),
    Column("who", "key/team", 18),
    Column("route", "alias → target", 38),
    Column("status", "status", 22),
    Column("tokens", "tokens in/out", 13),
    Column("cost", "cost $", 10),
    Column("latency", "latency", 9),
    Column("overhead", "llmgw ms", 9),
    Column("cache", "cache", 8),
    Column("tags", "tags", 16),
)


class TimeCell(Text):
    """The time cell of a row; ``seq`` is the row's arrival order (the table sorts on it)."""

    def __init__(self, text: str, seq: int, style: str = "") -> None:
        super().__init__(text, style=style, no_wrap=True, end="")
        self.seq = seq


def status_style(status: int) -> str:
    """The colour of an HTTP status: green 2xx, magenta 499 (the client hung up), yellow 4xx, red otherwise."""
    if 200 <= status < 300:
        return "green"
    if status == 499:
        return "magenta"
    if 400 <= status < 500:
        return "yellow"
    return "bold red"


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def clock(record: Record) -> str:
    """The record's local time of day, ``HH:MM:SS`` (``-`` without a time)."""
    when = _float(record.get("time"))
    return time.strftime("%H:%M:%S", time.localtime(when)) if when is not None else "-"


def who(record: Record) -> str:
    """``key/team``, or whichever is known, or ``-``."""
    return "/".join(p for p in (str(record.get("key") or ""), str(record.get("team") or "")) if p) or "-"


def route(record: Record) -> str:
    """``alias → target`` (with ``+N`` when N fallbacks were tried)."""
    text = f"{record.get('alias') or '-'} → {record.get('target') or '-'}"
    attempts = record.get("attempts")
    if isinstance(attempts, list) and len(attempts) > 1:
        text += f" +{len(attempts) - 1}"
    return text


def status_text(record: Record) -> str:
    """The status code with the error code, if any."""
    error = record.get("error")
    return f"{record.get('status', '-')}{' ' + str(error) if error else ''}"


def _cell(text: str, style: str = "", justify: str = "left") -> Text:
    return Text(text, style=style, no_wrap=True, overflow="ellipsis", justify=justify, end="")  # type: ignore[arg-type]


def row_cells(entry: Entry) -> tuple[Text, ...]:
    """The table cells of ``entry``, in :data:`COLUMNS` order."""
    r = entry.record
    status = _int(r.get("status"))
    cost = _float(r.get("cost_usd"))
    latency = _float(r.get("latency_ms"))
    overhead = _float(r.get("overhead_ms"))
    cache = str(r.get("cache") or "-")
    return (
        TimeCell(clock(r), entry.seq, style="dim"),
        _cell(who(r)),
        _cell(route(r)),
        _cell(status_text(r), status_style(status)),
        _cell(f"{_int(r.get('input_tokens'))}/{_int(r.get('output_tokens'))}", justify="right"),
        _cell("-" if cost is None else f"{cost:.6f}", justify="right"),
        _cell("-" if latency is None else f"{latency:,.0f} ms", justify="right"),
        _cell("-" if overhead is None else f"{overhead:,.2f}", justify="right"),
        _cell(cache, "green" if cache not in ("miss", "-") else "dim"),
        _cell(tags_text(r), "cyan"),
    )


def tags_text(record: Record) -> str:
    """The record's tags, comma-separated (empty without any)."""
    tags = record.get("tags")
    return ", ".join(str(t) for t in tags) if isinstance(tags, list | tuple) else ""


# --- the detail view -------------------------------------------------------------------------------------------


def _attempts(record: Record) -> RenderableType:
    attempts = record.get("attempts")
    if not isinstance(attempts, list) or not attempts:
        return Text("no attempts (refused before reaching a provider)", style="dim")
    table = Table(title="attempts", title_justify="left", title_style="bold", expand=False, pad_edge=False)
    for label in ("#", "target", "status", "latency", "error"):
        table.add_column(label, justify="right" if label in ("#", "latency") else "left")
    for attempt in attempts:
        a = attempt if isinstance(attempt, dict) else {}
        status = _int(a.get("status"))
        latency = _float(a.get("latency_ms"))
        table.add_row(str(a.get("n", "")), str(a.get("target") or "-"),
                      Text(str(status) if status else "no answer", style=status_style(status)),
                      "-" if latency is None else f"{latency:,.0f} ms", str(a.get("error") or ""))
    return table


def _body(title: str, entry: Entry, name: str, max_chars: int) -> RenderableType:
    heading = Text(title, style="bold")
    record = entry.record
    value = record.get(name)
    if value is None:
        if entry.bodies_dropped:
            why = "dropped from memory: only the newest requests keep their bodies"
        elif name not in record:
            why = "not sent: the source was not asked for bodies"
        else:
            why = "not logged (the proxy's server.log_bodies is off, or there was none)"
        return Group(heading, Text(f"({why})", style="dim"))
    if isinstance(value, str):
        return Group(heading, Text(_cut(redact_text(value), max_chars)))
    text = json.dumps(redact(value), indent=2, ensure_ascii=False, default=str)
    if len(text) > max_chars:
        return Group(heading, Text(_cut(text, max_chars)))
    return Group(heading, JSON(text))


def _cut(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + f"\n… ({len(text) - max_chars:,} more characters not shown)"


def _summary(record: Record) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    when = _float(record.get("time"))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)) if when is not None else "-"
    status = _int(record.get("status"))
    latency, ttft, cost, overhead = (_float(record.get(k)) for k in ("latency_ms", "ttft_ms", "cost_usd",
                                                                      "overhead_ms"))
    rows: list[tuple[str, Text | str]] = [
        ("time", stamp),
        ("route", f"{route(record)}  (provider {record.get('provider') or '-'})"),
        ("status", Text(f"{status_text(record)}  ({record.get('outcome') or '-'})", style=status_style(status))),
        ("key / team", who(record)),
        ("tokens", f"in {_int(record.get('input_tokens'))}  out {_int(record.get('output_tokens'))}"
                   f"  cached {_int(record.get('cached_tokens'))}"),
        ("cost", "-" if cost is None else f"${cost:.6f}"),
        ("latency", ("-" if latency is None else f"{latency:,.0f} ms")
                    + ("" if ttft is None else f"  (first token {ttft:,.0f} ms)")
                    + ("" if overhead is None else f"  (in llmgw {overhead:,.2f} ms)")),
        ("cache", str(record.get("cache") or "-")),
        ("stream", "yes" if record.get("stream") else "no"),
    ]
    if record.get("error_message"):
        rows.insert(3, ("error", Text(str(record["error_message"]), style="red")))
    if record.get("tags"):
        rows.append(("tags", tags_text(record)))
    for label, value in rows:
        grid.add_row(label, value)
    return grid


def detail(entry: Entry, max_body_chars: int = 100_000) -> RenderableType:
    """The detail view of ``entry``: a summary, the attempts, and the (redacted) request and response bodies."""
    record = entry.record
    return Group(
        Text(str(record.get("id") or "(no id)"), style="bold underline"),
        _summary(record),
        Text(""),
        _attempts(record),
        Text(""),
        _body("request", entry, "request", max_body_chars),
        Text(""),
        _body("response", entry, "response", max_body_chars),
    )
