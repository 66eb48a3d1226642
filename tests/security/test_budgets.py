"""Budgets and tpm hold against a client that tries to spend more than it may: no output limit and long answers,
streams cut short or without usage, and an upstream that reports negative usage. The bound everywhere: the spend
overshoots a budget by at most one request's maximum cost."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmgw.proxy.app import make_app
from llmgw.stages.limits import budget_counter, periods
from llmgw.store.shared_sqlite import SQLiteState

from .attacks import DEFAULT_CAP, HI, SPENDER_KEY, attack_profile, burst, logged, most_one_request_costs
from .upstream import AttackUpstream

DAILY = 0.5


def spend(rows: list[dict[str, Any]]) -> float:
    return sum(r["cost_usd"] for r in rows)


async def test_no_max_tokens_and_long_answers_cannot_overspend(aiohttp_client: Any, tmp_path: Path,
                                                               upstream: AttackUpstream) -> None:
    """200 concurrent requests without max_tokens, each answer 20,000 tokens if allowed: before, $2.40 of $0.50."""
    db = tmp_path / "llmgw.db"
    client = await aiohttp_client(make_app(attack_profile(db, upstream.url, daily=DAILY)))
    statuses = await burst([client], 200, {"model": "long", "messages": HI})
    await client.close()
    assert statuses.count(200) >= 5 and statuses.count(429) >= 100
    assert all(r.body.get("max_completion_tokens") == DEFAULT_CAP for r in upstream.received)
    rows = [r for r in logged(db) if r["status"] == 200]
    assert spend(rows) <= DAILY + most_one_request_costs(50)
    assert max(r["output_tokens"] for r in rows) == DEFAULT_CAP


@pytest.mark.parametrize(("usage", "body", "cap"), [
    ("honest", {}, DEFAULT_CAP),
    ("negative", {"max_tokens": 2000}, 2000),
])
async def test_two_workers_sharing_sqlite_state_cannot_overspend(aiohttp_client: Any, tmp_path: Path,
                                                                 upstream: AttackUpstream, usage: str,
                                                                 body: dict[str, Any], cap: int) -> None:
    upstream.usage = usage
    db = tmp_path / "llmgw.db"
    clients = [await aiohttp_client(make_app(attack_profile(db, upstream.url, daily=DAILY, workers=2)))
               for _ in range(2)]
    statuses = await burst(clients, 200, {"model": "long", "messages": HI, **body})
    for client in clients:
        await client.close()
    assert statuses.count(200) >= 5 and statuses.count(429) >= 100
    assert (tmp_path / "shared-state.db").exists()
    rows = logged(db)
    assert all(r["cost_usd"] >= 0 for r in rows)
    assert spend(rows) <= DAILY + most_one_request_costs(50, cap)


async def test_a_stream_closed_after_three_events_bills_its_prompt(aiohttp_client: Any, tmp_path: Path,
                                                                   upstream: AttackUpstream) -> None:
    """A 100,000-token prompt, a stream read for three events, then the connection closed: before, $0.00004."""
    upstream.chunks, upstream.chunk_delay_s, upstream.answer_tokens = 200, 0.02, 2000
    db = tmp_path / "llmgw.db"
    client = await aiohttp_client(make_app(attack_profile(db, upstream.url, daily=DAILY)))
    prompt = [{"role": "user", "content": "word " * 80_000}]
    resp = await client.post("/v1/chat/completions", json={"model": "long", "messages": prompt, "stream": True},
                             headers={"Authorization": f"Bearer {SPENDER_KEY}"})
    assert resp.status == 200
    events = 0
    while events < 3:
        line = await resp.content.readline()
        events += line.startswith(b"data: ")
    resp.close()
    await client.close()
    row = logged(db)[0]
    assert row["outcome"] == "client_disconnect" and row["usage_estimated"] == 1
    assert 95_000 <= row["input_tokens"] <= 110_000 and row["output_tokens"] >= 1
    assert row["cost_usd"] >= row["input_tokens"] * 1.0 / 1e6


async def test_a_stream_without_usage_is_not_free(aiohttp_client: Any, tmp_path: Path,
                                                  upstream: AttackUpstream) -> None:
    upstream.usage, upstream.answer_tokens = "none", 500
    db = tmp_path / "llmgw.db"
    client = await aiohttp_client(make_app(attack_profile(db, upstream.url, daily=DAILY)))
    resp = await client.post("/v1/chat/completions", json={"model": "long", "messages": HI, "stream": True,
                                                           "max_tokens": 500},
                             headers={"Authorization": f"Bearer {SPENDER_KEY}"})
    assert resp.status == 200 and b"[DONE]" in await resp.read()
    await client.close()
    row = logged(db)[0]
    assert row["outcome"] == "ok" and row["usage_estimated"] == 1
    assert row["output_tokens"] == 500 and row["input_tokens"] > 0
    assert row["cost_usd"] >= 500 * 10.0 / 1e6


async def test_negative_usage_cannot_make_room_in_a_budget(aiohttp_client: Any, tmp_path: Path,
                                                           upstream: AttackUpstream) -> None:
    """Before: the budget went to -$1000 and the next $20 were admitted."""
    upstream.usage = "negative"
    db = tmp_path / "llmgw.db"
    client = await aiohttp_client(make_app(attack_profile(db, upstream.url, daily=DAILY)))
    statuses = [*(await burst([client], 30, {"model": "long", "messages": HI, "max_tokens": 2000})),
                *(await burst([client], 30, {"model": "long", "messages": HI, "max_tokens": 2000}))]
    await client.close()
    rows = logged(db)
    assert 429 in statuses and all(r["cost_usd"] >= 0 and r["input_tokens"] >= 0 for r in rows)
    billed = [r for r in rows if r["status"] == 200]
    assert billed and all(r["usage_estimated"] == 1 and r["output_tokens"] == 2000 for r in billed)
    assert spend(rows) <= DAILY + most_one_request_costs(50, 2000)


async def test_tpm_reserves_and_sends_the_same_cap(aiohttp_client: Any, tmp_path: Path,
                                                   upstream: AttackUpstream) -> None:
    db = tmp_path / "llmgw.db"
    client = await aiohttp_client(make_app(attack_profile(db, upstream.url, daily=None, tpm=30_000,
                                                          server={"default_max_tokens": 1000})))
    statuses = await burst([client], 60, {"model": "long", "messages": HI})
    await client.close()
    assert statuses.count(200) == 29 and statuses.count(429) == 31    # 30,000 / (prompt + 1,000)
    assert {r.body["max_completion_tokens"] for r in upstream.received} == {1000}
    used = sum(r["input_tokens"] + r["output_tokens"] for r in logged(db) if r["status"] == 200)
    assert used <= 30_000 + 1000 + 50


async def test_anthropic_clients_keep_their_own_max_tokens(aiohttp_client: Any, tmp_path: Path,
                                                           upstream: AttackUpstream) -> None:
    db = tmp_path / "llmgw.db"
    client = await aiohttp_client(make_app(attack_profile(db, upstream.url, daily=DAILY)))
    async with client.post("/v1/messages", json={"model": "long", "max_tokens": 300, "messages": HI},
                           headers={"x-api-key": SPENDER_KEY}) as resp:
        assert resp.status == 200, await resp.text()
    await client.close()
    sent = upstream.received[0].body
    assert sent.get("max_tokens") == 300 and "max_completion_tokens" not in sent


async def test_a_stream_client_that_hangs_up_after_the_last_event_is_still_logged_and_settled(
        aiohttp_client: Any, tmp_path: Path, upstream: AttackUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients close the connection as soon as they have ``[DONE]``; with budgets in a shared store the settle is
    still in flight then. Before, the hang-up cancelled the handler mid-settle: no settle, no log row, no spend."""
    settled: list[str] = []
    real_settle = SQLiteState.settle

    async def slow_settle(self: SQLiteState, request_id: str, *args: Any) -> None:
        await asyncio.sleep(0.2)   # a shared store that takes a moment
        await real_settle(self, request_id, *args)
        settled.append(request_id)

    monkeypatch.setattr(SQLiteState, "settle", slow_settle)
    db = tmp_path / "llmgw.db"
    client = await aiohttp_client(make_app(attack_profile(db, upstream.url, daily=DAILY, workers=2)))

    async def stream_and_hang_up() -> str:
        body = orjson.dumps({"model": "long", "messages": HI, "stream": True, "max_tokens": 50})
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     + f"Authorization: Bearer {SPENDER_KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                     + body)
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        await reader.readuntil(b"data: [DONE]")
        writer.close()   # at once, as curl and most SDKs do once they have the answer
        return next(line.split(b": ", 1)[1].decode() for line in head.split(b"\r\n")
                    if line.lower().startswith(b"x-llmgw-request-id"))

    ids = await asyncio.gather(*(stream_and_hang_up() for _ in range(8)))
    await asyncio.sleep(0.5)   # the hung-up connections finish closing
    await client.close()
    rows = {r["id"]: r for r in logged(db)}
    assert sorted(rows) == sorted(ids)
    assert all(r["outcome"] == "ok" and r["cost_usd"] > 0 for r in rows.values())
    assert sorted(settled) == sorted(ids)


