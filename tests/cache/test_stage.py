"""The cache stage on bare exchanges: bypass directives, eligibility, tool calls, replayed streams."""

from __future__ import annotations

from pathlib import Path

from llmgw.cache.config import CacheConfig
from llmgw.cache.embed import HashEmbedder
from llmgw.cache.store import CacheStore
from llmgw.exchange import Exchange, UpstreamReply, Usage
from llmgw.stages.cache import CacheStage


def stage(tmp_path: Path) -> CacheStage:
    emb = HashEmbedder()
    return CacheStage(CacheConfig(enabled=True, semantic=True), CacheStore(tmp_path, embedder=emb.name), emb)


def exchange(text: str, control: str = "", stream: bool = False) -> Exchange:
    ex = Exchange("openai", "chat", alias="gpt", cache_control=control, stream=stream)
    ex.body = {"model": "gpt", "messages": [{"role": "user", "content": text}]}
    return ex


def answer(content: str | None, finish: str = "stop", tool_calls: list | None = None) -> UpstreamReply:
    message: dict = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    body = {"id": "x", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}]}
    return UpstreamReply(body, None, Usage(10, 5))


async def round_trip(cache: CacheStage, first: Exchange, reply: UpstreamReply, second: Exchange) -> Exchange:
    await cache.request(first)
    first.reply, first.usage, first.outcome = reply, reply.usage or Usage(), "ok"
    await cache.response(first)
    await cache.request(second)
    return second


async def test_no_store_and_no_cache(tmp_path: Path) -> None:
    cache = stage(tmp_path)
    hit = await round_trip(cache, exchange("q", "no-store"), answer("a"), exchange("q"))
    assert hit.cache == "miss"
    await round_trip(cache, exchange("q"), answer("a"), exchange("q"))
    skipped = exchange("q", "no-cache, max-age=0")
    await cache.request(skipped)
    assert skipped.cache == "miss" and skipped.reply is None


async def test_truncated_flagged_and_failed_answers_are_not_stored(tmp_path: Path) -> None:
    cache = stage(tmp_path)
    assert (await round_trip(cache, exchange("a"), answer("x", "length"), exchange("a"))).cache == "miss"
    flagged = exchange("b")
    flagged.findings.append({"rule": "r"})
    assert (await round_trip(cache, flagged, answer("x"), exchange("b"))).cache == "miss"
    gone = exchange("c", stream=True)
    await cache.request(gone)
    gone.streamed_text, gone.finish_reason, gone.outcome = ["par"], "stop", "client_disconnect"
    await cache.response(gone)
    again = exchange("c")
    await cache.request(again)
    assert again.cache == "miss" and cache.stats.stored == 0


async def test_tool_calls_are_replayed_in_a_stream(tmp_path: Path) -> None:
    cache = stage(tmp_path)
    calls = [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]
    hit = await round_trip(cache, exchange("t"), answer(None, "tool_calls", calls), exchange("t", stream=True))
    assert hit.cache == "hit" and hit.first_event is not None and hit.events is not None
    events = [hit.first_event] + [e async for e in hit.events]
    deltas = [e.data["choices"][0]["delta"] for e in events if e.data["choices"]]
    assert deltas[0]["role"] == "assistant"
    assert any(d.get("tool_calls", [{}])[0].get("function", {}).get("name") == "f" for d in deltas)
    assert events[-2].data["choices"][0]["finish_reason"] == "tool_calls"
    assert events[-1].usage == Usage(10, 5) and events[-1].flush and not events[0].flush
