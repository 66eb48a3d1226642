"""Rate limits and budgets per key and per team, reserved before the upstream call and settled after it.

Contracts:
- Only exchanges with a key (``ex.principal``) are limited; an open proxy has no limits. A count-tokens request
  counts against rpm only (it costs nothing and spends no tokens).
- Before routing: requests-per-minute (exactly, over a sliding minute) and tokens-per-minute (the request's
  estimate: its prompt at ~4 bytes a token plus its output limit) for the key and its team; and the request's
  *maximum possible cost* (prompt estimate plus output limit at the dearest of the alias's targets) against each
  daily and monthly budget (UTC) of the key and the team. All or nothing, atomically.
- The output limit is the client's own (the format's :meth:`~llmgw.formats.base.WireFormat.output_cap`). A chat
  request without one that tpm or a budget applies to is given ``default_max_tokens`` (``[server]``), written into
  the canonical body (``max_completion_tokens``) and, through the format's ``set_output_cap``, into the client's
  own body for a same-format upstream: the upstream is never asked for more than was reserved.
- A budget on an alias with an unpriced target refuses every request to it with 403 ``unpriced_model`` naming
  the target and the ``[prices]`` entry to add: a budget cannot be kept on an unknown price.
- A refusal is 429 with ``Retry-After`` naming the limit; for a budget, which budget, what this request
  reserved and why ("this request could cost up to $X; $Y of $Z is left"), and when the budget resets.
- After the answer (or the failure): the reservation (``ex.reservation``) is replaced by the real tokens and the
  exchange's cost (``ex.cost_usd``, priced once by the meter); a failed request releases its budget hold (its real
  cost is 0). So concurrent bursts overshoot a budget by at most one request.
- A client that hangs up while the store is reserving (which cancels the request) does not leave the reservation
  held until the period ends: the reservation is completed and kept on ``ex.reservation``, so the way out settles it
  as nothing used.
- When the shared store is down, budgets fail closed (503, no upstream call) and rate limits fail open with a
  warning (counted in ``open_on_error``).
"""

from __future__ import annotations

import calendar
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..errors import GatewayError, PermissionDenied, RateLimited
from ..exchange import Exchange, Usage
from ..formats import FORMATS
from ..pricing import PriceTable
from ..profile import Budget, TeamConfig
from ..store.keys import KeyRecord
from ..store.shared import Denial, Hold, SharedState, StateUnavailable, Window
from ..uncancelled import to_the_end
from .base import Stage

log = logging.getLogger("llmgw.limits")

DEFAULT_MAX_TOKENS = 4096   # the output limit reserved (and sent) when the client gives none; [server] changes it
_OWNER_CACHE_LIMIT = 4096   # owners whose limits are kept built (see LimitsStage._owner_limits)

OwnerLimits = tuple[Window | None, Window | None, list[tuple[Hold, str]]]   # rpm, tpm, (budget hold, its name)


@dataclass(slots=True)
class Reservation:
    """What one exchange holds between ``request`` and ``response`` (``ex.reservation``); ``cap`` is the output
    limit the gateway must send because the client gave none (None: the client's own stands)."""

    windows: list[Window]
    holds: list[Hold]
    cap: int | None = None


def periods(now: float) -> list[tuple[str, str, str, int]]:
    """(period name, counter suffix, reset time ISO, ttl seconds) for the current UTC day and month."""
    today = datetime.fromtimestamp(now, UTC)
    tomorrow = (today + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(today.year, today.month)[1]
    next_month = (today.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=days))
    return [("daily", f"day:{today:%Y-%m-%d}", f"{tomorrow:%Y-%m-%dT%H:%M:%SZ}", int(tomorrow.timestamp() - now) + 60),
            ("monthly", f"month:{today:%Y-%m}", f"{next_month:%Y-%m-%dT%H:%M:%SZ}",
             int(next_month.timestamp() - now) + 60)]


def budget_counter(owner: str, suffix: str) -> str:
    """The counter key of an owner's (``team:search``, ``key:ci``) spend in a period."""
    return f"llmgw:budget:{owner}:{suffix}"


