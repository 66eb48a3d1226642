"""The alert engine of a running server: fed finished requests, it raises each alert once and delivers it.

Contract:
- :meth:`AlertEngine.observe` is a meter listener: it appends the row to a bounded deque and returns (no other work
  per request; the oldest rows are dropped past ``max_rows``). Everything else runs on a timer every ``tick_s``
  (:meth:`AlertEngine.check`), on the batch that arrived since the last one: budget spend is counted, request
  bodies are digested for the loop detector in a worker thread, and every ``resync_s`` the request log is read in a
  worker thread (budget spend of every worker; the anomaly windows, their histories every ``history_s``).
- An alert is raised once per period: the engine claims it in the ledger (:mod:`.ledger`, shared by the workers of
  a state folder and kept across restarts); only the claimant logs it (``llmgw.alerts`` warning), publishes its
  record (``publish``, e.g. ``/admin/events`` as ``event: alert``) and posts it to the entry's webhook in a
  background task (:mod:`.delivery`), recording how the delivery ended.
- A webhook that cannot be resolved or is not an http(s) URL is reported once at start (by its reference, never its
  value); that entry's alerts are still logged and published.
- :meth:`AlertEngine.stop` checks the last batch, gives deliveries in flight up to ``drain_s`` to finish, then
  cancels them and closes the session and the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp

from ..profile import AlertConfig, Profile, SecretError
from ..store.log_backend import LogMissing, LogSource, LogUnavailable, open_reader
from .anomaly import GroupSpend, History, anomalies, read_history, read_spend
from .budgets import BudgetWatch, period_starts
from .delivery import Webhook, WebhookError
from .ledger import AlertLedger, open_ledger
from .loops import LoopDetector, prompt_digest
from .model import Alert, watches

log = logging.getLogger("llmgw.alerts")

Publish = Callable[[dict[str, Any]], None]
Found = tuple[AlertConfig, Alert, list[Alert]]
SEEN_FOR_S = 40 * 86400.0


class AlertEngine:
    """Budget, anomaly and loop alerts for ``profile.alerts`` (see the module contract)."""

    def __init__(self, profile: Profile, *, publish: Publish | None = None, tick_s: float = 1.0,
                 resync_s: float | None = None, history_s: float = 600.0, drain_s: float = 5.0,
                 max_rows: int = 100_000, webhook_options: Mapping[str, Any] | None = None) -> None:
        self.configs = profile.alerts
        self.source = LogSource.of(profile.state)
        self.folder = profile.state.db_path.parent
        self.publish = publish
        self.tick_s = tick_s
        self.resync_s = resync_s if resync_s is not None else (600.0 if profile.state.is_postgres else 60.0)
        self.history_s = history_s
        self.drain_s = drain_s
        self.webhook_options = dict(webhook_options or {})
        self.budget = BudgetWatch(profile.teams, profile.keys)
        self._budget_configs = [c for c in self.configs if c.kind == "budget"]
        self._anomaly_configs = [c for c in self.configs if c.kind == "anomaly"]
        self._loops = {c.label: LoopDetector(c.loop_count, c.loop_window_s)
                       for c in self._anomaly_configs if c.loop_count}
        self._histories: dict[str, History | None] = {}
        self._rows: deque[dict[str, Any]] = deque(maxlen=max_rows)
        self._seen: dict[tuple[str, str], float] = {}
        self._webhooks: dict[str, Webhook] = {}
        self._ledger: AlertLedger | None = None
        self._session: aiohttp.ClientSession | None = None
        self._timer: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._next_sync = 0.0
        self.raised: deque[Alert] = deque(maxlen=1000)   # what this process raised, oldest first

    @property
    def wants_rows(self) -> bool:
        """Whether :meth:`observe` has anything to do (budgets to watch or loops to detect)."""
        return bool((self._budget_configs and self.budget.budgets) or self._loops)

    def observe(self, row: dict[str, Any]) -> None:
        """The meter listener: keep the row for the next check. O(1), never blocks."""
        self._rows.append(row)

    # --- life -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the ledger, resolve the webhooks and start the timer."""
        try:
            self._ledger = await asyncio.to_thread(open_ledger, self.folder)
        except (OSError, sqlite3.Error) as exc:
            log.warning("alerts: cannot open %s (%s); alerts are kept in memory, so a restart may send one again",
                        self.folder / "alerts.db", exc)
        for config in self.configs:
            if config.webhook is None:
                continue
            try:
                self._webhooks[config.label] = Webhook(config.webhook.describe(), config.webhook.resolve(),
                                                       **self.webhook_options)
            except (SecretError, WebhookError) as exc:
                log.warning("alerts[%d].webhook: %s; its alerts are logged but not sent", config.index, exc)
        if self._webhooks:
            self._session = aiohttp.ClientSession()
        self._timer = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """See the module contract."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        with contextlib.suppress(Exception):
            await self.check()
        if self._deliveries:
            _done, pending = await asyncio.wait(set(self._deliveries), timeout=self.drain_s)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("alerts: %d webhook deliveries still retrying at shutdown were given up", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._ledger is not None:
            await asyncio.to_thread(self._ledger.close)
            self._ledger = None

    async def _run(self) -> None:
        while True:
            try:
                await self.check(sync=time.monotonic() >= self._next_sync)
            except Exception:
                log.exception("alerts: a check failed; trying again at the next one")
            await asyncio.sleep(self.tick_s)

    async def idle(self) -> None:
        """Wait until the deliveries started so far have ended (for tests and tools)."""
        while self._deliveries:
            await asyncio.wait(set(self._deliveries))

    # --- checking ---------------------------------------------------------------------------------------------

    async def check(self, *, sync: bool = False, now: float | None = None) -> list[Alert]:
        """Take the rows that arrived, evaluate every entry and raise what is new; with ``sync`` read the request
        log first. Returns the alerts this call raised."""
        async with self._lock:
            now = time.time() if now is None else now
            batch = list(self._rows)
            self._rows.clear()
            found: list[Found] = []
            if self._loops and batch:
                found += self._loop_alerts(await asyncio.to_thread(_digests, batch), now)
            if sync:
                self._next_sync = time.monotonic() + self.resync_s
                found += await self._sync(batch, now)
            else:
                for row in batch:
                    self.budget.observe(row)
            for config in self._budget_configs:
                found += [(config, alert, covered) for alert, covered in self.budget.crossings(config, now)]
            return await self._raise(found, now)

    async def _sync(self, batch: list[dict[str, Any]], now: float) -> list[Found]:
        due = [c for c in self._anomaly_configs
               if c.label not in self._histories or now - _read_at(self._histories[c.label]) >= self.history_s]
        try:
            spend, histories, groups = await asyncio.to_thread(self._read_log, batch, now, due)
        except (sqlite3.Error, LogUnavailable, OSError) as exc:
            log.warning("alerts: cannot read the request log (%s); trying again in %gs", exc, self.resync_s)
            for row in batch:
                self.budget.observe(row)
            return []
        self.budget.synced(spend)
        self._histories.update(histories)
        self._seen = {k: t for k, t in self._seen.items() if now - t < SEEN_FOR_S}
        for detector in self._loops.values():
            detector.prune(now)
        return [(config, alert, []) for config in self._anomaly_configs
                for alert in anomalies(config, groups.get(config.label, []), now)]

    def _read_log(self, batch: Sequence[dict[str, Any]], now: float, due: list[AlertConfig]
                  ) -> tuple[dict[Any, float], dict[str, History | None], dict[str, list[GroupSpend]]]:
        """Blocking: the budgets' spend, the histories that are due and the anomaly groups, from the log."""
        since = min([start for _p, _s, start, _r in period_starts(now)]
                    + [now - c.history_s for c in self._anomaly_configs])
        try:
            reader = open_reader(self.source)
        except LogMissing:
            return {}, {}, {}
        try:
            db = reader.report_db(since, None)
        finally:
            reader.close()
        try:
            spend = self.budget.read_log(db, now, batch) if self._budget_configs else {}
            histories = {c.label: read_history(db, c, now) for c in due}
            groups = {}
            for config in self._anomaly_configs:
                history = histories.get(config.label, self._histories.get(config.label))
                groups[config.label] = read_spend(db, config, history, now) if history is not None else []
            return spend, histories, groups
        finally:
            db.close()

    def _loop_alerts(self, digests: list[tuple[str, str, str, float]], now: float) -> list[Found]:
        out: list[Found] = []
        for config in self._anomaly_configs:
            detector = self._loops.get(config.label)
            if detector is None:
                continue
            for key, team, digest, moment in digests:
                if watches(config.teams, config.keys, "key", key, team) and detector.observe(key, digest, moment):
                    out.append((config, _loop_alert(config, key, team, digest, now), []))
        return out

    async def _raise(self, found: list[Found], now: float) -> list[Alert]:
        raised = []
        for config, alert, covered in found:
            ident = (alert.key, alert.period)
            if ident in self._seen:
                continue
            self._seen[ident] = now
            state = "pending" if config.label in self._webhooks else "logged"
            claimed = await self._claim(alert, state)
            for lower in covered:
                if (lower.key, lower.period) not in self._seen:
                    self._seen[(lower.key, lower.period)] = now
                    await self._claim(lower, "covered")
            if claimed:
                self._announce(config, alert)
                raised.append(alert)
        return raised

    async def _claim(self, alert: Alert, state: str) -> bool:
        if self._ledger is None:
            return True   # no ledger: this process's memory (self._seen) is the only guard
        try:
            return await asyncio.to_thread(self._ledger.claim, alert, state)
        except sqlite3.Error as exc:
            log.warning("alerts: cannot record alert %s (%s); raising it anyway", alert.key, exc)
            return True

    def _announce(self, config: AlertConfig, alert: Alert) -> None:
        log.warning("alert (%s): %s", alert.source, alert.text)
        self.raised.append(alert)
        if self.publish is not None:
            self.publish(alert.record())
        webhook = self._webhooks.get(config.label)
        if webhook is not None and self._session is not None:
            task = asyncio.create_task(self._deliver(webhook, alert))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, webhook: Webhook, alert: Alert) -> None:
        assert self._session is not None
        delivery = await webhook.post(self._session, alert.slack())
        if delivery.delivered:
            log.info("alert %s sent to %s (attempt %d)", alert.key, webhook.label, delivery.attempts)
        else:
            log.warning("alert %s could not be sent to %s after %d attempts: %s", alert.key, webhook.label,
                        delivery.attempts, delivery.problem)
        if self._ledger is not None:
            with contextlib.suppress(sqlite3.Error):
                await asyncio.to_thread(self._ledger.settle, alert, "sent" if delivery.delivered else "failed",
                                        delivery.attempts, delivery.problem)

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest alerts in the ledger with their delivery state (blocking)."""
        return self._ledger.recent(limit) if self._ledger is not None else [a.record() for a in self.raised][-limit:]


def _read_at(history: History | None) -> float:
    return history.read_at if history is not None else float("-inf")


def _digests(batch: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str, float]]:
    """``(key, team, digest, time)`` for the rows of ``batch`` that have a key and a request body (blocking)."""
    out = []
    for row in batch:
        key = row.get("key")
        if not key or row.get("request") is None:
            continue
        digest = prompt_digest(row["request"])
        if digest is not None:
            out.append((key, row.get("team") or "", digest, row.get("time") or 0.0))
    return out


def _loop_alert(config: AlertConfig, key: str, team: str, digest: str, now: float) -> Alert:
    from .anomaly import period_label

    window = f"{config.loop_window_s:g}s"
    text = (f"key {key} sent the same prompt {config.loop_count} times within {window} — a client stuck in a loop?")
    facts = {"key": key, "team": team, "prompt_digest": digest, "count": config.loop_count,
             "window_s": config.loop_window_s}
    return Alert("loop", f"loop:{config.label}:key:{key}", period_label(config.period, now), f"key {key}", text,
                 config.label, now, facts)
