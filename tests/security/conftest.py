"""Fixtures of the attack tests: the attacking upstream and the environment its profiles read secrets from."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ServeProcess, start_serve, stop_all, write_profile

from .attacks import ENV
from .upstream import AttackUpstream


@pytest.fixture(autouse=True)
def attack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def upstream() -> AsyncIterator[AttackUpstream]:
    async with AttackUpstream() as fake:
        yield fake


@pytest.fixture
def serve_attacked(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """``serve_attacked(sections)`` starts `llmgw serve` on ``sections`` (a profile dict, its state in
    ``tmp_path``) with the attack environment; every server started is stopped at teardown."""
    started: list[ServeProcess] = []

    def start(sections: dict[str, Any], *args: str) -> ServeProcess:
        db = tmp_path / "llmgw.db"
        server = start_serve(write_profile(tmp_path / "profile.toml", sections), db, *args, env=dict(ENV))
        started.append(server)
        return server

    yield start
    stop_all(started)
