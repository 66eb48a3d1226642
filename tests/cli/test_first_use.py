"""What a new user meets on the command line: the version, help without Python types, ports checked before
binding, log lookups by prefix, readable counts and values, cost shares and key names, and data never read as
markup."""

from __future__ import annotations

import json
import re
import socket
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from llmgw import __version__
from llmgw.cli.main import app
from llmgw.store.keys import KeyStore
from llmgw.store.log import write_rows

from .test_cost import full_row

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never read or write the real ~/.llmgw, ./llmgw.toml or $LLMGW_PROFILE; wide tables."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("LLMGW_PROFILE", raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    result = runner.invoke(app, [str(a) for a in args], env=env)
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    return result


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- the version --------------------------------------------------------------------------------------------------


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"llmgw {__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", __version__)


# --- serve: ports -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
def test_a_port_out_of_range_is_one_line(port: str) -> None:
    result = invoke("serve", "--port", port)
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert f"--port: {port} is not a TCP port (1-65535, or 0 to pick a free one)" in line
    assert "OverflowError" not in result.output


def test_a_profile_port_out_of_range_is_one_line(tmp_path: Path) -> None:
    profile = write(tmp_path / "p.toml", """
        [server]
        port = 70000
        [providers.m]
        kind = "mock"
        [models.a]
        targets = ["m/x"]
        """)
    result = invoke("serve", "--profile", profile)
    assert result.exit_code == 1 and "server.port: 70000 is not a TCP port" in result.stderr


def test_a_port_in_use_suggests_port_0() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = invoke("serve", "--port", str(port))
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in line and "--port 0" in line


def test_the_banner_command_of_a_keyed_profile_carries_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmgw.cli.serve import try_commands
    from llmgw.profile import parse_profile

    keyed = parse_profile({"providers": {"m": {"kind": "mock"}}, "models": {"a": {"targets": ["m/x"]}},
                           "teams": {"search": {}}, "keys": {"ci": {"key": "env:CI_KEY", "team": "search"}}})
    assert try_commands(keyed, "http://h:1") == ['curl -H "Authorization: Bearer $CI_KEY" http://h:1/v1/models']
    minted_only = parse_profile({"providers": {"m": {"kind": "mock"}}, "models": {"a": {"targets": ["m/x"]}},
                                 "teams": {"search": {}}})
    health, mint = try_commands(minted_only, "http://h:1")
    assert health == "curl http://h:1/health" and "llmgw keys create --team search" in mint
    open_proxy = parse_profile({"providers": {"m": {"kind": "mock"}}, "models": {"a": {"targets": ["m/x"]}}})
    assert try_commands(open_proxy, "http://h:1") == ["curl http://h:1/v1/models"]


# --- logs ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def log_db(tmp_path: Path) -> Path:
    """Five requests: ids req_00aa01…, req_00aa02…, req_00bb03…, req_00bb04…, req_00cc05… (newest last)."""
    now = time.time()
    rows = [full_row(f"req_00{pair}0{n}{'0' * 18}", now - 100 + n, team="search", key="ci", alias="fast",
                     target="mock/m", cost=0.001 * n) for n, pair in enumerate(("aa", "aa", "bb", "bb", "cc"), 1)]
    rows[0]["tags"] = ["web", "batch"]
    path = tmp_path / "log.db"
    write_rows(path, rows)
    return path


def test_show_an_ambiguous_prefix_lists_the_matches(log_db: Path) -> None:
    result = invoke("logs", "show", "req_00aa", "--db", log_db)
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert "'req_00aa' is ambiguous: 2 logged request ids start with it (req_00aa02" in line
    assert "req_00aa01" in line and "give more of the id" in line
    assert "no logged request" not in result.stderr


