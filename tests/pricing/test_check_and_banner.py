"""`llmgw check` (table and JSON) and `llmgw serve`'s banner (a real process) name aliases whose targets have no
price; check refuses a budget that could reach one."""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from typer.testing import CliRunner

from llmgw.cli.main import app as cli
from llmgw.profile import parse_profile
from tests.e2e.conftest import start_serve

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LLMGW_PROFILE", raising=False)
    monkeypatch.setenv("LLMGW_PRICING_UP_KEY", "sk-up-not-a-real-key")
    monkeypatch.setenv("LLMGW_PRICING_CI_KEY", "sk-llmgw-pricing-check-key-0001")
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(tmp_path)


def profile(tmp_path: Path, **extra: Any) -> Path:
    data: dict[str, Any] = {
        "state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
        "providers": {"mock": {"kind": "mock"},
                      "up": {"kind": "openai-compatible", "base_url": "http://127.0.0.1:9/v1",
                             "api_key": "env:LLMGW_PRICING_UP_KEY"}},
        "models": {"house": {"targets": ["up/house-model"]}, "fast": {"targets": ["mock/m"]},
                   "known": {"targets": ["up/gpt-4o-mini-2024-07-18"]}},
    }
    data.update(extra)
    path = tmp_path / "profile.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def check(path: Path, *args: str) -> tuple[int, list[dict[str, str]]]:
    result = runner.invoke(cli, ["check", "--profile", str(path), "--format", "json", *args])
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.stdout)


def test_check_warns_about_an_unpriced_target_only(tmp_path: Path) -> None:
    code, items = check(profile(tmp_path))
    assert code == 0
    unpriced = [i for i in items if "no price" in i["message"]]
    assert [(i["level"], i["key"]) for i in unpriced] == [("warning", "models.house.targets")]
    assert "up/house-model" in unpriced[0]["message"] and '[prices] "up/house-model"' in unpriced[0]["message"]
    table = runner.invoke(cli, ["check", "--profile", str(profile(tmp_path))])
    assert table.exit_code == 0
    assert "warning: models.house.targets: up/house-model has no price" in table.stderr


def test_check_errors_on_a_budget_that_can_reach_an_unpriced_alias(tmp_path: Path) -> None:
    keys = {"ci": {"key": "env:LLMGW_PRICING_CI_KEY", "team": "ads", "budget_usd": {"monthly": 10.0}}}
    teams = {"search": {"budget_usd": {"daily": 5.0}}, "ads": {"models": ["known", "house"]},
             "narrow": {"budget_usd": {"daily": 5.0}, "models": ["known", "fast"]}}
    code, items = check(profile(tmp_path, teams=teams, keys=keys))
    assert code == 1
    errors = {i["key"]: i["message"] for i in items if i["level"] == "error"}
    assert set(errors) == {"teams.search.budget_usd", "keys.ci.budget_usd"}   # "narrow" cannot reach house
    assert "requests to model 'house' would be refused (403 unpriced_model)" in errors["teams.search.budget_usd"]
    priced = profile(tmp_path, teams=teams, keys=keys, prices={"up/house-model": {"input": 1.0, "output": 2.0}})
    code, items = check(priced)
    assert code == 0 and not [i for i in items if "price" in i["message"]]


def test_serve_banner_names_unpriced_aliases(tmp_path: Path) -> None:
    server = start_serve(profile(tmp_path), tmp_path / "llmgw.db")
    try:
        deadline = time.monotonic() + 10
        while not any("try: " in line for line in server.output) and time.monotonic() < deadline:
            time.sleep(0.02)
        banner = "".join(server.output)
    finally:
        assert server.stop() == 0
    unpriced = [line for line in banner.splitlines() if line.startswith("  unpriced: ")]
    assert unpriced == ["  unpriced: model house -> up/house-model has no price (logged as unpriced, $0 in reports;"
                        " a budget refuses it): add a [prices] entry"], banner


def test_profile_show_keeps_every_price_field(tmp_path: Path) -> None:
    prices = {"up/house-model": {"input": 1.0, "output": 2.0, "cache_write": 1.25, "cache_write_1h": 2.0,
                                 "reasoning": 3.0, "long_context": {"above": 1000, "input": 2.0, "output": 4.0}}}
    path = profile(tmp_path, prices=prices)
    result = runner.invoke(cli, ["profile", "show", "--profile", str(path)])
    assert result.exit_code == 0, result.output
    shown = tomllib.loads(result.stdout)
    assert shown["prices"] == prices
    assert parse_profile(shown).prices == parse_profile(tomllib.loads(path.read_text())).prices
