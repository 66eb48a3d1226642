"""The guardrail stage inside the real aiohttp app (``llmgw.proxy.app.make_app``): ``Pipeline([meter, auth, limits,
guard, router])``, ``after_route`` right after routing, ``after_answer`` before the response phase."""

from __future__ import annotations

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
from llmgw.testing.fake_anthropic import FakeAnthropic

EMAIL, CARD = "jane.doe@example.com", "4111 1111 1111 1111"
GUARDRAILS = [{"name": "pii", "kind": "pii", "action": "redact", "restore": True},
              {"name": "codenames", "kind": "denylist", "terms": ["project zeus"], "action": "block"}]


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[FakeOpenAI, FakeAnthropic]]:
    async with FakeOpenAI() as openai_up, FakeAnthropic() as anthropic_up:
        yield openai_up, anthropic_up


Gateway = Callable[[], Awaitable[TestClient]]


@pytest.fixture
def gateway(aiohttp_client: Any, tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeAnthropic]) -> Gateway:
    openai_up, anthropic_up = upstreams

    async def make() -> TestClient:
        profile = parse_profile({
            "server": {"log_bodies": True}, "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
            "providers": {"oa": {"kind": "openai-compatible", "base_url": openai_up.base_url},
                          "an": {"kind": "anthropic", "base_url": anthropic_up.base_url, "api_key": "sk-ant-x"}},
            "models": {"gpt": {"targets": ["oa/gpt-4o-mini"]}, "claude": {"targets": ["an/claude-3-5-haiku"]}},
            "guardrails": GUARDRAILS})
        return await aiohttp_client(make_app(profile))

    return make


def log_rows(tmp_path: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(tmp_path / "llmgw.db")
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM requests ORDER BY time")]
    db.close()
    return rows


def sse_data(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for line in raw.split(b"\n"):
        if line.startswith(b"data: ") and line != b"data: [DONE]":
            out.append(orjson.loads(line[6:]))
    return out


async def test_openai_client_redacted_upstream_restored_answer_clean_log(
        gateway: Gateway, upstreams: tuple[FakeOpenAI, FakeAnthropic], tmp_path: Path) -> None:
    openai_up, _ = upstreams
    openai_up.set_answer("I will mail <EMAIL_1> about card <CREDIT_CARD_1>.")
    client = await gateway()
    resp = await client.post("/v1/chat/completions", json={"model": "gpt", "messages": [
        {"role": "user", "content": f"mail {EMAIL} about {CARD}"}]})
    assert resp.status == 200
    answer = (await resp.json())["choices"][0]["message"]["content"]
    assert answer == f"I will mail {EMAIL} about card {CARD}."
    sent = orjson.dumps(openai_up.requests[-1]["body"]).decode()
    assert EMAIL not in sent and "4111" not in sent and "<EMAIL_1>" in sent
    await client.close()
    [row] = log_rows(tmp_path)
    logged = row["request"] + row["response"]   # with the upstream's ids and times: no bare "4111" (it turns up)
    assert EMAIL not in logged and "4111 1111" not in logged and "41111111" not in logged


async def test_openai_client_stream_restored(gateway: Gateway, upstreams: tuple[FakeOpenAI, FakeAnthropic],
                                            tmp_path: Path) -> None:
    openai_up, _ = upstreams
    openai_up.set_answer("Mailing <EMAIL_1> now, and <EMAIL_1> again.")
    client = await gateway()
    resp = await client.post("/v1/chat/completions", json={"model": "gpt", "stream": True, "messages": [
        {"role": "user", "content": f"mail {EMAIL}"}]})
    chunks = sse_data(await resp.read())
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert text == f"Mailing {EMAIL} now, and {EMAIL} again."
    await client.close()
    [row] = log_rows(tmp_path)
    assert EMAIL not in row["response"] and "<EMAIL_1>" in row["response"]


async def test_anthropic_client_same_format_upstream(gateway: Gateway, upstreams: tuple[FakeOpenAI, FakeAnthropic],
                                                    tmp_path: Path) -> None:
    _, anthropic_up = upstreams
    anthropic_up.set_answer("Noted <EMAIL_1>.")
    client = await gateway()
    body = {"model": "claude", "max_tokens": 50,
            "system": [{"type": "text", "text": f"The customer is {EMAIL}."}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": f"my card {CARD}"}]}]}
    resp = await client.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["content"][0]["text"] == f"Noted {EMAIL}."
    sent = anthropic_up.requests[-1]["body"]
    assert sent["system"][0]["text"] == "The customer is <EMAIL_1>."
    assert sent["messages"][0]["content"][0]["text"] == "my card <CREDIT_CARD_1>"
    resp = await client.post("/v1/messages", json={**body, "stream": True},
                             headers={"anthropic-version": "2023-06-01"})
    events = sse_data(await resp.read())
    text = "".join(e["delta"].get("text", "") for e in events if e.get("type") == "content_block_delta")
    assert text == f"Noted {EMAIL}."
    await client.close()
    for row in log_rows(tmp_path):
        assert EMAIL not in row["request"] + row["response"]


async def test_anthropic_client_to_openai_upstream(gateway: Gateway, upstreams: tuple[FakeOpenAI, FakeAnthropic]) \
        -> None:
    openai_up, _ = upstreams
    openai_up.set_answer("Hello <EMAIL_1>")
    client = await gateway()
    resp = await client.post("/v1/messages", json={
        "model": "gpt", "max_tokens": 50, "system": f"user {EMAIL}",
        "messages": [{"role": "user", "content": f"hi, I am {EMAIL}"}]})
    assert resp.status == 200
    assert (await resp.json())["content"][0]["text"] == f"Hello {EMAIL}"
    sent = orjson.dumps(openai_up.requests[-1]["body"]).decode()
    assert EMAIL not in sent and "user <EMAIL_1>" in sent
    await client.close()


async def test_blocked_request_is_403_in_each_format_and_never_reaches_a_provider(
        gateway: Gateway, upstreams: tuple[FakeOpenAI, FakeAnthropic], tmp_path: Path) -> None:
    openai_up, anthropic_up = upstreams
    client = await gateway()
    resp = await client.post("/v1/chat/completions", json={"model": "gpt", "messages": [
        {"role": "user", "content": f"Project Zeus budget? ask {EMAIL}"}]})
    assert resp.status == 403
    error = (await resp.json())["error"]
    assert error["type"] == "permission_error" and error["code"] == "guardrail_blocked"
    assert "'codenames' (denylist)" in error["message"]
    resp = await client.post("/v1/messages", json={"model": "claude", "max_tokens": 5, "messages": [
        {"role": "user", "content": "project zeus"}]})
    assert resp.status == 403
    assert (await resp.json())["error"]["type"] == "permission_error"
    assert openai_up.requests == [] and anthropic_up.requests == []
    await client.close()
    rows = log_rows(tmp_path)
    assert [r["status"] for r in rows] == [403, 403]
    assert all(EMAIL not in (r["request"] or "") for r in rows)
    assert "codenames" in rows[0]["error_message"]
