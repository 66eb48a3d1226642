"""`llmgw why ID` against the log of the real app: each decision is driven through ``make_app`` with fake upstreams,
then the story the command tells is checked against what the gateway really did (headers, log columns, the
cache's own similarity)."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient
from typer.testing import CliRunner

from llmgw.cache.embed import HashEmbedder
from llmgw.cli.main import app as cli
from llmgw.profile import parse_profile
from llmgw.proxy.app import make_app
from llmgw.store import log as request_log
from llmgw.testing import FakeOpenAI
from tests.conftest import CANARY

CI_KEY = "sk-llmgw-why-test-key-000000000001"
EMAIL, CARD = "jane.doe@example.com", "4111 1111 1111 1111"

Gateway = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def upstream(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeOpenAI]:
    monkeypatch.setenv("WHY_UP_KEY", CANARY)
    monkeypatch.setenv("WHY_CI_KEY", CI_KEY)
    async with FakeOpenAI(api_key=CANARY) as fake:
        yield fake


@pytest.fixture
def gateway(aiohttp_client: Any, tmp_path: Path, upstream: FakeOpenAI) -> Gateway:
    """``await gateway(**sections)`` → a client of a fresh app: provider ``up`` (the fake OpenAI) and ``mock``."""

    async def make(**sections: Any) -> TestClient:
        data: dict[str, Any] = {
            "server": {"log_bodies": True}, "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
            "providers": {"up": {"kind": "openai-compatible", "base_url": upstream.base_url,
                                 "api_key": "env:WHY_UP_KEY"},
                          "mock": {"kind": "mock"}},
            "models": {"gpt": {"targets": ["up/gpt-4o-mini"]}},
        }
        data.update(sections)
        return await aiohttp_client(make_app(parse_profile(data), embedder=HashEmbedder()))

    return make


def why(tmp_path: Path, request_id: str, *extra: str) -> Any:
    return CliRunner().invoke(cli, ["why", request_id, "--db", str(tmp_path / "llmgw.db"), *extra])


def story_of(tmp_path: Path, request_id: str) -> tuple[str, dict[str, Any]]:
    """The text and the JSON of `llmgw why` for one request (both must succeed)."""
    text = why(tmp_path, request_id)
    assert text.exit_code == 0, text.output
    data = why(tmp_path, request_id, "--format", "json")
    assert data.exit_code == 0, data.output
    return text.stdout, json.loads(data.stdout)


def chat(text: str, model: str = "gpt", **params: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **params}


def notes(data: dict[str, Any], stage: str, event: str | None = None) -> list[dict[str, Any]]:
    return [n for n in data["story"] if n["stage"] == stage and (event is None or n["event"] == event)]


# --- cache ---------------------------------------------------------------------------------------------------


async def test_why_tells_exact_and_semantic_hits_and_a_miss_with_the_similarity_the_cache_computed(
        gateway: Gateway, upstream: FakeOpenAI, tmp_path: Path) -> None:
    client = await gateway(cache={"semantic": True, "threshold": 0.8})
    first = await client.post("/v1/chat/completions", json=chat("What is the capital of France?"))
    exact = await client.post("/v1/chat/completions", json=chat("What is the capital of France?"))
    reworded = await client.post("/v1/chat/completions", json=chat("what is the capital of France"))
    far = await client.post("/v1/chat/completions", json=chat("Tell me the weather in France tomorrow"))
    assert [r.headers["x-llmgw-cache"] for r in (first, exact, reworded, far)] == ["miss", "hit", "semantic", "miss"]
    assert len(upstream.requests) == 2
    await client.close()

    text, data = story_of(tmp_path, first.headers["x-llmgw-request-id"])
    assert "no earlier semantic entry" in text and "Cache: the answer was stored for later requests." in text

    text, data = story_of(tmp_path, exact.headers["x-llmgw-request-id"])
    assert "Cache: exact hit; the upstream was not called." in text
    assert not notes(data, "route"), "an exact hit never reaches routing"
    assert "Answered 200 from the cache (exact)" in text and data["attempts"] == []

    text, data = story_of(tmp_path, reworded.headers["x-llmgw-request-id"])
    [semantic] = notes(data, "cache", "semantic")
    assert semantic["hit"] is True and semantic["threshold"] == 0.8
    assert f"semantic hit: an earlier prompt had similarity {semantic['similarity']:.3f}" in text

    # the miss: the nearest entry's similarity, as the cache's embedder computes it, below the threshold
    embedder = HashEmbedder()
    vectors = embedder.embed(["Tell me the weather in France tomorrow", "What is the capital of France?"])
    expected = float(np.float32(vectors[0] @ vectors[1]))
    text, data = story_of(tmp_path, far.headers["x-llmgw-request-id"])
    [semantic] = notes(data, "cache", "semantic")
    assert semantic["reason"] == "below threshold" and semantic["similarity"] == pytest.approx(expected, abs=1e-6)
    assert expected < 0.8
    assert f"Cache: exact miss; the nearest semantic entry had similarity {expected:.3f}, below the 0.8 threshold." \
        in text
    assert "Routing: up/gpt-4o-mini answered in" in text


async def test_why_tells_a_no_cache_request_was_not_looked_up(gateway: Gateway, tmp_path: Path) -> None:
    client = await gateway(cache={"semantic": False})
    await client.post("/v1/chat/completions", json=chat("hello"))
    resp = await client.post("/v1/chat/completions", json=chat("hello"), headers={"x-llmgw-cache": "no-cache"})
    assert resp.headers["x-llmgw-cache"] == "miss"
    await client.close()
    text, _ = story_of(tmp_path, resp.headers["x-llmgw-request-id"])
    assert "Cache: not looked up; the client asked for no-cache." in text


# --- routing -------------------------------------------------------------------------------------------------


async def test_why_tells_the_fallback_after_a_500_and_who_answered(gateway: Gateway, upstream: FakeOpenAI,
                                                                  tmp_path: Path) -> None:
    upstream.fail_next(500)
    client = await gateway(models={"gpt": {"targets": ["up/gpt-4o-mini", "mock/mock-1"]}})
    resp = await client.post("/v1/chat/completions", json=chat("hello there"))
    assert resp.status == 200
    target, attempts = resp.headers["x-llmgw-target"], int(resp.headers["x-llmgw-attempts"])
    await client.close()
    text, data = story_of(tmp_path, resp.headers["x-llmgw-request-id"])
    assert target == "mock/mock-1" and attempts == 2
    assert "Routing (fallback): targets in order up/gpt-4o-mini, mock/mock-1." in text
    assert "Routing: up/gpt-4o-mini failed with 500 after " in text
    assert f"; fell back to {target}, which answered in " in text and f"({attempts} attempts)." in text
    assert [a["target"] for a in data["attempts"]][-1] == target and len(data["attempts"]) == attempts
    assert f"Answered 200 by {target} in " in text


async def test_why_tells_a_target_skipped_for_cooldown(gateway: Gateway, upstream: FakeOpenAI,
                                                       tmp_path: Path) -> None:
    upstream.fail_next(500, times=5)
    client = await gateway(routing={"cooldown_failures": 1, "cooldown_s": 60},
                           models={"gpt": {"targets": ["up/gpt-4o-mini", "mock/mock-1"]}})
    failed = await client.post("/v1/chat/completions", json=chat("hello"))
    skipped = await client.post("/v1/chat/completions", json=chat("hello again"))
    assert failed.headers["x-llmgw-attempts"] == "2"
    assert skipped.headers["x-llmgw-attempts"] == "1" and skipped.headers["x-llmgw-target"] == "mock/mock-1"
    assert len(upstream.requests) == 1, "the target in cooldown was not called"
    await client.close()
    text, data = story_of(tmp_path, skipped.headers["x-llmgw-request-id"])
    [order] = notes(data, "route", "order")
    assert order["cooling"] == ["up/gpt-4o-mini"] and order["targets"] == ["mock/mock-1", "up/gpt-4o-mini"]
    assert "Routing (fallback): targets in order mock/mock-1, up/gpt-4o-mini; up/gpt-4o-mini is in cooldown after" \
           " repeated failures, so tried only if the others fail." in text
    assert "Routing: mock/mock-1 answered in " in text and "(1 attempt)." in text
    failed_text, _ = story_of(tmp_path, failed.headers["x-llmgw-request-id"])
    assert "cooldown" not in failed_text


# --- guardrails ----------------------------------------------------------------------------------------------


async def test_why_tells_a_redaction_by_kind_and_count_and_never_the_values(
        gateway: Gateway, upstream: FakeOpenAI, tmp_path: Path) -> None:
    upstream.set_answer("I will mail <EMAIL_1> about it.")
    client = await gateway(guardrails=[{"name": "pii", "kind": "pii", "action": "redact", "restore": True}],
                           cache={"semantic": False})
    resp = await client.post("/v1/chat/completions",
                             json=chat(f"Mail {EMAIL} and {EMAIL} about card {CARD}"))
    assert resp.status == 200
    assert EMAIL in (await resp.json())["choices"][0]["message"]["content"], "restored for the client"
    assert EMAIL not in json.dumps(upstream.requests[0]["body"]), "the upstream saw placeholders"
    await client.close()
    [row] = _rows(tmp_path)
    findings = json.loads(row["findings"])
    text, data = story_of(tmp_path, resp.headers["x-llmgw-request-id"])
    [scan] = [n for n in notes(data, "guardrails", "scanned") if n["phase"] == "request"]
    counted: dict[str, int] = {}
    for f in findings:
        if f["phase"] == "request":
            counted[f["entity"]] = counted.get(f["entity"], 0) + f.get("count", 1)
    assert {f["entity"]: f["count"] for f in scan["findings"]} == counted
    assert all(f["action"] == "redact" and f["rule"] == "pii" for f in scan["findings"])
    for entity, count in counted.items():
        assert f"{count} {entity} (redacted)" in text
    assert "Guardrails: 2 redacted values restored in the answer" in text or \
        "Guardrails: 1 redacted value restored" in text
    assert "Cache: the answer was not stored; the exchange had guardrail findings." in text
    for output in (text, json.dumps(data), row["story"]):   # with ids and times: no bare "4111" (it turns up)
        assert EMAIL not in output and "4111 1111" not in output and "41111111" not in output and CANARY not in output


async def test_why_never_shows_a_key_and_tells_an_unknown_key(gateway: Gateway, tmp_path: Path) -> None:
    client = await gateway(keys={"ci": {"key": "env:WHY_CI_KEY", "team": "search"}}, teams={"search": {}})
    ok = await client.post("/v1/chat/completions", json=chat("hi"), headers={"Authorization": f"Bearer {CI_KEY}"})
    bad = await client.post("/v1/chat/completions", json=chat("hi"),
                            headers={"Authorization": "Bearer sk-llmgw-not-a-key-0000"})
    assert (ok.status, bad.status) == (200, 401)
    await client.close()
    text, data = story_of(tmp_path, ok.headers["x-llmgw-request-id"])
    assert text.splitlines()[1] == "1. Key ci (team search) was accepted for model alias 'gpt'."
    bad_text, bad_data = story_of(tmp_path, bad.headers["x-llmgw-request-id"])
    assert "1. The key presented is unknown, revoked or expired: refused (401)." in bad_text
    for output in (text, json.dumps(data), bad_text, json.dumps(bad_data)):
        assert CI_KEY not in output and "sk-llmgw-not-a-key" not in output


# --- limits --------------------------------------------------------------------------------------------------


async def test_why_tells_a_budget_refusal_with_what_was_spent_and_when_to_retry(gateway: Gateway,
                                                                               tmp_path: Path) -> None:
    client = await gateway(
        models={"priced": {"targets": ["mock/priced"]}},
        prices={"mock/priced": {"input": 1000.0, "output": 1000.0}},
        teams={"search": {"budget_usd": {"daily": 0.10}}},
        keys={"ci": {"key": "env:WHY_CI_KEY", "team": "search"}})
    headers = {"Authorization": f"Bearer {CI_KEY}"}
    admitted = refused = None
    for _ in range(20):
        resp = await client.post("/v1/chat/completions", json=chat("hi", "priced", max_tokens=20), headers=headers)
        if resp.status == 200:
            admitted = resp
        else:
            refused = resp
            break
    assert admitted is not None and refused is not None and refused.status == 429
    message = (await refused.json())["error"]["message"]
    retry_after = refused.headers["Retry-After"]
    await client.close()

    text, data = story_of(tmp_path, admitted.headers["x-llmgw-request-id"])
    [note] = notes(data, "limits", "admitted")
    assert note["budgets"] == ["team search daily budget ($0.10)"]
    assert "Limits: team search daily budget ($0.10) applied; admitted, reserving up to $" in text

    text, data = story_of(tmp_path, refused.headers["x-llmgw-request-id"])
    [note] = notes(data, "limits", "refused")
    assert note["limit"] == "team search daily budget ($0.10)" and note["budget"] is True
    assert str(max(1, math.ceil(note["retry_after_s"]))) == retry_after
    assert "Limits: the team search daily budget ($0.10) refused it (" in text
    assert f"retry after {retry_after} s." in text
    assert "Answered 429 budget_exceeded in " in text and message in text
    assert not notes(data, "route") and data["attempts"] == [], "a refused request reaches no upstream"


# --- the command itself --------------------------------------------------------------------------------------


def _rows(tmp_path: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(tmp_path / "llmgw.db")
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM requests ORDER BY time")]
    db.close()
    return rows


def _old_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": "req_0001aaaabbbbcccc", "time": 1_700_000_000.0, "client_format": "openai", "endpoint": "chat",
        "alias": "fast", "provider": "mock", "target": "mock/mock-1", "status": 200, "outcome": "ok", "error": None,
        "error_message": None, "input_tokens": 12, "output_tokens": 30, "cached_tokens": 0,
        "cache_write_tokens": 0, "reasoning_tokens": 0, "cost_usd": 0.0042,
        "cost_breakdown": {"input": 0.001, "output": 0.0032}, "unpriced": False, "story": [], "saved_usd": 0.0,
        "usage_estimated": False, "latency_ms": 250.0, "overhead_ms": 0.4, "ttft_ms": None,
        "attempts": [{"n": 1, "target": "up/a", "status": 500, "latency_ms": 12.0, "error": "boom"},
                     {"n": 2, "target": "mock/mock-1", "status": 200, "latency_ms": 230.0, "error": None}],
        "cache": "miss", "key": "k_ab12", "team": "research", "tags": [], "stream": False,
        "dropped_params": ["metadata"], "findings": [], "request": None, "response": None}
    row.update(overrides)
    return row


def test_a_row_without_a_story_still_tells_what_its_columns_say(tmp_path: Path) -> None:
    db = tmp_path / "llmgw.db"
    request_log.write_rows(db, [_old_row()])
    result = why(tmp_path, "0001aaaa")   # a prefix, without req_
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == [
        "1. Key k_ab12 (team research) made the request for model alias 'fast'.",
        "2. Routing: up/a failed with 500 after 12 ms; fell back to mock/mock-1, which answered in 230 ms"
        " (2 attempts).",
        "3. Translation: metadata dropped (the target's format has no equivalent).",
        "4. Answered 200 by mock/mock-1 in 250 ms.",
        "5. Tokens: 12 in, 30 out. Cost $0.0042: input $0.0010, output $0.0032. Overhead 0.4 ms.",
    ]


def test_unknown_and_ambiguous_ids_are_one_line_errors(tmp_path: Path) -> None:
    db = tmp_path / "llmgw.db"
    request_log.write_rows(db, [_old_row(), _old_row(id="req_0001aaaadddd")])
    for request_id, words in (("req_ffff", "no logged request with id 'req_ffff'"), ("0001aaaa", "ambiguous")):
        result = why(tmp_path, request_id)
        assert result.exit_code == 1 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.output
    bad = why(tmp_path, "0001aaaab", "--format", "yaml")
    assert bad.exit_code == 1 and "--format" in bad.stderr


def test_no_log_yet_is_a_one_line_error(tmp_path: Path) -> None:
    result = why(tmp_path, "req_1")
    assert result.exit_code == 1 and "no request log" in result.stderr


# --- more decisions --------------------------------------------------------------------------------------------


async def test_why_tells_a_semantic_candidate_vetoed_by_the_difference_guard(gateway: Gateway,
                                                                             tmp_path: Path) -> None:
    client = await gateway(cache={"semantic": True, "threshold": 0.8})
    await client.post("/v1/chat/completions", json=chat("What was the capital of France in 1990?"))
    resp = await client.post("/v1/chat/completions", json=chat("What was the capital of France in 2020?"))
    assert resp.headers["x-llmgw-cache"] == "miss"
    await client.close()
    text, data = story_of(tmp_path, resp.headers["x-llmgw-request-id"])
    [semantic] = notes(data, "cache", "semantic")
    assert semantic["reason"] == "difference guard" and semantic["similarity"] >= 0.8
    assert semantic["vetoed"] == [{"similarity": semantic["similarity"], "reason": "numbers differ"}]
    assert f"had similarity {semantic['similarity']:.3f} (threshold 0.8), but the difference guard vetoed it" \
           " (numbers differ)." in text
    assert "1990" not in json.dumps(data["story"]) and "2020" not in json.dumps(data["story"])


async def test_why_tells_a_target_passed_over_in_cooldown_and_the_502(gateway: Gateway, upstream: FakeOpenAI,
                                                                      tmp_path: Path) -> None:
    upstream.fail_next(500, times=5)
    client = await gateway(routing={"cooldown_failures": 1, "cooldown_s": 60},
                           models={"gpt": {"targets": ["up/gpt-4o-mini", "mock/mock-1"]},
                                   "two": {"targets": ["up/other", "up/gpt-4o-mini"]}})
    first = await client.post("/v1/chat/completions", json=chat("hello"))
    assert first.status == 200
    resp = await client.post("/v1/chat/completions", json=chat("hello", "two"))
    assert resp.status == 502 and resp.headers["x-llmgw-attempts"] == "1"
    await client.close()
    text, data = story_of(tmp_path, resp.headers["x-llmgw-request-id"])
    assert [(n["target"], n["reason"]) for n in notes(data, "route", "skipped")] == [("up/gpt-4o-mini", "cooldown")]
    assert "Routing: up/other failed with 500 after " in text and "(1 attempt)." in text
    assert "Routing: skipped up/gpt-4o-mini, in cooldown after repeated failures." in text
    assert "Answered 502 upstream_error in " in text


async def test_why_tells_a_spent_retry_budget(gateway: Gateway, upstream: FakeOpenAI, tmp_path: Path) -> None:
    upstream.fail_next(503, times=5)
    client = await gateway(routing={"retry_budget": 0.0, "retry_reserve": 0},
                           models={"gpt": {"targets": ["up/gpt-4o-mini"], "retries": 2}})
    resp = await client.post("/v1/chat/completions", json=chat("hello"))
    assert resp.status == 502 and resp.headers["x-llmgw-attempts"] == "1"
    await client.close()
    text, _ = story_of(tmp_path, resp.headers["x-llmgw-request-id"])
    assert "Routing: one target, up/gpt-4o-mini; each tried up to 3 times." in text
    assert "Routing: the retry budget was spent, so up/gpt-4o-mini got no further attempt." in text


async def test_why_tells_a_rate_limit_and_an_alias_off_the_allow_list(gateway: Gateway, tmp_path: Path) -> None:
    client = await gateway(models={"gpt": {"targets": ["mock/m"]}, "hidden": {"targets": ["mock/h"]}},
                           teams={"search": {"models": ["gpt"]}},
                           keys={"ci": {"key": "env:WHY_CI_KEY", "team": "search", "rpm": 1, "tpm": 100_000}})
    headers = {"Authorization": f"Bearer {CI_KEY}"}
    ok = await client.post("/v1/chat/completions", json=chat("hi"), headers=headers)
    limited = await client.post("/v1/chat/completions", json=chat("hi"), headers=headers)
    hidden = await client.post("/v1/chat/completions", json=chat("hi", "hidden"), headers=headers)
    assert (ok.status, limited.status, hidden.status) == (200, 429, 404)
    await client.close()
    text, data = story_of(tmp_path, ok.headers["x-llmgw-request-id"])
    [admitted] = notes(data, "limits", "admitted")
    assert admitted["windows"] == ["key ci requests per minute (1)", "key ci tokens per minute (100000)"]
    assert f"admitted, reserving {admitted['reserved_tokens']:,} tokens." in text
    text, _ = story_of(tmp_path, limited.headers["x-llmgw-request-id"])
    assert f"Limits: key ci requests per minute (1) was reached: refused (429); retry after" \
           f" {limited.headers['Retry-After']} s." in text
    text, _ = story_of(tmp_path, hidden.headers["x-llmgw-request-id"])
    assert "1. Key ci (team search) may not use model alias 'hidden' (not on its allow-list): refused (404)." in text


async def test_why_tells_what_translation_dropped(gateway: Gateway, upstream: FakeOpenAI, tmp_path: Path) -> None:
    client = await gateway()
    resp = await client.post("/v1/messages", headers={"anthropic-version": "2023-06-01"}, json={
        "model": "gpt", "max_tokens": 50,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi",
                                                   "cache_control": {"type": "ephemeral"}}]}]})
    assert resp.status == 200
    await client.close()
    [row] = _rows(tmp_path)
    dropped = json.loads(row["dropped_params"])
    assert "cache_control" in dropped
    text, data = story_of(tmp_path, resp.headers["x-llmgw-request-id"])
    assert f"Translation: {', '.join(dropped)} dropped (the target's format has no equivalent)." in text
    assert data["dropped_params"] == dropped
    assert "(chat, anthropic format)" in text.splitlines()[0]


async def test_why_tells_the_data_class_check(gateway: Gateway, tmp_path: Path) -> None:
    client = await gateway(models={"gpt": {"targets": ["mock/m"], "data_classes": ["internal"]},
                                   "public": {"targets": ["mock/p"], "data_classes": ["public"]}},
                           teams={"search": {"data_class": "internal"}},
                           keys={"ci": {"key": "env:WHY_CI_KEY", "team": "search"}})
    headers = {"Authorization": f"Bearer {CI_KEY}"}
    ok = await client.post("/v1/chat/completions", json=chat("hi"), headers=headers)
    refused = await client.post("/v1/chat/completions", json=chat("hi", "public"), headers=headers)
    assert (ok.status, refused.status) == (200, 403)
    await client.close()
    text, _ = story_of(tmp_path, ok.headers["x-llmgw-request-id"])
    assert "Guardrails: team search sends 'internal' data, which model alias 'gpt' is approved for." in text
    text, _ = story_of(tmp_path, refused.headers["x-llmgw-request-id"])
    assert "Guardrails: team search sends 'internal' data, which model alias 'public' is not approved for:" \
           " refused (403)." in text
    assert "Answered 403 data_class_not_allowed" in text


async def test_why_tells_a_streamed_restore_and_a_block_without_values(gateway: Gateway, upstream: FakeOpenAI,
                                                                       tmp_path: Path) -> None:
    upstream.set_answer("Writing to <EMAIL_1> now.")
    client = await gateway(guardrails=[{"name": "pii", "kind": "pii", "action": "redact", "restore": True},
                                       {"name": "codenames", "kind": "denylist", "terms": ["project zeus"],
                                        "action": "block"}])
    streamed = await client.post("/v1/chat/completions", json=chat(f"Write to {EMAIL}", stream=True))
    assert EMAIL in (await streamed.read()).decode()
    blocked = await client.post("/v1/chat/completions", json=chat(f"Tell {EMAIL} about project zeus"))
    assert blocked.status == 403
    await client.close()
    text, data = story_of(tmp_path, streamed.headers["x-llmgw-request-id"])
    assert "Guardrails: in the request, rule 'pii' found 1 email (redacted)." in text
    assert "Guardrails: 1 redacted value restored in the answer the client got" in text
    assert notes(data, "guardrails", "restored")[0]["stream"] is True
    text, data = story_of(tmp_path, blocked.headers["x-llmgw-request-id"])
    assert "rule 'codenames' found 1 " in text and "(blocked)" in text
    assert "Answered 403 guardrail_blocked" in text and not notes(data, "route")
    for output in (text, json.dumps(data)):
        assert EMAIL not in output and "zeus" not in output.lower()
    assert EMAIL not in json.dumps(data["story"]) and "zeus" not in json.dumps(data["story"])
