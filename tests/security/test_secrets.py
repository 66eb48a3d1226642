"""Provider keys never come back: an upstream that quotes every header it received (its Authorization with the
provider key) in its errors, before a stream and in the middle of one, reaches neither the client's answer, nor a
log row, nor /admin/events, nor /metrics, nor the server's output (and the suite's session-end check searches
every file the tests left for the canary)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp

from llmgw.profile import parse_profile
from llmgw.proxy.app import make_app
from llmgw.scrub import MASK, Scrubber, url_password
from tests.conftest import CANARY

from .attacks import SPENDER_KEY, attack_sections
from .upstream import AttackUpstream

ADMIN_KEY = "llmgw-admin-canary-5d1e9b"
REDIS_PASSWORD = "redis-canary-pass/7c2"


async def test_an_upstream_quoting_the_provider_key_never_leaks_it(tmp_path: Path, serve_attacked: Any,
                                                                   upstream: AttackUpstream,
                                                                   monkeypatch: Any) -> None:
    monkeypatch.setenv("ATTACK_ADMIN_KEY", ADMIN_KEY)
    sections = attack_sections(tmp_path / "llmgw.db", upstream.url, daily=5.0,
                               server={"admin_key": "env:ATTACK_ADMIN_KEY"})
    server = serve_attacked(sections)
    seen: list[bytes] = []
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    user = {"Authorization": f"Bearer {SPENDER_KEY}"}
    chat = {"model": "long", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    async with aiohttp.ClientSession() as session:
        live = await session.get(server.url + "/admin/events?bodies=1", headers=admin)
        assert live.status == 200
        await live.content.readline()   # ": connected": subscribed before the requests below
        answers: list[tuple[int, bytes]] = []
        for status in (400, 401, 500, 429):
            upstream.fail_status = status
            for path, body, headers in (("/v1/chat/completions", chat, user),
                                        ("/v1/messages", chat, {"x-api-key": SPENDER_KEY})):
                for stream in (False, True):
                    async with session.post(server.url + path, json={**body, "stream": stream},
                                            headers=headers) as resp:
                        answers.append((resp.status, await resp.read()))
        upstream.fail_status, upstream.stream_error = None, True   # fails after the first byte
        for path, headers in (("/v1/chat/completions", user), ("/v1/messages", {"x-api-key": SPENDER_KEY})):
            async with session.post(server.url + path, json={**chat, "stream": True}, headers=headers) as resp:
                answers.append((resp.status, await resp.read()))
        for _ in range(len(answers)):
            seen.append(await asyncio.wait_for(live.content.readuntil(b"\n\n"), 10))
        live.close()
        await asyncio.sleep(0.5)   # the log writer commits every 50 ms
        async with session.get(server.url + "/admin/events?history=100&bodies=1", headers=admin) as history:
            seen.append(await history.content.readuntil(b"\n\n"))   # ": connected"
            for _ in range(len(answers)):
                seen.append(await asyncio.wait_for(history.content.readuntil(b"\n\n"), 10))
        async with session.get(server.url + "/metrics") as metrics:
            seen.append(await metrics.read())
    assert {status for status, _ in answers} >= {200, 400, 502}
    assert any(MASK.encode() in body for _, body in answers), "the upstream's words were not relayed at all"
    assert len(upstream.received) >= 16 and all(CANARY in r.headers.get("Authorization", "")
                                                  for r in upstream.received)
    for status, body in answers:
        assert CANARY.encode() not in body, (status, body)
    for event in seen:
        assert CANARY.encode() not in event, event
    assert server.stop() == 0
    assert CANARY not in "".join(server.output)
    conn = sqlite3.connect(tmp_path / "llmgw.db")
    try:
        rows = conn.execute("SELECT * FROM requests").fetchall()
    finally:
        conn.close()
    assert len(rows) == len(answers)
    assert not any(CANARY in str(value) for row in rows for value in row)
    assert any(MASK in str(value) for row in rows for value in row)


def test_the_scrubber_masks_configured_secrets_and_key_shapes() -> None:
    scrub = Scrubber([CANARY, ADMIN_KEY, url_password(f"redis://:{REDIS_PASSWORD.replace('/', '%2F')}@h:6379/0"),
                      "short"])
    text = (f"Authorization: Bearer {CANARY}; x-api-key: {CANARY}; admin {ADMIN_KEY}; redis {REDIS_PASSWORD};"
            " other sk-proj-AbCdEfGhIjKlMnOpQrStUv123 AIzaSyA1234567890abcdefghijklmnopqrstu; short stays")
    out = scrub(text)
    for secret in (CANARY, ADMIN_KEY, REDIS_PASSWORD, "sk-proj-AbCd", "AIzaSyA1234"):
        assert secret not in out
    assert out.endswith("short stays") and out.count(MASK) == 6
    assert scrub.value({"error": {"message": text, "n": 1}})["error"]["message"] == out


async def test_an_upstream_cookie_is_never_sent_back_for_anyone(aiohttp_client: Any, tmp_path: Path,
                                                                  upstream: AttackUpstream) -> None:
    """The gateway keeps no cookies: what an upstream sets in one team's answer (a session, a tracking id) would
    otherwise ride along on every later request of every team."""
    # by name: a cookie jar takes no cookies from a bare IP address
    sections = attack_sections(tmp_path / "llmgw.db", upstream.url.replace("127.0.0.1", "localhost"), daily=None)
    sections["teams"]["other"] = {}
    sections["keys"]["other"] = {"key": "sk-llmgw-attack-other-key-0000000000002", "team": "other"}
    client = await aiohttp_client(make_app(parse_profile(sections)))
    upstream.set_cookie = "team_session=search-team-secret; Path=/"
    chat = {"model": "long", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    for key, stream in ((SPENDER_KEY, False), (SPENDER_KEY, True), ("sk-llmgw-attack-other-key-0000000000002", False),
                        ("sk-llmgw-attack-other-key-0000000000002", True)):
        resp = await client.post("/v1/chat/completions", json={**chat, "stream": stream},
                                 headers={"Authorization": f"Bearer {key}"})
        assert resp.status == 200, await resp.text()
        assert "Set-Cookie" not in resp.headers   # nor is it passed on to the client
        await resp.read()
    assert len(upstream.received) == 4
    assert [r.headers.get("Cookie") for r in upstream.received] == [None] * 4
