"""Fixtures for the alert tests: the keys' environment and the webhook's secret URL."""

from __future__ import annotations

import pytest

from .support import CI_KEY, OPS_KEY


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGW_ALERTS_CI_KEY", CI_KEY)
    monkeypatch.setenv("LLMGW_ALERTS_OPS_KEY", OPS_KEY)
