"""`llmgw prices [MODEL]` and `llmgw prices check` through Typer's CliRunner."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from llmgw.cli.main import app
from llmgw.pricing import PriceTable

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LLMGW_PROFILE", raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(tmp_path)


def invoke(*args: str) -> Result:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def test_json_lists_every_shipped_model_with_its_date_and_source() -> None:
    result = invoke("prices", "--format", "json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    table = PriceTable.load().table
    assert {r["model"] for r in records} == set(table.prices)
    assert {r["provider"] for r in records} == {"openai", "anthropic", "gemini"}
    for r in records:
        assert r["origin"] == "shipped" and r["source"].startswith("https://")
        dt.date.fromisoformat(r["checked"])
    sonnet = next(r for r in records if r["model"] == "claude-sonnet-4-5")
    assert (sonnet["input"], sonnet["cache_write"], sonnet["cache_write_1h"], sonnet["cached_input"]) == (
        3.0, 3.75, 6.0, 0.3)
    assert sonnet["long_context"]["above"] == 200_000 and sonnet["source"].startswith("https://platform.claude.com")


def test_model_filters_by_substring_and_the_table_shows_dates_and_sources() -> None:
    result = invoke("prices", "GEMINI-2.5")
    assert result.exit_code == 0, result.output
    assert "gemini-2.5-pro" in result.stdout and "gemini-2.5-flash-lite" in result.stdout
    assert "gpt-4o" not in result.stdout and "claude" not in result.stdout
    assert "gemini: checked 20" in result.stdout and "https://ai.google.dev/gemini-api/docs/pricing" in result.stdout
    assert ">200k: 2.5 / 15" in result.stdout and "= output" in result.stdout


def test_profile_overrides_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[providers.m]\nkind = "mock"\n[models.a]\ntargets = ["m/x"]\n'
                    '[prices]\n"m/x" = { input = 1.5, output = 3.0, reasoning = 9.0 }\n', encoding="utf-8")
    result = invoke("prices", "m/x", "--profile", str(path), "--format", "json")
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)
    assert record["origin"] == "profile" and record["reasoning"] == 9.0 and record["checked"] is None


def test_no_match_is_an_error() -> None:
    result = invoke("prices", "no-such-model-anywhere")
    assert result.exit_code == 1 and "no price matches 'no-such-model-anywhere'" in result.stderr


def test_check_passes_while_fresh_and_fails_once_90_days_old() -> None:
    sources = PriceTable.load().table.sources
    newest = max(s.checked for s in sources.values())
    oldest = min(s.checked for s in sources.values())
    fresh = invoke("prices", "check", "--as-of", (oldest + dt.timedelta(days=90)).isoformat())
    assert fresh.exit_code == 0, fresh.output
    assert "prices: ok" in fresh.stdout
    stale = invoke("prices", "check", "--as-of", (newest + dt.timedelta(days=91)).isoformat())
    assert stale.exit_code == 1
    lines = [line for line in stale.stderr.splitlines() if line.startswith("stale: ")]
    assert len(lines) == len(sources) and all("re-check them at https://" in line for line in lines)
    one = invoke("prices", "check", "--as-of", (oldest + dt.timedelta(days=91)).isoformat(), "--format", "json")
    assert one.exit_code == 1
    assert any(r["stale"] and r["age_days"] == 91 for r in json.loads(one.stdout))


def test_check_with_a_bad_date_is_one_line() -> None:
    result = invoke("prices", "check", "--as-of", "someday")
    assert result.exit_code == 1 and "--as-of: expected a date" in result.stderr