def test_show_accepts_the_bare_hex_part_of_an_id(log_db: Path) -> None:
    result = invoke("logs", "show", "00cc", "--db", log_db, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["id"].startswith("req_00cc05")
    full = json.loads(result.stdout)[0]["id"]
    assert json.loads(invoke("logs", "show", full[4:], "--db", log_db, "--format", "json").stdout)[0]["id"] == full
    assert invoke("logs", "show", "00dd", "--db", log_db).exit_code == 1
    assert invoke("logs", "show", "%", "--db", log_db).exit_code == 1, "% is not a wildcard"


def test_show_prints_nothing_as_a_dash_and_tags_as_words(log_db: Path) -> None:
    text = invoke("logs", "show", "00cc", "--db", log_db).stdout
    assert "None" not in text and "[]" not in text
    assert re.search(r"error\s+│ -", text) and re.search(r"tags\s+│ -", text)
    tagged = invoke("logs", "show", "00aa01", "--db", log_db).stdout
    assert re.search(r"tags\s+│ web, batch", tagged)


def test_list_says_how_many_of_how_many(log_db: Path, tmp_path: Path) -> None:
    assert "3 of 5 requests (newest first)" in invoke("logs", "list", "--db", log_db, "--limit", "3").stdout
    assert "5 requests (newest first)" in invoke("logs", "list", "--db", log_db).stdout
    assert "0 requests (newest first)" in invoke("logs", "list", "--db", log_db, "--model", "nope").stdout
    one = invoke("logs", "list", "--db", log_db, "--since", "30m", "--limit", "1")
    assert "1 of 5 requests" in one.stdout
    single = tmp_path / "one.db"
    write_rows(single, [full_row("req_1", time.time(), team="t", key="k", alias="a", target="m/x", cost=0.0)])
    assert "1 request (newest first)" in invoke("logs", "list", "--db", single).stdout


def test_list_cache_column_says_nothing_when_no_cache_is_configured(tmp_path: Path, log_db: Path) -> None:
    profile = write(tmp_path / "p.toml", f"""
        [state]
        url = "sqlite:///{log_db}"
        [providers.m]
        kind = "mock"
        [models.fast]
        targets = ["m/x"]
        """)
    text = invoke("logs", "list", "--profile", profile).stdout
    assert " miss" not in text
    cached = write(tmp_path / "c.toml", profile.read_text() + "\n[cache]\nexact = true\n")
    assert " miss" in invoke("logs", "list", "--profile", cached).stdout


# --- cost: markup, shares, key names ------------------------------------------------------------------------------


def test_budgets_without_teams_keeps_the_brackets(tmp_path: Path) -> None:
    result = invoke("cost", "budgets")
    assert "no [teams] or [keys] in <built-in demo>; nothing to budget" in result.stdout


def test_names_with_brackets_are_printed_as_they_are(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    write_rows(db, [full_row("req_1", time.time() - 60, team="[red]ops[/red]", key="k", alias="[b]x",
                             target="m/[i]y", cost=1.0)])
    for by in ("team", "model", "target"):
        text = invoke("cost", "report", "--db", db, "--by", by).stdout
        assert {"team": "[red]ops[/red]", "model": "[b]x", "target": "m/[i]y"}[by] in text
    assert "[red]ops[/red]" in invoke("logs", "list", "--db", db).stdout


def _lines_by_group(text: str, groups: list[str]) -> dict[str, str]:
    return {g: line for line in text.splitlines() for g in groups if re.search(rf"(^|[\s│]){re.escape(g)}\s", line)}


def test_report_shares_are_of_the_total_with_a_percentage_and_separators(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    now = time.time()
    rows = [full_row(f"req_{i}", now - 60, team="a" if i < 3 else "b", key="k", alias="fast", target="m/x",
                     cost=1.0, tokens=(1500, 20)) for i in range(4)]
    write_rows(db, rows)
    text = invoke("cost", "report", "--db", db, "--by", "team").stdout
    lines = _lines_by_group(text, ["a", "b", "total"])
    assert "75.0%" in lines["a"] and "25.0%" in lines["b"]
    assert lines["a"].count("█") == 18 and lines["b"].count("█") == 6
    assert "4,500" in lines["a"] and "6,000" in lines["total"]
    header = next(line for line in text.splitlines() if "requests" in line)
    assert "share of cost" in header and "anomaly" in header


def test_report_shares_by_tokens_when_every_price_is_zero(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    now = time.time()
    write_rows(db, [full_row("req_1", now - 60, team="a", key="k", alias="fast", target="m/x", cost=0.0,
                             tokens=(300, 0)),
                    full_row("req_2", now - 60, team="b", key="k", alias="fast", target="m/x", cost=0.0,
                             tokens=(100, 0))])
    text = invoke("cost", "report", "--db", db, "--by", "team").stdout
    lines = _lines_by_group(text, ["a", "b"])
    assert "share of tokens" in text and "every price is $0" in text
    assert "75.0%" in lines["a"] and "25.0%" in lines["b"]


def test_report_by_key_shows_names(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    store = KeyStore(db)
    named, _ = store.create("search", "ci-bot")
    unnamed, _ = store.create("search")
    store.close()
    now = time.time()
    write_rows(db, [full_row("req_1", now - 60, team="search", key=named, alias="fast", target="m/x", cost=1.0),
                    full_row("req_2", now - 60, team="search", key=unnamed, alias="fast", target="m/x", cost=0.5),
                    full_row("req_3", now - 60, team="search", key="ci", alias="fast", target="m/x", cost=0.25)])
    text = invoke("cost", "report", "--db", db, "--by", "key").stdout
    assert f"ci-bot ({named})" in text and unnamed in text
    records: list[dict[str, Any]] = json.loads(invoke("cost", "report", "--db", db, "--by", "key",
                                                      "--format", "json").stdout)
    assert {r["key"]: r["key_name"] for r in records} == {named: "ci-bot", unnamed: "", "ci": ""}
