"""`llmgw replay` through Typer's CliRunner, end to end: a request log written by real traffic through the
in-process gateway (mock provider and a fake OpenAI upstream), replayed against an alias, a provider/model and a
failing target, through the same server and pipeline; the replays land in the same log tagged ``replay``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from llmgw.cli.replay import replay
from llmgw.profile import load_profile
from llmgw.proxy.app import make_app
from llmgw.testing import FakeOpenAI
from llmgw.tools.replay import JSON_FIELDS, answer_text, similarity

runner = CliRunner()

PROFILE = """
[server]
log_bodies = {log_bodies}

[state]
url = "sqlite:///{db}"

[providers.mock]
kind = "mock"

[providers.broken]
kind = "mock"
fail_rate = 1.0
fail_status = 503

[providers.up]
kind = "openai-compatible"
base_url = "{upstream}"
api_key = "env:REPLAY_TEST_UP_KEY"

[models.fast]
targets = ["mock/mock-1"]

[models.down]
targets = ["broken/mock-down"]

[models.embed]
targets = ["mock/mock-embed"]
"""

GOVERNED = """
[teams.qa]

[keys.ci]
key = "env:REPLAY_TEST_CI_KEY"
team = "qa"
"""

UP_KEY = "sk-replay-upstream-test"


def cli() -> typer.Typer:
    """A Typer app that mounts the command the way ``llmgw.cli.main`` does."""
    app = typer.Typer(rich_markup_mode=None)
    app.command()(replay)

    @app.callback()
    def main() -> None:
        """llmgw."""

    return app


async def invoke(*args: str) -> Result:
    """Run ``llmgw replay ARGS`` in a thread: the command runs its own event loop while this one keeps serving
    the fake upstream."""
    return await asyncio.to_thread(runner.invoke, cli(), ["replay", *args])


@dataclass
class Logged:
    profile: Path
    db: Path
    upstream: FakeOpenAI
    chat_ids: list[str]        # newest first: anthropic, streamed openai, openai
    embed_id: str
    bodiless_id: str


def log_rows(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM requests ORDER BY time")]
    conn.close()
    return rows


def write_profile(path: Path, db: Path, upstream: str, *, log_bodies: bool = True, extra: str = "") -> Path:
    path.write_text(PROFILE.format(db=db, upstream=upstream, log_bodies=str(log_bodies).lower()) + extra)
    return path


@pytest.fixture
async def upstream(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeOpenAI]:
    monkeypatch.setenv("REPLAY_TEST_UP_KEY", UP_KEY)
    async with FakeOpenAI(api_key=UP_KEY) as fake:
        yield fake


@pytest.fixture
async def logged(tmp_path: Path, upstream: FakeOpenAI, aiohttp_client: Any,
                 monkeypatch: pytest.MonkeyPatch) -> Logged:
    """Real traffic through the gateway: three chat requests (OpenAI, OpenAI streamed, Anthropic), one embeddings
    request, and one chat request served with ``log_bodies = false``."""
    for name in ("LLMGW_PROFILE", "LLMGW_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    db = tmp_path / "llmgw.db"
    profile = write_profile(tmp_path / "llmgw.toml", db, upstream.base_url)
    quiet = write_profile(tmp_path / "quiet.toml", db, upstream.base_url, log_bodies=False)
    client = await aiohttp_client(make_app(load_profile(quiet)))
    resp = await client.post("/v1/chat/completions",
                             json={"model": "fast", "messages": [{"role": "user", "content": "not kept"}]})
    assert resp.status == 200
    bodiless_id = resp.headers["x-llmgw-request-id"]
    await client.close()

    client = await aiohttp_client(make_app(load_profile(profile)))
    ids = []
    resp = await client.post("/v1/chat/completions", json={
        "model": "fast", "messages": [{"role": "user", "content": "What is the capital of France?"}]})
    assert resp.status == 200
    ids.append(resp.headers["x-llmgw-request-id"])
    resp = await client.post("/v1/chat/completions", json={
        "model": "fast", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Name three primary colours please"}]})
    assert resp.status == 200 and "[DONE]" in await resp.text()
    ids.append(resp.headers["x-llmgw-request-id"])
    resp = await client.post("/v1/messages", headers={"anthropic-version": "2023-06-01"}, json={
        "model": "fast", "max_tokens": 64,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello in Spanish"}]}]})
    assert resp.status == 200
    ids.append(resp.headers["x-llmgw-request-id"])
    resp = await client.post("/v1/embeddings", json={"model": "embed", "input": "vectors"})
    assert resp.status == 200
    embed_id = resp.headers["x-llmgw-request-id"]
    await client.close()
    return Logged(profile, db, upstream, ids[::-1], embed_id, bodiless_id)


def parse(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def test_replays_against_an_alias_a_provider_model_and_a_failing_target(logged: Logged) -> None:
    result = await invoke("--profile", str(logged.profile), "--against", "fast", "--against", "up/gpt-4o-mini",
                          "--against", "down", "--format", "json")
    rows = parse(result)
    assert "skipped 1 request(s) logged without a body" in result.stderr
    assert [(r["id"], r["target"]) for r in rows] == [
        (request_id, target) for request_id in logged.chat_ids
        for target in ("mock/mock-1", "up/gpt-4o-mini", "broken/mock-down")]
    assert all(tuple(r) == JSON_FIELDS for r in rows)

    originals = {r["id"]: answer_text(json.loads(r["response"])) for r in log_rows(logged.db) if r["response"]}
    for row in rows:
        if row["target"] == "mock/mock-1":  # the same deterministic mock: the same answer
            assert row["status"] == 200 and row["error"] is None and row["similarity"] == 1.0
            assert row["output"] == originals[row["id"]]
            assert row["output"].startswith("Mock answer:") and row["output_tokens"] > 0
            assert row["input_tokens"] > 0 and row["latency_ms"] > 0
        elif row["target"] == "up/gpt-4o-mini":  # the fake OpenAI upstream echoes: a different answer
            assert row["status"] == 200 and row["error"] is None and row["output"].startswith("Echo: ")
            assert row["input_tokens"] > 0 and row["output_tokens"] > 0 and row["cost_usd"] > 0
            assert 0.0 < row["similarity"] < 1.0
        else:
            assert row["status"] == 502 and "mock failure" in row["error"] and row["output"] == ""
            assert row["similarity"] is None and row["cost_usd"] == 0.0

    sent = [r["body"] for r in logged.upstream.requests if r["path"] == "/v1/chat/completions"]
    assert len(sent) == 3 and all(b["model"] == "gpt-4o-mini" and b.get("stream") is not True for b in sent)
    assert all(r["headers"]["authorization"] == f"Bearer {UP_KEY}" for r in logged.upstream.requests)


async def test_replays_are_logged_with_tag_replay_in_the_same_log(logged: Logged) -> None:
    parse(await invoke("--profile", str(logged.profile), "--against", "fast", "--against", "up/gpt-4o-mini",
                       "--against", "down", "--format", "json"))
    rows = log_rows(logged.db)
    replays = [r for r in rows if "replay" in json.loads(r["tags"])]
    assert len(replays) == 9 and len(rows) == 5 + 9
    assert {r["alias"] for r in replays} == {"fast", "up/gpt-4o-mini", "down"}
    assert {r["client_format"] for r in replays} == {"openai", "anthropic"}
    assert all(json.loads(r["request"])["stream"] is False for r in replays)
    assert all("stream_options" not in json.loads(r["request"]) for r in replays)
    assert {r["status"] for r in replays if r["alias"] == "down"} == {502}

    # A second run picks the same originals: earlier replays are not replayed again.
    again = parse(await invoke("--profile", str(logged.profile), "--against", "fast", "--format", "json"))
    assert [r["id"] for r in again] == logged.chat_ids


async def test_ids_prefixes_and_the_table(logged: Logged) -> None:
    first = logged.chat_ids[0]
    result = await invoke(first[:-4], logged.embed_id, "--profile", str(logged.profile), "--against", "fast",
                          "--against", "down")
    assert result.exit_code == 0, result.output
    assert f"{logged.embed_id}: skipped, embeddings request" in result.stderr
    out = result.stdout
    assert first in out and "Say hello in Spanish" in out
    assert "original: mock/mock-1" in out and "fast → mock/mock-1" in out and "down → broken/mock-down" in out
    assert "1.00" in out and "Mock answer:" in out
    assert "502" in out and "mock failure" in out  # the failing target is an error row
    assert "Traceback" not in result.output


async def test_since_model_and_limit_select_the_newest(logged: Logged) -> None:
    rows = parse(await invoke("--profile", str(logged.profile), "--since", "1h", "--model", "mock/mock-1",
                              "--limit", "2", "--against", "fast", "--format", "json"))
    assert [r["id"] for r in rows] == logged.chat_ids[:2]


async def test_no_match_exits_1(logged: Logged) -> None:
    result = await invoke("--profile", str(logged.profile), "--model", "nosuch", "--against", "fast")
    assert result.exit_code == 1 and "no logged request matched" in result.stderr
    result = await invoke("req_doesnotexist", "--profile", str(logged.profile), "--against", "fast")
    assert result.exit_code == 1 and "req_doesnotexist: no logged request" in result.stderr
    result = await invoke(logged.bodiless_id, "--profile", str(logged.profile), "--against", "fast")
    assert result.exit_code == 1 and "log_bodies" in result.stderr
    result = await invoke("--profile", str(logged.profile), "--db", str(logged.db.parent / "none.db"),
                          "--against", "fast")
    assert result.exit_code == 1 and "no request log" in result.stderr


async def test_unknown_target_is_one_line_naming_it(logged: Logged) -> None:
    for target in ("ghost", "nope/gpt-4o", "mock/"):
        result = await invoke("--profile", str(logged.profile), "--against", "fast", "--against", target)
        assert result.exit_code == 1
        assert result.stderr.strip().count("\n") == 0 and repr(target) in result.stderr
        assert "Traceback" not in result.output
    assert len(log_rows(logged.db)) == 5, "nothing is replayed when a target is unknown"


async def test_a_profile_with_keys_needs_one(logged: Logged, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLAY_TEST_CI_KEY", "sk-llmgw-replay-ci-secret")
    governed = write_profile(logged.profile.with_name("governed.toml"), logged.db, logged.upstream.base_url,
                             extra=GOVERNED)
    result = await invoke("--profile", str(governed), "--against", "fast")
    assert result.exit_code == 1 and "--key" in result.stderr
    monkeypatch.setenv("LLMGW_KEY", "sk-llmgw-replay-ci-secret")
    rows = parse(await invoke("--profile", str(governed), "--against", "fast", "--format", "json"))
    assert [r["status"] for r in rows] == [200, 200, 200]
    replays = [r for r in log_rows(logged.db) if "replay" in json.loads(r["tags"])]
    assert {(r["team"], r["key"]) for r in replays} == {("qa", "ci")}
    rows = parse(await invoke("--profile", str(governed), "--key", "sk-llmgw-wrong", "--against", "fast",
                              "--format", "json"))
    assert [r["status"] for r in rows] == [401, 401, 401] and all(r["error"] for r in rows)


async def test_bad_options_are_one_line(logged: Logged) -> None:
    result = await invoke("--profile", str(logged.profile), "--since", "yesterday", "--against", "fast")
    assert result.exit_code == 1 and "--since" in result.stderr
    result = await invoke("--profile", str(logged.profile), "--format", "csv", "--against", "fast")
    assert result.exit_code == 1 and "--format" in result.stderr


def test_similarity_is_a_deterministic_score_in_0_1() -> None:
    assert similarity("Paris is the capital.", "paris  is the CAPITAL.") == 1.0
    assert similarity("abc", "xyz") == 0.0
    assert similarity("", "") == 1.0 and similarity("", "text") == 0.0
    close = similarity("The capital of France is Paris.", "Paris is the capital of France.")
    far = similarity("The capital of France is Paris.", "I like green apples and pears.")
    assert 0.0 <= far < 0.2 < close < 1.0
    assert similarity("a b c d", "d c b a") == similarity("a b c d", "d c b a")
