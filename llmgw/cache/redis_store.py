"""A cache store in Redis, shared by every gateway instance that points at one server (``[state] shared``).

Contract (that of :mod:`llmgw.cache.store`, plus):
- An entry is a string ``llmgw:cache:e:<exact key>`` holding its JSON (without the vector), with the entry's TTL
  (``PX``): an exact hit stored by any instance is seen by every other at once.
- Each entry with a vector is also appended to the stream ``llmgw:cache:journal`` (exact key, partition, expiry,
  embedder, float32 vector, prompt text, the writing instance's id). A background thread reads the whole journal
  into the index when the store opens (``ready`` is set then), then follows it (``XREAD BLOCK``), so an entry
  stored by one instance is found by the others' semantic lookups within milliseconds. Journal records older than
  the TTL are trimmed as records are added (``MINID``, on Redis's clock).
- Redis errors and timeouts (``timeout_s``, 0.5 s by default) raise :class:`~llmgw.cache.store.CacheUnavailable`:
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

import logging
import threading
import time
import uuid
from typing import Any

import orjson
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from .store import CacheEntry, CacheUnavailable, IndexedStore

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
_BATCH = 2000
_BLOCK_MS = 200

log = logging.getLogger("llmgw.cache")


class RedisCacheStore(IndexedStore):
    """Cache entries and their journal in Redis, the index in memory (see the module contract)."""

    def __init__(self, url: str, *, embedder: str | None = None, ttl_s: float = 86400.0, max_mb: float = 256.0,
                 timeout_s: float = 0.5) -> None:
        super().__init__(embedder)
        self.url = url
        self.ttl_s = ttl_s
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.origin = uuid.uuid4().hex
        options: dict[str, Any] = {"retry": Retry(NoBackoff(), 0), "health_check_interval": 0,
                                   "socket_connect_timeout": timeout_s}
        self.client = Redis.from_url(url, socket_timeout=timeout_s, **options)
        self._put_script = self.client.register_script(_PUT)
        self._cursor: str | None = None      # last journal id read; None until the journal has been read whole
        self._follower: threading.Thread | None = None
        if self.index is None:
            self.ready.set()
        else:
            self._follow_client = Redis.from_url(url, socket_timeout=timeout_s + _BLOCK_MS / 1000 + 1, **options)
            self._follower = threading.Thread(target=self._follow, name="llmgw-cache-follow", daemon=True)
            self._follower.start()

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
        try:
            entry = CacheEntry.from_dict(orjson.loads(raw))
        except orjson.JSONDecodeError:
            return None
        if entry is None or entry.expires <= time.time():
            return None
        return entry

    def _write(self, entry: CacheEntry) -> None:
        now = time.time()
        ttl_ms = max(1, int((entry.expires - now) * 1000))
        fields = entry.as_dict()
        fields["vector"] = None
        value = orjson.dumps(fields)
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

    # --- the journal ---

    def _index_record(self, fields: dict[bytes, bytes], now: float, *, own_too: bool) -> bool:
        """Index one journal record if it is live and of this store's embedder; returns whether it was."""
        if self.index is None or (not own_too and fields.get(b"o") == self.origin.encode()):
            return False
        try:
            entry = CacheEntry(fields[b"k"].decode(), fields[b"p"].decode(), fields[b"t"].decode() or None, {}, {},
                               0.0, 0.0, float(fields[b"x"]), fields[b"e"].decode(), fields[b"v"])
        except (KeyError, ValueError, UnicodeDecodeError):
            return False
        return self.add_to_index(entry, now)

    def rebuild(self) -> int:
        """Read the whole journal into the index (blocking); returns how many records were indexed."""
        count, start, last = 0, "-", "0-0"
        now = time.time()
        try:
            while not self._closing.is_set():
                batch = self._follow_client.xrange(JOURNAL, min=start, max="+", count=_BATCH)
                for record_id, fields in batch:
                    last = record_id.decode()
                    count += self._index_record(fields, now, own_too=True)
                if len(batch) < _BATCH:
                    break
                start = "(" + last
        except RedisError as exc:
            raise self._unavailable(exc) from None
        self._cursor = last
        return count

    def _follow(self) -> None:
        """Background thread: read the journal whole, then index the records other instances append, until
        :meth:`close`."""
        failing = False
        while not self._closing.is_set():
            try:
                if self._cursor is None:
                    started = time.perf_counter()
                    count = self.rebuild()
                    log.info("semantic cache index: %d entries read in %.1f s", count,
                             time.perf_counter() - started)
                    self.ready.set()
                reply = self._follow_client.xread({JOURNAL: self._cursor or "0-0"}, count=_BATCH, block=_BLOCK_MS)
                if failing:
                    log.info("semantic cache follows the shared journal again")
                    failing = False
            except (RedisError, CacheUnavailable) as exc:
                if not failing:
                    log.warning("semantic cache cannot follow the shared journal (retrying): %s", exc)
                    failing = True
                self._closing.wait(1.0)
                continue
            now = time.time()
            for _stream, records in reply or []:
                for record_id, fields in records:
                    self._cursor = record_id.decode()
                    self._index_record(fields, now, own_too=False)

    def close(self) -> None:
        self._closing.set()
        if self._follower is not None:
            self._follower.join(timeout=5)
            self._follow_client.close()
        self.client.close()
