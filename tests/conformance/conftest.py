"""One gateway in front of every kind of upstream, each a fake server speaking its provider's wire format."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from llmgw.profile import parse_profile
from llmgw.proxy.app import make_app
from llmgw.testing import FakeOpenAI
from llmgw.testing.fake_anthropic import FakeAnthropic
from llmgw.testing.fake_gemini import FakeGemini
from tests.conftest import CANARY

KEY = CANARY
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-latest", "gemini": "gemini-2.0-flash",
          "openai-compatible": "meta-llama/Llama-3.1-8B-Instruct", "mock": "mock-model"}


@dataclass
class World:
    """The gateway's URL, the fakes behind it, the SDK clients and the log."""

    url: str
    openai_up: FakeOpenAI
    anthropic_up: FakeAnthropic
    gemini_up: FakeGemini
    db: Path
    app_client: Any
    sdks: list[Any] = field(default_factory=list)

    def sdk(self, client: str) -> Any:
        """A new SDK client of that format pointed at the gateway (closed at teardown)."""
        if client == "openai":
            sdk: Any = openai.AsyncOpenAI(base_url=self.url + "/v1", api_key="client-key", max_retries=0)
        else:
            sdk = anthropic.AsyncAnthropic(base_url=self.url, api_key="client-key", max_retries=0)
        self.sdks.append(sdk)
        return sdk

    def fake(self, upstream: str) -> Any:
        return {"openai": self.openai_up, "openai-compatible": self.openai_up, "anthropic": self.anthropic_up,
                "gemini": self.gemini_up}.get(upstream)

    async def rows(self) -> list[dict[str, Any]]:
        """Every logged row so far (closes the app to flush the writer: call last)."""
        await self.app_client.close()
        conn = sqlite3.connect(self.db)
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM requests ORDER BY time")]
        conn.close()
        return rows


@pytest.fixture
async def world(aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    monkeypatch.setenv("CONFORMANCE_KEY", KEY)
    async with FakeOpenAI(api_key=KEY) as oa, FakeAnthropic(api_key=KEY) as an, FakeGemini(api_key=KEY) as ge:
        providers = {
            "openai": {"kind": "openai", "api_key": "env:CONFORMANCE_KEY", "base_url": oa.base_url},
            "anthropic": {"kind": "anthropic", "api_key": "env:CONFORMANCE_KEY", "base_url": an.base_url},
            "gemini": {"kind": "gemini", "api_key": "env:CONFORMANCE_KEY", "base_url": ge.base_url},
            "openai-compatible": {"kind": "openai-compatible", "base_url": oa.base_url,
                                  "api_key": "env:CONFORMANCE_KEY"},
            "mock": {"kind": "mock"},
            "mock-429": {"kind": "mock", "fail_rate": 1.0, "fail_status": 429},
        }
        models = {name: {"targets": [f"{name}/{model}"]} for name, model in MODELS.items()}
        models["mock-error"] = {"targets": ["mock-429/mock-model"]}
        profile = parse_profile({"state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"}, "providers": providers,
                                 "models": models})
        client = await aiohttp_client(make_app(profile))
        world = World(str(client.make_url("")).rstrip("/"), oa, an, ge, tmp_path / "llmgw.db", client)
        yield world
        for sdk in world.sdks:
            await sdk.close()
