"""A cache store in Redis, shared by every gateway instance that points at one server (``[state] shared``).

Contract (that of :mod:`llmgw.cache.store`, plus):
- An entry is a string ``llmgw:cache:e:<exact key>`` holding its JSON (without the vector), with the entry's TTL
  (``PX``): an exact hit stored by any instance is seen by every other at once.
- The journal is the stream ``llmgw:cache:journal``, followed with ``XREAD BLOCK``: an entry stored by one
  instance is found by the others' semantic lookups within milliseconds. Journal records older than the TTL are
  trimmed as records are added (``MINID``, on Redis's clock).
- Redis errors and timeouts (``timeout_s``, 0.5 s by default) raise :class:`~llmgw.cache.base.CacheUnavailable`:
  a request goes on as a miss and its answer is not stored. The follower retries every second and, if it could
  not read the journal at start-up, reads it whole once Redis is back.
- Size cap: ``max_mb`` bounds the bytes of the entries and their journal records together, across instances.
  Each store is one Lua script (one round trip, atomic): it writes the entry, records its size and time in
  ``llmgw:cache:sizes`` / ``llmgw:cache:order`` (total in ``llmgw:cache:bytes``), forgets entries past their TTL,
  and evicts the least recently stored entries while the total exceeds the cap (then trims the journal to about
  as many records as there are entries). Times are the callers' clocks.
  Requires Redis >= 6.2 (``XADD ... MINID``); not Redis Cluster (the script derives entry keys).
"""

from __future__ import annotations

import time
from typing import Any

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from .base import JOURNAL_BATCH, CacheEntry, CacheUnavailable, IndexedStore, JournalRecord

ENTRY_PREFIX = "llmgw:cache:e:"
JOURNAL = "llmgw:cache:journal"
ORDER, SIZES, TOTAL = "llmgw:cache:order", "llmgw:cache:sizes", "llmgw:cache:bytes"

# KEYS: order, sizes, total, journal. ARGV: key, value, ttl_ms, now, cutoff, max_bytes, prefix, extra bytes (the
# journal record's), the journal's MINID, then the record's field/value pairs (none: no record).
# Returns how many entries were evicted for size.
_PUT = """
local order, sizes, total, journal = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local key, value, ttl, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local cutoff, cap, prefix = ARGV[5], tonumber(ARGV[6]), ARGV[7]
local function forget(k)
  local size = redis.call('HGET', sizes, k)
  if size then redis.call('DECRBY', total, size) end
  redis.call('HDEL', sizes, k)
  redis.call('ZREM', order, k)
end
forget(key)
redis.call('SET', prefix .. key, value, 'PX', ttl)
redis.call('ZADD', order, now, key)
local size = #value + tonumber(ARGV[8])
redis.call('HSET', sizes, key, size)
redis.call('INCRBY', total, size)
if #ARGV > 9 then
  redis.call('XADD', journal, 'MINID', '~', ARGV[9], '*', unpack(ARGV, 10))
end
for _, k in ipairs(redis.call('ZRANGEBYSCORE', order, '-inf', '(' .. cutoff, 'LIMIT', 0, 100)) do
  forget(k)
end
local evicted = 0
while tonumber(redis.call('GET', total) or '0') > cap do
  local oldest = redis.call('ZRANGE', order, 0, 0)
  if #oldest == 0 or oldest[1] == key then break end
  redis.call('DEL', prefix .. oldest[1])
  forget(oldest[1])
  evicted = evicted + 1
end
if evicted > 0 then  -- the oldest journal records are those of the evicted entries
  redis.call('XTRIM', journal, 'MAXLEN', '~', redis.call('ZCARD', order) + 100)
end
return evicted
"""
_BLOCK_MS = 200



