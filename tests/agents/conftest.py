"""Fixtures for the coding-agent tests: the agents installed from the npm registry (cached between runs), and a real
``llmgw serve`` on a free port in front of one fake upstream of every kind, with a virtual key for the agent.

The agents are skipped, with the reason, when ``npm`` is missing (``make test`` installs it: scripts/ensure-node), or
when an agent needs a newer Node.js than is on PATH and none can be installed from the npm registry; an install that
fails is a failure under CI (``CI`` set) and a skip elsewhere.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from llmgw.testing import FakeOpenAI
from llmgw.testing.fake_anthropic import FakeAnthropic
from llmgw.testing.fake_gemini import FakeGemini
from tests.conftest import CANARY
from tests.e2e.conftest import ServeProcess, start_serve, stop_all, write_profile

from .harness import MODELS, UPSTREAMS, AgentSpec, InstallError, NodeUnavailable, alias, install

AGENT_KEY = "sk-llmgw-agent-harness-7d2e"   # the virtual key the agents present (a profile key of team "agents")
_CHAT_PATHS = {"anthropic": ("/v1/messages",), "openai": ("/v1/chat/completions", "/v1/responses"),
               "gemini": (":generateContent", ":streamGenerateContent")}


@pytest.fixture(scope="session")
def installed() -> Callable[[AgentSpec], Path]:
    """``installed(spec)`` → the agent's binary, installed once per session (and kept in the cache folder)."""
    found: dict[str, Path] = {}

    def get(spec: AgentSpec) -> Path:
        if spec.name not in found:
            try:
                found[spec.name] = install(spec)
            except NodeUnavailable as error:
                pytest.skip(f"{spec.title} {error}")
            except InstallError as error:
                if "not on PATH" in str(error):
                    pytest.skip(f"{spec.title} needs npm to install {spec.package}@{spec.version}"
                                " (make test installs Node.js and npm: scripts/ensure-node)")
                if os.environ.get("CI"):
                    pytest.fail(str(error))
                pytest.skip(f"{spec.title} could not be installed: {error}")
        return found[spec.name]

    return get


@dataclass
class AgentGateway:
    """A running ``llmgw serve`` (``url``) whose alias ``agent-<kind>`` targets the fake of that kind."""

    server: ServeProcess
    fakes: dict[str, Any]
    key: str = AGENT_KEY
    stopped: bool = field(default=False)

    @property
    def url(self) -> str:
        return self.server.url

    def fake(self, upstream: str) -> Any:
        return self.fakes[upstream]

    def chats(self, upstream: str) -> list[dict[str, Any]]:
        """The generation requests the fake of ``upstream`` received (not count-tokens or model listings)."""
        paths = _CHAT_PATHS[upstream]
        return [r for r in self.fakes[upstream].requests
                if r["method"] == "POST" and any(r["path"].endswith(p) for p in paths)]

    def rows(self) -> list[dict[str, Any]]:
        """Every request-log row, oldest first (stops the server first, so that the log is flushed)."""
        if not self.stopped:
            assert self.server.stop() == 0, "".join(self.server.output)
            self.stopped = True
        conn = sqlite3.connect(self.server.db)
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM requests ORDER BY time")]
        conn.close()
        return rows


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[AgentGateway]:
    """``llmgw serve`` as a process in front of FakeAnthropic, FakeOpenAI and FakeGemini (upstream keys: the
    canary, so the suite proves it leaks into nothing the agents write)."""
    async with (FakeAnthropic(api_key=CANARY) as an, FakeOpenAI(api_key=CANARY) as oa,
                FakeGemini(api_key=CANARY) as ge):
        fakes: dict[str, Any] = {"anthropic": an, "openai": oa, "gemini": ge}
        db = tmp_path / "llmgw.db"
        profile = {
            "server": {"log_bodies": True},
            "state": {"url": f"sqlite:///{db}"},
            "providers": {kind: {"kind": kind, "base_url": fakes[kind].base_url, "api_key": "env:AGENT_UP_KEY"}
                          for kind in UPSTREAMS},
            "models": {alias(kind): {"targets": [f"{kind}/{MODELS[kind]}"]} for kind in UPSTREAMS},
            "teams": {"agents": {"rpm": 600}},
            "keys": {"agent": {"key": "env:LLMGW_AGENT_KEY", "team": "agents"}},
        }
        server = start_serve(write_profile(tmp_path / "agents.toml", profile), db,
                             env={"AGENT_UP_KEY": CANARY, "LLMGW_AGENT_KEY": AGENT_KEY})
        try:
            yield AgentGateway(server, fakes)
        finally:
            stop_all([server])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The agent's own HOME (its config, sessions and caches stay in the test's folder)."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The folder the agent works in."""
    path = tmp_path / "work"
    path.mkdir()
    return path
