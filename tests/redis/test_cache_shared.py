"""The response cache shared through Redis: store-level contract, and two `llmgw serve` processes sharing hits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
import redis

from llmgw.cache.embed import HashEmbedder
from llmgw.cache.redis_store import ENTRY_PREFIX, JOURNAL, RedisCacheStore
from llmgw.cache.store import CacheEntry, CacheUnavailable
from llmgw.profile import parse_profile
from llmgw.proxy.app import CACHE, make_app
from tests.e2e.conftest import ServeProcess, serving_together, write_profile

from .conftest import RedisServer

EMB = HashEmbedder(64)


def entry(key: str, text: str, partition: str = "p", ttl: float = 60.0) -> CacheEntry:
    now = time.time()
    return CacheEntry(key, partition, text, {"choices": [{"message": {"content": f"answer {key}"}}]},
                      {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}, 0.002, now, now + ttl,
                      EMB.name, EMB.embed([text])[0].tobytes())


def vector(text: str) -> np.ndarray:
    return EMB.embed([text])[0]


def wait_for(condition: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def stores(redis_server: RedisServer) -> Iterator[list[RedisCacheStore]]:
    opened: list[RedisCacheStore] = []

    def open_one() -> RedisCacheStore:
        store = RedisCacheStore(redis_server.url, embedder=EMB.name, ttl_s=60)
        opened.append(store)
        assert store.ready.wait(5)
        return store

    opened_now = [open_one(), open_one()]
    yield opened_now
    for store in opened:
        store.close()


def test_an_entry_stored_by_one_instance_is_found_by_the_other(stores: list[RedisCacheStore]) -> None:
    a, b = stores
    a.put(entry("k1", "reset my password please"))
    got = b.get("k1")    # exact: at once
    assert got is not None and got.answer["choices"][0]["message"]["content"] == "answer k1"
    assert got.usage["total_tokens"] == 5 and got.cost_usd == 0.002 and got.vector is None
    # semantic: b's index learns of it from the journal
    assert wait_for(lambda: b.nearest("p", vector("reset my password please"), 0.9) != [])
    [(found, score)] = b.nearest("p", vector("reset my password please"), 0.9)
    assert found.key == "k1" and score > 0.99
    assert b.nearest("other-partition", vector("reset my password please"), 0.5) == []


def test_a_new_instance_reads_the_journal_and_expired_entries_are_gone(redis_server: RedisServer,
                                                                       stores: list[RedisCacheStore]) -> None:
    a, _ = stores
    a.put(entry("live", "alpha beta gamma"))
    a.put(entry("short", "delta epsilon", ttl=0.2))
    time.sleep(0.3)
    late = RedisCacheStore(redis_server.url, embedder=EMB.name, ttl_s=60)
    try:
        assert late.ready.wait(5)
        assert late.index is not None and len(late.index) == 1
        assert [e.key for e, _ in late.nearest("p", vector("alpha beta gamma"), 0.9)] == ["live"]
        assert late.get("short") is None
        other_model = RedisCacheStore(redis_server.url, embedder="another-model", ttl_s=60)
        assert other_model.ready.wait(5) and other_model.index is not None and len(other_model.index) == 0
        other_model.close()
    finally:
        late.close()
    client = redis.Redis.from_url(redis_server.url)
    assert client.pttl(ENTRY_PREFIX + "live") > 50_000     # the entry carries its TTL in Redis
    assert client.xlen(JOURNAL) == 2
    client.close()


def test_redis_down_raises_cache_unavailable_at_once_and_recovers(redis_server: RedisServer,
                                                                 stores: list[RedisCacheStore]) -> None:
    a, b = stores
    redis_server.stop()
    started = time.monotonic()
    with pytest.raises(CacheUnavailable, match="Redis"):
        a.get("k1")
    with pytest.raises(CacheUnavailable):
        a.put(entry("k1", "hello there"))
    assert time.monotonic() - started < 2
    redis_server.start()
    a.put(entry("k2", "after the restart"))
    assert b.get("k2") is not None
    assert wait_for(lambda: b.nearest("p", vector("after the restart"), 0.9) != [], timeout=10)


@pytest.fixture
def gateways(tmp_path: Path, redis_server: RedisServer) -> Iterator[list[ServeProcess]]:
    """Two gateways on two state folders (two machines), one Redis, the cache on."""
    starts = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        starts.append((write_profile(folder / "profile.toml", {
            "state": {"url": f"sqlite:///{folder / 'llmgw.db'}", "shared": redis_server.url},
            "providers": {"mock": {"kind": "mock"}},
            "models": {"fast": {"targets": ["mock/m"]}},
            "cache": {"exact": True, "semantic": True},
        }), folder / "llmgw.db", None))
    with serving_together(starts) as servers:
        yield servers


@pytest.mark.e2e
def test_two_gateways_share_exact_and_semantic_hits(gateways: list[ServeProcess]) -> None:
    one, two = (openai.OpenAI(base_url=g.url + "/v1", api_key="none", max_retries=0) for g in gateways)

    def ask(client: openai.OpenAI, text: str, *, store: bool = True) -> tuple[str, str | None]:
        raw = client.chat.completions.with_raw_response.create(
            model="fast", messages=[{"role": "user", "content": text}],
            extra_headers={} if store else {"x-llmgw-cache": "no-store"})
        return raw.headers["x-llmgw-cache"], raw.parse().choices[0].message.content

    kind, first = ask(one, "How do I reset my password?")
    assert kind == "miss"
    # the entry is stored once the answer has gone out (the response phase): the other gateway finds it a moment
    # later (no-store: a miss meanwhile must not become an entry of its own)
    assert wait_for(lambda: ask(two, "How do I reset my password?", store=False) == ("hit", first), timeout=5)
    # the rephrased prompt reaches the other gateway, whose index learnt the entry from the journal
    # (no-store: a miss while it catches up must not become an exact entry of its own)
    assert wait_for(lambda: ask(two, "How can I reset my password?", store=False)[0] == "semantic", timeout=10)
    assert ask(two, "How can I reset my password?") == ("semantic", first)
    kind, other = ask(two, "How do I delete my account?")   # same template, another question
    assert kind == "miss" and other != first
    for client in (one, two):
        client.close()


async def test_requests_are_answered_when_the_shared_cache_is_down(aiohttp_client: Any, tmp_path: Path,
                                                                   redis_server: RedisServer) -> None:
    profile = parse_profile({
        "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}", "shared": redis_server.url},
        "providers": {"mock": {"kind": "mock"}}, "models": {"fast": {"targets": ["mock/m"]}},
        "cache": {"semantic": True}})
    client = await aiohttp_client(make_app(profile, embedder=EMB))
    stage = client.server.app[CACHE]
    body = {"model": "fast", "messages": [{"role": "user", "content": "hello there"}]}
    first = await client.post("/v1/chat/completions", json=body)
    assert first.status == 200 and first.headers["x-llmgw-cache"] == "miss"
    assert (await client.post("/v1/chat/completions", json=body)).headers["x-llmgw-cache"] == "hit"
    redis_server.stop()
    started = time.monotonic()
    for _ in range(3):
        resp = await client.post("/v1/chat/completions", json=body)
        assert resp.status == 200 and resp.headers["x-llmgw-cache"] == "miss"
        assert (await resp.json())["choices"][0]["message"]["content"]
    assert time.monotonic() - started < 5
    assert stage.stats.unavailable >= 3


def test_the_size_cap_evicts_the_least_recently_stored_entries(redis_server: RedisServer) -> None:
    store = RedisCacheStore(redis_server.url, embedder=EMB.name, ttl_s=60, max_mb=1)
    try:
        for i in range(20):   # ~100 KB each: about twice the cap
            big = entry(f"k{i:02}", f"prompt number {i}")
            big.answer = {"choices": [{"message": {"content": "x" * 100_000}}]}
            store.put(big)
        present = [i for i in range(20) if store.get(f"k{i:02}") is not None]
        assert present == list(range(20 - len(present), 20)) and 7 <= len(present) <= 10   # the newest ones
        client = redis.Redis.from_url(redis_server.url)
        total = int(client.get("llmgw:cache:bytes") or 0)
        assert 900_000 < total <= 1024 * 1024 and client.zcard("llmgw:cache:order") == len(present)
        assert client.xlen(JOURNAL) <= len(present) + 100
        client.close()
    finally:
        store.close()


def test_stats_and_clear_in_redis(redis_server: RedisServer, stores: list[RedisCacheStore]) -> None:
    a, b = stores
    a.put(entry("k1", "first prompt"))
    a.put(entry("k2", "second prompt"))
    numbers = b.stats()
    assert (numbers["entries"], numbers["semantic"]) == (2, 2) and numbers["bytes"] > 0
    assert numbers["where"] == redis_server.url
    assert b.clear() == 2
    assert a.get("k1") is None and a.nearest("p", vector("first prompt"), 0.9) == []
    assert b.stats()["entries"] == 0


def test_the_redis_password_is_never_shown() -> None:
    from llmgw.cache.redis_store import _redacted

    assert _redacted("redis://:s3cret@cache.internal:6379/0") == "redis://***@cache.internal:6379/0"
    assert _redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