async def test_a_client_that_hangs_up_while_its_budget_is_reserved_leaves_nothing_held(
        aiohttp_client: Any, tmp_path: Path, upstream: AttackUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients that send a request and hang up at once, while a shared store is answering the reservation. Before,
    each left its maximum cost held on the team's budget until the day ended: a few such clients locked a team out."""
    real_acquire = SQLiteState.acquire

    async def slow_answer(self: SQLiteState, *args: Any) -> Any:
        denial = await real_acquire(self, *args)
        await asyncio.sleep(0.3)   # the store's answer takes a moment to come back
        return denial

    monkeypatch.setattr(SQLiteState, "acquire", slow_answer)
    db = tmp_path / "llmgw.db"
    client = await aiohttp_client(make_app(attack_profile(db, upstream.url, daily=DAILY, workers=2)))
    body = orjson.dumps({"model": "long", "messages": HI, "max_tokens": 5000})

    async def send_and_hang_up() -> None:
        _, writer = await asyncio.open_connection(client.server.host, client.server.port)
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     + f"Authorization: Bearer {SPENDER_KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await asyncio.sleep(0.1)
        writer.close()

    await asyncio.gather(*(send_and_hang_up() for _ in range(6)))
    await asyncio.sleep(0.6)   # the reservations come back and are settled
    state = SQLiteState(tmp_path / "shared-state.db")
    try:
        held = await state.spent(budget_counter("team:search", periods(time.time())[0][1]))
    finally:
        await state.close()
    await client.close()
    assert held == pytest.approx(0.0, abs=1e-9)
    assert upstream.received == []
    rows = logged(db)
    assert len(rows) == 6 and {r["outcome"] for r in rows} == {"client_disconnect"}
