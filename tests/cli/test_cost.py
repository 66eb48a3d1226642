"""`llmgw cost report` and `llmgw cost budgets` (SPEC §1) through Typer's CliRunner on a fixture request log."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from llmgw.cli import cost
from llmgw.exchange import Attempt, Exchange, Usage
from llmgw.profile import Target
from llmgw.store.log import write_rows

runner = CliRunner()
# llmgw mounts cost.app as `llmgw cost`; the tests mount it the same way on a bare root.
root = typer.Typer(rich_markup_mode=None)
root.add_typer(cost.app, name="cost")


@root.callback()
def _root() -> None:
    """Test root."""


ANCHOR = datetime(2026, 3, 10, 12, 0, tzinfo=UTC).timestamp()   # the window ends here (--until)
WINDOW = ("--since", "2026-03-01", "--until", "2026-03-10T12:00:00")
DAY = 86400.0
FIELDS = ("team", "key", "model", "target", "provider", "day", "tag")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never read the real ~/.llmgw, ./llmgw.toml or $LLMGW_PROFILE; wide tables."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("LLMGW_PROFILE", raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str | Path) -> Result:
    result = runner.invoke(root, [str(a) for a in args])
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    return result


# --- the fixture log -------------------------------------------------------------------------------------------


def full_row(id: str, when: float, *, team: str, key: str, alias: str, target: str, cost: float,
             tags: list[str] | None = None, tokens: tuple[int, int] = (100, 20), status: int = 200) -> dict[str, Any]:
    """A literal row with every column of the requests table."""
    provider = target.split("/", 1)[0] if target else ""
    return {
        "id": id, "time": when, "client_format": "openai", "endpoint": "chat", "alias": alias, "provider": provider,
        "target": target, "status": status, "outcome": "ok" if status < 400 else "error",
        "error": None if status < 400 else "upstream_error", "error_message": None,
        "input_tokens": tokens[0], "output_tokens": tokens[1], "cached_tokens": 0, "cache_write_tokens": 0,
        "reasoning_tokens": 0, "cost_usd": cost, "latency_ms": 120.0, "ttft_ms": 40.0,
        "attempts": [{"n": 1, "target": target, "status": status, "latency_ms": 120.0, "error": None}],
        "cache": "miss", "key": key, "team": team, "tags": tags or [], "stream": False, "dropped_params": [],
        "request": {"model": alias, "messages": [{"role": "user", "content": "hi"}]}, "response": None,
    }


def exchange_row(id: str, when: float, *, team: str, key: str, alias: str, target: str, cost: float,
                 tags: tuple[str, ...] = ()) -> dict[str, Any]:
    """A row as the gateway itself writes it."""
    provider, model = target.split("/", 1)
    ex = Exchange(client_format="anthropic", endpoint="chat", id=id, time=when, alias=alias, team=team,
                  key_id=key, tags=tags, target=Target(provider, model), usage=Usage(input_tokens=321,
                                                                                      output_tokens=45),
                  cost_usd=cost, latency_ms=80.0, body={"model": alias})
    ex.attempts = [Attempt(1, target, 500, 10.0, "upstream_error"), Attempt(2, target, 200, 70.0)]
    return ex.log_row()


@dataclass
class Fixture:
    path: Path
    rows: list[dict[str, Any]]

    def in_window(self) -> list[dict[str, Any]]:
        since = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
        return [r for r in self.rows if since <= r["time"] < ANCHOR]

    def total(self) -> float:
        return math.fsum(r["cost_usd"] for r in self.in_window())

    def tag_weighted_total(self) -> float:
        return math.fsum(r["cost_usd"] * max(1, len(set(r["tags"]))) for r in self.in_window())


def _rows() -> Iterator[dict[str, Any]]:
    """Six days of steady spend for three teams, then the last 24 h: search spikes (an anomaly), ads stays level,
    research jumps 40x but by less than $1 (not an anomaly)."""
    n = 0

    def rid() -> str:
        nonlocal n
        n += 1
        return f"req_{n:04d}"

    for day in range(1, 7):
        at = ANCHOR - day * DAY - 3600
        yield full_row(rid(), at, team="search", key="ci", alias="fast", target="openai/gpt-4o-mini",
                       cost=0.1234567, tags=["web", "batch"])
        yield full_row(rid(), at + 60, team="search", key="ci", alias="smart", target="anthropic/claude-haiku",
                       cost=0.2765433, tags=["web"])
        yield full_row(rid(), at + 120, team="ads", key="ads-prod", alias="smart", target="anthropic/claude-haiku",
                       cost=0.3333333)
        yield exchange_row(rid(), at + 180, team="ads", key="ads-prod", alias="fast", target="openai/gpt-4o-mini",
                           cost=0.6666667, tags=("nightly",))
        yield full_row(rid(), at + 240, team="research", key="lab", alias="fast", target="mock/mock-1",
                       cost=0.0123457, tags=["exp", "exp"])
        yield full_row(rid(), at + 300, team="", key="", alias="fast", target="", cost=0.0, status=502,
                       tokens=(0, 0))
    recent = ANCHOR - 3600
    for i in range(6):
        yield full_row(rid(), recent + i, team="search", key="ci", alias="smart", target="anthropic/claude-haiku",
                       cost=1.0000001, tags=["web"])
    yield exchange_row(rid(), recent + 10, team="ads", key="ads-prod", alias="smart", target="anthropic/claude-haiku",
                       cost=1.1)
    yield full_row(rid(), recent + 20, team="research", key="lab", alias="fast", target="mock/mock-1", cost=0.5)
    # Outside the window: before --since and at/after --until.
    yield full_row(rid(), ANCHOR - 20 * DAY, team="search", key="ci", alias="fast", target="openai/gpt-4o-mini",
                   cost=99.0)
    yield full_row(rid(), ANCHOR, team="ads", key="ads-prod", alias="fast", target="openai/gpt-4o-mini", cost=77.0)


@pytest.fixture
def spend_log(tmp_path: Path) -> Fixture:
    rows = list(_rows())
    path = tmp_path / "spend.db"
    write_rows(path, rows)
    return Fixture(path, rows)


def report_json(log: Fixture, *args: str) -> list[dict[str, Any]]:
    result = invoke("cost", "report", *WINDOW, "--db", log.path, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def report_csv(log: Fixture, *args: str) -> list[dict[str, str]]:
    result = invoke("cost", "report", *WINDOW, "--db", log.path, "--format", "csv", *args)
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def report_table(log: Fixture, *args: str) -> str:
    result = invoke("cost", "report", *WINDOW, "--db", log.path, *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def table_total(text: str) -> tuple[int, float]:
    """The requests and cost of the table's total row."""
    (line,) = [line for line in text.splitlines() if re.match(r"^\W*total\b", line)]
    numbers = re.findall(r"\d+(?:\.\d+)?", line.replace(",", ""))
    return int(numbers[0]), float(numbers[3])