class LimitsStage(Stage):
    def __init__(self, state: SharedState, prices: PriceTable, teams: Mapping[str, TeamConfig], *,
                 default_max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.state = state
        self.prices = prices
        self.teams = teams
        self.default_max_tokens = default_max_tokens
        self.open_on_error = 0
        self._periods: tuple[int, list[tuple[str, str, str, int]]] = (-1, [])  # (second, periods(second))
        self._owners: dict[tuple[object, ...], tuple[object, OwnerLimits]] = {}

    def _periods_at(self, now: float) -> list[tuple[str, str, str, int]]:
        """:func:`periods` computed once a second (formatting dates is the dearest part of planning)."""
        second = int(now)
        if self._periods[0] != second:
            self._periods = (second, periods(second))
        return self._periods[1]

    def _estimate(self, ex: Exchange) -> tuple[int, int | None]:
        """The prompt's estimated tokens and the client's own output limit (None: none given)."""
        wire = FORMATS.get(ex.client_format)
        max_out = wire.output_cap(ex) if wire is not None else None
        return ex.estimated_input_tokens(), max_out if max_out is None or max_out >= 0 else None

    def _max_cost(self, ex: Exchange, prompt: int, max_out: int) -> float:
        if ex.model is None:
            return 0.0
        usage = Usage(input_tokens=prompt, output_tokens=max_out)
        return max((self.prices.cost(t, usage) for t in ex.model.targets), default=0.0)

    def plan(self, ex: Exchange, record: KeyRecord, now: float) -> Reservation:
        free = ex.endpoint == "count_tokens"
        prompt, max_out = self._estimate(ex)
        out = self.default_max_tokens if max_out is None else max_out
        tokens = prompt + out
        team = self.teams.get(record.team)
        owners = [("key", record.id, record.rpm, record.tpm, record.budget)]
        if team is not None:
            owners.append(("team", record.team, team.rpm, team.tpm, team.budget))
        windows: list[Window] = []
        holds: list[Hold] = []
        cost = None
        for owner in owners:
            rpm, tpm, budgets = self._owner_limits(*owner, now)
            if rpm is not None:
                windows.append(rpm)
            if free:
                continue
            if tpm is not None:
                windows.append(Window(tpm.key, "tpm", tpm.limit, tokens, tpm.label))
            for hold, which in budgets:
                if cost is None:
                    refuse_unpriced(self.prices, ex, which)
                    cost = self._max_cost(ex, prompt, out)
                holds.append(Hold(hold.key, hold.limit, cost, hold.ttl_s, hold.label, hold.resets))
        reserved_output = holds or any(w.kind == "tpm" for w in windows)
        cap = out if max_out is None and ex.endpoint == "chat" and reserved_output else None
        return Reservation(windows, holds, cap)

    def _owner_limits(self, kind: str, name: str, rpm: int | None, tpm: int | None, budget: Budget | None,
                      now: float) -> OwnerLimits:
        """The limits of the owner ``kind`` ("key", "team") ``name`` as the store takes them, built once a second:
        its rpm window (whole: every request counts 1), its tpm window and its budget holds, each named ("team
        search daily budget") (the tpm window and the holds with a cost of 0, to be copied with the request's)."""
        periods_now = self._periods_at(now)
        cache_key = (kind, name, rpm, tpm, budget)
        cached = self._owners.get(cache_key)
        if cached is not None and cached[0] is periods_now:
            return cached[1]
        owner, label = f"{kind}:{name}", f"{kind} {name}"
        rpm_window = None if rpm is None else Window(f"llmgw:rpm:{owner}", "rpm", rpm, 1,
                                                     f"{label} requests per minute ({rpm})")
        tpm_window = None if tpm is None else Window(f"llmgw:tpm:{owner}", "tpm", tpm, 0,
                                                     f"{label} tokens per minute ({tpm})")
        holds = []
        for period, suffix, resets, ttl in periods_now:
            limit = getattr(budget, period) if isinstance(budget, Budget) else None
            if limit is not None:
                holds.append((Hold(budget_counter(owner, suffix), limit, 0.0, ttl,
                                   f"{label} {period} budget (${limit:.2f})", resets), f"{label} {period} budget"))
        limits = (rpm_window, tpm_window, holds)
        if len(self._owners) >= _OWNER_CACHE_LIMIT:
            self._owners.clear()
        self._owners[cache_key] = (periods_now, limits)
        return limits

    def send_cap(self, ex: Exchange, tokens: int) -> None:
        """Make the upstream honour the output limit that was reserved: in the canonical body and, for a
        same-format upstream, in the client's own (see the module contract)."""
        ex.body["max_completion_tokens"] = tokens
        wire = FORMATS.get(ex.client_format)
        if wire is not None:
            wire.set_output_cap(ex, tokens)

    async def request(self, ex: Exchange) -> None:
        record = ex.principal
        if record is None:
            return
        now = time.time()
        plan = self.plan(ex, record, now)
        if not plan.windows and not plan.holds:
            return
        if plan.cap is not None:
            self.send_cap(ex, plan.cap)
        try:
            denial = await self._acquire(ex, plan, now)
        except StateUnavailable as exc:
            if plan.holds:
                raise GatewayError(f"the budget store is unavailable ({exc}); refusing rather than overspending",
                                   status=503, code="state_unavailable") from None
            self.open_on_error += 1
            log.warning("shared state unavailable (%s): rate limits not enforced for %s", exc, ex.id)
            ex.note("limits", "unenforced", reason="shared state unavailable")
            return
        if denial is not None:
            hold = next((h for h in plan.holds if h.label == denial.label), None) if denial.budget else None
            spent = await self._spent(hold)
            refusal = _refusal(denial, now, hold, spent)
            ex.note("limits", "refused", limit=denial.label, budget=denial.budget, retry_after_s=refusal.retry_after,
                    resets=denial.resets or None, spent_usd=spent, limit_usd=hold.limit if hold else None,
                    reserved_usd=hold.amount if hold else None)
            raise refusal
        ex.reservation = plan
        ex.note("limits", "admitted", windows=[w.label for w in plan.windows], budgets=[h.label for h in plan.holds],
                reserved_tokens=next((w.cost for w in plan.windows if w.kind == "tpm"), None),
                reserved_usd=plan.holds[0].amount if plan.holds else None)

    async def _acquire(self, ex: Exchange, plan: Reservation, now: float) -> Denial | None:
        """The store's ``acquire``, completed even when the request is cancelled meanwhile (see the module contract);
        the cancellation is passed on once what it reserved is on ``ex.reservation``."""
        acquiring = self.state.acquire(ex.id, plan.windows, plan.holds, now)
        if not self.state.suspends:   # in-process: no cancellation can land inside, no task to pay for
            return await acquiring

        def keep(denial: Denial | None) -> None:
            if denial is None:
                ex.reservation = plan

        return await to_the_end(acquiring, keep)

    async def _spent(self, hold: Hold | None) -> float | None:
        """What the budget counter of ``hold`` has spent and reserved so far (None when it cannot be read)."""
        if hold is None:
            return None
        try:
            return await self.state.spent(hold.key)
        except StateUnavailable:
            return None

    @property
    def response_suspends(self) -> bool:  # type: ignore[override]
        """Settling waits on the store unless it is the in-process one."""
        return self.state.suspends

    async def response(self, ex: Exchange) -> None:
        plan, ex.reservation = ex.reservation, None
        if plan is None:
            return
        # Never give back more than was held: what an upstream reports is made sane by the meter, and a negative
        # or non-finite figure that still got here settles as nothing used.
        used_tokens = max(0, int(ex.usage.input_tokens + ex.usage.output_tokens))
        used_usd = ex.cost_usd if math.isfinite(ex.cost_usd) and ex.cost_usd > 0 else 0.0
        try:
            await self.state.settle(ex.id, plan.windows, plan.holds, used_tokens, used_usd, time.time())
        except StateUnavailable as exc:
            log.warning("shared state unavailable (%s): could not settle %s", exc, ex.id)


def refuse_unpriced(prices: PriceTable, ex: Exchange, budget: str) -> None:
    """A budget cannot be kept on an unknown price: 403 ``unpriced_model`` when any target of the alias has none
    (a free kind's target is priced at zero). Whether a target is priced is memoised per target in ``prices``."""
    missing = prices.unpriced(ex.model.targets) if ex.model is not None else []
    if missing:
        names = ", ".join(t.name for t in missing)
        raise PermissionDenied(f"the {budget} cannot be kept on model {ex.alias!r}: {names} has no price; add"
                               f' [prices] "{missing[0].name}" = {{ input = …, output = … }} (USD per 1M tokens)'
                               " to the profile", code="unpriced_model")


def usd(value: float) -> str:
    """Dollars as people read them: cents from $1 up (``$1,250.00``), four decimals below (``$0.0241``), and at
    least two significant digits for less than a hundredth of a cent (``$0.000012``)."""
    if value <= 0:
        return "$0"
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:.{max(4, 1 - math.floor(math.log10(value)))}f}"


