"""Fixtures for testing the aiohttp app in-process with ``aiohttp_client``."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from llmgw.profile import Profile, parse_profile
from llmgw.proxy.app import make_app
from llmgw.testing import FakeOpenAI
from tests.conftest import CANARY


def profile_for(tmp_path: Path, *, upstream: str | None = None, **sections: Any) -> Profile:
    """A profile with a mock provider (alias ``fast``), and ``real`` → the fake OpenAI upstream if given."""
    data: dict[str, Any] = {
        "server": {"log_bodies": True},
        "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
        "providers": {"mock": {"kind": "mock"}},
        "models": {"fast": {"targets": ["mock/mock-1"]}, "embed": {"targets": ["mock/mock-embed"]}},
    }
    if upstream is not None:
        data["providers"]["up"] = {"kind": "openai-compatible", "base_url": upstream, "api_key": "env:FAKE_UP_KEY"}
        data["models"]["real"] = {"targets": ["up/gpt-4o-mini"]}
        data["models"]["real-embed"] = {"targets": ["up/text-embedding-3-small"]}
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(name), dict):
            for key, inner in value.items():
                if isinstance(inner, dict) and isinstance(data[name].get(key), dict):
                    data[name][key] = {**data[name][key], **inner}
                else:
                    data[name][key] = inner
        else:
            data[name] = value
    return parse_profile(data)


@pytest.fixture
async def upstream(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeOpenAI]:
    monkeypatch.setenv("FAKE_UP_KEY", CANARY)
    async with FakeOpenAI(api_key=CANARY) as fake:
        yield fake


GatewayFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def gateway(aiohttp_client: Any, tmp_path: Path) -> GatewayFactory:
    """``await gateway(upstream=url, **sections)`` → a test client for a fresh app on that profile."""

    async def make(*, upstream: str | None = None, **sections: Any) -> TestClient:
        profile = profile_for(tmp_path, upstream=upstream, **sections)
        return await aiohttp_client(make_app(profile))

    return make


def log_rows(tmp_path: Path) -> list[dict[str, Any]]:
    """Every logged row, oldest first (call after the client is closed, so the writer has flushed)."""
    db = sqlite3.connect(tmp_path / "llmgw.db")
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM requests ORDER BY time")]
    db.close()
    return rows
