"""The request log never holds a raw value a rule would redact: refused requests (401, 404, 429, 400) keep no body,
a body that repeats a key is refused (400) before anything reads it, and answered requests are logged as the
guard left them."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from llmgw.profile import parse_profile
from llmgw.proxy.app import make_app
from llmgw.testing import FakeOpenAI

KEY = "sk-llmgw-guard-log-key-for-tests-01"
CARD, MAIL, ZW_CARD = "4111 1111 1111 1111", "jane.doe@example.com", "4111\u200b1111\u200b1111\u200b1111"
# The raw values and pieces of them. A piece must not turn up by chance in a row's ids, times or hex digests: a
# bare "4111" does (a request id is the time in hex, so every id of some minutes holds it).
RAW = (CARD, MAIL, ZW_CARD, "4111 1111", "41111111", "jane.doe")


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


Gateway = Callable[[], Awaitable[TestClient]]


@pytest.fixture
def gateway(aiohttp_client: Any, tmp_path: Path, upstream: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Gateway:
    monkeypatch.setenv("LLMGW_GUARD_LOG_KEY", KEY)

    async def make() -> TestClient:
        profile = parse_profile({
            "server": {"log_bodies": True}, "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
            "providers": {"oa": {"kind": "openai-compatible", "base_url": upstream.base_url}},
            "models": {"gpt": {"targets": ["oa/gpt-4o-mini"]}},
            "teams": {"search": {}},
            "keys": {"ci": {"key": "env:LLMGW_GUARD_LOG_KEY", "team": "search", "rpm": 3}},
            "guardrails": [{"name": "pii", "kind": "pii", "action": "redact", "restore": True},
                           {"name": "codenames", "kind": "denylist", "terms": ["project zeus"]}]})
        return await aiohttp_client(make_app(profile))

    return make


def rows(tmp_path: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(tmp_path / "llmgw.db")
    db.row_factory = sqlite3.Row
    found = [dict(r) for r in db.execute("SELECT * FROM requests ORDER BY time")]
    db.close()
    return found


def leaks(row: dict[str, Any]) -> list[str]:
    """The raw values anywhere in a log row (as written, or JSON-escaped)."""
    text = repr(row) + orjson.dumps({k: v for k, v in row.items() if isinstance(v, str)}).decode()
    return [v for v in RAW if v in text or orjson.dumps(v).decode()[1:-1] in text]


def bearer(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def chat(content: str, model: str = "gpt", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def test_the_leak_check_finds_no_card_in_the_ids_and_times_of_any_minute() -> None:
    """A request id is the time in hex: from 12:39:22 to 12:40:28 UTC on 2026-12-04 every id began
    ``req_01a24111``. The check must not take that for a card, and must still find one in a body."""
    row = {"id": "req_01a241113f2a9c0d1e2f3a4b", "time": 1796401111.41111, "latency_ms": 41.111, "request": None}
    assert leaks(row) == []
    assert leaks({**row, "request": f"card {CARD}"}) == [CARD, "4111 1111"]
    assert leaks({**row, "request": "card 4111111111111111"}) == ["41111111"]


async def test_refused_requests_keep_no_body(gateway: Gateway, upstream: FakeOpenAI, tmp_path: Path) -> None:
    client = await gateway()
    prompt = f"card {CARD}, mail {MAIL}, again {ZW_CARD}"
    refused = [
        (await client.post("/v1/chat/completions", json=chat(prompt), headers=bearer("sk-wrong"))).status,
        (await client.post("/v1/chat/completions", json=chat(prompt, "nope"), headers=bearer())).status,
        (await client.post("/v1/chat/completions", json=chat(prompt, temperature=7), headers=bearer())).status,
    ]
    statuses = []
    for _ in range(5):   # rpm = 3: the last ones are refused with 429
        statuses.append((await client.post("/v1/chat/completions", json=chat(prompt), headers=bearer())).status)
    await client.close()
    assert refused == [401, 404, 400]
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
    logged = rows(tmp_path)
    assert sorted(r["status"] for r in logged) == sorted(refused + statuses)
    for row in logged:
        assert leaks(row) == [], (row["status"], leaks(row))
        if row["status"] != 200:
            assert row["request"] is None, row["status"]
        else:
            assert "<CREDIT_CARD_1>" in row["request"]
    sent = orjson.dumps([r["body"] for r in upstream.requests]).decode()
    assert "4111" not in sent and MAIL not in sent


async def test_a_repeated_key_is_refused_before_anyone_reads_it(gateway: Gateway, upstream: FakeOpenAI,
                                                              tmp_path: Path) -> None:
    client = await gateway()
    raw = ('{"model": "gpt", "messages": [{"role": "user", "content": "card ' + CARD + '", "content": "hi"}]}')
    resp = await client.post("/v1/chat/completions", data=raw, headers={**bearer(), "Content-Type": "application/json"})
    error = (await resp.json())["error"]
    await client.close()
    assert resp.status == 400 and error["code"] == "duplicate_key" and "messages[0].content" in error["message"]
    assert upstream.requests == []
    [row] = rows(tmp_path)
    assert row["request"] is None and leaks(row) == []


async def test_a_repeated_key_inside_tool_arguments_is_judged_as_the_upstream_reads_it(
        gateway: Gateway, upstream: FakeOpenAI, tmp_path: Path) -> None:
    """orjson keeps the last value of a repeated key, other parsers the first: the guard sends the arguments
    re-serialised, so the upstream reads exactly what was judged."""
    client = await gateway()
    arguments = '{"note": "card ' + CARD + '", "note": "hi"}'
    body = {"model": "gpt", "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "f", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"}]}
    resp = await client.post("/v1/chat/completions", json=body, headers=bearer())
    await client.close()
    assert resp.status == 200
    sent = upstream.requests[-1]["body"]["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert orjson.loads(sent) == {"note": "hi"} and "4111" not in sent


async def test_a_request_over_the_scan_budget_is_refused_and_not_logged(
        gateway: Gateway, upstream: FakeOpenAI, tmp_path: Path) -> None:
    client = await gateway()
    dense = " ".join(f"{MAIL[:4]}{i}@example.com" for i in range(60_000))
    resp = await client.post("/v1/chat/completions", data=io.BytesIO(orjson.dumps(chat(dense))),
                             headers={**bearer(), "Content-Type": "application/json"})
    error = (await resp.json())["error"]
    await client.close()
    assert resp.status == 413 and error["code"] == "guardrail_scan_budget"
    assert upstream.requests == []
    [row] = rows(tmp_path)
    assert row["request"] is None


async def test_a_repeated_key_is_refused_when_a_limit_added_a_key_to_the_body(
        aiohttp_client: Any, tmp_path: Path, upstream: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token limit makes the gateway add ``max_completion_tokens`` to a body that has no output limit: the body's
    key count then matches a raw body that repeats one key. The repeat is still found."""
    monkeypatch.setenv("LLMGW_GUARD_LOG_KEY", KEY)
    profile = parse_profile({
        "server": {"log_bodies": True}, "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
        "providers": {"oa": {"kind": "openai-compatible", "base_url": upstream.base_url}},
        "models": {"gpt": {"targets": ["oa/gpt-4o-mini"]}},
        "prices": {"oa/gpt-4o-mini": {"input": 0.15, "output": 0.6}},
        "teams": {"search": {"tpm": 1_000_000}},
        "keys": {"ci": {"key": "env:LLMGW_GUARD_LOG_KEY", "team": "search"}},
        "guardrails": [{"name": "pii", "kind": "pii", "action": "redact"}]})
    client = await aiohttp_client(make_app(profile))
    raw = '{"model": "gpt", "messages": [{"role": "user", "content": "card ' + CARD + '", "content": "hi"}]}'
    resp = await client.post("/v1/chat/completions", data=raw, headers={**bearer(), "Content-Type": "application/json"})
    error = (await resp.json())["error"]
    clean = await client.post("/v1/chat/completions", json={"model": "gpt", "messages": [{"role": "user",
                                                                                          "content": "hi"}]},
                              headers=bearer())
    await client.close()
    assert resp.status == 400 and error["code"] == "duplicate_key" and "messages[0].content" in error["message"]
    assert clean.status == 200
    assert "max_completion_tokens" in upstream.requests[-1]["body"]    # the limit did add a key
    assert len(upstream.requests) == 1
