"""Helpers for the alert tests: a webhook receiver (a real aiohttp server on a free port), profiles with alerts, and
waiting for what arrives."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from llmgw.profile import Profile, parse_profile

CI_KEY = "sk-llmgw-alerts-ci-key-000000000001"
OPS_KEY = "sk-llmgw-alerts-ops-key-00000000002"
HOOK_PATH = "/services/T0ALERTS/B0ALERTS/hook-secret-7c1e9a"   # a Slack webhook's path is its credential


class Receiver:
    """A webhook receiver: records every POSTed JSON body; answers the statuses in ``script`` first, then 200."""

    def __init__(self, script: list[int] | None = None, delays: list[float] | None = None) -> None:
        self.script = list(script or [])
        self.delays = list(delays or [])   # seconds to wait before answering, request by request
        self.posts: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.paths: list[str] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{HOOK_PATH}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.paths.append(request.path)
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        status = self.script.pop(0) if self.script else 200
        self.statuses.append(status)
        if status == 200:
            self.posts.append(body)
        return web.Response(status=status, text="ok" if status == 200 else "no")

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def texts(self) -> list[str]:
        return [post["text"] for post in self.posts]


async def until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.02)


def alert_profile(tmp_path: Path, alerts: list[dict[str, Any]], **sections: Any) -> Profile:
    """A governed profile (team ``search`` with key ``ci``; team ``ads`` with key ``ops``), a priced mock alias
    ``priced`` ($1000 per 1M tokens either way: a token costs $0.001) and ``alerts``."""
    data: dict[str, Any] = {
        "server": {"log_bodies": True},
        "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
        "providers": {"mock": {"kind": "mock"}},
        "models": {"priced": {"targets": ["mock/priced"]}},
        "prices": {"mock/priced": {"input": 1000.0, "output": 1000.0}},
        "teams": {"search": {}, "ads": {}},
        "keys": {"ci": {"key": "env:LLMGW_ALERTS_CI_KEY", "team": "search"},
                 "ops": {"key": "env:LLMGW_ALERTS_OPS_KEY", "team": "ads"}},
        "alerts": alerts,
    }
    for name, value in sections.items():
        data[name] = {**data.get(name, {}), **value} if isinstance(value, dict) else value
    return parse_profile(data)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def chat(content: str = "hi", max_tokens: int = 8) -> dict[str, Any]:
    return {"model": "priced", "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}


def logged_row(n: int, moment: float, cost: float, *, team: str = "search", key: str = "ci") -> dict[str, Any]:
    """A finished request as the log keeps it (for history written before the server starts)."""
    return {"id": f"past_{n}", "time": moment, "client_format": "openai", "endpoint": "chat", "alias": "priced",
            "provider": "mock", "target": "mock/priced", "status": 200, "outcome": "ok", "error": None,
            "error_message": None, "input_tokens": 10, "output_tokens": 5, "cached_tokens": 0,
            "cache_write_tokens": 0, "reasoning_tokens": 0, "cost_usd": cost, "latency_ms": 5.0, "ttft_ms": None,
            "attempts": [], "cache": "miss", "key": key, "team": team, "tags": [], "stream": False,
            "dropped_params": [], "request": None, "response": None}


def ledger_rows(tmp_path: Path) -> list[dict[str, Any]]:
    """Every alert in the state folder's ledger, newest first."""
    from llmgw.alerts.ledger import open_ledger

    ledger = open_ledger(tmp_path)
    try:
        return ledger.recent(1000)
    finally:
        ledger.close()


def logged_count(tmp_path: Path) -> int:
    """How many requests the log in ``tmp_path`` holds (the writer commits every 50 ms)."""
    import sqlite3

    db = sqlite3.connect(tmp_path / "llmgw.db")
    try:
        return int(db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
    finally:
        db.close()