# --- cost report -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", [f for f in FIELDS if f not in ("tag", "token_type")])
def test_json_groups_add_up_to_the_logged_cost(spend_log: Fixture, field: str) -> None:
    records = report_json(spend_log, "--by", field)
    assert math.fsum(r["cost_usd"] for r in records) == pytest.approx(spend_log.total(), abs=1e-6)
    assert round(math.fsum(r["cost_usd"] for r in records), 2) == round(spend_log.total(), 2)
    assert sum(r["requests"] for r in records) == len(spend_log.in_window())
    assert sum(r["input_tokens"] for r in records) == sum(r["input_tokens"] for r in spend_log.in_window())
    assert sum(r["output_tokens"] for r in records) == sum(r["output_tokens"] for r in spend_log.in_window())
    for record in records:
        names = {"key_name"} if field == "key" else set()
        assert set(record) == {field, *names, "requests", "input_tokens", "output_tokens", "cost_usd", "saved_usd",
                               "unpriced", "anomaly"}


@pytest.mark.parametrize("field", [f for f in FIELDS if f not in ("tag", "token_type")])
def test_csv_groups_add_up_to_the_logged_cost(spend_log: Fixture, field: str) -> None:
    records = report_csv(spend_log, "--by", field)
    names = ["key_name"] if field == "key" else []
    assert list(records[0]) == [field, *names, "requests", "input_tokens", "output_tokens", "cost_usd", "saved_usd",
                                "unpriced", "anomaly"]
    assert math.fsum(float(r["cost_usd"]) for r in records) == pytest.approx(spend_log.total(), abs=1e-6)
    assert sum(int(r["requests"]) for r in records) == len(spend_log.in_window())


