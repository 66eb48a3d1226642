"""The request log: migrations, WAL, the batching writer, queries and id lookup."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmgw.errors import RateLimited, UpstreamError, UpstreamTimeout
from llmgw.exchange import Attempt, Exchange, UpstreamReply, Usage
from llmgw.profile import Target
from llmgw.store import log as request_log
from llmgw.store import log_read
from llmgw.store.log import LogWriter, connect, migrate, write_rows
from llmgw.store.log_read import find, query, record_from_row

NOW = time.time()


def make_row(
    id: str,
    *,
    ago: float = 0.0,
    alias: str = "fast",
    target: str = "openai/gpt-4o-mini",
    team: str = "search",
    status: int = 200,
    error: Any = None,
    tokens: tuple[int, int, int] = (10, 5, 0),
    cost: float = 0.000123,
    cache: str = "miss",
    tags: tuple[str, ...] = (),
    stream: bool = False,
) -> dict[str, Any]:
    provider, model = target.split("/", 1)
    exchange = Exchange(client_format="openai", endpoint="chat", id=id, time=NOW - ago, alias=alias,
                        target=Target(provider, model), team=team, key_id="key_ci", tags=tags, stream=stream,
                        body={"model": alias, "messages": [{"role": "user", "content": "hi"}]},
                        usage=Usage(input_tokens=tokens[0], output_tokens=tokens[1], cached_tokens=tokens[2]),
                        cost_usd=cost, cache=cache, latency_ms=12.3456, ttft_ms=4.5)
    exchange.attempts.append(Attempt(1, target, status if error is None else 500, 12.0))
    if error is not None:
        exchange.fail(error)
    else:
        exchange.status = status
        exchange.reply = UpstreamReply(body={"object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}]})
    return exchange.log_row()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "llmgw.db"


# --- schema and migrations --------------------------------------------------------------------------------------


def test_connect_creates_the_schema_and_sets_user_version(db_path: Path) -> None:
    db = connect(db_path)
    try:
        assert db_path.exists(), "connect creates the parent folder and the file"
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(request_log.MIGRATIONS) >= 1
        columns = {r["name"] for r in db.execute("PRAGMA table_info(requests)")}
        assert {"id", "time", "alias", "target", "provider", "status", "error", "team", "key", "input_tokens",
                "output_tokens", "cached_tokens", "cost_usd", "latency_ms", "ttft_ms", "attempts", "cache", "tags",
                "request", "response"} <= columns
        indexes = {r["name"] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"requests_time", "requests_team_time", "requests_alias_time"} <= indexes
    finally:
        db.close()


def test_wal_mode_is_on(db_path: Path) -> None:
    connect(db_path).close()
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent: seen by a fresh connection
    finally:
        db.close()


def test_the_writer_keeps_its_statement_journals_in_memory(db_path: Path) -> None:
    """A batch with bodies outgrows SQLite's in-memory statement journal; with temp files it would make, write
    and delete one for every batch."""
    writer = LogWriter(db_path)
    try:
        assert writer._db.execute("PRAGMA temp_store").fetchone()[0] == 2   # MEMORY
        writer.write(make_row("req_one"))
    finally:
        writer.close()
    db = connect(db_path, readonly=True)
    try:
        assert [r["id"] for r in db.execute("SELECT id FROM requests")] == ["req_one"]
    finally:
        db.close()


def test_rerunning_migrate_is_a_no_op(db_path: Path) -> None:
    write_rows(db_path, [make_row("req_keep")])
    db = connect(db_path)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        migrate(db)
        migrate(db)
        assert db.execute("PRAGMA user_version").fetchone()[0] == version
        assert db.execute("SELECT count(*) FROM requests").fetchone()[0] == 1
    finally:
        db.close()
    connect(db_path).close()  # and reopening does not try to create the table again


def test_a_new_migration_is_applied_once(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    connect(db_path).close()
    calls = []

    def add_column(db: sqlite3.Connection) -> None:
        calls.append(1)
        db.execute("ALTER TABLE requests ADD COLUMN note TEXT")

    monkeypatch.setattr(request_log, "MIGRATIONS", [*request_log.MIGRATIONS, add_column])
    db = connect(db_path)
    try:
        migrate(db)
        assert calls == [1]
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(request_log.MIGRATIONS)
        assert "note" in {r["name"] for r in db.execute("PRAGMA table_info(requests)")}
    finally:
        db.close()


def test_readonly_connect_does_not_create_anything(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError):
        connect(tmp_path / "absent.db", readonly=True)
    assert not (tmp_path / "absent.db").exists()


# --- writing ----------------------------------------------------------------------------------------------------


def test_write_rows_round_trips_every_spec_field(db_path: Path) -> None:
    row = make_row("req_roundtrip", tokens=(100, 20, 30), cost=0.5, cache="semantic", tags=("ci", "nightly"),
                   stream=True)
    write_rows(db_path, [row])
    db = connect(db_path, readonly=True)
    try:
        record = record_from_row(find(db, "req_roundtrip"), bodies=True)
    finally:
        db.close()
    assert record["id"] == "req_roundtrip"
    assert record["time"].endswith("+00:00") and "T" in record["time"]
    assert (record["alias"], record["target"], record["provider"]) == ("fast", "openai/gpt-4o-mini", "openai")
    assert (record["status"], record["error"], record["team"], record["key"]) == (200, None, "search", "key_ci")
    assert (record["input_tokens"], record["output_tokens"], record["cached_tokens"]) == (100, 20, 30)
    assert record["cost_usd"] == 0.5
    assert record["latency_ms"] == pytest.approx(12.346)
    assert record["ttft_ms"] == 4.5
    assert record["attempts"] == 1
    assert record["cache"] == "semantic"
    assert record["tags"] == ["ci", "nightly"]
    assert record["stream"] is True
    assert record["request"]["messages"] == [{"role": "user", "content": "hi"}]
    assert record["response"]["choices"][0]["message"]["content"] == "hello"
    assert record["attempt_log"] == [{"n": 1, "target": "openai/gpt-4o-mini", "status": 200, "latency_ms": 12.0,
                                      "error": None}]


def test_error_rows_record_status_and_code(db_path: Path) -> None:
    write_rows(db_path, [make_row("req_err", error=UpstreamError("every target failed"))])
    db = connect(db_path, readonly=True)
    try:
        record = record_from_row(find(db, "req_err"), bodies=True)
    finally:
        db.close()
    assert (record["status"], record["error"], record["outcome"]) == (502, "upstream_error", "error")
    assert record["error_message"] == "every target failed"
    assert record["response"] == {"error": {"message": "every target failed", "type": "upstream_error",
                                            "param": None, "code": "upstream_error"}}


def test_log_writer_close_flushes_every_row(db_path: Path) -> None:
    writer = LogWriter(db_path)
    base = make_row("req_base")
    for i in range(2000):
        writer.write({**base, "id": f"req_{i:06d}", "time": NOW + i})
    writer.close()
    assert writer.written == 2000
    db = connect(db_path, readonly=True)
    try:
        assert db.execute("SELECT count(*) FROM requests").fetchone()[0] == 2000
        assert db.execute("SELECT count(DISTINCT id) FROM requests").fetchone()[0] == 2000
    finally:
        db.close()


def test_log_writer_commits_in_batches(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    original = LogWriter._commit

    def spy(self: LogWriter, batch: Any) -> None:
        sizes.append(len(batch))
        original(self, batch)

    monkeypatch.setattr(LogWriter, "_commit", spy)
    writer = LogWriter(db_path, batch_size=100, max_delay_s=0.5)
    base = make_row("req_base")
    for i in range(1000):
        writer.write({**base, "id": f"req_{i:06d}"})
    writer.close()
    assert sum(sizes) == 1000
    assert max(sizes) <= 100
    assert len(sizes) < 100, f"rows were committed one by one, not batched: {sizes}"


def test_a_busy_writer_commits_once_per_tick_not_back_to_back(db_path: Path) -> None:
    """Rows keep coming while a batch commits: they wait for the next tick instead of a commit of their own right
    after, so a busy server's thread takes the database (and the GIL) a few times a second."""
    writer = LogWriter(db_path, max_delay_s=0.05, batch_size=2000)
    base = make_row("req_base")
    try:
        end, n = time.monotonic() + 1.0, 0
        while time.monotonic() < end:
            writer.write({**base, "id": f"req_{n:08d}"})
            n += 1
            if n % 50 == 0:
                time.sleep(0.001)
    finally:
        writer.close()
    assert writer.written == n
    # a tick that finds more than a batch queued (a fast producer) commits them batch by batch: no more than that
    assert writer.commits <= 1.0 / 0.05 + 5 + n // 2000, f"{writer.commits} commits for {n} rows in a second"

