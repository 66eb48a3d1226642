"""`llmgw smoke` through Typer's CliRunner: every alias probed through the real server, offline, with forced
failures proving fallbacks, JUnit XML for CI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmgw.cli.main import app

runner = CliRunner()

PROFILE = """
[state]
url = "sqlite:///{home}/real.db"

[providers.openai]
kind = "openai"
api_key = "env:SMOKE_TEST_OPENAI_KEY"

[providers.anthropic]
kind = "anthropic"
api_key = "env:SMOKE_TEST_ANTHROPIC_KEY"

[models.fast]
targets = ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest"]

[models.solo]
targets = ["openai/gpt-4o"]

[models.embed]
targets = ["openai/text-embedding-3-small"]
"""


@pytest.fixture
def profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SMOKE_TEST_OPENAI_KEY", raising=False)
    path = tmp_path / "prod.toml"
    path.write_text(PROFILE.format(home=tmp_path))
    return path


def test_offline_every_alias_answers_without_keys_or_network(profile: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["smoke", "--profile", str(profile), "--offline", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout[: result.stdout.rindex("]") + 1])
    assert [(r["alias"], r["ok"], r["target"], r["attempts"]) for r in rows] == [
        ("fast", True, "openai/gpt-4o-mini", 1), ("solo", True, "openai/gpt-4o", 1),
        ("embed", True, "openai/text-embedding-3-small", 1)]
    assert not (tmp_path / "real.db").exists(), "smoke traffic must not go to the real request log"


def test_fail_proves_the_fallback_and_writes_junit(profile: Path, tmp_path: Path) -> None:
    junit = tmp_path / "smoke.xml"
    result = runner.invoke(app, ["smoke", "--profile", str(profile), "--offline", "--fail", "openai/gpt-4o-mini",
                                 "--junit", str(junit)])
    assert result.exit_code == 0, result.output
    assert "anthropic/claude-3-5-haiku-latest" in result.stdout
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite" and suite.get("tests") == "3" and suite.get("failures") == "0"
    fast = next(c for c in suite.iter("testcase") if c.get("name") == "fast")
    assert "target=anthropic/claude-3-5-haiku-latest attempts=2" in fast.findtext("system-out")


def test_an_alias_without_a_fallback_fails_with_exit_1(profile: Path, tmp_path: Path) -> None:
    junit = tmp_path / "smoke.xml"
    result = runner.invoke(app, ["smoke", "--profile", str(profile), "--offline", "--fail", "openai/gpt-4o",
                                 "--junit", str(junit)])
    assert result.exit_code == 1
    assert "1 of 3 aliases failed: solo" in result.output
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "1"
    solo = next(c for c in suite.iter("testcase") if c.get("name") == "solo")
    assert solo.find("failure") is not None and "502" in solo.find("failure").get("type")


def test_online_needs_keys_and_unknown_fail_target_is_an_error(profile: Path) -> None:
    result = runner.invoke(app, ["smoke", "--profile", str(profile)])
    assert result.exit_code == 1 and "SMOKE_TEST_OPENAI_KEY" in result.output and "--offline" in result.output
    result = runner.invoke(app, ["smoke", "--profile", str(profile), "--offline", "--fail", "openai/nope"])
    assert result.exit_code == 1 and "'openai/nope' is not a target" in result.output
    assert "Traceback" not in result.output


def test_check_writes_junit(profile: Path, tmp_path: Path) -> None:
    junit = tmp_path / "check.xml"
    result = runner.invoke(app, ["check", "--profile", str(profile), "--junit", str(junit)])
    assert result.exit_code == 1
    failure = ET.parse(junit).getroot().find("testcase/failure")
    assert failure is not None and "providers.openai.api_key" in failure.text
    (tmp_path / "ok.toml").write_text('[providers.m]\nkind = "mock"\n[models.a]\ntargets = ["m/x"]\n')
    result = runner.invoke(app, ["check", "--profile", str(tmp_path / "ok.toml"), "--junit", str(junit)])
    assert result.exit_code == 0 and ET.parse(junit).getroot().get("failures") == "0"


def test_a_failed_row_names_who_failed_and_never_reads_as_answered(profile: Path) -> None:
    result = runner.invoke(app, ["smoke", "--profile", str(profile), "--offline", "--fail", "openai/gpt-4o",
                                 "--format", "json"])
    rows = {r["alias"]: r for r in json.loads(result.stdout[: result.stdout.rindex("]") + 1])}
    assert rows["solo"]["ok"] is False and rows["solo"]["target"] == "" and rows["solo"]["failed"] == ["openai/gpt-4o"]
    table = runner.invoke(app, ["smoke", "--profile", str(profile), "--offline", "--fail", "openai/gpt-4o",
                                "--fail", "openai/gpt-4o-mini"], env={"COLUMNS": "250"})
    lines = {line.split("│")[1].strip(): line for line in table.stdout.splitlines() if line.count("│") > 5}
    solo = [cell.strip() for cell in lines["solo"].split("│")]
    assert solo[2:6] == ["FAIL", "502", "nobody", "openai/gpt-4o (--fail)"]
    fast = [cell.strip() for cell in lines["fast"].split("│")]
    assert fast[2:6] == ["pass", "200", "anthropic/claude-3-5-haiku-latest", "openai/gpt-4o-mini (--fail)"]
    assert "the fallback took over" in lines["fast"]
    assert "1 of 3 aliases failed: solo" in table.output
