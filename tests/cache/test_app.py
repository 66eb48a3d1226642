"""The cache stage inside the real app (``llmgw.proxy.app.make_app``), given a small deterministic embedder
(``make_app(embedder=...)``) where the real model is not the point."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from typer.testing import CliRunner

from llmgw.cache.embed import HashEmbedder
from llmgw.cli.main import app as cli
from llmgw.profile import parse_profile
from llmgw.proxy.app import CACHE, make_app
from llmgw.stages.cache import CacheStage
from llmgw.testing import FakeOpenAI
from llmgw.testing.fake_anthropic import FakeAnthropic


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[FakeOpenAI, FakeAnthropic]]:
    async with FakeOpenAI() as openai_up, FakeAnthropic() as anthropic_up:
        yield openai_up, anthropic_up


Gateway = Callable[..., Awaitable[tuple[TestClient, CacheStage]]]


@pytest.fixture
def gateway(aiohttp_client: Any, tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeAnthropic]) -> Gateway:
    openai_up, anthropic_up = upstreams

    async def make(cache: dict[str, Any] | None = None, **extra: Any) -> tuple[TestClient, CacheStage]:
        profile = parse_profile({
            "server": {"log_bodies": True}, "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
            "providers": {"oa": {"kind": "openai-compatible", "base_url": openai_up.base_url},
                          "an": {"kind": "anthropic", "base_url": anthropic_up.base_url, "api_key": "sk-ant-x"}},
            "models": {"gpt": {"targets": ["oa/gpt-4o-mini"]}, "claude": {"targets": ["an/claude-3-5-haiku"]},
                       "nocache": {"targets": ["oa/gpt-4o-mini"], "cache": False}},
            "cache": cache if cache is not None else {"semantic": True, "threshold": 0.8}, **extra})
        client = await aiohttp_client(make_app(profile, embedder=HashEmbedder()))
        stage = client.server.app[CACHE]
        return client, stage

    return make


def log_rows(tmp_path: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(tmp_path / "llmgw.db")
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM requests ORDER BY time")]
    db.close()
    return rows


def sse_data(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in raw.split(b"\n")
            if line.startswith(b"data: ") and line != b"data: [DONE]"]


def ask(text: str, **params: Any) -> dict[str, Any]:
    return {"model": "gpt", "messages": [{"role": "user", "content": text}], **params}


async def test_exact_and_semantic_hits_skip_the_upstream(gateway: Gateway, upstreams: tuple[FakeOpenAI, Any],
                                                         tmp_path: Path) -> None:
    openai_up, _ = upstreams
    openai_up.set_answer("Paris is the capital.")
    client, stage = await gateway()
    first = await client.post("/v1/chat/completions", json=ask("What is the capital of France?"))
    assert first.headers["x-llmgw-cache"] == "miss"
    again = await client.post("/v1/chat/completions", json=ask("What is the capital of France?"))
    assert again.headers["x-llmgw-cache"] == "hit"
    assert (await again.json())["choices"][0]["message"]["content"] == "Paris is the capital."
    reworded = await client.post("/v1/chat/completions", json=ask("what is the capital of France"))
    assert reworded.headers["x-llmgw-cache"] == "semantic"
    other = await client.post("/v1/chat/completions", json=ask("What is the capital of Germany?"))
    assert other.headers["x-llmgw-cache"] == "miss"
    hotter = await client.post("/v1/chat/completions", json=ask("What is the capital of France?", temperature=1.5))
    assert hotter.headers["x-llmgw-cache"] == "miss"
    assert len(openai_up.requests) == 3
    assert stage.stats.hits == 1 and stage.stats.semantic_hits == 1
    await client.close()
    rows = log_rows(tmp_path)
    assert [r["cache"] for r in rows] == ["miss", "hit", "semantic", "miss", "miss"]
    assert rows[0]["cost_usd"] > 0 and rows[1]["cost_usd"] == 0 and rows[2]["cost_usd"] == 0
    assert stage.stats.saved_usd == pytest.approx(2 * rows[0]["cost_usd"])
    assert [r["saved_usd"] for r in rows[1:3]] == [rows[0]["cost_usd"]] * 2 and rows[0]["saved_usd"] == 0
    report = CliRunner().invoke(cli, ["cost", "report", "--db", str(tmp_path / "llmgw.db"), "--format", "json"])
    [group] = json.loads(report.stdout)
    assert group["saved_usd"] == pytest.approx(2 * rows[0]["cost_usd"]), "cost report shows the savings"


async def test_stream_hit_replays_as_openai_and_anthropic_streams(gateway: Gateway,
                                                                  upstreams: tuple[FakeOpenAI, Any]) -> None:
    openai_up, _ = upstreams
    openai_up.set_answer("A long enough answer to be split into several chunks when it is replayed to clients.")
    client, _ = await gateway()
    await client.post("/v1/chat/completions", json=ask("tell me something"))
    resp = await client.post("/v1/chat/completions",
                             json=ask("tell me something", stream=True, stream_options={"include_usage": True}))
    assert resp.headers["x-llmgw-cache"] == "hit"
    chunks = sse_data(await resp.read())
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert text.startswith("A long enough answer") and len(chunks) > 3
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    assert len(openai_up.requests) == 1
    await client.close()


async def test_stream_answer_is_stored_and_served_to_anthropic_client(gateway: Gateway,
                                                                     upstreams: tuple[FakeOpenAI, Any]) -> None:
    openai_up, _ = upstreams
    openai_up.set_answer("Streamed once.")
    client, _ = await gateway()
    body = {"model": "gpt", "max_tokens": 50, "messages": [{"role": "user", "content": "stream please"}]}
    first = await client.post("/v1/messages", json={**body, "stream": True})
    await first.read()
    assert first.headers["x-llmgw-cache"] == "miss"
    again = await client.post("/v1/messages", json={**body, "stream": True})
    events = sse_data(await again.read())
    assert again.headers["x-llmgw-cache"] == "hit"
    text = "".join(e["delta"].get("text", "") for e in events if e.get("type") == "content_block_delta")
    assert text == "Streamed once."
    whole = await client.post("/v1/messages", json=body)
    assert whole.headers["x-llmgw-cache"] == "hit"
    assert (await whole.json())["content"][0]["text"] == "Streamed once."
    assert len(openai_up.requests) == 1
    await client.close()


async def test_errors_truncations_and_uncached_aliases_are_not_stored(gateway: Gateway,
                                                                      upstreams: tuple[FakeOpenAI, Any]) -> None:
    openai_up, _ = upstreams
    client, _ = await gateway()
    openai_up.fail_next(500)
    assert (await client.post("/v1/chat/completions", json=ask("boom"))).status >= 500
    assert (await client.post("/v1/chat/completions", json=ask("boom"))).headers["x-llmgw-cache"] == "miss"
    openai_up.set_answer("one two three four five six")
    await client.post("/v1/chat/completions", json=ask("cut", max_tokens=2))
    assert (await client.post("/v1/chat/completions", json=ask("cut", max_tokens=2))).headers["x-llmgw-cache"] \
        == "miss"
    for _ in range(2):
        resp = await client.post("/v1/chat/completions", json={**ask("no cache here"), "model": "nocache"})
        assert resp.headers["x-llmgw-cache"] == "miss"
    await client.close()


async def test_guardrail_flags_block_storing_and_redacted_prompts_are_keys(
        gateway: Gateway, upstreams: tuple[FakeOpenAI, Any]) -> None:
    openai_up, _ = upstreams
    openai_up.set_answer("Sure, writing to <EMAIL_1>.")
    client, stage = await gateway(guardrails=[{"name": "pii", "kind": "pii", "action": "redact", "restore": True}])
    await client.post("/v1/chat/completions", json=ask("write to jane@example.com"))
    resp = await client.post("/v1/chat/completions", json=ask("write to jane@example.com"))
    # a redact rule records findings: such answers are never cached
    assert resp.headers["x-llmgw-cache"] == "miss" and stage.stats.stored == 0
    await client.close()


async def test_index_is_rebuilt_from_disk_on_start(gateway: Gateway, upstreams: tuple[FakeOpenAI, Any]) -> None:
    openai_up, _ = upstreams
    openai_up.set_answer("kept")
    client, _ = await gateway()
    await client.post("/v1/chat/completions", json=ask("how do I reset my password"))
    await client.close()
    client, stage = await gateway()
    assert stage.store is not None and await asyncio.to_thread(stage.store.ready.wait, 5)
    resp = await client.post("/v1/chat/completions", json=ask("How do I reset my password?"))
    assert resp.headers["x-llmgw-cache"] == "semantic"
    assert len(openai_up.requests) == 1
    await client.close()
