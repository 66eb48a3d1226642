"""Shared state in Redis: rate windows and budget counters for every gateway process that points at one server.

Contracts (the same as :class:`~llmgw.store.shared.MemoryState`, see :mod:`llmgw.store.shared`):
- ``acquire`` and ``settle`` are each one Lua script run with EVALSHA (EVAL once when the server does not have it
  yet, e.g. after a restart): one round trip, atomic on the server. Commands go through
  :class:`~llmgw.store.resp.RespClient`: one pipelined connection for every request of the process.
  ``acquire`` checks every window and every budget before it records anything, so a refused request leaves no
  trace; the Denial names the first limit that refused, in the order given, exactly as MemoryState does.
- Times: windows use the **caller's** ``now`` (scores in the sorted sets are the callers' clocks), never Redis's
  clock, so that tests can drive time and so that the result is the MemoryState one for the same inputs. Every
  instance sharing a Redis must therefore run with a synchronised clock (NTP: an error of a few milliseconds
  shifts a window edge by as much, nothing more). Key TTLs (housekeeping only) run on Redis's clock: window
  keys expire ``KEY_TTL_S`` after their last admission, budget counters ``Hold.ttl_s`` after their creation
  (their keys name the day or month, so the TTL only frees memory).
- Budget arithmetic is done in the script with doubles (Lua numbers), and counters are stored as the shortest
  decimal that reads back as the same double: the sums are bit-for-bit the ones MemoryState computes in Python
  (INCRBYFLOAT would compute in long double and round differently).
- Any failure to talk to Redis (refused, reset, timed out, READONLY, OOM, ...) raises
  :class:`~llmgw.store.shared.StateUnavailable` within ``deadline_s`` (3 s by default): a request never hangs on
  the store. Budgets then fail closed and rate limits fail open (:mod:`llmgw.stages.limits`).
- Requires Redis >= 6.0 (``SET ... KEEPTTL``); not Redis Cluster (one script touches keys of several owners).

Keys, for a window key ``W`` (``llmgw:rpm:key:ci``): ``W`` a sorted set request_id -> admission time, ``W:c`` a
hash request_id -> cost (tokens for tpm, 1 for rpm), ``W:n`` the sum of the costs in the window. A budget
counter is a string holding USD at the key ``Hold.key`` (``llmgw:budget:team:search:day:2026-11-25``), so
``redis-cli GET`` shows the spend.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from .resp import RespClient, RespError
from .shared import WINDOW_S, Denial, Hold, StateUnavailable, Window

T = TypeVar("T")

KEY_TTL_S = 120  # window keys outlive the newest admission by this much (Redis clock): WINDOW_S plus clock slack

# Shared helpers of both scripts: the shortest exact decimal of a double, and adding to a budget counter.
_LIB = """
local function num(x)
  for p = 15, 17 do
    local s = string.format('%.' .. p .. 'g', x)
    if tonumber(s) == x then return s end
  end
  return string.format('%.17g', x)
end
local function add(key, delta, ttl)
  local current = redis.call('GET', key)
  if current then
    redis.call('SET', key, num(tonumber(current) + delta), 'KEEPTTL')
  else
    redis.call('SET', key, num(delta), 'EX', ttl)
  end
