"""The `llmgw` command line (SPEC §1) through Typer's CliRunner: help, check, models, profile init, logs."""

from __future__ import annotations

import json
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from llmgw.cli.main import app
from llmgw.errors import RateLimited, UpstreamError
from llmgw.exchange import Attempt, Exchange, UpstreamReply, Usage
from llmgw.profile import Target, load_profile
from llmgw.store.log import write_rows

runner = CliRunner()

SPEC_LOG_FIELDS = {"id", "time", "alias", "target", "provider", "status", "error", "team", "key", "input_tokens",
                   "output_tokens", "cached_tokens", "cost_usd", "latency_ms", "ttft_ms", "attempts", "cache",
                   "tags"}


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


VALID = """
[server]
host = "127.0.0.1"
port = 4000

[state]
url = "sqlite:///{db}"

[providers.mock]
kind = "mock"

[providers.openai]
kind = "openai"
api_key = "env:LLMGW_TEST_OPENAI_KEY"

[models.fast]
targets = ["mock/mock-fast"]

[models.smart]
targets = ["openai/gpt-4o-mini", "mock/mock-smart"]
strategy = "fallback"

[prices]
"mock/mock-fast" = {{ input = 1.5, output = 3 }}
"""


@pytest.fixture
def valid_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LLMGW_TEST_OPENAI_KEY", "sk-test-openai-value-0001")
    return write(tmp_path / "valid.toml", VALID.format(db=tmp_path / "log.db"))


# --- help -------------------------------------------------------------------------------------------------------


def test_top_level_help_lists_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("serve", "check", "models", "logs", "profile"):
        assert f" {command} " in result.stdout, f"{command} missing from --help"


def test_no_arguments_shows_help() -> None:
    result = invoke()
    assert "Usage" in result.output
    assert "check" in result.output


@pytest.mark.parametrize("command", [["serve"], ["check"], ["models"], ["logs", "list"], ["logs", "show"],
                                     ["profile", "init"]], ids=" ".join)
