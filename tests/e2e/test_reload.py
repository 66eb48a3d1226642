"""`llmgw serve` as a real process under load while its profile is changed: with ``--watch`` the file is rewritten,
with ``llmgw reload`` (SIGHUP, to every worker with ``--workers``) it is signalled. No request fails, and every
request sent more than a second after the change is answered by the new route."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

from llmgw.testing import FakeOpenAI

pytestmark = pytest.mark.e2e

CLIENTS = 8
LOAD_S = 3.0
CHANGE_AT_S = 1.0


def profile(a: FakeOpenAI, b: FakeOpenAI, target: str) -> dict[str, Any]:
    return {"server": {"log_bodies": False},
            "providers": {"a": {"kind": "openai-compatible", "base_url": a.base_url},
                          "b": {"kind": "openai-compatible", "base_url": b.base_url}},
            "models": {"chat": {"targets": [target]}}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


Result = tuple[float, int, str]   # (sent at, status, target)


async def load(url: str, until: list[float]) -> list[Result]:
    """``CLIENTS`` clients sending one chat request after another until ``until[0]`` (which may move)."""
    body = {"model": "chat", "messages": [{"role": "user", "content": "which upstream answers?"}]}

    async def client() -> list[Result]:
        out: list[Result] = []
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            while time.monotonic() < until[0]:
                sent = time.monotonic()
                try:
                    resp = await http.post("/v1/chat/completions", json=body)
                    out.append((sent, resp.status_code, resp.headers.get("x-llmgw-target", "")))
                except httpx.HTTPError as exc:
                    out.append((sent, 0, repr(exc)))
        return out

    return [r for results in await asyncio.gather(*(client() for _ in range(CLIENTS))) for r in results]


async def listening(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        while True:
            try:
                if (await http.get("/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the server never answered"
            await asyncio.sleep(0.1)


def check(results: list[Result], asked_at: float, changed_at: float, output: list[str]) -> None:
    """No request failed; those sent before ``asked_at`` went to a, those more than a second after ``changed_at``
    (the write, or ``llmgw reload``'s return) to b."""
    failed = [r for r in results if r[1] != 200]
    assert not failed, f"{len(failed)} failed requests, e.g. {failed[:3]}\n" + "".join(output)
    before = [t for sent, _, t in results if sent < asked_at]
    late = [t for sent, _, t in results if sent > changed_at + 1.0]
    assert before and set(before) == {"a/gpt-4o-mini"}
    assert late and set(late) == {"b/gpt-4o-mini"}, "".join(output)


def rewrite(path: Path, data: dict[str, Any]) -> None:
    path.write_text(tomli_w.dumps(data), encoding="utf-8")


async def test_serve_watch_switches_routes_under_load_without_a_failed_request(serve: Any, tmp_path: Path) -> None:
    async with FakeOpenAI() as a, FakeOpenAI() as b:
        server = serve(profile(a, b, "a/gpt-4o-mini"), "--watch")
        path = tmp_path / "profile.toml"
        new = {**profile(a, b, "b/gpt-4o-mini"), "state": {"url": f"sqlite:///{server.db}"}}
        until = [time.monotonic() + LOAD_S]
        loading = asyncio.create_task(load(server.url, until))
        await asyncio.sleep(CHANGE_AT_S)
        rewrite(path, new)
        changed_at = time.monotonic()
        results = await loading
    check(results, changed_at, changed_at, server.output)
    assert server.stop() == 0
    assert any("profile reloaded: generation 2" in line for line in server.output)


@pytest.mark.parametrize("workers", [1, 2])
async def test_llmgw_reload_switches_routes_under_load_without_a_failed_request(serve: Any, tmp_path: Path,
                                                                               workers: int) -> None:
    async with FakeOpenAI() as a, FakeOpenAI() as b:
        args = ("--workers", "2", "--port", str(free_port())) if workers > 1 else ()
        server = serve(profile(a, b, "a/gpt-4o-mini"), *args)
        path = tmp_path / "profile.toml"
        new = {**profile(a, b, "b/gpt-4o-mini"), "state": {"url": f"sqlite:///{server.db}"}}
        await listening(server.url)   # the workers' parent prints its banner before they listen
        until = [time.monotonic() + 60]   # until a while after `llmgw reload` returned
        loading = asyncio.create_task(load(server.url, until))
        await asyncio.sleep(CHANGE_AT_S)
        rewrite(path, new)
        asked_at = time.monotonic()
        reload = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "llmgw", "reload", "--profile",
                                                          str(path)], capture_output=True, text=True, timeout=30)
        changed_at = time.monotonic()
        until[0] = max(changed_at + 1.5, asked_at + LOAD_S - CHANGE_AT_S)
        results = await loading
    assert reload.returncode == 0, reload.stderr
    assert f"pid {server.proc.pid}" in reload.stdout
    check(results, asked_at, changed_at, server.output)
    assert server.stop() == 0
    reloaded = [line for line in server.output if "profile reloaded: generation 2" in line]
    assert len(reloaded) == workers, "".join(server.output)
    assert not (server.db.parent / f"serve-{server.url.rsplit(':', 1)[1]}.pid").exists()