def test_log_writer_flushes_a_partial_batch_without_close(db_path: Path) -> None:
    writer = LogWriter(db_path, batch_size=500, max_delay_s=0.01)
    try:
        writer.write(make_row("req_soon"))
        deadline = time.monotonic() + 5
        while writer.written < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert writer.written == 1
    finally:
        writer.close()


def test_log_writer_close_is_idempotent_and_refuses_later_writes(db_path: Path) -> None:
    writer = LogWriter(db_path)
    writer.write(make_row("req_one"))
    writer.close()
    writer.close()
    with pytest.raises(RuntimeError):
        writer.write(make_row("req_two"))
    db = connect(db_path, readonly=True)
    try:
        assert db.execute("SELECT count(*) FROM requests").fetchone()[0] == 1
    finally:
        db.close()


# --- reading ----------------------------------------------------------------------------------------------------


@pytest.fixture
def filled(db_path: Path) -> Iterator[sqlite3.Connection]:
    write_rows(db_path, [
        make_row("req_a1", ago=10, alias="fast", target="openai/gpt-4o-mini", team="search", status=200),
        make_row("req_a2", ago=20, alias="smart", target="anthropic/claude-3-5-haiku-latest", team="ads",
                 error=UpstreamError("every target failed")),
        make_row("req_b3", ago=30, alias="fast", target="openai/gpt-4o-mini", team="ads",
                 error=RateLimited("slow down", retry_after=3)),
        make_row("req_b4", ago=3 * 86400, alias="fast", target="openai/gpt-4o", team="search", status=200),
        make_row("req_c5", ago=40, alias="smart", target="openai/gpt-4o", team="", error=UpstreamTimeout("slow")),
    ])
    db = connect(db_path, readonly=True)
    yield db
    db.close()


