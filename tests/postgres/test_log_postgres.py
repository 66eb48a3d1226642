"""The request log in PostgreSQL: the schema mirrors SQLite's, the writer batches and upserts, the readers find
what the SQLite ones find, and an outage spools rows to disk until the database is back."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
from pathlib import Path

import psycopg
import pytest

from llmgw.profile import Secret, StateConfig
from llmgw.store import log as request_log
from llmgw.store import log_postgres as pg
from llmgw.store import log_read
from llmgw.store.log_backend import LogSource, LogUnavailable, open_reader, open_writer, write_rows
from tests.postgres.conftest import PASSWORD_ENV, PostgresServer, wait_for
from tests.unit.test_log_store import make_row


def source(url: str) -> LogSource:
    return LogSource(url, Secret(f"env:{PASSWORD_ENV}"))


def state(url: str, folder: Path) -> StateConfig:
    return StateConfig(url=url, password=Secret(f"env:{PASSWORD_ENV}"), dir=str(folder))


def test_schema_has_the_sqlite_columns_in_order_and_types(pg_url: str, tmp_path: Path) -> None:
    assert len(request_log.PG_MIGRATIONS) == len(request_log.MIGRATIONS)
    lite = request_log.connect(tmp_path / "log.db")
    sqlite_columns = [(r["name"], r["type"], r["notnull"], r["dflt_value"])
                      for r in lite.execute("PRAGMA table_info(requests)")]
    conn = pg.open_migrated(pg_url, os.environ[PASSWORD_ENV])
    pg_columns = conn.execute("SELECT column_name, data_type, is_nullable, column_default FROM"
                              " information_schema.columns WHERE table_name = 'requests'"
                              " ORDER BY ordinal_position").fetchall()
    assert [c[0] for c in sqlite_columns] == [c["column_name"] for c in pg_columns] == list(request_log.COLUMNS)
    kinds = {"TEXT": "text", "REAL": "double precision", "INTEGER": "bigint"}
    for (name, kind, notnull, default), column in zip(sqlite_columns, pg_columns, strict=True):
        assert kinds[kind] == column["data_type"], name
        assert bool(notnull) == (column["is_nullable"] == "NO") or name == "id", name   # SQLite: a NULL key
        assert (default is None) == (column["column_default"] is None), name
    # a second migrate is a no-op; the version is recorded
    assert pg.migrate(conn) == len(request_log.MIGRATIONS)
    conn.close()


def test_processes_migrating_at_once_take_turns(pg_url: str) -> None:
    errors: list[BaseException] = []

    def one() -> None:
        try:
            pg.open_migrated(pg_url, os.environ[PASSWORD_ENV]).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_rows_read_back_identical_to_sqlite(pg_url: str, tmp_path: Path) -> None:
    rows = [make_row(f"req_{i:04x}", ago=i, team="search" if i % 2 else "ads", tags=("a", "b") if i % 3 else (),
                     cost=0.001 * i) for i in range(40)]
    rows.append(make_row("req_nul", ago=100))
    rows[-1]["error_message"] = "a NUL \x00 inside"
    lite = LogSource.file(tmp_path / "log.db")
    write_rows(lite, rows)
    write_rows(source(pg_url), rows)
    with open_reader(lite) as a, open_reader(source(pg_url)) as b:
        for filters in ({}, {"team": "ads"}, {"status": "ok"}, {"since": rows[10]["time"]}, {"model": "gpt-4o-mini"}):
            got_a = [log_read.record_from_row(r, bodies=True) for r in a.query(**filters, limit=None)]
            got_b = [log_read.record_from_row(r, bodies=True) for r in b.query(**filters, limit=None)]
            for record in got_b:   # the one place the backends differ: PostgreSQL text holds no NUL
                if record["id"] == "req_nul":
                    record["error_message"] = record["error_message"].replace("\ufffd", "\x00")
            assert got_a == got_b
            assert a.count(**filters) == b.count(**filters)
        assert [r["id"] for r in b.find_all("00", limit=5)] == [r["id"] for r in a.find_all("00", limit=5)]
        assert b.find("req_0003")["id"] == "req_0003"
        assert b.find("0003")["id"] == "req_0003"
        assert b.find("req_00") is None                 # ambiguous
        assert b.find_all("%") == [] and b.find_all("_") == []   # no LIKE: wildcards mean themselves
        assert [r["id"] for r in b.latest(3)] == [r["id"] for r in a.latest(3)]
        events = [log_read.event_from_row(r) for r in b.latest(5)]
        assert events == [log_read.event_from_row(r) for r in a.latest(5)]


def test_rewriting_a_row_replaces_it(pg_url: str) -> None:
    row = make_row("req_same", cost=0.5)
    write_rows(source(pg_url), [row, {**row, "cost_usd": 0.75}])   # twice in one batch, then again
    write_rows(source(pg_url), [{**row, "cost_usd": 1.25}])
    with open_reader(source(pg_url)) as reader:
        found = reader.query(limit=None)
    assert len(found) == 1 and found[0]["cost_usd"] == 1.25


def test_writer_batches_rows_off_the_caller(pg_url: str, tmp_path: Path) -> None:
    writer = open_writer(state(pg_url, tmp_path), max_delay_s=0.01)
    for i in range(2500):
        writer.write(make_row(f"req_w{i:05d}"))
    writer.close()
    assert writer.written == 2500 and writer.backlog == 0 and writer.dropped == 0
    with open_reader(source(pg_url)) as reader:
        assert reader.count() == 2500


def test_unreachable_or_refused_at_start_is_one_line_without_the_password(pg_cluster: PostgresServer,
                                                                          tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong-pass-123")
    with pytest.raises(LogUnavailable) as refused:
        open_reader(source(pg_cluster.url()))
    message = str(refused.value)
    assert "\n" not in message and "wrong-pass-123" not in message and "password authentication failed" in message
    dead = free_dead_port()
    with pytest.raises(LogUnavailable) as unreachable:
        open_writer(StateConfig(url=f"postgresql://u:secret-in-url@127.0.0.1:{dead}/db", dir=str(tmp_path)))
    message = str(unreachable.value)
    assert "\n" not in message and "secret-in-url" not in message and "u:***@127.0.0.1" in message
    monkeypatch.delenv(PASSWORD_ENV)
    with pytest.raises(LogUnavailable, match=f"state.password: environment variable {PASSWORD_ENV} is not set"):
        open_reader(source(pg_cluster.url()))


def free_dead_port() -> int:
    from tests.postgres.conftest import free_port

    return free_port()


def test_an_outage_spools_rows_and_writes_them_when_the_database_is_back(
        postgres_server: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = postgres_server.url("llmgw")
    writer = open_writer(state(url, tmp_path), max_delay_s=0.01, retry_s=0.1)
    for i in range(100):
        writer.write(make_row(f"req_a{i:04d}"))
    wait_for(lambda: writer.written == 100)
    postgres_server.stop()
    with caplog.at_level(logging.WARNING, logger="llmgw.log"):
        for i in range(300):
            writer.write(make_row(f"req_b{i:04d}"))
        wait_for(lambda: writer.backlog == 300 and writer.queued == 0)
        spool = tmp_path / "log-spool.db"
        assert stat.S_IMODE(spool.stat().st_mode) == 0o600
        assert sqlite3.connect(spool).execute("SELECT COUNT(*) FROM spool").fetchone()[0] == 300
        postgres_server.start()
        for i in range(50):
            writer.write(make_row(f"req_c{i:04d}"))
        wait_for(lambda: writer.backlog == 0)
    writer.close()
    assert writer.dropped == 0
    assert any("unreachable" in r.getMessage() and "spooling" in r.getMessage() for r in caplog.records)
    with open_reader(source(url)) as reader:
        assert reader.count() == 450


def test_rows_spooled_by_a_process_that_stopped_are_written_by_the_next(
        postgres_server: PostgresServer, tmp_path: Path) -> None:
    url = postgres_server.url("llmgw")
    writer = open_writer(state(url, tmp_path), max_delay_s=0.01, retry_s=0.1)
    postgres_server.stop()
    for i in range(20):
        writer.write(make_row(f"req_s{i:04d}"))
    writer.close(drain_s=0.2)   # nothing can be written: the rows stay on disk
    assert writer.backlog == 20
    postgres_server.start()
    second = open_writer(state(url, tmp_path), max_delay_s=0.01)
    wait_for(lambda: second.backlog == 0)
    second.close()
    with open_reader(source(url)) as reader:
        assert reader.count() == 20


def test_a_full_spool_drops_rows_loudly_and_counts_them(postgres_server: PostgresServer, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    url = postgres_server.url("llmgw")
    writer = open_writer(state(url, tmp_path), max_delay_s=0.01, retry_s=0.1, spool_rows=10)
    postgres_server.stop()
    with caplog.at_level(logging.ERROR, logger="llmgw.log"):
        for i in range(25):
            writer.write(make_row(f"req_f{i:04d}"))
        wait_for(lambda: writer.queued == 0 and writer.dropped == 15)
    assert writer.backlog == 10
    assert any("DROPPED" in r.getMessage() and "full" in r.getMessage() for r in caplog.records)
    postgres_server.start()
    wait_for(lambda: writer.backlog == 0)
    writer.close()
    with open_reader(source(url)) as reader:
        assert reader.count() == 10


def test_psycopg_errors_never_show_the_password(pg_cluster: PostgresServer) -> None:
    with pytest.raises(psycopg.OperationalError) as raised:
        psycopg.connect(pg_cluster.url(), password="wrong-pass-123", connect_timeout=2)
    assert "wrong-pass-123" not in pg.one_line(raised.value, "wrong-pass-123")
