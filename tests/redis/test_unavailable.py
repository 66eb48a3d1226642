"""Redis down or mute: RedisState gives up promptly; the app fails closed on budgets and open on rate limits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from llmgw.profile import parse_profile
from llmgw.providers.mock import MockProvider
from llmgw.proxy.app import make_app
from llmgw.store.shared import StateUnavailable
from llmgw.store.shared_redis import RedisState

from .conftest import RedisServer, free_port
from .test_state_contract import hold, rpm, tpm

SPENDER_KEY = "sk-llmgw-redis-tests-spender-0001"
LIMITED_KEY = "sk-llmgw-redis-tests-limited-0001"
HI = [{"role": "user", "content": "hi"}]


async def test_a_stopped_redis_is_reported_promptly_and_a_restarted_one_is_used_again(
        redis_server: RedisServer) -> None:
    state = RedisState(redis_server.url)
    try:
        now = time.time()
        assert await state.acquire("r1", [rpm(5)], [hold(1.0, 0.1)], now) is None
        redis_server.stop()
        for call in (lambda: state.acquire("r2", [rpm(5)], [hold(1.0, 0.1)], now),
                     lambda: state.settle("r1", [tpm(10, 5)], [hold(1.0, 0.1)], 1, 0.0, now),
                     lambda: state.spent("llmgw:budget:x"),
                     lambda: state.seed("llmgw:budget:x", 1.0, 60)):
            started = time.monotonic()
            with pytest.raises(StateUnavailable, match=r"redis at redis://127\.0\.0\.1"):
                await call()
            assert time.monotonic() - started < 2.0
        redis_server.start()  # empty again (no persistence), scripts not loaded: they are loaded on first use
        assert await state.acquire("r3", [rpm(5)], [hold(1.0, 0.1)], now) is None
        assert await state.spent(hold(1.0, 0.1).key) == pytest.approx(0.1)
    finally:
        await state.close()


async def test_a_redis_that_never_answers_is_given_up_on_within_the_deadline() -> None:
    """A peer that accepts connections and then says nothing (a hung server, a half-open link)."""
    held: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    state = RedisState(f"redis://127.0.0.1:{port}/0")
    try:
        started = time.monotonic()
        with pytest.raises(StateUnavailable):
            await state.acquire("r1", [rpm(5)], [], time.time())
        assert time.monotonic() - started < state.deadline_s + 0.5
    finally:
        await state.close()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
def upstream_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every model the mock provider is asked to answer."""
    calls: list[str] = []
    original = MockProvider.chat

    async def counting(self: MockProvider, ex: Any, body: dict[str, Any], model: str) -> Any:
        calls.append(model)
        return await original(self, ex, body, model)

    monkeypatch.setattr(MockProvider, "chat", counting)
    return calls


async def test_app_refuses_budgeted_keys_and_lets_rate_limited_ones_through_when_redis_is_down(
        aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream_calls: list[str]) -> None:
    monkeypatch.setenv("LLMGW_REDIS_SPENDER_KEY", SPENDER_KEY)
    monkeypatch.setenv("LLMGW_REDIS_LIMITED_KEY", LIMITED_KEY)
    profile = parse_profile({
        "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}", "shared": f"redis://127.0.0.1:{free_port()}/0"},
        "providers": {"mock": {"kind": "mock"}},
        "models": {"fast": {"targets": ["mock/m"]}},
        "prices": {"mock/m": {"input": 1.0, "output": 1.0}},
        "teams": {"paying": {"budget_usd": {"daily": 5.0}}, "free": {}},
        "keys": {"spender": {"key": "env:LLMGW_REDIS_SPENDER_KEY", "team": "paying"},
                 "limited": {"key": "env:LLMGW_REDIS_LIMITED_KEY", "team": "free", "rpm": 1}},
    })
    client = await aiohttp_client(make_app(profile))
    for _ in range(2):
        resp = await client.post("/v1/chat/completions", json={"model": "fast", "messages": HI, "max_tokens": 5},
                                 headers={"Authorization": f"Bearer {SPENDER_KEY}"})
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "state_unavailable"
    assert upstream_calls == []
    for _ in range(3):  # rpm = 1, but the limit cannot be counted: fail open
        resp = await client.post("/v1/chat/completions", json={"model": "fast", "messages": HI},
                                 headers={"Authorization": f"Bearer {LIMITED_KEY}"})
        assert resp.status == 200
    assert upstream_calls == ["m", "m", "m"]
