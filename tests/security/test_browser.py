"""An open local proxy (no keys) is not a browser's proxy: DNS-rebound pages, cross-site pages and the bodies
a page may send anywhere without asking are refused with 403 before anything is read, called or logged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from llmgw.profile import parse_profile
from llmgw.proxy.app import make_app

from .attacks import logged

CHAT = b'{"model": "fast", "messages": [{"role": "user", "content": "hi"}]}'


async def open_proxy(aiohttp_client: Any, tmp_path: Path, **server: Any) -> TestClient:
    return await aiohttp_client(make_app(parse_profile({
        "server": server, "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
        "providers": {"mock": {"kind": "mock"}}, "models": {"fast": {"targets": ["mock/m"]}}})))


async def test_the_attack_as_reported_is_refused(aiohttp_client: Any, tmp_path: Path) -> None:
    """A text/plain POST with Host: evil.example and a foreign Origin used to be served."""
    client = await open_proxy(aiohttp_client, tmp_path)
    resp = await client.post("/v1/chat/completions", data=CHAT, headers={
        "Host": "evil.example", "Origin": "http://evil.example", "Content-Type": "text/plain;charset=UTF-8"})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "host_not_allowed"
    events = await client.get("/admin/events?bodies=1", headers={"Host": "evil.example:4000"})
    assert events.status == 403
    await client.close()
    assert logged(tmp_path / "llmgw.db") == []


@pytest.mark.parametrize(("headers", "code"), [
    ({"Host": "evil.example"}, "host_not_allowed"),
    ({"Host": "127.0.0.1.nip.io:4000"}, "host_not_allowed"),
    ({"Origin": "https://evil.example"}, "origin_not_allowed"),
    ({"Origin": "null"}, "origin_not_allowed"),
    ({"Content-Type": "text/plain"}, "content_type_not_allowed"),
    ({"Content-Type": "application/x-www-form-urlencoded"}, "content_type_not_allowed"),
    ({"Content-Type": "multipart/form-data; boundary=x"}, "content_type_not_allowed"),
])
async def test_each_sign_of_a_web_page_is_enough(aiohttp_client: Any, tmp_path: Path, headers: dict[str, str],
                                                 code: str) -> None:
    client = await open_proxy(aiohttp_client, tmp_path)
    resp = await client.post("/v1/chat/completions", data=CHAT,
                             headers={"Content-Type": "application/json", **headers})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == code


@pytest.mark.parametrize("headers", [
    {"Host": "localhost:4000"}, {"Host": "[::1]:4000"}, {"Host": "127.0.0.2"}, {"Host": "app.localhost"},
    {"Host": "gateway.internal:4000"}, {"Origin": "http://localhost:3000"}, {"Origin": "http://gateway.internal"},
    {"Content-Type": "application/json; charset=utf-8"}, {"Content-Type": "application/octet-stream"},
])
async def test_local_callers_and_the_allowed_hosts_are_served(aiohttp_client: Any, tmp_path: Path,
                                                              headers: dict[str, str]) -> None:
    client = await open_proxy(aiohttp_client, tmp_path, allowed_hosts=["gateway.internal"])
    resp = await client.post("/v1/chat/completions", data=CHAT,
                             headers={"Content-Type": "application/json", **headers})
    assert resp.status == 200, await resp.text()
    assert (await client.get("/health", headers=headers)).status == 200


async def test_a_gateway_with_keys_leaves_it_to_the_keys(aiohttp_client: Any, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROWSER_TEST_KEY", "sk-llmgw-browser-test-key-000000000001")
    client = await aiohttp_client(make_app(parse_profile({
        "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"}, "providers": {"mock": {"kind": "mock"}},
        "models": {"fast": {"targets": ["mock/m"]}}, "teams": {"t": {}},
        "keys": {"k": {"key": "env:BROWSER_TEST_KEY", "team": "t"}}})))
    resp = await client.post("/v1/chat/completions", data=CHAT, headers={
        "Host": "gateway.example.com", "Origin": "https://app.example.com", "Content-Type": "application/json",
        "Authorization": "Bearer sk-llmgw-browser-test-key-000000000001"})
    assert resp.status == 200
