"""Prometheus metrics of the gateway, in the text exposition format (version 0.0.4), written without a client
library.

Contracts:
- One :class:`Metrics` per application (it lives in the app, never in a module global). :meth:`Metrics.observe`
  is a :class:`~llmgw.stages.meter.MeterStage` listener: O(1) dictionary updates, no I/O, no locks (it and
  :meth:`Metrics.render` run on the application's event loop).
- Counters and histograms are kept per process. With ``workers > 1`` each worker publishes a :meth:`snapshot` to a
  file every second (:mod:`llmgw.proxy.metrics_share`) and ``GET /metrics`` adds the other workers' latest snapshots to
  its own live values, so whichever worker answers a scrape reports the whole server (others' values at most
  about a second old).
- Label values are escaped as the format requires (``\\``, ``"`` and newlines). The ``alias`` label is the model
  name the client sent; pass ``aliases`` to fold names outside the profile into ``"unknown"`` so that clients
  cannot create unbounded series.
- ``llmgw_spend_anomaly{group}`` is set from outside with :meth:`Metrics.set_spend_anomalies` (e.g. by
  :func:`refresh_spend_anomalies`, which runs :func:`llmgw.tools.report.build_report` off the event loop); until then
  the family is exposed with no series.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .events import authorized, unauthorized

if TYPE_CHECKING:
    from ..store.log_backend import LogSource

log = logging.getLogger("llmgw.proxy.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
UNKNOWN_ALIAS = "unknown"
_TOKEN_COLUMNS = (("input", "input_tokens"), ("output", "output_tokens"), ("cached", "cached_tokens"))

Labels = tuple[str, ...]
Handler = Callable[[web.Request], Awaitable[web.Response]]


def escape_label(value: str) -> str:
    """A label value as the text format wants it between double quotes."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: integers without a fraction, ``+Inf``/``-Inf``/``NaN`` spelt as Prometheus does."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _bound(bound: float) -> str:
    """A bucket's ``le`` as client libraries write it: ``0.5``, ``1.0``, ``+Inf``."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


@dataclass
class Counter:
    """A counter family: one value per label set."""

    name: str
    help: str
    label_names: tuple[str, ...]
    values: dict[Labels, float] = field(default_factory=dict)

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def render(self, out: list[str], kind: str = "counter") -> None:
        out.append(f"# HELP {self.name} {_escape_help(self.help)}")
        out.append(f"# TYPE {self.name} {kind}")
        for labels, value in sorted(self.values.items()):
            out.append(f"{self.name}{_labels(self.label_names, labels)} {format_value(value)}")


@dataclass
class Histogram:
    """A histogram family: per label set, a count per bucket (not cumulative until rendered), sum and count."""

    name: str
    help: str
    label_names: tuple[str, ...]
    buckets: tuple[float, ...]
    series: dict[Labels, list[float]] = field(default_factory=dict)  # [bucket counts..., +Inf count, sum]

    def observe(self, labels: Labels, value: float) -> None:
        counts = self.series.get(labels)
        if counts is None:
            counts = self.series[labels] = [0.0] * (len(self.buckets) + 2)
        counts[bisect.bisect_left(self.buckets, value)] += 1
        counts[-1] += value

    def render(self, out: list[str]) -> None:
        out.append(f"# HELP {self.name} {_escape_help(self.help)}")
        out.append(f"# TYPE {self.name} histogram")
        for labels, counts in sorted(self.series.items()):
            running = 0.0
            for bound, count in zip((*self.buckets, math.inf), counts, strict=False):
                running += count
                le = f'le="{_bound(bound)}"'
                out.append(f"{self.name}_bucket{_labels(self.label_names, labels, le)} {format_value(running)}")
            out.append(f"{self.name}_sum{_labels(self.label_names, labels)} {format_value(counts[-1])}")
            out.append(f"{self.name}_count{_labels(self.label_names, labels)} {format_value(running)}")


MAX_SERIES_CACHE = 10_000   # label-set bundles remembered by Metrics.observe


@dataclass(frozen=True, slots=True)
class _Series:
    """The label values one kind of row feeds: built once, so that counting a row is a few dictionary updates."""

    alias: str
    target: str
    requests: Labels          # (alias, target, team, status)
    tokens: tuple[tuple[str, Labels], ...]   # (row column, (alias, target, team, kind))
    spend: Labels             # (alias, target, team)
    route: Labels             # (alias, target)
    alias_only: Labels        # (alias,)


class Metrics:
    """The gateway's metric families, fed by :meth:`observe` with each finished request's log row."""

    def __init__(self, aliases: Collection[str] | None = None) -> None:
        self.aliases = frozenset(aliases) if aliases is not None else None
        self.requests = Counter("llmgw_requests_total", "Finished requests by the HTTP status the client got.",
                                ("alias", "target", "team", "status"))
        self.errors = Counter("llmgw_errors_total", "Requests that ended in an error, by error code.",
                              ("alias", "target", "error"))
        self.tokens = Counter("llmgw_tokens_total", "Tokens used (cached is the part of input read from a cache).",
                              ("alias", "target", "team", "kind"))
        self.cost = Counter("llmgw_cost_usd_total", "Spend in US dollars.", ("alias", "target", "team"))
        self.cache_hits = Counter("llmgw_cache_hits_total", "Requests answered from the gateway's cache.",
                                  ("alias", "kind"))
        self.fallbacks = Counter("llmgw_fallbacks_total", "Requests answered after more than one attempt.",
                                 ("alias",))
        self.latency = Histogram("llmgw_request_latency_seconds", "Time from arrival to the end of the answer.",
                                 ("alias", "target"), LATENCY_BUCKETS)
        self.ttft = Histogram("llmgw_time_to_first_token_seconds", "Time from arrival to the first answer token.",
                              ("alias", "target"), TTFT_BUCKETS)
        self.overhead = Histogram("llmgw_overhead_seconds", "Time spent in the gateway itself, not waiting on"
                                  " upstreams.", ("alias",), OVERHEAD_BUCKETS)
        self.reloads = Counter("llmgw_profile_reloads_total", "Profile reloads (SIGHUP, serve --watch) by result;"
                               " each worker counts its own.", ("result",), {("ok",): 0.0, ("refused",): 0.0})
        self.anomaly = Counter("llmgw_spend_anomaly", "1 when a group's recent spend is far above its baseline"
                               " (see `llmgw cost report`).", ("group",))
        self.log_writer: Any = None   # the request-log writer, whose backlog (and dropped rows) are shown
        self._series: dict[tuple[Any, ...], _Series] = {}   # (alias, target, team, status) as in rows -> label sets

    def _alias(self, alias: str) -> str:
        if self.aliases is None or alias in self.aliases:
            return alias
        return UNKNOWN_ALIAS

    def _series_of(self, alias: Any, target: Any, team: Any, status: Any) -> _Series:
        """The label sets a row with these values feeds, made once per combination (aliases outside the profile
        fold into one, so the combinations are as few as the profile's aliases, targets and teams, times the
        statuses; past :data:`MAX_SERIES_CACHE` the memory starts over)."""
        if len(self._series) >= MAX_SERIES_CACHE:
            self._series.clear()
        name, target_name, team_name = self._alias(str(alias or "")), str(target or ""), str(team or "")
        series = _Series(name, target_name, (name, target_name, team_name, str(int(status or 0))),
                         tuple((column, (name, target_name, team_name, kind)) for kind, column in _TOKEN_COLUMNS),
                         (name, target_name, team_name), (name, target_name), (name,))
        self._series[(alias, target, team, status)] = series
        return series

    def observe(self, row: Mapping[str, Any]) -> None:
        """Count one finished request (an :meth:`Exchange.log_row` dict)."""
        get = row.get
        key = (get("alias"), get("target"), get("team"), get("status"))
        series = self._series.get(key) or self._series_of(*key)
        requests = self.requests.values
        requests[series.requests] = requests.get(series.requests, 0.0) + 1.0
        error = get("error") or ("client_disconnect" if get("outcome") == "client_disconnect" else None)
        if error:
            self.errors.inc((series.alias, series.target, str(error)))
        tokens = self.tokens.values
        for column, labels in series.tokens:
            amount = get(column)
            if amount:
                tokens[labels] = tokens.get(labels, 0.0) + amount
        cost = self.cost.values
        cost[series.spend] = cost.get(series.spend, 0.0) + float(get("cost_usd") or 0.0)
        cache = get("cache")
        if cache == "hit" or cache == "semantic":
            self.cache_hits.inc((series.alias, str(cache)))
        attempts = get("attempts")
        if attempts and (len(attempts) if isinstance(attempts, (list, tuple)) else int(attempts)) > 1 \
                and int(get("status") or 0) < 400:
            self.fallbacks.inc(series.alias_only)
        self.latency.observe(series.route, float(get("latency_ms") or 0.0) / 1000.0)
        ttft = get("ttft_ms")
        if ttft is not None:
            self.ttft.observe(series.route, float(ttft) / 1000.0)
        overhead = get("overhead_ms")
        if overhead is not None:
            self.overhead.observe(series.alias_only, float(overhead) / 1000.0)

    @property
    def _counters(self) -> tuple[Counter, ...]:
        return (self.requests, self.errors, self.tokens, self.cost, self.cache_hits, self.fallbacks,
                self.reloads)

    @property
    def _histograms(self) -> tuple[Histogram, ...]:
        return (self.latency, self.ttft, self.overhead)

    def snapshot(self) -> dict[str, Any]:
        """The counters and histograms as JSON-ready data, for other processes to add to theirs."""
        return {"counters": {c.name: [[list(labels), value] for labels, value in c.values.items()]
                             for c in self._counters},
                "histograms": {h.name: [[list(labels), counts] for labels, counts in h.series.items()]
                               for h in self._histograms}}

    def set_spend_anomalies(self, flags: Mapping[str, bool]) -> None:
        """Replace the ``llmgw_spend_anomaly`` series: one per group, 1 for flagged, 0 otherwise."""
        self.anomaly.values = {(group,): 1.0 if flagged else 0.0 for group, flagged in flags.items()}

    def render(self, others: Sequence[Mapping[str, Any]] = ()) -> str:
        """Every family in the text exposition format, ending with a newline; counters and histograms are the sum
        of this process's values and the ``others`` snapshots (malformed parts of a snapshot are ignored)."""
        out: list[str] = []
        for counter in self._counters:
            _added(counter, others).render(out)
        for histogram in self._histograms:
            _added(histogram, others).render(out)
        self.anomaly.render(out, kind="gauge")
        writer = self.log_writer
        if writer is not None:
            Counter("llmgw_log_backlog", "Request-log rows not in the database yet: queued in memory plus spooled"
                    " on disk while it is unreachable.", (),
                    {(): float(getattr(writer, "backlog", writer.queued))}).render(out, kind="gauge")
            Counter("llmgw_log_dropped_rows_total", "Request-log rows dropped because the spool was full.", (),
                    {(): float(getattr(writer, "dropped", 0))}).render(out)
        return "\n".join(out) + "\n"