@pytest.mark.parametrize("fields", [[f] for f in FIELDS] + [["team", "model"], ["day", "team"], ["tag", "team"]],
                         ids=lambda f: "+".join(f))
def test_table_total_row_is_the_logged_cost(spend_log: Fixture, fields: list[str]) -> None:
    text = report_table(spend_log, *[a for f in fields for a in ("--by", f)])
    requests, total = table_total(text)
    assert requests == len(spend_log.in_window())
    assert total == pytest.approx(spend_log.total(), abs=0.00005)
    assert "█" in text


def test_tag_groups_count_a_request_once_per_distinct_tag(spend_log: Fixture) -> None:
    records = report_json(spend_log, "--by", "tag")
    by_tag = {r["tag"]: r for r in records}
    assert set(by_tag) == {"web", "batch", "nightly", "exp", "-"}
    assert by_tag["exp"]["requests"] == 6, "a repeated tag counts once"
    assert by_tag["batch"]["requests"] == 6
    assert by_tag["web"]["requests"] == 18
    assert math.fsum(r["cost_usd"] for r in records) == pytest.approx(spend_log.tag_weighted_total(), abs=1e-6)
    csv_records = report_csv(spend_log, "--by", "tag")
    assert math.fsum(float(r["cost_usd"]) for r in csv_records) == pytest.approx(spend_log.tag_weighted_total(),
                                                                                 abs=1e-6)
    result = invoke("cost", "report", "--help")
    assert "counts in each tag's group" in " ".join(result.stdout.split())


def test_nested_groups_and_empty_values(spend_log: Fixture) -> None:
    records = report_json(spend_log, "--by", "team", "--by", "model")
    keys = {(r["team"], r["model"]) for r in records}
    assert keys == {("search", "fast"), ("search", "smart"), ("ads", "fast"), ("ads", "smart"),
                    ("research", "fast"), ("-", "fast")}
    assert all(list(r)[:2] == ["team", "model"] for r in records)
    assert [r["cost_usd"] for r in records] == sorted((r["cost_usd"] for r in records), reverse=True)
    failed = next(r for r in records if r["team"] == "-")
    assert failed["cost_usd"] == 0 and failed["requests"] == 6


def test_by_day_is_the_trend(spend_log: Fixture) -> None:
    records = report_json(spend_log, "--by", "day")
    days = [r["day"] for r in records]
    assert days == sorted(days)
    assert days[0] == "2026-03-04" and days[-1] == "2026-03-10"
    assert records[-1]["cost_usd"] == pytest.approx(6 * 1.0000001 + 1.1 + 0.5)


def test_json_values(spend_log: Fixture) -> None:
    records = report_json(spend_log, "--by", "key")
    ci = next(r for r in records if r["key"] == "ci")
    assert ci["requests"] == 18
    assert ci["input_tokens"] == 1800
    assert ci["output_tokens"] == 360
    assert ci["cost_usd"] == pytest.approx(6 * (0.1234567 + 0.2765433) + 6 * 1.0000001)
    ads = next(r for r in records if r["key"] == "ads-prod")
    assert ads["input_tokens"] == 6 * 100 + 6 * 321 + 321


def test_anomalies_are_flagged(spend_log: Fixture) -> None:
    records = {r["team"]: r for r in report_json(spend_log, "--by", "team")}
    assert records["search"]["anomaly"] is True       # $6 today against ~$0.48 a day
    assert records["ads"]["anomaly"] is False         # $1.10 against ~$1.19 a day
    assert records["research"]["anomaly"] is False    # 40x, but less than $1 above its baseline
    by_day = report_json(spend_log, "--by", "day", "--by", "team")
    flagged = [(r["day"], r["team"]) for r in by_day if r["anomaly"]]
    assert flagged == [("2026-03-10", "search")]
    csv_flags = {r["team"]: r["anomaly"] for r in report_csv(spend_log, "--by", "team")}
    assert csv_flags == {"search": "true", "ads": "false", "research": "false", "-": "false"}
    text = report_table(spend_log, "--by", "team")
    (search_line,) = [line for line in text.splitlines() if re.search(r"\bsearch\b", line)]
    assert "▲" in search_line
    assert sum("▲" in line for line in text.splitlines()) == 2, "the flagged row and the legend"
    assert "3x" in text