end
"""

# KEYS: per window W, W:c, W:n; then per hold its counter.
# ARGV: request_id, now, now - WINDOW_S, #windows, #holds, per window limit and cost, per hold limit, amount, ttl.
# Returns nil when admitted, {1, i, oldest admission or ''} when window i refused, {2, j, ''} when hold j did.
_ACQUIRE = _LIB + """
local rid, now, cutoff = ARGV[1], ARGV[2], ARGV[3]
local nw, nh = tonumber(ARGV[4]), tonumber(ARGV[5])
local function trim(z, c, n)
  local stale = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff)
  if #stale == 0 then return end
  local freed = 0
  for i = 1, #stale, 1000 do
    local chunk = {unpack(stale, i, math.min(i + 999, #stale))}
    for _, cost in ipairs(redis.call('HMGET', c, unpack(chunk))) do
      freed = freed + (tonumber(cost) or 0)
    end
    redis.call('HDEL', c, unpack(chunk))
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', cutoff)
  redis.call('DECRBY', n, string.format('%d', freed))
end
for i = 1, nw do
  local z, c, n = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  trim(z, c, n)
  local limit, cost = tonumber(ARGV[4 + 2 * i]), tonumber(ARGV[5 + 2 * i])
  if tonumber(redis.call('GET', n) or '0') + cost > limit then
    local oldest = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
    return {1, i, oldest[2] or ''}
  end
end
local h0 = 6 + 2 * nw
for j = 1, nh do
  local limit, amount = tonumber(ARGV[h0 + 3 * (j - 1)]), tonumber(ARGV[h0 + 3 * (j - 1) + 1])
  if tonumber(redis.call('GET', KEYS[3 * nw + j]) or '0') + amount > limit then
    return {2, j, ''}
  end
end
for i = 1, nw do
  local z, c, n = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local cost = ARGV[5 + 2 * i]
  redis.call('ZADD', z, now, rid)
  redis.call('HSET', c, rid, cost)
  redis.call('INCRBY', n, cost)
  for _, k in ipairs({z, c, n}) do redis.call('EXPIRE', k, KEY_TTL_S) end
end
for j = 1, nh do
  add(KEYS[3 * nw + j], tonumber(ARGV[h0 + 3 * (j - 1) + 1]), ARGV[h0 + 3 * (j - 1) + 2])
end
return nil
""".replace("KEY_TTL_S", str(KEY_TTL_S))

# KEYS: per tpm window W:c, W:n; then per hold its counter.  ARGV: request_id, used tokens, #windows, #holds,
# per hold the delta (used - reserved USD) and ttl.
_SETTLE = _LIB + """
local rid, used = ARGV[1], tonumber(ARGV[2])
local nw, nh = tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 1, nw do
  local c, n = KEYS[2 * i - 1], KEYS[2 * i]
  local reserved = redis.call('HGET', c, rid)
  if reserved then
    redis.call('HSET', c, rid, ARGV[2])
    redis.call('INCRBY', n, string.format('%d', used - tonumber(reserved)))
  end
end
for j = 1, nh do
  add(KEYS[2 * nw + j], tonumber(ARGV[3 + 2 * j]), ARGV[4 + 2 * j])
end
return nil
"""

# KEYS: the counter.  ARGV: amount, ttl.  Start the counter unless it holds a non-zero amount (MemoryState.seed).
_SEED = _LIB + """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
if current == 0 and amount ~= 0 then
  redis.call('SET', KEYS[1], num(amount), 'EX', ARGV[2])
end
return nil
"""


class _Script:
    """A Lua script and the SHA1 that EVALSHA names it by."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()


class RedisState:
    """:class:`~llmgw.store.shared.SharedState` in one Redis, shared by every process that uses the same URL.

    Timeouts: ``connect_timeout_s`` to open the connection, ``deadline_s`` for a whole call. No retries: a failure
    is reported at once as :class:`StateUnavailable`, and the next call tries again on a fresh connection.
    """

    suspends = True   # every call waits on the store

    def __init__(self, url: str, *, connect_timeout_s: float = 2.0, deadline_s: float = 3.0) -> None:
        self.url = url
        self.deadline_s = deadline_s
        self._client = RespClient(url, connect_timeout_s=connect_timeout_s)
        self._acquire = _Script(_ACQUIRE)
        self._settle = _Script(_SETTLE)
        self._seed = _Script(_SEED)

    async def _call(self, op: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.deadline_s):
                return await op
        except TimeoutError as exc:  # no answer: the connection's order of replies is lost with it
            self._client.reset()
            raise StateUnavailable(f"redis at {_safe(self.url)}: no answer within {self.deadline_s}s") from exc
        except (RespError, OSError) as exc:
            raise StateUnavailable(f"redis at {_safe(self.url)}: {exc}") from exc

    async def _eval(self, script: _Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script`` by its SHA1, sending its text once when the server does not know it."""
        try:
            return await self._client.call("EVALSHA", script.sha, len(keys), *keys, *args)
        except RespError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self._client.call("EVAL", script.text, len(keys), *keys, *args)

    async def acquire(self, request_id: str, windows: Sequence[Window], holds: Sequence[Hold],
                      now: float) -> Denial | None:
        if not windows and not holds:
            return None
        keys: list[str] = []
        args: list[Any] = [request_id, repr(float(now)), repr(now - WINDOW_S), len(windows), len(holds)]
        for w in windows:
            keys += [w.key, f"{w.key}:c", f"{w.key}:n"]
            args += [w.limit, int(w.cost)]
        for h in holds:
            keys.append(h.key)
            args += [repr(float(h.limit)), repr(float(h.amount)), max(1, int(h.ttl_s))]
        refused = await self._call(self._eval(self._acquire, keys, args))
        if refused is None:
            return None
        which, index, oldest = int(refused[0]), int(refused[1]) - 1, refused[2]
        if which == 1:
            first = float(oldest) if oldest else now
            return Denial(windows[index].label, max(1.0, first + WINDOW_S - now), budget=False)
        hold = holds[index]
        return Denial(hold.label, 0.0, budget=True, resets=hold.resets)

    async def settle(self, request_id: str, windows: Sequence[Window], holds: Sequence[Hold],
                     used_tokens: int, used_usd: float, now: float) -> None:
        tpm = [w for w in windows if w.kind == "tpm"]
        if not tpm and not holds:
            return
        keys: list[str] = []
        for w in tpm:
            keys += [f"{w.key}:c", f"{w.key}:n"]
        keys += [h.key for h in holds]
        args: list[Any] = [request_id, int(used_tokens), len(tpm), len(holds)]
        for h in holds:
            args += [repr(float(used_usd - h.amount)), max(1, int(h.ttl_s))]
        await self._call(self._eval(self._settle, keys, args))

    async def spent(self, key: str) -> float:
        value = await self._call(self._client.call("GET", key))
        return float(value) if value is not None else 0.0

    async def seed(self, key: str, amount: float, ttl_s: int) -> None:
        await self._call(self._eval(self._seed, [key], [repr(float(amount)), max(1, int(ttl_s))]))

    async def close(self) -> None:
        await self._client.close()


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"