class RedisCacheStore(IndexedStore):
    """Cache entries and their journal in Redis, the index in memory (see the module contract)."""

    def __init__(self, url: str, *, embedder: str | None = None, ttl_s: float = 86400.0, max_mb: float = 256.0,
                 timeout_s: float = 0.5) -> None:
        super().__init__(embedder)
        self.url = url
        self.ttl_s = ttl_s
        self.max_bytes = int(max_mb * 1024 * 1024)
        options: dict[str, Any] = {"retry": Retry(NoBackoff(), 0), "health_check_interval": 0,
                                   "socket_connect_timeout": timeout_s}
        self.client = Redis.from_url(url, socket_timeout=timeout_s, **options)
        self._put_script = self.client.register_script(_PUT)
        if self.index is not None:
            self._follow_client = Redis.from_url(url, socket_timeout=timeout_s + _BLOCK_MS / 1000 + 1, **options)
        self.start_following()

    def _unavailable(self, exc: Exception) -> CacheUnavailable:
        return CacheUnavailable(f"cache store in Redis unavailable: {type(exc).__name__}: {exc}")

    # --- entries ---

    def get(self, key: str) -> CacheEntry | None:
        try:
            raw = self.client.get(ENTRY_PREFIX + key)
        except RedisError as exc:
            raise self._unavailable(exc) from None
        if raw is None:
            return None
        entry = CacheEntry.from_json(raw)
        if entry is None or entry.expires <= time.time():
            return None
        return entry

    def _write(self, entry: CacheEntry) -> None:
        now = time.time()
        ttl_ms = max(1, int((entry.expires - now) * 1000))
        value = entry.to_json()
        record: dict[str, Any] | None = None
        if entry.vector is not None and entry.embedder is not None:
            record = {"k": entry.key, "p": entry.partition, "x": repr(entry.expires), "e": entry.embedder,
                      "v": entry.vector, "t": entry.text or "", "o": self.origin}
        pairs = [part for name, field in (record or {}).items() for part in (name, field)]
        extra = sum(len(v) if isinstance(v, bytes) else len(str(v).encode()) for v in pairs)
        oldest_ms = max(0, int((now - self.ttl_s) * 1000))
        try:
            self._put_script(keys=[ORDER, SIZES, TOTAL, JOURNAL],
                             args=[entry.key, value, ttl_ms, repr(now), repr(now - self.ttl_s), self.max_bytes,
                                   ENTRY_PREFIX, extra, f"{oldest_ms}-0", *pairs])
        except RedisError as exc:
            raise self._unavailable(exc) from None

    def stats(self) -> dict[str, Any]:
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.zcard(ORDER)
            pipe.xlen(JOURNAL)
            pipe.get(TOTAL)
            entries, semantic, total = pipe.execute()
        except RedisError as exc:
            raise self._unavailable(exc) from None
        return {"where": _redacted(self.url),
                "entries": int(entries), "semantic": int(semantic), "bytes": int(total or 0)}

    def clear(self) -> int:
        try:
            count = int(self.client.zcard(ORDER))
            batch: list[bytes] = []
            for key in self.client.scan_iter(match=ENTRY_PREFIX + "*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    self.client.delete(*batch)
                    batch.clear()
            if batch:
                self.client.delete(*batch)
            self.client.delete(ORDER, SIZES, TOTAL, JOURNAL)
        except RedisError as exc:
            raise self._unavailable(exc) from None
        return count

    # --- the journal ---

    def _read_journal(self, cursor: Any, *, wait: bool) -> tuple[list[JournalRecord], Any]:
        try:
            if wait:
                reply = self._follow_client.xread({JOURNAL: cursor or "0-0"}, count=JOURNAL_BATCH, block=_BLOCK_MS)
                items = [item for _stream, records in reply or [] for item in records]
            else:
                items = self._follow_client.xrange(JOURNAL, min="(" + cursor if cursor else "-", max="+",
                                                   count=JOURNAL_BATCH)
        except RedisError as exc:
            raise self._unavailable(exc) from None
        records = []
        for record_id, fields in items:
            cursor = record_id.decode()
            try:
                entry = CacheEntry(fields[b"k"].decode(), fields[b"p"].decode(), fields[b"t"].decode() or None, {},
                                   {}, 0.0, 0.0, float(fields[b"x"]), fields[b"e"].decode(), fields[b"v"])
                records.append(JournalRecord(entry, fields[b"o"].decode()))
            except (KeyError, ValueError, UnicodeDecodeError):
                continue
        return records, cursor

    def close(self) -> None:
        self.stop_following()
        if self.index is not None:
            self._follow_client.close()
        self.client.close()


def _redacted(url: str) -> str:
    """A Redis URL without its password, for display."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    return f"{scheme}{sep}***@{rest.rsplit('@', 1)[1]}"
