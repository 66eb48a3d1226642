"""The bypass corpus (tests/data/pii/bypass_cases.toml): what someone trying to walk around a ``redact``/``block``
rule would send, and clean look-alikes that must pass.

- Through ``llmgw guard test --cases``: recall at least 99% on the PII and denylist cases, false positives at most
  1%, and no raw value survives in what would leave.
- Through the real app: every case sent as a request — and, for a third of them, also with a wrong key, an
  unknown model, an invalid field and a rate-limited key — and then the whole request log swept: no row holds
  any of the corpus's raw values.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from llmgw.cli.guard import app as guard_app
from llmgw.profile import parse_profile
from llmgw.proxy.app import make_app
from llmgw.testing import FakeOpenAI

DATA = Path(__file__).resolve().parent.parent / "data" / "pii"
CASES = DATA / "bypass_cases.toml"
PROFILE = DATA / "bypass_profile.toml"
KEY, THROTTLED = "sk-llmgw-bypass-corpus-key-000001", "sk-llmgw-bypass-corpus-key-000002"


def cases() -> list[dict[str, Any]]:
    return tomllib.loads(CASES.read_text(encoding="utf-8"))["case"]


def test_the_corpus_file_is_what_the_generator_writes() -> None:
    sys.path.insert(0, str(DATA))
    try:
        import bypass_cases
    finally:
        sys.path.remove(str(DATA))
    assert CASES.read_text(encoding="utf-8") == bypass_cases.render(), "run python tests/data/pii/bypass_cases.py"


def test_recall_and_false_positives_through_guard_test() -> None:
    result = CliRunner().invoke(guard_app, ["test", "--profile", str(PROFILE), "--cases", str(CASES),
                                            "--format", "json"])
    rows = json.loads(result.output)
    assert len(rows) >= 300
    positives = [r for r in rows if r["expect"] in ("redact", "block")]
    negatives = [r for r in rows if r["expect"] == "allow"]
    assert len(positives) >= 250 and len(negatives) >= 100
    recall = sum(r["passed"] for r in positives) / len(positives)
    false_positives = sum(not r["passed"] for r in negatives) / len(negatives)
    missed = [(r["name"], r["problems"]) for r in positives if not r["passed"]]
    flagged = [(r["name"], r["problems"]) for r in negatives if not r["passed"]]
    assert recall >= 0.99, missed
    assert false_positives <= 0.01, flagged


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


ROUTES = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}


def _request(case: dict[str, Any]) -> tuple[str, bytes]:
    if "text" in case:
        message = {"role": "user", "content": case["text"]}
        return ROUTES["openai"], orjson.dumps({"model": "fast", "messages": [message]})
    return ROUTES[case.get("format", "openai")], case["json"].encode()


def _variants(route: str, body: bytes) -> list[tuple[bytes, dict[str, str]]]:
    """The same request refused four ways: wrong key (401), unknown model (404), invalid field (400), and a key
    whose rate limit is spent (429)."""
    parsed = orjson.loads(body)
    unknown = orjson.dumps({**parsed, "model": "no-such-model"})
    invalid = orjson.dumps({**parsed, "temperature": 9, "max_tokens": -1})
    return [(body, {"Authorization": "Bearer sk-wrong-key"}), (unknown, _auth(KEY)), (invalid, _auth(KEY)),
            (body, _auth(THROTTLED))]


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "x-api-key": key, "anthropic-version": "2023-06-01",
            "Content-Type": "application/json"}


def _leaks(text: str, values: list[str]) -> list[str]:
    return [v for v in values if v in text or json.dumps(v)[1:-1] in text or orjson.dumps(v).decode()[1:-1] in text]


async def test_the_log_holds_none_of_the_corpus_values(aiohttp_client: Any, tmp_path: Path, upstream: FakeOpenAI,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGW_BYPASS_KEY", KEY)
    monkeypatch.setenv("LLMGW_BYPASS_THROTTLED", THROTTLED)
    rules = tomllib.loads(PROFILE.read_text(encoding="utf-8"))["guardrails"]
    profile = parse_profile({
        "server": {"log_bodies": True}, "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
        "providers": {"oa": {"kind": "openai-compatible", "base_url": upstream.base_url}},
        "models": {"fast": {"targets": ["oa/gpt-4o-mini"]}},
        "teams": {"corpus": {}, "slow": {"rpm": 1}},
        "keys": {"ci": {"key": "env:LLMGW_BYPASS_KEY", "team": "corpus"},
                 "throttled": {"key": "env:LLMGW_BYPASS_THROTTLED", "team": "slow"}},
        "guardrails": rules})
    client = await aiohttp_client(make_app(profile))
    values: list[str] = []
    statuses: dict[str, list[int]] = {}
    await client.post(ROUTES["openai"], data=b'{"model": "fast", "messages": [{"role": "user", "content": "hi"}]}',
                      headers=_auth(THROTTLED))    # spends the throttled key's one request a minute
    for i, case in enumerate(c for c in cases() if c.get("phase") != "response"):
        route, body = _request(case)
        values += case.get("absent", [])
        resp = await client.post(route, data=body, headers=_auth(KEY))
        await resp.read()
        statuses.setdefault(case["expect"], []).append(resp.status)
        if i % 3 == 0 and case.get("absent"):
            for variant, headers in _variants(route, body):
                refused = await client.post(route, data=variant, headers=headers)
                await refused.read()
                statuses.setdefault("refused", []).append(refused.status)
    await client.close()
    assert set(statuses["allow"]) == {200} and set(statuses["redact"]) == {200}
    assert set(statuses["block"]) <= {400, 403}
    assert {401, 404, 400, 429} <= set(statuses["refused"])
    sent = orjson.dumps([r["body"] for r in upstream.requests]).decode()
    assert _leaks(sent, values) == [], "a raw value reached the upstream"
    db = sqlite3.connect(tmp_path / "llmgw.db")
    logged = [" ".join(str(v) for v in row) for row in db.execute("SELECT * FROM requests")]
    db.close()
    assert len(logged) == sum(len(v) for v in statuses.values()) + 1
    found = sorted({v for row in logged for v in _leaks(row, values)})
    assert found == [], found
