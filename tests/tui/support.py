"""Helpers for the TUI tests: records shaped like ``Exchange.log_row()``, waiting on a pilot, rendering to text."""

from __future__ import annotations

import contextlib
import io
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from rich.console import Console, RenderableType
from textual.pilot import Pilot

from llmgw.tui.app import TailApp

ADMIN_KEY = "sk-admin-canary-tui-77"


def record(n: int = 1, **overrides: Any) -> dict[str, Any]:
    """A finished request as ``GET /admin/events?bodies=1`` sends it; ``id`` is ``req_<n>``."""
    base: dict[str, Any] = {
        "id": f"req_{n}", "time": time.time(), "client_format": "openai", "endpoint": "chat", "alias": "fast",
        "provider": "mock", "target": "mock/mock-1", "status": 200, "outcome": "ok", "error": None,
        "error_message": None, "input_tokens": 12, "output_tokens": 7, "cached_tokens": 0, "cache_write_tokens": 0,
        "reasoning_tokens": 0, "cost_usd": 0.000123, "latency_ms": 321.5, "ttft_ms": 80.0,
        "attempts": [{"n": 1, "target": "mock/mock-1", "status": 200, "latency_ms": 320.0, "error": None}],
        "cache": "miss", "key": "ci", "team": "search", "tags": [], "stream": False, "dropped_params": [],
        "request": {"model": "fast", "messages": [{"role": "user", "content": f"question {n}"}]},
        "response": {"choices": [{"message": {"role": "assistant", "content": f"answer {n}"}}]},
    }
    base.update(overrides)
    return base


async def until(pilot: Pilot[Any], condition: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Let the app run until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.05)


def text_of(renderable: RenderableType, width: int = 160) -> str:
    """``renderable`` as plain text."""
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def shown_ids(app: TailApp) -> list[str]:
    """The ids of the table's rows, top first."""
    return [str(e.record.get("id")) for e in app.table.shown]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(app: web.Application, port: int = 0) -> AsyncIterator[str]:
    """``app`` on 127.0.0.1 (a free port unless given); yields its base URL."""
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    host, bound = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()