def test_no_anomaly_without_a_day_of_baseline(spend_log: Fixture) -> None:
    result = invoke("cost", "report", "--since", "2026-03-10", "--until", "2026-03-10T12:00:00", "--db",
                    spend_log.path, "--by", "team", "--format", "json")
    assert result.exit_code == 0, result.output
    assert not any(r["anomaly"] for r in json.loads(result.stdout))


def test_table_has_a_bar_per_group_proportional_to_cost(spend_log: Fixture) -> None:
    text = report_table(spend_log, "--by", "team")
    lines = {team: line for line in text.splitlines() for team in ("search", "ads", "research")
             if re.search(rf"\b{team}\b", line)}
    assert set(lines) == {"search", "ads", "research"}
    records = {r["team"]: r for r in report_json(spend_log, "--by", "team")}
    for team, line in lines.items():  # the bar and the number are the group's share of the total
        share = 100 * records[team]["cost_usd"] / spend_log.total()
        assert f"{share:.1f}%" in line
        assert line.count("█") == int(24 * share / 100 + 1 / 16)
    assert "█" * 24 not in lines["search"], "no group but the only one gets the full bar"
    assert lines["ads"].count("█") < lines["search"].count("█")
    assert "█" not in lines["research"] or lines["research"].count("█") < 2
    assert "total" in text


def test_default_window_and_grouping(tmp_path: Path) -> None:
    now = time.time()
    path = tmp_path / "recent.db"
    write_rows(path, [full_row("req_a", now - 3600, team="t", key="k", alias="fast", target="mock/m", cost=0.25),
                      full_row("req_b", now - 40 * DAY, team="t", key="k", alias="fast", target="mock/m", cost=9.0)])
    result = invoke("cost", "report", "--db", path, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"model": "fast", "requests": 1, "input_tokens": 100, "output_tokens": 20,
                                          "cost_usd": 0.25, "saved_usd": 0.0, "unpriced": 0,
                                          "anomaly": False}]


