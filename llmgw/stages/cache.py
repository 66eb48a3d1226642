"""Cache stage: answers repeated (exact) and rephrased (semantic) prompts from earlier answers.

Contract (see docs/cache.md):
- ``request(ex)``: for a chat exchange whose alias allows caching (``models.<alias>.cache``), looks the request
  up — exact key first, then (``semantic = true`` and a plain-text last user turn) the nearest earlier prompt of
  the same partition at or above ``threshold`` that the difference guard accepts. A hit sets ``ex.cache`` to
  ``"hit"`` or ``"semantic"``, ``ex.usage`` to the original answer's usage, and ``ex.reply`` (or, for a stream,
  ``ex.first_event``/``ex.events`` with canonical chunks), so no provider is called. Lookups are skipped when
  ``ex.cache_control`` (the ``x-llmgw-cache`` and ``Cache-Control`` request headers) says ``no-cache``.
- ``response(ex)``: stores the answer of a miss unless ``no-store`` was asked, or it is an error, a stream cut
  short, truncated (``finish_reason`` other than ``stop``/``tool_calls``; streams: ``stop`` only), has
  guardrail findings (``ex.findings``), or has several choices. Keys and stored answers are what the guardrail
  stage left (placeholders, not redacted values), so the stage must come after it. The stored cost is the
  exchange's own ``cost_usd`` (priced once, by the meter, before any response phase).
- With ``[state] shared`` (and ``[cache] shared``, default true) entries live in Redis and every instance sees
  them (:mod:`llmgw.cache.redis_store`); otherwise on disk. A store that cannot be reached makes the request a
  miss whose answer is not stored, never an error.
- Storing (embedding included) is write-behind (:mod:`llmgw.cache.writer`): the response phase queues the entry
  and returns; a writer thread stores queued entries in batches. A queued entry already answers exact lookups on
  disk; a lookup in Redis or a semantic one waits (briefly) for the queue instead.
  An exact-only lookup (``semantic = false``) on the disk store is one indexed SQLite read of a WAL-mode file
  (readers never wait for the writer), done inline: handing it to a thread would cost more than the read. Semantic
  lookups, which embed, and lookups in Redis, which wait on the network, run in worker threads. The embedding
  model is loaded once, on the first request that needs it. Per-exchange state (the keys and directives) lives
  on the exchange (``ex.cache_lookup``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..cache.config import CacheConfig
from ..cache.difference import TermRule, differs, facts, term_rule
from ..cache.embed import DEFAULT_MODEL, Embedder, EmbedderError, LazyEmbedder, load_model2vec, resolve_model_path
from ..cache.keys import RequestKeys, request_keys
from ..cache.playback import canonical_answer, replay_stream
from ..cache.store import CacheEntry, CacheUnavailable, IndexedStore, open_store
from ..cache.writer import WriteBehind
from ..exchange import Exchange, UpstreamReply, Usage
from ..profile import Profile
from .base import Stage

log = logging.getLogger("llmgw.cache")

CACHEABLE_FINISH = frozenset({"stop", "tool_calls"})
LOCAL_WRITE_DELAY_S = 0.05   # how long a local store's answers may wait to be committed together


@dataclass(slots=True, unsafe_hash=True)   # made per request, never changed: not frozen (4x dearer to make)
class CacheLookup:
    """What the stage knows about one exchange between ``request`` and ``response`` (``ex.cache_lookup``)."""

    keys: RequestKeys
    directives: frozenset[str]


def directives(ex: Exchange) -> frozenset[str]:
    """The cache directives of ``ex`` (``no-cache``, ``no-store``), from its ``cache_control`` field."""
    raw = ex.cache_control
    if not raw:   # most requests ask nothing of the cache
        return _NO_DIRECTIVES
    return frozenset(d.strip().lower() for d in raw.split(",") if d.strip())


_NO_DIRECTIVES: frozenset[str] = frozenset()


@dataclass
class CacheStats:
    """Counters since start-up (for metrics and the bench)."""

    hits: int = 0
    semantic_hits: int = 0
    misses: int = 0
    stored: int = 0
    saved_usd: float = 0.0
    unavailable: int = 0          # lookups and stores that found the store unreachable
    refused: dict[str, int] = field(default_factory=dict)   # semantic candidates the guard refused, by reason


class CacheStage(Stage):
    """The cache pipeline stage (see the module contract)."""

    response_suspends = False   # its response phase never waits on I/O

    def __init__(self, config: CacheConfig, store: IndexedStore | None, embedder: Embedder | None = None) -> None:
        self.config = config
        self.store = store
        self.embedder = embedder if config.semantic else None
        self.stats = CacheStats()
        self.writer = self._new_writer() if store is not None else None
        self._inline = store is not None and self.embedder is None and store.local

    def _new_writer(self) -> WriteBehind:
        """The write-behind queue: a local store's commits are batched on a tick; a shared store (Redis) is written
        at once, so that other instances find an answer as soon as it is given."""
        assert self.store is not None
        return WriteBehind(self._store_batch, max_delay_s=LOCAL_WRITE_DELAY_S if self.store.local else 0.0)

    @classmethod
    def from_profile(cls, profile: Profile, *, embedder: Embedder | None = None) -> CacheStage:
        """The stage for ``profile``'s ``[cache]`` table (``profile.extra["cache"]``). Opens the store and
        rebuilds the vector index (blocking: call it off the loop); the model is not loaded yet."""
        config = profile.cache
        if not config.enabled or not (config.exact or config.semantic):
            return cls(config, None)
        if config.semantic and embedder is None:
            spec, allow = config.model, config.allow_download
            resolve_model_path(spec, allow_download=allow)   # a missing model fails now, not on a request
            name = f"model2vec:{spec or DEFAULT_MODEL.name}"
            embedder = LazyEmbedder(lambda: load_model2vec(spec, allow_download=allow), name)
        indexed = embedder.name if config.semantic and embedder is not None else None
        return cls(config, open_store(profile, config, embedder=indexed), embedder)

    @property
    def active(self) -> bool:
        return self.store is not None

    # --- request phase ---

    async def request(self, ex: Exchange) -> None:
        if self.store is None or ex.endpoint != "chat":
            return
        if ex.model is not None and not ex.model.cache:
            ex.note("cache", "skipped", reason="alias")
            return
        keys = request_keys(ex)
        if keys is None:
            ex.note("cache", "skipped", reason="not cacheable")
            return
        asked = directives(ex)
        ex.cache_lookup = CacheLookup(keys, asked)
        if "no-cache" in asked:
            ex.note("cache", "skipped", reason="no-cache")
            return
        try:
            if self._inline:
                queued = self.writer.pending(keys.exact) if self.writer is not None and self.config.exact else None
                entry, kind = (queued, "hit") if queued is not None else self._lookup(keys, ex)
                if queued is not None:
                    ex.note("cache", "exact", hit=True)
            else:
                entry, kind = await asyncio.to_thread(self._lookup, keys, ex)
        except CacheUnavailable as exc:
            self._unavailable(exc)
            ex.note("cache", "unavailable")
            entry, kind = None, "miss"
        if entry is None:
            self.stats.misses += 1
            return
        self._answer(ex, entry, kind)

    def _lookup(self, keys: RequestKeys, ex: Exchange | None = None) -> tuple[CacheEntry | None, str]:
        """Exact, then semantic lookup (blocking); what was found is told in ``ex``'s story (the awaiting request
        does not touch ``ex`` meanwhile)."""
        assert self.store is not None
        if not self._inline and self.writer is not None and self.writer.pending(keys.exact) is not None:
            self.writer.settle(0.25)   # an answer to this very prompt is being stored: look once it is
        if self.config.exact:
            entry = self.store.get(keys.exact)
            if ex is not None:
                ex.note("cache", "exact", hit=entry is not None)
            if entry is not None:
                return entry, "hit"
        if self.embedder is None or not keys.text:
            if ex is not None and self.embedder is not None:
                ex.note("cache", "semantic", hit=False, reason="no plain-text last user turn")
            return None, "miss"
        if self.writer is not None:
            self.writer.settle(0.25)   # this server's latest answers are in the index before it is searched
        try:
            vector = self.embedder.embed([keys.text])[0]
        except EmbedderError as error:
            log.error("semantic cache lookup skipped: %s", error)
            return None, "miss"
        query = facts(keys.text)   # read once, for the term rule and every candidate
        rule = term_rule(query, self.config.max_swaps)   # skips entries the guard below would refuse anyway
        threshold = self.config.threshold
        vetoed: list[dict[str, object]] = []
        for entry, score in self.store.nearest(keys.partition, vector, threshold, rule=rule):
            if entry.text is None:
                continue
            if entry.text == keys.text:
                if ex is not None:
                    ex.note("cache", "semantic", hit=True, similarity=score, threshold=threshold)
                return entry, "semantic"
            reason = differs(query, entry.text, partner=self._word_similarity,
                             word_threshold=self.config.word_threshold, max_swaps=self.config.max_swaps)
            if reason is None:
                if ex is not None:
                    ex.note("cache", "semantic", hit=True, similarity=score, threshold=threshold, vetoed=vetoed)
                return entry, "semantic"
            why = reason.split(" '")[0]
            self.stats.refused[why] = self.stats.refused.get(why, 0) + 1
            vetoed.append({"similarity": score, "reason": why})
        if ex is not None:
            self._note_miss(ex, keys, vector, rule, vetoed)
        return None, "miss"

    def _note_miss(self, ex: Exchange, keys: RequestKeys, vector: np.ndarray, rule: TermRule,
                   vetoed: list[dict[str, object]]) -> None:
        """Tell why a semantic lookup missed: the difference guard vetoed every entry close enough, or the nearest
        entry of the partition (same alias, parameters and earlier turns) is below the threshold, or there is none.
        Only misses pay for the second look at the index."""
        threshold = self.config.threshold
        if vetoed:
            ex.note("cache", "semantic", hit=False, reason="difference guard", threshold=threshold, vetoed=vetoed,
                    similarity=vetoed[0]["similarity"])
            return
        index = getattr(self.store, "index", None)
        nearest = index.search(keys.partition, vector, -1.0, 1, rule=rule) if index is not None else []
        nearest = [(k, score) for k, score in nearest if score > -1.0]   # -1: expired rows
        if not nearest:
            ex.note("cache", "semantic", hit=False, reason="no entry in partition", threshold=threshold)
        else:
            ex.note("cache", "semantic", hit=False, reason="below threshold", similarity=nearest[0][1],
                    threshold=threshold)

    def _word_similarity(self, a: str, b: str) -> float:
        assert self.embedder is not None
        vectors = self.embedder.embed([a, b])
        return float(vectors[0] @ vectors[1])

    def _answer(self, ex: Exchange, entry: CacheEntry, kind: str) -> None:
        usage = Usage.from_openai(entry.usage)
        answer = {**entry.answer, "id": "chatcmpl-" + ex.id.removeprefix("req_"), "created": int(time.time())}
        ex.cache = kind
        ex.usage = usage
        if kind == "semantic":
            self.stats.semantic_hits += 1
        else:
            self.stats.hits += 1
        self.stats.saved_usd += entry.cost_usd
        ex.saved_usd = entry.cost_usd
        if ex.stream:
            ex.first_event, ex.events = replay_stream(answer, usage)
        else:
            ex.reply = UpstreamReply(answer, None, usage)

    # --- response phase ---

    async def response(self, ex: Exchange) -> None:
        lookup, ex.cache_lookup = ex.cache_lookup, None
        if lookup is None or self.store is None:
            return
        keys = lookup.keys
        if ex.cache != "miss":
            return
        if "no-store" in lookup.directives or not self._eligible(ex):
            ex.note("cache", "not_stored", reason="no-store" if "no-store" in lookup.directives else
                    "guardrail findings" if ex.findings and ex.status == 200 else "not answered")
            return
        found = canonical_answer(ex)
        if found is None:
            ex.note("cache", "not_stored", reason="no single answer")
            return
        answer, finish = found
        if finish not in (CACHEABLE_FINISH if ex.reply is not None else {"stop"}):
            ex.note("cache", "not_stored", reason=f"finish_reason {finish}")
            return
        now = time.time()
        entry = CacheEntry(keys.exact, keys.partition, keys.text, answer, ex.usage.to_openai(), ex.cost_usd, now,
                           now + self.config.ttl_s)
        if self.writer is not None:
            self.writer.put(entry)
            ex.note("cache", "stored")

    def _unavailable(self, exc: CacheUnavailable) -> None:
        """Count a store failure and log it (the first, then every hundredth)."""
        self.stats.unavailable += 1
        if self.stats.unavailable % 100 == 1:
            log.warning("%s (%d times so far); serving without the cache", exc, self.stats.unavailable)

    def _eligible(self, ex: Exchange) -> bool:
        if ex.error is not None or ex.outcome not in ("", "ok") or ex.status != 200:
            return False
        return not ex.findings

    def _store_batch(self, entries: Sequence[CacheEntry]) -> None:
        """Embed (semantic) and store queued entries (blocking: the writer thread's work)."""
        assert self.store is not None
        texts = [e for e in entries if e.text] if self.embedder is not None else []
        if texts:
            assert self.embedder is not None
            try:
                vectors = self.embedder.embed([e.text or "" for e in texts])
                for e, vector in zip(texts, vectors, strict=True):
                    e.vector = vector.astype(np.float32).tobytes()
                    e.embedder = self.embedder.name
            except Exception:
                log.exception("embedding failed; storing %d entries for exact hits only", len(texts))
        try:
            self.store.put_many(entries)
        except CacheUnavailable as exc:
            self._unavailable(exc)
            return
        self.stats.stored += len(entries)

    def flush(self) -> None:
        """Store every queued entry now (blocking)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = self._new_writer()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.store is not None:
            self.store.close()