def ids(rows: list[sqlite3.Row]) -> list[str]:
    return [r["id"] for r in rows]


def test_query_is_newest_first(filled: sqlite3.Connection) -> None:
    assert ids(query(filled)) == ["req_a1", "req_a2", "req_b3", "req_c5", "req_b4"]


def test_query_limit_keeps_the_newest(filled: sqlite3.Connection) -> None:
    assert ids(query(filled, limit=2)) == ["req_a1", "req_a2"]
    assert len(query(filled, limit=None)) == 5


def test_query_since_and_until(filled: sqlite3.Connection) -> None:
    assert ids(query(filled, since=NOW - 3600)) == ["req_a1", "req_a2", "req_b3", "req_c5"]
    assert ids(query(filled, since=NOW - 25)) == ["req_a1", "req_a2"]
    assert ids(query(filled, until=NOW - 25)) == ["req_b3", "req_c5", "req_b4"]


@pytest.mark.parametrize(("model", "expected"), [
    ("fast", ["req_a1", "req_b3", "req_b4"]),                 # alias
    ("openai/gpt-4o-mini", ["req_a1", "req_b3"]),             # full target
    ("gpt-4o", ["req_c5", "req_b4"]),                         # bare model, not gpt-4o-mini
    ("claude-3-5-haiku-latest", ["req_a2"]),
    ("nothing", []),
])
def test_query_model_filter(filled: sqlite3.Connection, model: str, expected: list[str]) -> None:
    assert ids(query(filled, model=model)) == expected


def test_query_team_filter(filled: sqlite3.Connection) -> None:
    assert ids(query(filled, team="ads")) == ["req_a2", "req_b3"]
    assert ids(query(filled, team="search")) == ["req_a1", "req_b4"]


@pytest.mark.parametrize(("status", "expected"), [
    ("5xx", ["req_a2", "req_c5"]),
    ("4xx", ["req_b3"]),
    ("2xx", ["req_a1", "req_b4"]),
    ("429", ["req_b3"]),
    ("504", ["req_c5"]),
    ("ok", ["req_a1", "req_b4"]),
    ("OK", ["req_a1", "req_b4"]),
    ("error", ["req_a2", "req_b3", "req_c5"]),
    ("404", []),
])
def test_query_status_filter(filled: sqlite3.Connection, status: str, expected: list[str]) -> None:
    assert ids(query(filled, status=status)) == expected


def test_query_filters_combine(filled: sqlite3.Connection) -> None:
    assert ids(query(filled, model="fast", team="ads", status="error", since=NOW - 60)) == ["req_b3"]
    assert ids(query(filled, model="smart", status="5xx", limit=1)) == ["req_a2"]


def test_find_by_id_and_unique_prefix(filled: sqlite3.Connection) -> None:
    assert find(filled, "req_a1")["id"] == "req_a1"
    assert find(filled, "req_c")["id"] == "req_c5"
    assert find(filled, "req_b4")["id"] == "req_b4"


def test_find_ambiguous_or_unknown_prefix_is_none(filled: sqlite3.Connection) -> None:
    assert find(filled, "req_a") is None
    assert find(filled, "req_") is None
    assert find(filled, "req_zz") is None
    assert find(filled, "nope") is None


def test_record_without_bodies_has_no_request_or_response(filled: sqlite3.Connection) -> None:
    record = record_from_row(find(filled, "req_b3"))
    assert "request" not in record and "response" not in record
    assert (record["status"], record["error"]) == (429, "rate_limit_exceeded")


def test_a_row_whose_body_cannot_be_serialised_is_kept_without_bodies(db_path: Path) -> None:
    writer = LogWriter(db_path)
    writer.write({**make_row("req_odd"), "response": {"not json": object()}})
    writer.close()
    db = connect(db_path, readonly=True)
    try:
        row = db.execute("SELECT id, response, input_tokens FROM requests").fetchone()
        assert row[0] == "req_odd" and row[1] is None
    finally:
        db.close()


def test_usage_estimated_is_a_column_of_the_log_and_of_its_events(db_path: Path) -> None:
    estimated, reported = make_row("req_estimated"), make_row("req_reported")
    estimated["usage_estimated"] = True
    write_rows(db_path, [estimated, reported])
    db = connect(db_path, readonly=True)
    try:
        records = {r["id"]: record_from_row(r) for r in query(db)}
    finally:
        db.close()
    assert records["req_estimated"]["usage_estimated"] is True and records["req_reported"]["usage_estimated"] is False
    events = {e["id"]: e for e in log_read.latest_events(db_path, 10)}
    assert events["req_estimated"]["usage_estimated"] is True and events["req_reported"]["usage_estimated"] is False