def budget_message(label: str, resets: str, hold: Hold | None, spent: float | None) -> str:
    """Why a budget refused: spent outright, or left with less than this request's maximum possible cost (which
    is reserved before the call)."""
    if hold is None or spent is None:
        return f"{label} cannot cover this request; it resets at {resets}"
    left = max(0.0, hold.limit - spent)
    if left <= 0:
        return f"{label} is spent ({usd(spent)} used); it resets at {resets}"
    return (f"{label} cannot cover this request: it could cost up to {usd(hold.amount)} (its prompt and max_tokens"
            f" at the dearest target, reserved before the call) and {usd(left)} of {usd(hold.limit)} is left;"
            f" lower max_tokens, or wait until it resets at {resets}")


def _refusal(denial: Denial, now: float, hold: Hold | None = None, spent: float | None = None) -> RateLimited:
    """The 429 for ``denial``; for a budget, ``hold`` is the reservation it refused and ``spent`` what its counter
    held at that moment (see :func:`budget_message`)."""
    if denial.budget:
        resets = datetime.strptime(denial.resets, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        return RateLimited(budget_message(denial.label, denial.resets, hold, spent),
                           retry_after=max(1.0, resets - now), code="budget_exceeded")
    return RateLimited(f"rate limit reached: {denial.label}; retry after {denial.retry_after:.0f}s",
                       retry_after=denial.retry_after)
