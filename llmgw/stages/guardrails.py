"""Guardrails: the ``[[guardrails]]`` rules and the teams' data classes, applied to requests and answers.

Contract (how the pipeline calls it; see docs/guardrails.md):
- ``await request(ex)``: refuses (403 ``data_class_not_allowed``) a team whose ``data_class`` the alias's
  ``data_classes`` do not list (no team, no class, or an alias without ``data_classes``: no check); refuses (400
  ``duplicate_key``) a body that repeats a key in one object (the gateway and the upstream must read the same
  values); then scans every text of the request (the format's walk; adjacent text parts read as one) with the
  request-side rules (a text they found clean in an earlier request is not scanned again: see
  :mod:`~llmgw.guardrails.clean_texts`). ``block`` → ``ex.fail(PermissionDenied)`` (403 ``guardrail_blocked``, the
  rule's name and reason in the message), nothing reaches a provider. ``redact`` → ``ex.client_body`` and
  ``ex.body`` are rewritten in place with placeholders (one table for both, so the same value gets the same
  placeholder whichever body a provider is sent). ``flag`` → findings recorded only. Bodies over
  :data:`OFFLOAD_BYTES` are scanned in a worker thread; a cancelled request stops its scan.
- The scan of each phase has a CPU budget (:data:`~llmgw.guardrails.engine.DEFAULT_BUDGET_S`; a request whose raw
  body is under :data:`UNMETERED_BYTES` is scanned without reading the clock, unless the budget is under
  :data:`SMALL_SCAN_S`: even dense with phone numbers it is scanned in tens of milliseconds, and holds far fewer
  values than the cap); past it, a rule with ``over_budget = "block"`` (the default) refuses the request (413
  ``guardrail_scan_budget``) or the answer, and rules with ``over_budget = "allow"`` let it through unscanned, with
  a finding saying so.
- The log keeps only what the guard has judged: ``ex.raw_body`` is cleared (the log then serialises the redacted
  body), or replaced by a PII-masked copy when PII was flagged or the request blocked; an exchange whose request
  was not scanned to the end (refused before the guard, a duplicate key, the budget) keeps no request body at all.
- ``await after_route(ex)`` — after routing (or a cache hit), before the answer is rendered: restores this
  request's placeholders into the answer and applies the response-side rules, to a whole reply (``ex.reply`` is
  replaced; ``raw`` dropped) or a stream (:meth:`wrap_stream`). A response ``block`` fails a whole reply with 403;
  a stream is ended with an error event.
- ``after_answer(ex)`` — once the answer has been written, before any stage's ``response``: puts placeholders
  back into ``ex.reply`` / ``ex.streamed_text`` so what later stages keep (cache, log) holds no restored value.
- ``await response(ex)``: withholds unscanned request bodies from the log (above), drops the exchange's guard
  state (``ex.guard``) and counts findings per (rule, action) in :attr:`GuardrailStage.counts`.
- Findings (log dicts, never values) go to ``ex.findings`` as they are found, so the cache (which stores nothing
  for an exchange with findings) and the log read them there.

Place it after the meter and auth stages (it reads ``ex.team``/``ex.model``) and before the cache stage: the
cache's keys and stored answers are then what the guard left (placeholders, never redacted values).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import GatewayError, PermissionDenied
from ..exchange import Exchange, UpstreamReply
from ..formats import canonical, named
from ..formats.validate import check_duplicate_keys
from ..guardrails.body import scan_body
from ..guardrails.clean_texts import CleanTexts
from ..guardrails.engine import DEFAULT_BUDGET_S, Budget, BudgetExceeded, Scan, ScanCancelled, as_redacting, over_budget
from ..guardrails.redact import Placeholders
from ..guardrails.rules import Rule
from ..guardrails.stream import Blocked, GuardedEvents, StreamGuard, pipe_factory
from ..profile import ModelConfig, Profile
from .base import Stage

OFFLOAD_BYTES = 256 * 1024   # request bodies larger than this are scanned in a worker thread
UNMETERED_BYTES = 8 * 1024   # request bodies smaller than this are scanned without counting against the budget
SMALL_SCAN_S = 0.25          # ... unless the budget is smaller than this (8 kB of dense phone numbers: ~30 ms)


@dataclass(slots=True)
class GuardState:
    """What the stage knows about one exchange between ``request`` and ``response`` (``ex.guard``)."""

    table: Placeholders = field(default_factory=Placeholders)
    response_scan: Scan | None = None
    blocked_stream: GatewayError | None = None
    rendered: bool = False
    scanned: bool = False          # the request was judged to the end: its body may be logged (as the guard left it)


def _data_class(team: Any) -> str | None:
    """A team's ``data_class``, from a ``TeamConfig`` or a raw ``[teams.*]`` table."""
    value = team.get("data_class") if isinstance(team, Mapping) else getattr(team, "data_class", None)
    return value if isinstance(value, str) and value else None


