"""Every reading command works unchanged against a PostgreSQL log: the same rows in a SQLite log and in PostgreSQL
give the same output for logs list/show, why, cost report and cost budgets; keys are minted, listed and revoked in
PostgreSQL; db migrate copies a SQLite log with identical rows, idempotently; a bad database is one line."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner, Result

from llmgw.cli.main import app
from llmgw.profile import load_profile
from llmgw.store import log as request_log
from llmgw.store.key_backend import open_key_store
from llmgw.store.keys import KeyIndex, KeyStore
from llmgw.store.log_backend import LogSource, write_rows
from tests.postgres.conftest import PASSWORD_ENV, PostgresServer
from tests.unit.test_log_store import make_row

runner = CliRunner()

PROFILE = """
[state]
url = "{url}"
{extra}

[providers.mock]
kind = "mock"

[models.fast]
targets = ["mock/mock-1"]

[teams.search]
budget_usd = {{daily = 1.0, monthly = 10.0}}

[teams.ads]
budget_usd = {{daily = 2.0}}
"""


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("LLMGW_PROFILE", raising=False)
    monkeypatch.setenv("COLUMNS", "250")


def write_profile(path: Path, url: str, extra: str = "") -> Path:
    path.write_text(PROFILE.format(url=url, extra=extra), encoding="utf-8")
    return path


def pg_profile(tmp_path: Path, url: str) -> Path:
    return write_profile(tmp_path / "pg.toml", url,
                         f'password = "env:{PASSWORD_ENV}"\ndir = "{tmp_path / "pg-state"}"')


def invoke(*args: str | Path) -> Result:
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    return result


def rows() -> list[dict[str, Any]]:
    out = []
    for i in range(30):
        row = make_row(f"req_{i:04x}aa", ago=600.0 * i, team="search" if i % 3 else "ads",
                       tags=("batch",) if i % 2 else (), cost=0.0123 * (i + 1), status=200 if i % 7 else 503,
                       target="mock/mock-1", alias="fast")
        row["key"] = "ci" if i % 2 else ""
        row["cost_breakdown"] = {"input": 0.01 * (i + 1), "output": 0.0023 * (i + 1)}
        out.append(row)
    return out


@pytest.fixture
def both(tmp_path: Path, pg_url: str) -> tuple[Path, Path]:
    """A SQLite profile and a PostgreSQL one whose logs hold the same rows."""
    db = tmp_path / "lite" / "llmgw.db"
    lite = write_profile(tmp_path / "lite.toml", f"sqlite:///{db}")
    pg = pg_profile(tmp_path, pg_url)
    write_rows(LogSource.file(db), rows())
    write_rows(LogSource.of(load_profile(pg).state), rows())
    return lite, pg


@pytest.mark.parametrize("command", [
    ("logs", "list", "--format", "json"),
    ("logs", "list", "--format", "json", "--team", "ads", "--status", "5xx", "--limit", "3"),
    ("logs", "list", "--since", "2h"),
    ("logs", "show", "req_0003", "--format", "json"),
    ("logs", "show", "0003"),
    ("logs", "show", "req_00"),                      # ambiguous: lists the matches, exit 1
    ("why", "req_0005aa", "--format", "json"),
    ("why", "req_0005aa"),
    ("cost", "report", "--since", "1d", "--by", "team", "--by", "model", "--format", "json"),
    ("cost", "report", "--since", "1d", "--by", "tag", "--format", "csv"),
    ("cost", "report", "--since", "1d", "--by", "token_type", "--format", "json"),
    ("cost", "report", "--since", "1d", "--by", "key"),
    ("cost", "budgets", "--format", "json"),
])
def test_reading_commands_say_the_same_from_either_backend(both: tuple[Path, Path], command: tuple[str, ...]) -> None:
    lite, pg = both
    a = invoke(*command, "--profile", lite)
    b = invoke(*command, "--profile", pg)
    assert (a.exit_code, a.output) == (b.exit_code, b.output)
    assert a.output.strip()


def test_cost_report_total_is_the_sum_of_every_row(both: tuple[Path, Path]) -> None:
    _, pg = both
    result = invoke("cost", "report", "--since", "1d", "--by", "team", "--format", "json", "--profile", pg)
    assert result.exit_code == 0, result.output
    groups = json.loads(result.output)
    expected = sum(r["cost_usd"] for r in rows() if r["time"] >= rows()[0]["time"] - 86400)
    assert round(sum(g["cost_usd"] for g in groups), 8) == round(expected, 8)
    assert sum(g["requests"] for g in groups) == 30


def test_keys_are_minted_listed_and_revoked_in_postgresql(tmp_path: Path, pg_url: str) -> None:
    pg = pg_profile(tmp_path, pg_url)
    created = invoke("keys", "create", "--team", "search", "--name", "ci", "--profile", pg)
    assert created.exit_code == 0, created.output
    secret = created.output.strip().splitlines()[-1]
    listed = json.loads(invoke("keys", "list", "--format", "json", "--profile", pg).output)
    assert [(k["team"], k["name"], k["revoked"]) for k in listed] == [("search", "ci", None)]
    profile = load_profile(pg)
    store = open_key_store(profile.state)
    try:
        record = KeyIndex.load(profile, store).lookup(secret)
    finally:
        store.close()
    assert record is not None and record.id == listed[0]["id"]
    with psycopg.connect(pg_url, password=os.environ[PASSWORD_ENV]) as conn:
        stored = conn.execute("SELECT hash, team FROM keys").fetchall()
    assert len(stored) == 1 and secret not in repr(stored)
    assert invoke("keys", "revoke", "ci", "--profile", pg).exit_code == 0
    again = json.loads(invoke("keys", "list", "--format", "json", "--profile", pg).output)
    assert again[0]["revoked"] is not None
    assert not (tmp_path / "pg-state" / "llmgw.db").exists()   # nothing went to a SQLite file


def test_db_migrate_copies_a_sqlite_log_with_identical_rows(tmp_path: Path, pg_url: str) -> None:
    db = tmp_path / "old" / "llmgw.db"
    originals = rows()
    originals[3]["request"] = {"model": "fast", "messages": [{"role": "user", "content": "ünïcode ☃"}]}
    originals[4]["story"] = [{"stage": "route", "event": "picked"}]
    request_log.write_rows(db, originals)
    store = KeyStore(db)
    key_id, secret = store.create("search", "ci")
    store.close()
    pg = pg_profile(tmp_path, pg_url)
    first = invoke("db", "migrate", "--from", f"sqlite:///{db}", "--profile", pg, "--batch", "7")
    assert first.exit_code == 0, first.output
    assert "copied 30 requests (30 new; 30 in the target now) and 1 minted keys" in first.output
    again = invoke("db", "migrate", "--from", f"sqlite:///{db}", "--to", pg_url, "--to-password",
                   f"env:{PASSWORD_ENV}")
    assert again.exit_code == 0 and "copied 30 requests (0 new; 30 in the target now)" in again.output
    lite = sqlite3.connect(db)
    want = lite.execute(f"SELECT {', '.join(request_log.COLUMNS)} FROM requests ORDER BY id").fetchall()
    with psycopg.connect(pg_url, password=os.environ[PASSWORD_ENV]) as conn:
        got = conn.execute(f"SELECT {', '.join(chr(34) + c + chr(34) for c in request_log.COLUMNS)}"
                           " FROM requests ORDER BY id").fetchall()
    assert got == want
    profile = load_profile(pg)
    keys = open_key_store(profile.state)
    try:   # the minted key still opens the door: its salt came along
        assert KeyIndex.load(profile, keys).lookup(secret).id == key_id
    finally:
        keys.close()
    shown = invoke("logs", "show", "req_0003", "--format", "json", "--profile", pg)
    assert json.loads(shown.output)[0]["request"]["messages"][0]["content"] == "ünïcode ☃"
    # and back again, into a fresh SQLite file
    back = tmp_path / "back.db"
    assert invoke("db", "migrate", "--from", pg_url, "--from-password", f"env:{PASSWORD_ENV}",
                  "--to", f"sqlite:///{back}").exit_code == 0
    assert sqlite3.connect(back).execute(
        f"SELECT {', '.join(request_log.COLUMNS)} FROM requests ORDER BY id").fetchall() == want


def test_db_migrate_refuses_to_mix_two_key_salts(tmp_path: Path, pg_url: str) -> None:
    db = tmp_path / "a.db"
    store = KeyStore(db)
    store.create("search")
    store.close()
    pg = pg_profile(tmp_path, pg_url)
    assert invoke("keys", "create", "--team", "search", "--profile", pg).exit_code == 0
    result = invoke("db", "migrate", "--from", f"sqlite:///{db}", "--profile", pg)
    assert result.exit_code == 1 and "another salt" in result.output and len(result.output.strip().splitlines()) == 2


def test_db_migrate_errors_are_one_line(tmp_path: Path, pg_cluster: PostgresServer) -> None:
    missing = invoke("db", "migrate", "--from", f"sqlite:///{tmp_path / 'none.db'}", "--to", f"sqlite:///{tmp_path}/x")
    assert missing.exit_code == 1 and "no request log at" in missing.output
    bad = invoke("db", "migrate", "--from", "mysql://u:hunter2@h/db", "--to", f"sqlite:///{tmp_path}/x")
    assert bad.exit_code == 1 and "hunter2" not in bad.output
    db = tmp_path / "a.db"
    request_log.write_rows(db, rows()[:2])
    wrong = invoke("db", "migrate", "--from", f"sqlite:///{db}", "--to", pg_cluster.url(), "--to-password",
                   "env:NOT_SET_ANYWHERE")
    assert wrong.exit_code == 1
    assert wrong.output.strip().splitlines()[-1] == \
        "error: --to-password: environment variable NOT_SET_ANYWHERE is not set"


def test_an_unreachable_database_is_one_line_for_every_reader(tmp_path: Path, pg_cluster: PostgresServer,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    pg = pg_profile(tmp_path, pg_cluster.url())
    for command in (("logs", "list"), ("logs", "show", "req_1"), ("why", "req_1"), ("cost", "report"),
                    ("cost", "budgets"), ("keys", "list"), ("replay", "req_1", "--against", "fast", "--key", "sk-x")):
        result = invoke(*command, "--profile", pg)
        assert result.exit_code == 1, (command, result.output)
        assert "password authentication failed" in result.output, (command, result.output)
        assert "not-the-password" not in result.output
        assert len(result.output.strip().splitlines()) <= 2, (command, result.output)


async def test_the_key_reloader_keeps_the_old_keys_while_the_database_is_down(
        tmp_path: Path, postgres_server: PostgresServer) -> None:
    from llmgw.proxy.governance import KeyReloader, open_keys

    pg = pg_profile(tmp_path, postgres_server.url("llmgw"))
    created = invoke("keys", "create", "--team", "search", "--name", "ci", "--profile", pg)
    secret = created.output.strip().splitlines()[-1]
    profile = load_profile(pg)
    index = open_keys(profile)
    reloader = KeyReloader(index, lambda: open_keys(profile))
    postgres_server.stop()
    await reloader.reload()            # logged, not raised: the keys it had still work
    assert index.lookup(secret) is not None
    postgres_server.start()
    assert invoke("keys", "revoke", "ci", "--profile", pg).exit_code == 0
    await reloader.reload()
    assert index.lookup(secret) is None


def test_replay_reads_and_logs_in_postgresql(tmp_path: Path, pg_url: str) -> None:
    """The whole loop against PostgreSQL: pick a logged request, send it through the profile's own gateway
    (in-process, logging to the same database), and find the replay in the log tagged ``replay``."""
    pg = write_profile(tmp_path / "open.toml", pg_url,
                       f'password = "env:{PASSWORD_ENV}"\ndir = "{tmp_path / "pg-state"}"').read_text()
    open_profile = tmp_path / "open.toml"
    open_profile.write_text(pg.split("[teams.search]")[0], encoding="utf-8")   # an open proxy: no key needed
    write_rows(LogSource.of(load_profile(open_profile).state), [make_row("req_original1", alias="fast",
                                                                         target="mock/mock-1")])
    result = invoke("replay", "req_orig", "--against", "fast", "--format", "json", "--profile", open_profile)
    assert result.exit_code == 0, result.output
    replayed = json.loads(result.output)
    assert [r["id"] for r in replayed] == ["req_original1"] and replayed[0]["status"] == 200
    listed = json.loads(invoke("logs", "list", "--format", "json", "--profile", open_profile).output)
    assert len(listed) == 2 and any("replay" in r["tags"] for r in listed)
