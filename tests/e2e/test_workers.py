"""`llmgw serve --workers 2`: two processes on one port, one request log, clean shutdown."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_pids(pid: int) -> list[int]:
    """The serving children of ``pid`` (multiprocessing's resource tracker is not one)."""
    pids = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


async def wait_healthy(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url + "/ready") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("workers did not become ready")
            await asyncio.sleep(0.1)


async def test_two_workers_share_port_and_log(serve: Any) -> None:
    port = free_port()
    server = serve({"providers": {"mock": {"kind": "mock"}}, "models": {"fast": {"targets": ["mock/m"]}}},
                   "--workers", "2", "--port", str(port))
    assert server.url.endswith(f":{port}")
    await wait_healthy(server.url)
    workers = worker_pids(server.proc.pid)
    assert len(workers) == 2
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
    ids = set()
    for _ in range(4):  # fresh connections, so the kernel spreads them over both workers
        async with aiohttp.ClientSession() as session:
            for _ in range(10):
                async with session.post(server.url + "/v1/chat/completions", json=body) as resp:
                    assert resp.status == 200
                    ids.add(resp.headers["x-llmgw-request-id"])
    assert await asyncio.to_thread(server.stop) == 0
    conn = sqlite3.connect(server.db)
    logged = {row[0] for row in conn.execute("SELECT id FROM requests")}
    conn.close()
    assert logged == ids
    assert not any(Path(f"/proc/{p}").exists() for p in workers)


async def test_workers_stop_when_the_parent_is_killed(serve: Any) -> None:
    server = serve({"providers": {"mock": {"kind": "mock"}}, "models": {"fast": {"targets": ["mock/m"]}}},
                   "--workers", "2", "--port", str(free_port()))
    await wait_healthy(server.url)
    workers = worker_pids(server.proc.pid)
    server.proc.kill()
    server.proc.wait()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() for p in workers) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not any(Path(f"/proc/{p}").exists() for p in workers), "orphaned workers kept the port"


async def test_two_workers_share_an_rpm_limit_without_redis(serve: Any) -> None:
    port = free_port()
    key = "sk-llmgw-workers-test-key"
    server = serve({"providers": {"mock": {"kind": "mock"}}, "models": {"fast": {"targets": ["mock/m"]}},
                    "teams": {"t": {}}, "keys": {"k": {"key": "env:WORKERS_TEST_KEY", "team": "t", "rpm": 20}}},
                   "--workers", "2", "--port", str(port), env={"WORKERS_TEST_KEY": key})
    await wait_healthy(server.url)
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}

    async def one() -> int:
        # a connection of its own, so that the kernel spreads them over both workers
        async with aiohttp.ClientSession() as session, session.post(
                server.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}) as resp:
            return resp.status

    statuses = await asyncio.gather(*(one() for _ in range(60)))
    assert statuses.count(200) == 20 and statuses.count(429) == 40
    assert await asyncio.to_thread(server.stop) == 0


def requests_total(text: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("llmgw_requests_total{"))


async def test_metrics_count_every_worker_whichever_answers_the_scrape(serve: Any, tmp_path: Path) -> None:
    server = serve({"providers": {"mock": {"kind": "mock"}}, "models": {"fast": {"targets": ["mock/m"]}}},
                   "--workers", "2", "--port", str(free_port()))
    await wait_healthy(server.url)
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}

    async def one() -> None:
        async with aiohttp.ClientSession() as session, session.post(
                server.url + "/v1/chat/completions", json=body) as resp:
            assert resp.status == 200

    await asyncio.gather(*(one() for _ in range(40)))
    await asyncio.sleep(1.5)   # workers publish their counts every second
    totals = []
    for _ in range(12):        # fresh connections: scrapes land on both workers
        async with aiohttp.ClientSession() as session, session.get(server.url + "/metrics") as resp:
            totals.append(requests_total(await resp.text()))
    assert totals == [40.0] * 12, totals
    folder = tmp_path / "metrics" / str(server.proc.pid)
    assert len(list(folder.glob("worker-*.json"))) == 2
    assert await asyncio.to_thread(server.stop) == 0
    assert not folder.exists(), "the run's metrics folder is removed at shutdown"


async def test_workers_share_semantic_cache_hits_without_redis(serve: Any) -> None:
    server = serve({"providers": {"mock": {"kind": "mock"}}, "models": {"fast": {"targets": ["mock/m"]}},
                    "cache": {"exact": True, "semantic": True}},
                   "--workers", "2", "--port", str(free_port()))
    await wait_healthy(server.url)

    async def ask(text: str, store: bool = True) -> tuple[str, str]:
        headers = {} if store else {"x-llmgw-cache": "no-store"}
        async with aiohttp.ClientSession() as session, session.post(   # a fresh connection: either worker
                server.url + "/v1/chat/completions", headers=headers,
                json={"model": "fast", "messages": [{"role": "user", "content": text}]}) as resp:
            return resp.headers["x-llmgw-cache"], (await resp.json())["choices"][0]["message"]["content"]

    kind, original = await ask("How do I reset my password?")
    assert kind == "miss"
    await asyncio.sleep(1.0)   # the other worker reads the journal every 0.2 s (and loads its model on first use)
    answers = [await ask("How can I reset my password?", store=False) for _ in range(10)]
    assert answers == [("semantic", original)] * 10, answers
    assert await asyncio.to_thread(server.stop) == 0