def test_every_command_help_shows_an_example(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Example:" in result.stdout
    assert f"llmgw {' '.join(command)}" in result.stdout, "the example should show the command itself"


def test_help_text_keeps_bracketed_section_names() -> None:
    """The --db help says "the profile's [state] url"; rendering it as Rich markup drops "[state]"."""
    result = invoke("logs", "list", "--help")
    assert "[state]" in result.stdout


# --- check ------------------------------------------------------------------------------------------------------


def test_check_accepts_a_valid_profile(valid_profile: Path) -> None:
    result = invoke("check", "--profile", valid_profile)
    assert result.exit_code == 0, result.output
    assert "ok" in result.stdout
    assert "2 providers, 2 model aliases" in result.stdout
    (warning,) = result.stderr.splitlines()  # smart falls back from openai to the mock: valid, but said
    assert "warning: models.smart.targets: mock/mock-smart is a mock (fake answers) among real targets" in warning
    assert "sk-test-openai-value-0001" not in result.output


def test_check_without_profile_uses_the_builtin_demo() -> None:
    result = invoke("check")
    assert result.exit_code == 0, result.output
    assert "<built-in demo>" in result.stdout


def test_check_uses_llmgw_profile_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = write(tmp_path / "env.toml", "[server]\nport = \"x\"\n")
    monkeypatch.setenv("LLMGW_PROFILE", str(bad))
    result = invoke("check")
    assert result.exit_code == 1
    assert f"{bad}: server.port:" in result.stderr


def test_check_uses_local_llmgw_toml(tmp_path: Path) -> None:
    write(tmp_path / "llmgw.toml", "[server]\nworkers = true\n")
    result = invoke("check")
    assert result.exit_code == 1
    assert "llmgw.toml: server.workers:" in result.stderr


def test_check_reports_each_problem_on_its_own_line(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", """
        colour = "blue"
        [server]
        port = "4000"
        [providers.m]
        kind = "mock"
        fail_rate = 7
        [models.a]
        targets = ["b"]
        [models.b]
        targets = ["a"]
        [models.c]
        targets = ["nope/x"]
    """)
    result = invoke("check", "--profile", bad)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    expected = ["colour:", "server.port:", "providers.m.fail_rate:", "models.c.targets[0]:"]
    for key_path in expected:
        assert sum(line.startswith(f"{bad}: {key_path}") for line in lines) == 1, (key_path, lines)
    assert any("cycle" in line for line in lines)
    assert all(line.startswith(f"{bad}: ") for line in lines), lines
    assert len(lines) == len(expected) + 1


def test_check_invalid_toml(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", "[server\nport = 1\n")
    result = invoke("check", "--profile", bad)
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{bad}: invalid TOML")


def test_check_missing_file(tmp_path: Path) -> None:
    result = invoke("check", "--profile", tmp_path / "absent.toml")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert "file not found" in line


def test_check_unset_env_secret_names_the_variable_and_leaks_nothing(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMGW_TEST_UNSET_KEY", raising=False)
    monkeypatch.setenv("LLMGW_TEST_SET_KEY", "sk-ant-must-never-be-printed")
    monkeypatch.setenv("LLMGW_TEST_UNRELATED", "unrelated-secret-value")
    profile = write(tmp_path / "p.toml", f"""
        [server]
        admin_key = "super-literal-admin-secret"
        [providers.openai]
        kind = "openai"
        api_key = "env:LLMGW_TEST_UNSET_KEY"
        [providers.anthropic]
        kind = "anthropic"
        api_key = "env:LLMGW_TEST_SET_KEY"
        [providers.gemini]
        kind = "gemini"
        api_key = "file:{tmp_path / 'missing-key-file'}"
        [models.x]
        targets = ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest"]
    """)
    result = invoke("check", "--profile", profile)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2, lines
    assert any("providers.openai.api_key" in line and "LLMGW_TEST_UNSET_KEY" in line for line in lines)
    assert any("providers.gemini.api_key" in line and "missing-key-file" in line for line in lines)
    for value in ("sk-ant-must-never-be-printed", "unrelated-secret-value", "super-literal-admin-secret"):
        assert value not in result.output


def test_check_refuses_an_open_proxy(tmp_path: Path) -> None:
    profile = write(tmp_path / "p.toml", '[server]\nhost = "0.0.0.0"\n')
    result = invoke("check", "--profile", profile)
    assert result.exit_code == 1
    assert "server.host:" in result.stderr


# --- models -----------------------------------------------------------------------------------------------------


def test_models_table(valid_profile: Path) -> None:
    result = invoke("models", "--profile", valid_profile)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("fast", "smart", "fallback", "mock/mock-fast", "openai/gpt-4o-mini", "mock/mock-smart", "$1.5",
                 "$3"):
        assert text in out, f"{text!r} missing from\n{out}"
    assert out.index("openai/gpt-4o-mini") < out.index("mock/mock-smart"), "targets keep their order"


def test_models_json(valid_profile: Path) -> None:
    result = invoke("models", "--profile", valid_profile, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["alias"], r["position"], r["target"]) for r in rows] == [
        ("fast", 1, "mock/mock-fast"), ("smart", 1, "openai/gpt-4o-mini"), ("smart", 2, "mock/mock-smart")]
    fast = rows[0]
    assert (fast["strategy"], fast["input_per_1m"], fast["output_per_1m"]) == ("fallback", 1.5, 3.0)
    assert rows[1]["input_per_1m"] > 0 and rows[1]["output_per_1m"] > 0, "gpt-4o-mini is in the shipped table"
    assert rows[2]["input_per_1m"] == 0.0, "an unpriced mock model is free, as the meter counts it"


def test_models_on_invalid_profile_exits_1(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", "[server]\nport = \"x\"\n")
    result = invoke("models", "--profile", bad)
    assert result.exit_code == 1
    assert "server.port" in result.stderr


# --- profile init -----------------------------------------------------------------------------------------------


def test_profile_init_writes_a_profile_that_check_accepts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "new.toml"
    result = invoke("profile", "init", "--out", out)
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert text.lstrip().startswith("#"), "a commented starter profile"
    assert text.count("\n#") >= 3
    profile = load_profile(out)
    assert set(profile.providers) == {"openai"}, "the mock only when asked for"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-whatever")
    checked = invoke("check", "--profile", out)
    assert checked.exit_code == 0, checked.output


def test_profile_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = write(tmp_path / "mine.toml", "# my precious profile\n")
    result = invoke("profile", "init", "--out", out, "--provider", "mock")
    assert result.exit_code == 1
    assert "--force" in result.stderr
    assert out.read_text(encoding="utf-8") == "# my precious profile\n"
    forced = invoke("profile", "init", "--out", out, "--provider", "mock", "--force")
    assert forced.exit_code == 0, forced.output
    assert set(load_profile(out).providers) == {"mock"}


def test_profile_init_default_out_is_llmgw_toml_in_cwd(tmp_path: Path) -> None:
    result = invoke("profile", "init", "--provider", "mock")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "llmgw.toml").is_file()
    assert invoke("check").exit_code == 0  # ./llmgw.toml is now the default profile


def test_profile_init_with_chosen_providers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "p.toml"
    result = invoke("profile", "init", "--out", out, "--provider", "anthropic", "--provider", "local")
    assert result.exit_code == 0, result.output
    profile = load_profile(out)
    assert {name: p.kind for name, p in profile.providers.items()} == {"anthropic": "anthropic",
                                                                        "local": "openai-compatible"}
    targets = [t for m in profile.models.values() for t in m.targets]
    assert [t.provider for t in targets] == ["anthropic", "local"]
    assert "/" in targets[1].model, "the local model keeps its org/name slash"
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    unset = invoke("check", "--profile", out)
    assert unset.exit_code == 1
    assert "ANTHROPIC_API_KEY" in unset.stderr
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-x")
    assert invoke("check", "--profile", out).exit_code == 0


def test_profile_init_unknown_provider(tmp_path: Path) -> None:
    out = tmp_path / "p.toml"
    result = invoke("profile", "init", "--out", out, "--provider", "azure")
    assert result.exit_code == 1
    assert "'azure'" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not out.exists()


# --- logs -------------------------------------------------------------------------------------------------------

def row(now: float, id: str, *, ago: float, alias: str, target: str, team: str, status: int = 200, error: Any = None,
        tokens: tuple[int, int, int] = (10, 5, 0), tags: tuple[str, ...] = ()) -> dict[str, Any]:
    provider, model = target.split("/", 1)
    exchange = Exchange(client_format="openai", endpoint="chat", id=id, time=now - ago, alias=alias,
                        target=Target(provider, model), team=team, key_id=f"key_{team or 'none'}", tags=tags,
                        body={"model": alias, "messages": [{"role": "user", "content": f"question {id}"}]},
                        usage=Usage(*tokens), cost_usd=0.00042, latency_ms=120.5, ttft_ms=30.25, cache="miss")
    exchange.attempts.append(Attempt(1, target, 200 if error is None else 500, 100.0))
    if error is not None:
        exchange.fail(error)
    else:
        exchange.status = status
        exchange.reply = UpstreamReply(body={"object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": f"answer {id}"}, "finish_reason": "stop"}]})
    return exchange.log_row()


@pytest.fixture
def log_db(tmp_path: Path) -> Path:
    path = tmp_path / "log.db"
    now = time.time()
    write_rows(path, [
        row(now, "req_aaa111", ago=60, alias="fast", target="mock/mock-fast", team="search", tokens=(100, 20, 30),
            tags=("ci",)),
        row(now, "req_aab222", ago=120, alias="smart", target="openai/gpt-4o-mini", team="ads",
            error=UpstreamError("every target failed")),
        row(now, "req_bbb333", ago=180, alias="fast", target="mock/mock-fast", team="ads",
            error=RateLimited("slow down", retry_after=2)),
        row(now, "req_ccc444", ago=5 * 86400, alias="smart", target="openai/gpt-4o-mini", team="search"),
    ])
    return path


def logs_json(*args: str | Path) -> list[dict[str, Any]]:
    result = invoke("logs", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, list)
    return data


def test_logs_list_json_has_the_spec_fields(log_db: Path) -> None:
    records = logs_json("list", "--db", log_db)
    assert [r["id"] for r in records] == ["req_aaa111", "req_aab222", "req_bbb333", "req_ccc444"]
    for record in records:
        assert set(record) >= SPEC_LOG_FIELDS, SPEC_LOG_FIELDS - set(record)
        moment = datetime.fromisoformat(record["time"])
        assert moment.tzinfo is not None
        assert "request" not in record and "response" not in record
    first = records[0]
    assert abs(datetime.fromisoformat(first["time"]).timestamp() - (time.time() - 60)) < 30
    assert (first["alias"], first["target"], first["provider"], first["status"], first["error"]) == (
        "fast", "mock/mock-fast", "mock", 200, None)
    assert (first["team"], first["key"]) == ("search", "key_search")
    assert (first["input_tokens"], first["output_tokens"], first["cached_tokens"]) == (100, 20, 30)
    assert (first["cost_usd"], first["latency_ms"], first["ttft_ms"], first["attempts"]) == (0.00042, 120.5,
                                                                                             30.25, 1)
    assert (first["cache"], first["tags"]) == ("miss", ["ci"])
    assert (records[1]["status"], records[1]["error"]) == (502, "upstream_error")
    assert (records[2]["status"], records[2]["error"]) == (429, "rate_limit_exceeded")


@pytest.mark.parametrize(("args", "expected"), [
    (["--since", "1h"], ["req_aaa111", "req_aab222", "req_bbb333"]),
    (["--since", "90s"], ["req_aaa111"]),
    (["--since", "7d"], ["req_aaa111", "req_aab222", "req_bbb333", "req_ccc444"]),
    (["--model", "fast"], ["req_aaa111", "req_bbb333"]),
    (["--model", "openai/gpt-4o-mini"], ["req_aab222", "req_ccc444"]),
    (["--model", "gpt-4o-mini"], ["req_aab222", "req_ccc444"]),
    (["--team", "ads"], ["req_aab222", "req_bbb333"]),
    (["--status", "5xx"], ["req_aab222"]),
    (["--status", "429"], ["req_bbb333"]),
    (["--status", "ok"], ["req_aaa111", "req_ccc444"]),
    (["--status", "error"], ["req_aab222", "req_bbb333"]),
    (["--limit", "2"], ["req_aaa111", "req_aab222"]),
    (["--team", "search", "--since", "1d"], ["req_aaa111"]),
    (["--model", "fast", "--status", "error"], ["req_bbb333"]),
])
def test_logs_list_filters(log_db: Path, args: list[str], expected: list[str]) -> None:
    assert [r["id"] for r in logs_json("list", "--db", log_db, *args)] == expected


def test_logs_list_since_iso_date(log_db: Path) -> None:
    day = datetime.fromtimestamp(time.time() - 3 * 86400, UTC).date().isoformat()  # midnight is 3-4 days ago
    assert [r["id"] for r in logs_json("list", "--db", log_db, "--since", day)] == [
        "req_aaa111", "req_aab222", "req_bbb333"]


def test_logs_list_table(log_db: Path) -> None:
    result = invoke("logs", "list", "--db", log_db)
    assert result.exit_code == 0, result.output
    for text in ("req_aaa111", "req_aab222", "req_bbb333", "req_ccc444", "fast → mock/mock-fast", "502",
                 "upstream_error", "100/20"):
        assert text in result.stdout, f"{text!r} missing from\n{result.stdout}"


def test_logs_list_reads_the_profile_state_url(log_db: Path, tmp_path: Path) -> None:
    profile = write(tmp_path / "p.toml", f'[state]\nurl = "sqlite:///{log_db}"\n')
    records = logs_json("list", "--profile", profile)
    assert len(records) == 4


def test_logs_show_json_adds_request_and_response(log_db: Path) -> None:
    (record,) = logs_json("show", "req_aab222", "--db", log_db)
    assert SPEC_LOG_FIELDS | {"request", "response"} <= set(record)
    assert record["id"] == "req_aab222"
    assert record["request"]["messages"] == [{"role": "user", "content": "question req_aab222"}]
    assert record["response"]["error"]["code"] == "upstream_error"
    (ok,) = logs_json("show", "req_aaa111", "--db", log_db)
    assert ok["response"]["choices"][0]["message"]["content"] == "answer req_aaa111"


def test_logs_show_by_unique_prefix(log_db: Path) -> None:
    (record,) = logs_json("show", "req_bb", "--db", log_db)
    assert record["id"] == "req_bbb333"


def test_logs_show_table(log_db: Path) -> None:
    result = invoke("logs", "show", "req_aaa111", "--db", log_db)
    assert result.exit_code == 0, result.output
    for text in ("req_aaa111", "mock/mock-fast", "question req_aaa111", "answer req_aaa111"):
        assert text in result.stdout


@pytest.mark.parametrize("request_id", ["req_nope", "req_aa"], ids=["unknown", "ambiguous"])
def test_logs_show_unknown_id_exits_1(log_db: Path, request_id: str) -> None:
    result = invoke("logs", "show", request_id, "--db", log_db)
    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert repr(request_id) in line


def test_error_lines_quote_user_input_verbatim(log_db: Path) -> None:
    """User input in an error line must not be read as Rich markup (a "[bold]" in an id would vanish)."""
    result = invoke("logs", "show", "[bold]req", "--db", log_db)
    assert result.exit_code == 1
    assert "[bold]req" in result.stderr


def test_logs_bad_since_is_one_line(log_db: Path) -> None:
    result = invoke("logs", "list", "--db", log_db, "--since", "yesterday")
    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "--since" in line and "'yesterday'" in line


def test_logs_bad_format_exits_1(log_db: Path) -> None:
    result = invoke("logs", "list", "--db", log_db, "--format", "xml")
    assert result.exit_code == 1
    assert "--format" in result.stderr


def test_logs_with_no_log_yet(tmp_path: Path) -> None:
    result = invoke("logs", "list")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert "no request log" in line
    assert str(tmp_path / "home" / ".llmgw" / "llmgw.db") in line
    assert not (tmp_path / "home" / ".llmgw" / "llmgw.db").exists(), "reading must not create the log"
    shown = invoke("logs", "show", "req_x", "--db", tmp_path / "absent.db")
    assert shown.exit_code == 1
    assert "no request log" in shown.stderr