def _added(family: Counter | Histogram, others: Sequence[Mapping[str, Any]]) -> Any:
    """A copy of ``family`` with the same family's values from each snapshot in ``others`` added."""
    if not others:
        return family
    width = len(family.label_names)
    if isinstance(family, Counter):
        values = dict(family.values)
        for snap in others:
            for item in (snap.get("counters") or {}).get(family.name) or ():
                try:
                    labels, value = tuple(str(v) for v in item[0]), float(item[1])
                except (TypeError, ValueError, IndexError):
                    continue
                if len(labels) == width:
                    values[labels] = values.get(labels, 0.0) + value
        return Counter(family.name, family.help, family.label_names, values)
    series = {labels: list(counts) for labels, counts in family.series.items()}
    size = len(family.buckets) + 2
    for snap in others:
        for item in (snap.get("histograms") or {}).get(family.name) or ():
            try:
                labels, counts = tuple(str(v) for v in item[0]), [float(c) for c in item[1]]
            except (TypeError, ValueError, IndexError):
                continue
            if len(labels) != width or len(counts) != size:
                continue
            mine = series.setdefault(labels, [0.0] * size)
            for i, count in enumerate(counts):
                mine[i] += count
    return Histogram(family.name, family.help, family.label_names, family.buckets, series)


