"""Profiles and clients for the attack tests: a governed gateway in front of :class:`AttackUpstream`, priced so
that a few dozen requests spend a small daily budget."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from llmgw.profile import Profile, parse_profile
from tests.conftest import CANARY

SPENDER_KEY = "sk-llmgw-attack-spender-key-00000000001"
ENV = {"ATTACK_UP_KEY": CANARY, "ATTACK_SPENDER_KEY": SPENDER_KEY}
INPUT_PRICE, OUTPUT_PRICE = 1.0, 10.0      # USD per million tokens
DEFAULT_CAP = 4096
HI = [{"role": "user", "content": "write me something long"}]


def attack_sections(db: Path, upstream: str, *, daily: float | None = 0.5, shared: str | None = None,
                    workers: int = 1, tpm: int | None = None, server: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    team: dict[str, Any] = {}
    if daily is not None:
        team["budget_usd"] = {"daily": daily}
    if tpm is not None:
        team["tpm"] = tpm
    state: dict[str, Any] = {"url": f"sqlite:///{db}"}
    if shared is not None:
        state["shared"] = shared
    return {
        "server": {"workers": workers, **(server or {})},
        "state": state,
        "providers": {"up": {"kind": "openai-compatible", "base_url": upstream, "api_key": "env:ATTACK_UP_KEY"}},
        "models": {"long": {"targets": ["up/big"]}},
        "prices": {"up/big": {"input": INPUT_PRICE, "output": OUTPUT_PRICE}},
        "teams": {"search": team},
        "keys": {"spender": {"key": "env:ATTACK_SPENDER_KEY", "team": "search"}},
    }


def attack_profile(db: Path, upstream: str, **options: Any) -> Profile:
    return parse_profile(attack_sections(db, upstream, **options))


def most_one_request_costs(prompt_tokens: int, cap: int = DEFAULT_CAP) -> float:
    """The most one request may cost: what the budget reserves for it (prompt estimate plus the output cap)."""
    return (prompt_tokens * INPUT_PRICE + cap * OUTPUT_PRICE) / 1e6


async def burst(clients: list[TestClient], n: int, body: dict[str, Any]) -> list[int]:
    """``n`` concurrent requests with the spender's key, spread over ``clients``: their statuses."""
    async def one(i: int) -> int:
        resp = await clients[i % len(clients)].post("/v1/chat/completions", json=body,
                                                    headers={"Authorization": f"Bearer {SPENDER_KEY}"})
        await resp.read()
        return resp.status

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def logged(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM requests ORDER BY time")]
    finally:
        conn.close()
