"""Profile reloads inside the real app (``make_app`` through ``aiohttp_client``): the profile file is rewritten and
the app's :class:`~llmgw.proxy.reload.ProfileReloader` re-reads it, as SIGHUP and ``serve --watch`` make it do.
Routes, keys, guardrails and prices change for new requests; a bad edit is refused with ``llmgw check``'s lines
and the old profile keeps serving; a request in flight finishes on the profile it started with; what must survive
(rate windows, the cache store, cooldowns) does."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from aiohttp.test_utils import TestClient

from llmgw.profile import load_profile
from llmgw.proxy.app import SERVING, make_app
from llmgw.proxy.reload import ProfileReloader, changes, pinned, restart_needed
from llmgw.stages.route import CircuitBreaker
from llmgw.testing import FakeOpenAI

KEY_1 = "sk-reload-test-key-one-0001"
KEY_2 = "sk-reload-test-key-two-0002"
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[FakeOpenAI, FakeOpenAI]]:
    async with FakeOpenAI() as a, FakeOpenAI() as b:
        yield a, b


def profile_data(tmp_path: Path, ups: tuple[FakeOpenAI, FakeOpenAI], target: str = "a/gpt-4o-mini",
                 **sections: Any) -> dict[str, Any]:
    a, b = ups
    return {"server": {"log_bodies": False}, "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
            "providers": {"a": {"kind": "openai-compatible", "base_url": a.base_url},
                          "b": {"kind": "openai-compatible", "base_url": b.base_url}},
            "models": {"chat": {"targets": [target]}},
            "prices": {"a/gpt-4o-mini": {"input": 1.0, "output": 1.0}, "b/gpt-4o-mini": {"input": 1.0, "output": 1.0}},
            **sections}


def write(path: Path, data: dict[str, Any] | str) -> Path:
    path.write_text(data if isinstance(data, str) else tomli_w.dumps(data), encoding="utf-8")
    return path


Start = Callable[[dict[str, Any]], Awaitable[tuple[TestClient, ProfileReloader, Path]]]


@pytest.fixture
def start(aiohttp_client: Any, tmp_path: Path) -> Start:
    """``client, serving, path = await start(data)``: the app serving the profile file ``path``."""

    async def go(data: dict[str, Any]) -> tuple[TestClient, ProfileReloader, Path]:
        path = write(tmp_path / "llmgw.toml", data)
        client = await aiohttp_client(make_app(load_profile(path)))
        return client, client.server.app[SERVING], path

    return go


async def chat(client: TestClient, body: dict[str, Any] = CHAT, key: str | None = None) -> tuple[int, str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with client.post("/v1/chat/completions", json=body, headers=headers) as resp:
        return resp.status, resp.headers.get("x-llmgw-target", ""), await resp.json()


async def reload_count(client: TestClient, result: str) -> float:
    text = await (await client.get("/metrics")).text()
    line = next(x for x in text.splitlines() if x.startswith(f'llmgw_profile_reloads_total{{result="{result}"}}'))
    return float(line.rsplit(" ", 1)[1])


async def test_an_alias_routed_elsewhere_answers_from_the_new_target(start: Start, tmp_path: Path,
                                                                    upstreams: tuple[FakeOpenAI, FakeOpenAI],
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    client, serving, path = await start(profile_data(tmp_path, upstreams))
    assert (await chat(client))[:2] == (200, "a/gpt-4o-mini")
    write(path, profile_data(tmp_path, upstreams, target="b/gpt-4o-mini",
                             models={"chat": {"targets": ["b/gpt-4o-mini"]}, "new": {"targets": ["a/gpt-4o-mini"]}}))
    with caplog.at_level(logging.INFO, "llmgw.proxy.reload"):
        assert await serving.reload() is True
    assert serving.current.number == 2
    assert (await chat(client))[:2] == (200, "b/gpt-4o-mini")
    assert (await chat(client, {**CHAT, "model": "new"}))[:2] == (200, "a/gpt-4o-mini")
    models = await (await client.get("/v1/models")).json()
    assert [m["id"] for m in models["data"]] == ["chat", "new"]
    assert len(upstreams[1].requests) == 1
    assert await reload_count(client, "ok") == 1 and await reload_count(client, "refused") == 0
    line = next(r.getMessage() for r in caplog.records if "generation 2" in r.getMessage())
    assert "aliases added: new" in line and "aliases changed: chat" in line


async def test_an_added_key_works_and_a_removed_one_stops(start: Start, tmp_path: Path,
                                                         upstreams: tuple[FakeOpenAI, FakeOpenAI],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELOAD_KEY_1", KEY_1)
    monkeypatch.setenv("RELOAD_KEY_2", KEY_2)
    teams = {"eng": {}}
    one = {"one": {"key": "env:RELOAD_KEY_1", "team": "eng"}}
    client, serving, path = await start(profile_data(tmp_path, upstreams, teams=teams, keys=one))
    assert (await chat(client, key=KEY_1))[0] == 200
    assert (await chat(client, key=KEY_2))[0] == 401
    two = {"two": {"key": "env:RELOAD_KEY_2", "team": "eng"}}
    write(path, profile_data(tmp_path, upstreams, teams=teams, keys=two))
    assert await serving.reload()
    assert (await chat(client, key=KEY_2))[0] == 200
    assert (await chat(client, key=KEY_1))[0] == 401
    assert (await client.get("/v1/models", headers={"Authorization": f"Bearer {KEY_1}"})).status == 401


async def test_a_new_guardrail_rule_blocks_new_requests(start: Start, tmp_path: Path,
                                                       upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    client, serving, path = await start(profile_data(tmp_path, upstreams))
    secret_plan = {**CHAT, "messages": [{"role": "user", "content": "tell me about project zeus"}]}
    assert (await chat(client, secret_plan))[0] == 200
    rule = {"name": "codenames", "kind": "denylist", "terms": ["project zeus"], "action": "block"}
    write(path, profile_data(tmp_path, upstreams, guardrails=[rule]))
    assert await serving.reload()
    status, _, body = await chat(client, secret_plan)
    assert status == 403 and "codenames" in str(body)
    assert (await chat(client))[0] == 200
    assert len(upstreams[0].requests) == 2   # the blocked request never reached the upstream


async def test_a_changed_price_prices_new_requests(start: Start, tmp_path: Path,
                                                  upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    client, serving, path = await start(profile_data(tmp_path, upstreams))
    async with client.post("/v1/chat/completions", json=CHAT) as resp:
        before = float(resp.headers["x-llmgw-cost-usd"])
    data = profile_data(tmp_path, upstreams)
    data["prices"]["a/gpt-4o-mini"] = {"input": 3.0, "output": 3.0}
    write(path, data)
    assert await serving.reload()
    async with client.post("/v1/chat/completions", json=CHAT) as resp:
        after = float(resp.headers["x-llmgw-cost-usd"])
    assert before > 0 and after == pytest.approx(3 * before)


@pytest.mark.parametrize(("edit", "expected"), [
    ("broken = [", "invalid TOML"),
    ("unknown_provider", "models.chat.targets"),
    ("missing_secret", "providers.a.api_key"),
])
async def test_a_bad_edit_is_refused_and_the_old_profile_keeps_serving(
        start: Start, tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch, edit: str, expected: str) -> None:
    client, serving, path = await start(profile_data(tmp_path, upstreams))
    first = serving.current
    if edit == "unknown_provider":
        write(path, profile_data(tmp_path, upstreams, target="nowhere/gpt-4o-mini"))
    elif edit == "missing_secret":
        monkeypatch.delenv("RELOAD_MISSING_KEY", raising=False)
        data = profile_data(tmp_path, upstreams, target="b/gpt-4o-mini")
        data["providers"]["a"]["api_key"] = "env:RELOAD_MISSING_KEY"
        write(path, data)
    else:
        write(path, edit)
    with caplog.at_level(logging.INFO, "llmgw.proxy.reload"):
        assert await serving.reload() is False
    assert serving.current is first
    assert (await chat(client))[:2] == (200, "a/gpt-4o-mini")
    lines = [r.getMessage() for r in caplog.records if r.name == "llmgw.proxy.reload"]
    assert any(line.startswith(f"{path}: ") and expected in line for line in lines), lines
    assert lines[-1] == "profile reload refused (1 problem); still serving generation 1"
    assert await reload_count(client, "refused") == 1 and await reload_count(client, "ok") == 0


async def test_a_request_in_flight_finishes_on_the_route_it_started_with(
        start: Start, tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = upstreams
    a.chunk_delay_s = 0.1   # a whole answer takes as long as its stream would: about a second
    client, serving, path = await start(profile_data(tmp_path, upstreams))
    first = serving.current
    slow = asyncio.create_task(chat(client))
    while not a.requests:
        await asyncio.sleep(0.01)
    assert first.inflight.count == 1
    write(path, profile_data(tmp_path, upstreams, target="b/gpt-4o-mini"))
    assert await serving.reload()
    assert (await chat(client))[:2] == (200, "b/gpt-4o-mini")   # while the slow one is still on its way
    assert not slow.done()
    status, target, body = await slow
    assert (status, target) == (200, "a/gpt-4o-mini") and body["choices"][0]["message"]["content"]
    assert first.inflight.count == 0 and len(a.requests) == 1 and len(b.requests) == 1


async def test_a_replaced_cache_closes_only_after_its_requests_finish(
        start: Start, tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI],
        monkeypatch: pytest.MonkeyPatch) -> None:
    cache = {"enabled": True, "dir": str(tmp_path / "cache")}
    client, serving, path = await start(profile_data(tmp_path, upstreams, cache=cache))
    first = serving.current
    write(path, profile_data(tmp_path, upstreams, target="b/gpt-4o-mini", cache=cache))
    assert await serving.reload()
    assert serving.current.cache is first.cache   # [cache] unchanged: the same store, index and queue
    upstreams[0].chunk_delay_s = upstreams[1].chunk_delay_s = 0.1
    second = serving.current
    closed: list[bool] = []
    monkeypatch.setattr(second.cache, "close", lambda: closed.append(True))
    slow = asyncio.create_task(chat(client, {**CHAT, "messages": [{"role": "user", "content": "slow one"}]}))
    while not upstreams[1].requests:
        await asyncio.sleep(0.01)
    write(path, profile_data(tmp_path, upstreams, target="b/gpt-4o-mini", cache={**cache, "ttl": "2h"}))
    assert await serving.reload()
    assert serving.current.cache is not second.cache
    await asyncio.sleep(0.2)
    assert not closed, "the cache was closed under a request in flight"
    assert (await slow)[0] == 200
    for _ in range(100):
        if closed:
            break
        await asyncio.sleep(0.02)
    assert closed == [True]


async def test_rate_windows_survive_a_reload(start: Start, tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELOAD_KEY_1", KEY_1)
    sections = {"teams": {"eng": {}}, "keys": {"one": {"key": "env:RELOAD_KEY_1", "team": "eng", "rpm": 2}}}
    client, serving, path = await start(profile_data(tmp_path, upstreams, **sections))
    assert [(await chat(client, key=KEY_1))[0] for _ in range(2)] == [200, 200]
    write(path, profile_data(tmp_path, upstreams, target="b/gpt-4o-mini", **sections))
    assert await serving.reload()
    assert (await chat(client, key=KEY_1))[0] == 429   # the minute's two requests still count


async def test_settings_applied_at_start_need_a_restart_and_the_rest_applies(
        start: Start, tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI],
        caplog: pytest.LogCaptureFixture) -> None:
    client, serving, path = await start(profile_data(tmp_path, upstreams))
    data = profile_data(tmp_path, upstreams, target="b/gpt-4o-mini")
    data["server"] = {"log_bodies": False, "port": 4999, "max_body_mb": 1.0}
    data["state"] = {"url": f"sqlite:///{tmp_path / 'other.db'}"}
    write(path, data)
    with caplog.at_level(logging.INFO, "llmgw.proxy.reload"):
        assert await serving.reload()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{path}: {key} changed: needs a restart (the running server keeps its value until then)"
                        for key in ("server.port", "server.max_body_mb", "state")]
    assert (await chat(client))[:2] == (200, "b/gpt-4o-mini")
    running = serving.current.profile
    assert running.server.port != 4999 and running.state.db_path == tmp_path / "llmgw.db"
    assert not (tmp_path / "other.db").exists()


async def test_opening_or_closing_the_proxy_is_refused_as_a_whole(
        start: Start, tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("RELOAD_KEY_1", KEY_1)
    client, serving, path = await start(profile_data(tmp_path, upstreams))
    write(path, profile_data(tmp_path, upstreams, target="b/gpt-4o-mini", teams={"eng": {}},
                             keys={"one": {"key": "env:RELOAD_KEY_1", "team": "eng"}}))
    with caplog.at_level(logging.INFO, "llmgw.proxy.reload"):
        assert await serving.reload() is False
    assert any("needs a restart" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    assert (await chat(client))[:2] == (200, "a/gpt-4o-mini")


async def test_the_open_proxy_guard_follows_allowed_hosts(start: Start, tmp_path: Path,
                                                         upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    client, serving, path = await start(profile_data(tmp_path, upstreams))
    headers = {"Host": "gateway.internal"}
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=headers)).status == 403
    write(path, profile_data(tmp_path, upstreams, server={"log_bodies": False, "allowed_hosts": ["gateway.internal"]}))
    assert await serving.reload()
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=headers)).status == 200


async def test_watch_reloads_when_the_file_changes(start: Start, tmp_path: Path,
                                                  upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    client, serving, path = await start(profile_data(tmp_path, upstreams))
    watcher = asyncio.create_task(serving.watch(interval_s=0.05))
    try:
        await asyncio.sleep(0.2)
        assert serving.current.number == 1   # nothing changed: nothing reloaded
        write(path, profile_data(tmp_path, upstreams, target="b/gpt-4o-mini"))
        for _ in range(100):
            if serving.current.number == 2:
                break
            await asyncio.sleep(0.02)
        assert (await chat(client))[:2] == (200, "b/gpt-4o-mini")
        path.touch()   # a new mtime, the same content: not a change
        await asyncio.sleep(0.3)
        assert serving.current.number == 2
    finally:
        watcher.cancel()


async def test_reloads_asked_for_during_a_reload_run_once_more(start: Start, tmp_path: Path,
                                                              upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    client, serving, path = await start(profile_data(tmp_path, upstreams))
    for _ in range(5):
        serving.request()
    write(path, profile_data(tmp_path, upstreams, target="b/gpt-4o-mini"))
    for _ in range(200):
        if serving._task is not None and serving._task.done():
            break
        await asyncio.sleep(0.01)
    assert 2 <= serving.current.number <= 3
    assert (await chat(client))[:2] == (200, "b/gpt-4o-mini")


def test_cooldowns_carry_over_for_targets_that_still_exist() -> None:
    old = CircuitBreaker(failures=1, cooldown_s=60)
    old.record("a/x", False, now=100.0)
    old.record("gone/y", False, now=100.0)
    new = CircuitBreaker(failures=1, cooldown_s=30)
    new.carry(old, {"a/x", "b/z"})
    assert new.is_open("a/x", 101.0) and not new.is_open("gone/y", 101.0)


def test_what_changed_and_what_needs_a_restart(tmp_path: Path) -> None:
    base = {"state": {"url": f"sqlite:///{tmp_path / 'a.db'}"}, "providers": {"mock": {"kind": "mock"}},
            "models": {"fast": {"targets": ["mock/mock-1"]}, "old": {"targets": ["mock/mock-1"]}}}
    old = load_profile(write(tmp_path / "old.toml", base))
    new = load_profile(write(tmp_path / "new.toml", {
        **base, "server": {"host": "127.0.0.2", "workers": 2, "timeout_s": 5},
        "models": {"fast": {"targets": ["mock/mock-2"]}, "added": {"targets": ["mock/mock-1"]}},
        "alerts": [{"kind": "anomaly"}]}))
    assert changes(old, new) == ["aliases added: added", "aliases removed: old", "aliases changed: fast",
                                 "server changed"]
    assert restart_needed(old, new) == ["server.host", "server.workers", "alerts"]
    kept = pinned(old, new)
    assert (kept.server.host, kept.server.workers, kept.server.timeout_s) == ("127.0.0.1", 1, 5.0)
    assert kept.alerts == ()
