"""Fixtures of the attack tests: the attacking upstream and the environment its profiles read secrets from."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

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