def test_missing_log_is_an_empty_report(tmp_path: Path) -> None:
    result = invoke("cost", "report", "--db", tmp_path / "absent.db", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert "no request log" in result.stderr
    table = invoke("cost", "report", "--db", tmp_path / "absent.db")
    assert table.exit_code == 0 and "total" in table.stdout


@pytest.mark.parametrize("args, message", [
    (["--by", "colour"], "--by: unknown field 'colour'"),
    (["--format", "xml"], "--format:"),
    (["--since", "yesterday"], "--since:"),
    (["--until", "soon"], "--until:"),
    (["--since", "2026-03-05", "--until", "2026-03-01"], "must be before"),
])
def test_bad_options_exit_1_with_one_line(spend_log: Fixture, args: list[str], message: str) -> None:
    result = invoke("cost", "report", "--db", spend_log.path, *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert message in line


def test_help_shows_an_example() -> None:
    for command in ("report", "budgets"):
        result = invoke("cost", command, "--help")
        assert result.exit_code == 0
        assert f"Example: llmgw cost {command}" in result.stdout


# --- cost budgets ----------------------------------------------------------------------------------------------


PROFILE = """
[state]
url = "sqlite:///{db}"

[providers.mock]
kind = "mock"

[models.fast]
targets = ["mock/mock-1"]

[teams.search]
budget_usd = {{ daily = 5.0, monthly = 100.0 }}

[teams.ads]
budget_usd = {{ monthly = 20.0 }}

[keys.ci]
key = "env:LLMGW_CI_KEY"
team = "search"
budget_usd = {{ daily = 1.0 }}

[keys.nightly]
key = "env:LLMGW_NIGHTLY_KEY"
team = "ads"
"""


@pytest.fixture
def budget_profile(tmp_path: Path) -> tuple[Path, dict[str, float]]:
    """A profile with teams and keys, and a log with spend today, earlier this month and last month."""
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = today.replace(day=1)
    rows = [
        full_row("r1", today.timestamp() + 1, team="search", key="ci", alias="fast", target="mock/mock-1", cost=0.5),
        full_row("r2", today.timestamp() + 2, team="search", key="", alias="fast", target="mock/mock-1", cost=2.0),
        full_row("r3", month.timestamp() + 3, team="ads", key="nightly", alias="fast", target="mock/mock-1",
                 cost=4.0),
        full_row("r4", (month - timedelta(days=3)).timestamp(), team="search", key="ci", alias="fast",
                 target="mock/mock-1", cost=50.0),
    ]
    write_rows(tmp_path / "budget.db", rows)
    profile = tmp_path / "budgets.toml"
    profile.write_text(textwrap.dedent(PROFILE.format(db=tmp_path / "budget.db")), encoding="utf-8")
    ads_today = 4.0 if month == today else 0.0
    return profile, {"search_day": 2.5, "search_month": 2.5, "ci_day": 0.5, "ads_day": ads_today, "ads_month": 4.0,
                     "nightly_month": 4.0}


def test_budgets_json(budget_profile: tuple[Path, dict[str, float]]) -> None:
    profile, expect = budget_profile
    result = invoke("cost", "budgets", "--profile", profile, "--format", "json")
    assert result.exit_code == 0, result.output
    lines = {(r["kind"], r["name"], r["period"]): r for r in json.loads(result.stdout)}
    assert set(lines) == {(k, n, p) for k, n in (("team", "search"), ("team", "ads"), ("key", "ci"),
                                                ("key", "nightly")) for p in ("daily", "monthly")}
    search_day = lines[("team", "search", "daily")]
    assert search_day["spent_usd"] == pytest.approx(expect["search_day"])
    assert search_day["limit_usd"] == 5.0
    assert search_day["percent_used"] == pytest.approx(100 * expect["search_day"] / 5.0)
    assert lines[("team", "search", "monthly")]["spent_usd"] == pytest.approx(expect["search_month"])
    assert lines[("team", "ads", "daily")]["limit_usd"] is None
    assert lines[("team", "ads", "daily")]["percent_used"] is None
    assert lines[("team", "ads", "monthly")]["percent_used"] == pytest.approx(20.0)
    ci = lines[("key", "ci", "daily")]
    assert (ci["team"], ci["spent_usd"], ci["percent_used"]) == ("search", pytest.approx(0.5), pytest.approx(50.0))
    assert lines[("key", "nightly", "monthly")]["spent_usd"] == pytest.approx(expect["nightly_month"])
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    assert datetime.fromisoformat(search_day["resets_at"]) == datetime(tomorrow.year, tomorrow.month, tomorrow.day,
                                                                        tzinfo=UTC)
    monthly_reset = datetime.fromisoformat(lines[("team", "search", "monthly")]["resets_at"])
    assert (monthly_reset.day, monthly_reset.hour) == (1, 0)
    assert monthly_reset > datetime.now(UTC)


def test_budgets_table(budget_profile: tuple[Path, dict[str, float]]) -> None:
    profile, _ = budget_profile
    result = invoke("cost", "budgets", "--profile", profile)
    assert result.exit_code == 0, result.output
    assert "50.0%" in result.stdout      # key ci: $0.50 of $1.00 today
    assert "20.0%" in result.stdout      # team ads: $4 of $20 this month
    assert "resets at" in result.stdout


def test_budgets_without_teams_or_keys(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(f'[state]\nurl = "sqlite:///{tmp_path / "x.db"}"\n', encoding="utf-8")
    result = invoke("cost", "budgets", "--profile", profile)
    assert result.exit_code == 0
    assert "nothing to budget" in result.stdout
    result = invoke("cost", "budgets", "--profile", profile, "--format", "json")
    assert json.loads(result.stdout) == []


def test_budgets_without_a_log_yet(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(textwrap.dedent(PROFILE.format(db=tmp_path / "none.db")), encoding="utf-8")
    result = invoke("cost", "budgets", "--profile", profile, "--format", "json")
    assert result.exit_code == 0, result.output
    assert all(r["spent_usd"] == 0 for r in json.loads(result.stdout))
