"""Shared state for rate limits and budgets: one small interface, an in-process and a Redis implementation.

Contracts (:class:`SharedState`):
- ``acquire(request_id, windows, holds, now)`` is atomic: either every rate window has room for its cost and every
  budget has room for its hold — and all are recorded — or nothing is recorded and a :class:`Denial` says which
  limit refused and when to retry. Rate windows slide over the last 60 s, exactly: a log of admissions, each
  costing 1 (rpm) or its tokens (tpm: reserved, then as used once settled).
- ``settle(request_id, windows, holds, now)`` replaces what was reserved with what was used (0 releases it).
- Budgets are counters per period key (``…:day:2026-11-25``, ``…:month:2026-11``) that expire after the period.
- :class:`MemoryState` serves one process. :class:`~llmgw.store.shared_redis.RedisState` serves many, one round
  trip per call.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

WINDOW_S = 60.0


@dataclass(slots=True, unsafe_hash=True)   # made per request, never changed: not frozen (4x dearer to make)
class Window:
    """A sliding 60-second rate window: ``kind`` "rpm" counts admissions, "tpm" sums tokens."""

    key: str
    kind: str
    limit: int
    cost: int
    label: str           # for messages: "key ci rpm", "team search tpm"


@dataclass(slots=True, unsafe_hash=True)   # made per request, never changed: not frozen (4x dearer to make)
class Hold:
    """A budget reservation of ``amount`` USD against ``limit`` on the counter ``key`` (expiring after ``ttl_s``)."""

    key: str
    limit: float
    amount: float
    ttl_s: int
    label: str           # "team search daily budget ($5.00)"
    resets: str          # "2026-11-26T00:00:00Z"


class StateUnavailable(Exception):
    """The shared store cannot be reached (Redis down): budgets fail closed, rate limits may fail open."""


@dataclass(frozen=True, slots=True)
class Denial:
    label: str
    retry_after: float
    budget: bool
    resets: str = ""


class SharedState(Protocol):
    suspends: bool   # whether its methods wait on I/O (so a cancellation can land inside one)

    async def acquire(self, request_id: str, windows: Sequence[Window], holds: Sequence[Hold],
                      now: float) -> Denial | None: ...

    async def settle(self, request_id: str, windows: Sequence[Window], holds: Sequence[Hold],
                     used_tokens: int, used_usd: float, now: float) -> None: ...

    async def spent(self, key: str) -> float: ...

    async def seed(self, key: str, amount: float, ttl_s: int) -> None:
        """Start a budget counter at ``amount`` (from the request log) unless it exists already."""

    async def close(self) -> None: ...


class _Log:
    """One rate window's admissions, oldest first: their times and costs in two deques (a float and an int each,
    no tuple per admission: a busy window holds a minute of traffic), the sequence number of the next admission
    (an admission's own is ``next_seq`` less the admissions after it, so none is stored) and their ``total``.
    Settling a request's tpm admission is O(1): ``pending`` finds its sequence number by request id, and the used
    tokens replace the reserved ones in place (an admission settles moments after it was made, at the deque's
    right end, where indexing is cheap)."""

    __slots__ = ("costs", "next_seq", "pending", "times", "total")

    def __init__(self) -> None:
        self.times: deque[float] = deque()
        self.costs: deque[int] = deque()
        self.total = 0
        self.next_seq = 0                               # the sequence number of the next admission
        self.pending: dict[str, tuple[int, int]] = {}   # request id -> (sequence number, reserved cost)

    def oldest(self, now: float) -> float:
        """When the oldest admission in the window was made (``now`` when there is none)."""
        return self.times[0] if self.times else now

    def trim(self, now: float) -> None:
        times, costs, cutoff = self.times, self.costs, now - WINDOW_S
        while times and times[0] <= cutoff:
            times.popleft()
            self.total -= costs.popleft()
        if len(self.pending) > 2 * len(times) + 1024:   # admissions that left the window unsettled
            oldest = self.next_seq - len(times)
            self.pending = {rid: p for rid, p in self.pending.items() if p[0] >= oldest}

    def admit(self, now: float, request_id: str, cost: int, *, settles: bool) -> None:
        if settles:
            self.pending.setdefault(request_id, (self.next_seq, cost))  # the request's first admission counts
        self.next_seq += 1
        self.times.append(now)
        self.costs.append(cost)
        self.total += cost

    def settle(self, request_id: str, used: int) -> None:
        found = self.pending.pop(request_id, None)
        if found is None:
            return
        seq, cost = found
        at = seq - (self.next_seq - len(self.times))     # its place in the window; < 0: it has left it
        if at >= 0:
            self.costs[at] = used
            self.total += used - cost


class MemoryState:
    """In-process state for a single worker. Every method is atomic on the event loop (no awaits inside); each
    costs O(1) per window and budget, amortised, whatever the traffic (see :class:`_Log`)."""

    suspends = False   # no method awaits anything: a cancellation can never land inside one

    def __init__(self) -> None:
        self._logs: dict[str, _Log] = {}
        self._counters: dict[str, tuple[float, float]] = {}  # key -> (amount, expires_at)

    def _counter(self, key: str, now: float) -> float:
        amount, expires = self._counters.get(key, (0.0, 0.0))
        return amount if expires > now else 0.0

    async def acquire(self, request_id: str, windows: Sequence[Window], holds: Sequence[Hold],
                      now: float) -> Denial | None:
        logs = self._logs
        for w in windows:
            log = logs.get(w.key)
            if log is None:
                log = logs[w.key] = _Log()
            log.trim(now)
            if log.total + w.cost > w.limit:
                return Denial(w.label, max(1.0, log.oldest(now) + WINDOW_S - now), budget=False)
        for h in holds:
            if self._counter(h.key, now) + h.amount > h.limit:
                return Denial(h.label, 0.0, budget=True, resets=h.resets)
        for w in windows:
            logs[w.key].admit(now, request_id, w.cost, settles=w.kind == "tpm")
        for h in holds:
            self._add(h.key, h.amount, h.ttl_s, now)
        return None

    def _add(self, key: str, amount: float, ttl_s: int, now: float) -> None:
        current, expires = self._counters.get(key, (0.0, 0.0))
        if expires <= now:
            current, expires = 0.0, now + ttl_s
        self._counters[key] = (current + amount, expires)

    async def settle(self, request_id: str, windows: Sequence[Window], holds: Sequence[Hold],
                     used_tokens: int, used_usd: float, now: float) -> None:
        for w in windows:
            if w.kind == "tpm":
                log = self._logs.get(w.key)
                if log is not None:
                    log.settle(request_id, used_tokens)
        for h in holds:
            self._add(h.key, used_usd - h.amount, h.ttl_s, now)

    async def spent(self, key: str) -> float:
        return self._counter(key, time.time())

    async def seed(self, key: str, amount: float, ttl_s: int) -> None:
        now = time.time()
        if self._counter(key, now) == 0.0 and amount:
            self._counters[key] = (amount, now + ttl_s)

    async def close(self) -> None:
        return None