SnapshotSource = Callable[[], Awaitable[Sequence[Mapping[str, Any]]]]


def metrics_handler(metrics: Metrics, others: SnapshotSource | None = None, *,
                    admin_key: str | None = None) -> Handler:
    """The ``GET /metrics`` handler; ``others()`` gives the other workers' snapshots, if there are any. With
    ``admin_key`` (``[server] metrics_auth = true``) a scrape must present it as ``/admin/*`` does (401 otherwise)."""

    async def handle(request: web.Request) -> web.Response:
        if admin_key is not None and not authorized(request, admin_key):
            return unauthorized()
        snapshots = await others() if others is not None else ()
        return web.Response(body=metrics.render(snapshots).encode(), headers={"Content-Type": CONTENT_TYPE})

    return handle


def spend_anomalies(db_path: Path | LogSource, by: Sequence[str] = ("team",), window_s: float = 7 * 86400.0,
                    now: float | None = None) -> dict[str, bool]:
    """The anomaly flags of ``llmgw cost report --by …`` over the last ``window_s`` (blocking: run it in a
    thread). Empty when there is no log yet."""
    from ..store.log_backend import LogMissing, LogSource, open_reader
    from ..tools import report

    until = time.time() if now is None else now
    try:
        reader = open_reader(db_path if isinstance(db_path, LogSource) else LogSource.file(db_path))
    except LogMissing:
        return {}
    try:
        db = reader.report_db(until - window_s, until)
    finally:
        reader.close()
    try:
        return report.build_report(db, by, until - window_s, until).anomaly_flags()
    finally:
        db.close()


async def refresh_spend_anomalies(metrics: Metrics, db_path: Path | LogSource, *, interval_s: float = 300.0,
                                  by: Sequence[str] = ("team",)) -> None:
    """Keep ``llmgw_spend_anomaly`` current: recompute every ``interval_s`` in a worker thread until cancelled.
    A failed refresh is logged and retried at the next interval."""
    while True:
        try:
            metrics.set_spend_anomalies(await asyncio.to_thread(spend_anomalies, db_path, by))
        except Exception as exc:
            log.warning("could not compute spend anomalies from %s: %s", db_path, exc)
        await asyncio.sleep(interval_s)