def _note_scan(ex: Exchange, phase: str, found: list[dict[str, Any]]) -> None:
    """Tell ``ex``'s story of one phase's scan: per (rule, entity kind, action), how many findings (never a
    value or a span)."""
    if not found:
        ex.note("guardrails", "scanned", phase=phase, findings=[])
        return
    counts: Counter[tuple[str, str, str]] = Counter()
    for f in found:
        counts[(f["rule"], f["entity"], f["action"])] += f.get("count", 1)
    ex.note("guardrails", "scanned", phase=phase, findings=[
        {"rule": rule, "entity": entity, "action": action, "count": count}
        for (rule, entity, action), count in counts.items()])


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(orjson.dumps(value))


class GuardrailStage(Stage):
    """The guardrail pipeline stage (see the module contract)."""

    response_suspends = False   # its response phase never waits on I/O

    def __init__(self, rules: Sequence[Rule], models: Mapping[str, ModelConfig],
                 teams: Mapping[str, Any], *, budget_s: float | None = DEFAULT_BUDGET_S) -> None:
        """``teams`` maps team names to ``TeamConfig`` s or raw ``[teams.*]`` tables (only ``data_class`` is
        read); ``budget_s`` is the CPU time each phase's scan of one exchange may take (``None``: unlimited)."""
        self.rules = tuple(rules)
        self.request_rules = tuple(r for r in self.rules if r.applies("request"))
        self.response_rules = tuple(r for r in self.rules if r.applies("response"))
        self._log_mask_rules = as_redacting(self.rules)
        self.models = models
        self.teams = teams
        self.budget_s = budget_s
        self._meter_small = budget_s is not None and budget_s < SMALL_SCAN_S   # a budget even a small body may pass
        self.counts: Counter[tuple[str, str]] = Counter()
        self.clean_texts = CleanTexts()   # request texts the request rules found nothing in: not scanned again
        # Data classes apply only when some team has one and some model alias lists approved ones.
        self._data_classes = any(_data_class(t) for t in teams.values()) and any(
            m.data_classes for m in models.values())
        for rule in self.rules:     # load what detectors load lazily now, not while a request waits
            rule.detector.find("call +1 415 555 2671 or (415) 555-2671, jane@example.com")

    @classmethod
    def from_profile(cls, profile: Profile) -> GuardrailStage:
        """The stage for ``profile``'s ``[[guardrails]]`` (parsed with the profile) and ``[teams]``."""
        return cls(profile.guardrails, profile.models, profile.teams)

    @property
    def active(self) -> bool:
        """Whether the stage can do anything at all (rules, or teams with a data class)."""
        return bool(self.rules) or any(_data_class(t) for t in self.teams.values())

    # --- request phase ---

    async def request(self, ex: Exchange) -> None:
        refusal = self._data_class_refusal(ex) if self._data_classes else None
        if refusal is not None:
            ex.note("guardrails", "data_class_refused", team=ex.team, data_class=_data_class(self.teams.get(ex.team)))
            ex.findings.append({
                "rule": "data_classes", "kind": "data_class", "entity": "data_class", "action": "block",
                "phase": "request", "where": "model", "span": None, "why": refusal.message})
            ex.fail(refusal)
            return
        if not self.rules:
            return
        state = ex.guard = GuardState()
        if not self.request_rules:
            state.scanned = True
            return
        size = len(ex.raw_body)
        if size > OFFLOAD_BYTES:   # a big body: let the event loop breathe while it is scanned
            budget = Budget(self.budget_s)
            try:
                await asyncio.to_thread(self._judge_request, ex, state, budget)
            except asyncio.CancelledError:
                budget.cancel()
                raise
        elif not size or size >= UNMETERED_BYTES or self._meter_small:   # no bytes (a replay): size unknown
            # On the loop nothing else runs meanwhile: wall time is this scan's CPU time, and cheaper to read.
            self._judge_request(ex, state, Budget(self.budget_s, clock=time.perf_counter))
        else:   # a small body is scanned in far less than its budget, and holds far fewer values than the cap
            self._judge_request(ex, state, None)

    def _data_class_refusal(self, ex: Exchange) -> PermissionDenied | None:
        data_class = _data_class(self.teams.get(ex.team)) if ex.team else None
        model = ex.model or self.models.get(ex.alias)
        if not data_class or model is None or not model.data_classes:
            return None
        if data_class in model.data_classes:
            ex.note("guardrails", "data_class_allowed", team=ex.team, data_class=data_class)
            return None
        approved = ", ".join(repr(c) for c in model.data_classes)
        return PermissionDenied(f"team {ex.team!r} sends {data_class!r} data, and model alias {ex.alias!r} is approved"
                                f" only for {approved} (models.{ex.alias}.data_classes)",
                                code="data_class_not_allowed", param="model")

    def _judge_request(self, ex: Exchange, state: GuardState, budget: Budget | None) -> None:
        """The request phase's work, on the loop or in a worker thread; never raises. ``budget`` None: unmetered."""
        scan = Scan(self.request_rules, "request", state.table, budget=budget, clean=self.clean_texts)
        outer = budget.enter() if budget is not None else True
        try:
            try:
                if ex.raw_body:   # not the parsed body's keys now: an earlier stage may have added one
                    check_duplicate_keys(ex.raw_body, keys=ex.raw_keys)
                self._scan_request(ex, state, scan)
            except GatewayError as error:
                ex.fail(error)
            except ScanCancelled:
                pass
            except BudgetExceeded as exceeded:
                error = over_budget(self.request_rules, scan, "the request", str(exceeded))
                if error is not None:
                    ex.fail(error)
            found = scan.drain()
            ex.findings.extend(found)
            _note_scan(ex, "request", found)
        finally:
            if budget is not None:
                budget.leave(outer)

    def _scan_request(self, ex: Exchange, state: GuardState, scan: Scan) -> None:
        body = ex.client_body or ex.body
        table = state.table
        wire = named(ex.client_format)
        scan_body(lambda fn: wire.request_texts(ex.endpoint, body, fn), scan, on_text=table.reserve)
        if ex.body is not body and ex.body and scan.blocked is None:   # the translation: its texts may be joined
            silent = Scan(self.request_rules, "request", table, budget=scan.budget, clean=self.clean_texts)
            scan_body(lambda fn: canonical().request_texts(ex.endpoint, ex.body, fn), silent)
            if silent.blocked is not None:      # only the translation shows it: refuse all the same
                scan.blocked = silent.blocked
                scan.findings += [f for f in silent.drain() if f["action"] == "block"][:1]
        if scan.blocked is not None or scan.unredacted_pii:
            ex.raw_body = self._masked_copy(ex, _copy(body), table) if self._log_mask_rules else b""
        elif scan.redacted:
            ex.raw_body = b""
        state.scanned = True
        if scan.blocked is not None:
            ex.fail(PermissionDenied(f"request blocked by guardrail {scan.blocked}", code="guardrail_blocked"))

    def _masked_copy(self, ex: Exchange, original: dict[str, Any], table: Placeholders) -> bytes:
        """The request as the log may keep it: every PII value still in it replaced, whatever the rules'
        actions (flagged values, texts left unscanned after a block)."""
        masker = Scan(self._log_mask_rules, "request", table, record=False)
        scan_body(lambda fn: named(ex.client_format).request_texts(ex.endpoint, original, fn), masker)
        return orjson.dumps(original)

    # --- answer phase (before rendering) ---

    async def after_route(self, ex: Exchange) -> None:
        """Restore placeholders into the answer and apply the response rules (see the module contract)."""
        state = ex.guard
        if state is None or ex.error is not None or not (self.response_rules or state.table.restorable):
            return   # nothing to restore, nothing to check
        if self.response_rules:
            allow = frozenset(state.table.restorable.values())
            state.response_scan = Scan(self.response_rules, "response", state.table, allow=allow, restoring=False,
                                       budget=Budget(self.budget_s))
        if ex.reply is not None:
            self._guard_reply(ex, state)
        elif ex.first_event is not None and ex.events is not None:
            await self.wrap_stream(ex)

    def _guard_reply(self, ex: Exchange, state: GuardState) -> None:
        reply = ex.reply
        assert reply is not None
        scan = state.response_scan
        table = state.table
        if not table.restorable and scan is None:
            return
        body = _copy(reply.body)
        wire = named(reply.format)
        walk = lambda fn: wire.answer_texts(body, fn)  # noqa: E731
        error: GatewayError | None = None
        if scan is None:
            changed = scan_body(walk, Scan((), "response", table), before=table.restore)
        else:
            with scan.budget.running() if scan.budget is not None else nullcontext():
                try:
                    changed = scan_body(walk, scan, before=table.restore)
                except BudgetExceeded as exceeded:
                    changed = scan_body(walk, Scan((), "response", table), before=table.restore)
                    error = over_budget(self.response_rules, scan, "the answer", str(exceeded))
        if scan is not None and (scan.blocked is not None or error is not None):
            masker = Scan(self._log_mask_rules, "response", table, record=False, restoring=False)
            scan_body(walk, masker)     # the log's copy: PII after the block point masked too
            changed = True
        if changed:
            ex.reply = UpstreamReply(body, None, reply.usage, reply.format)
        if table.restorable:
            ex.note("guardrails", "restored", placeholders=len(table.restorable))
        if scan is not None:
            found = scan.drain()
            ex.findings.extend(found)
            _note_scan(ex, "response", found)
            if error is not None:
                ex.fail(error)
            elif scan.blocked is not None:
                ex.fail(PermissionDenied(f"answer blocked by guardrail {scan.blocked}", code="guardrail_blocked"))
    async def wrap_stream(self, ex: Exchange) -> None:
        """Swap ``ex.first_event``/``ex.events`` for restored and response-checked ones. A block decided on the
        first event fails the exchange (403) and closes the upstream stream."""
        state = ex.guard
        if state is None or ex.first_event is None or ex.events is None:
            return
        make = pipe_factory(state.table, state.response_scan)
        if make is None:
            return
        if state.table.restorable:
            ex.note("guardrails", "restored", placeholders=len(state.table.restorable), stream=True)
        guard = StreamGuard(make)

        def on_block(error: GatewayError) -> None:
            state.blocked_stream = error

        try:
            first = guard.process(ex.first_event)
        except Blocked as blocked:
            await ex.events.aclose()  # type: ignore[attr-defined]
            ex.first_event = ex.events = None
            ex.fail(blocked.error())
            return
        ex.first_event = first[0]
        ex.events = GuardedEvents(guard, first[1:], ex.events, on_block)

    # --- after the answer was written ---

    def after_answer(self, ex: Exchange) -> None:
        """Mask restored values again in what stays on the exchange (see the module contract)."""
        state = ex.guard
        if state is None or state.rendered:
            return
        state.rendered = True
        scan = state.response_scan
        if scan is not None:
            found = scan.drain()
            ex.findings.extend(found)
            if found:
                _note_scan(ex, "response", found)
        if state.blocked_stream is not None:
            ex.fail(state.blocked_stream)
        table = state.table
        if not table.restorable:
            return
        if ex.reply is not None:
            body = _copy(ex.reply.body)
            named(ex.reply.format).answer_texts(body, lambda text, where: table.mask(text))
            ex.reply = UpstreamReply(body, None, ex.reply.usage, ex.reply.format)
        if ex.streamed_text:
            ex.streamed_text[:] = [table.mask("".join(ex.streamed_text))]

    async def response(self, ex: Exchange) -> None:
        state = ex.guard
        if self.request_rules and (state is None or not state.scanned):
            ex.raw_body, ex.client_body, ex.body = b"", {}, {}   # never judged to the end: the log keeps no body
        ex.guard = None
        for finding in ex.findings:
            self.counts[(finding["rule"], finding["action"])] += finding.get("count", 1)
