"""Authentication comes first: a request without a valid key is answered 401 on its headers alone, whatever its
body, which is never read, parsed, validated, logged or published; /metrics can require the admin key."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from llmgw.profile import ProfileError, parse_profile
from llmgw.proxy.app import make_app

from .attacks import SPENDER_KEY, attack_profile, attack_sections, logged
from .upstream import AttackUpstream

SEVEN_MB = b'{"model": "long", "messages": [{"role": "user", "content": "' + b"a" * (7 * 1024 * 1024) + b'"}]}'


def store_size(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))


async def test_no_key_and_a_bad_body_is_401_not_400(aiohttp_client: Any, tmp_path: Path,
                                                    upstream: AttackUpstream) -> None:
    client = await aiohttp_client(make_app(attack_profile(tmp_path / "llmgw.db", upstream.url)))
    for path in ("/v1/chat/completions", "/v1/messages"):
        resp = await client.post(path, data=b'{"model": 1, "messag', headers={"Content-Type": "application/json"})
        assert resp.status == 401, await resp.text()
        assert "field" not in await resp.text() and "messages" not in await resp.text()
    wrong = await client.post("/v1/chat/completions", json={"model": "long"}, headers={"x-api-key": "sk-wrong"})
    assert wrong.status == 401
    await client.close()
    rows = logged(tmp_path / "llmgw.db")
    assert [r["status"] for r in rows] == [401, 401, 401]
    assert all(r["request"] is None and r["alias"] == "" for r in rows) and upstream.received == []


async def test_unauthenticated_bodies_are_never_read_logged_or_published(aiohttp_client: Any, tmp_path: Path,
                                                                         upstream: AttackUpstream,
                                                                         monkeypatch: Any) -> None:
    """Before: ten 7 MB bodies without a key grew the log by 83 MB."""
    monkeypatch.setenv("ATTACK_ADMIN_KEY", "admin-key-for-events-01")
    db = tmp_path / "llmgw.db"
    client = await aiohttp_client(make_app(attack_profile(db, upstream.url,
                                                          server={"admin_key": "env:ATTACK_ADMIN_KEY"})))
    ok = await client.post("/v1/chat/completions", json={"model": "long", "max_tokens": 5,
                                                         "messages": [{"role": "user", "content": "hi"}]},
                           headers={"Authorization": f"Bearer {SPENDER_KEY}"})
    assert ok.status == 200
    await asyncio.sleep(0.2)
    before = store_size(db)
    events = await client.get("/admin/events?bodies=1", headers={"x-api-key": "admin-key-for-events-01"})
    await events.content.readline()
    for _ in range(10):
        resp = await client.post("/v1/chat/completions", data=io.BytesIO(SEVEN_MB),
                                 headers={"Content-Type": "application/json"})
        assert resp.status == 401
        await resp.read()
    published = [await asyncio.wait_for(events.content.readuntil(b"\n\n"), 5) for _ in range(10)]
    events.close()
    await client.close()
    await asyncio.sleep(0.3)   # connections the server closed mid-body finish closing before the loop ends
    assert all(b'"request":null' in e and len(e) < 4096 for e in published)
    assert store_size(db) - before < 512 * 1024
    assert len(upstream.received) == 1


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
async def test_rss_stays_flat_under_unauthenticated_7mb_bodies(tmp_path: Path, serve_attacked: Any,
                                                               upstream: AttackUpstream) -> None:
    server = serve_attacked(attack_sections(tmp_path / "llmgw.db", upstream.url))
    pid = server.proc.pid

    async def send(session: aiohttp.ClientSession) -> int:
        async with session.post(server.url + "/v1/chat/completions", data=io.BytesIO(SEVEN_MB),
                                headers={"Content-Type": "application/json"}) as resp:
            await resp.read()
            return resp.status

    async with aiohttp.ClientSession() as session:
        assert await send(session) == 401   # warm up: the first request imports and allocates what it needs
        before = rss_mb(pid)
        for _ in range(10):
            assert set(await asyncio.gather(*(send(session) for _ in range(10)))) == {401}
        after = rss_mb(pid)
    # Connections the server closed while their 7 MB were still being sent finish closing before the loop ends.
    await asyncio.sleep(0.3)
    assert after - before <= 50, (before, after)
    assert os.path.getsize(tmp_path / "llmgw.db") < 2 * 1024 * 1024


async def test_metrics_can_require_the_admin_key(aiohttp_client: Any, tmp_path: Path, upstream: AttackUpstream,
                                                 monkeypatch: Any) -> None:
    monkeypatch.setenv("ATTACK_ADMIN_KEY", "admin-key-for-metrics-01")
    guarded = await aiohttp_client(make_app(attack_profile(
        tmp_path / "llmgw.db", upstream.url, server={"admin_key": "env:ATTACK_ADMIN_KEY", "metrics_auth": True})))
    assert (await guarded.get("/metrics")).status == 401
    assert (await guarded.get("/metrics", headers={"x-api-key": "wrong"})).status == 401
    scraped = await guarded.get("/metrics", headers={"Authorization": "Bearer admin-key-for-metrics-01"})
    assert scraped.status == 200 and "llmgw_requests_total" in await scraped.text()
    open_by_default = await aiohttp_client(make_app(attack_profile(tmp_path / "other.db", upstream.url)))
    assert (await open_by_default.get("/metrics")).status == 200
    with pytest.raises(ProfileError, match=r"server\.metrics_auth: needs server\.admin_key"):
        parse_profile(attack_sections(tmp_path / "x.db", upstream.url, server={"metrics_auth": True}))


async def test_the_headers_phase_is_declared_and_runs_alone() -> None:
    from llmgw.exchange import Exchange
    from llmgw.proxy.pipeline import Pipeline
    from llmgw.stages.auth import AuthStage
    from llmgw.stages.base import Stage
    from llmgw.store.keys import KeyIndex

    calls: list[str] = []

    class Later(Stage):
        async def request(self, ex: Exchange) -> None:
            calls.append("request")

    auth = AuthStage({}, KeyIndex("salt", {}, {}))
    assert "headers" in AuthStage.phases() and "headers" not in Later.phases()
    ex = Exchange("openai", "chat")
    ex.credential = "sk-not-a-key"
    await Pipeline([auth, Later()]).admit(ex)
    assert ex.status == 401 and calls == []
