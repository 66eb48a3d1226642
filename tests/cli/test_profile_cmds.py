"""`llmgw profile init` never makes the mock a fallback, `llmgw check` warns when an alias does and speaks JSON,
`llmgw profile show` prints the effective profile with its secrets masked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_first_use import invoke, isolated, write

__all__ = ["isolated"]  # the fixture, used automatically


# --- profile init, profile show, check ----------------------------------------------------------------------------


def test_a_generated_profile_never_falls_back_to_the_mock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmgw.profile import load_profile

    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    default = tmp_path / "default.toml"
    assert invoke("profile", "init", "--out", default).exit_code == 0
    assert {p.kind for p in load_profile(default).providers.values()} == {"openai"}
    both = tmp_path / "both.toml"
    assert invoke("profile", "init", "--out", both, "--provider", "openai", "--provider", "mock").exit_code == 0
    models = load_profile(both).models
    assert [t.name for t in models["default"].targets] == ["openai/gpt-4o-mini"]
    assert [t.name for t in models["mock"].targets] == ["mock/mock-model"]
    checked = invoke("check", "--profile", both)
    assert checked.exit_code == 0 and "warning" not in checked.output
    assert "README.md#profile-reference" in both.read_text()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert "\n## Profile reference\n" in readme, "the anchor the generated profile points to"
    only = tmp_path / "only.toml"
    assert invoke("profile", "init", "--out", only, "--provider", "mock").exit_code == 0
    assert [t.name for t in load_profile(only).models["default"].targets] == ["mock/mock-model"]


def test_check_warns_when_a_real_alias_falls_back_to_the_mock(tmp_path: Path) -> None:
    profile = write(tmp_path / "p.toml", """
        [providers.local]
        kind = "openai-compatible"
        base_url = "http://127.0.0.1:9/v1"
        [providers.mock]
        kind = "mock"
        [models.fast]
        targets = ["local/llama", "mock/mock-model"]
        [models.demo]
        targets = ["mock/a", "mock/b"]
        [prices]
        "local/llama" = { input = 0.0, output = 0.0 }
        """)
    result = invoke("check", "--profile", profile)
    assert result.exit_code == 0
    (line,) = result.stderr.splitlines()
    assert "warning: models.fast.targets: mock/mock-model is a mock (fake answers)" in line
    records = json.loads(invoke("check", "--profile", profile, "--format", "json").stdout)
    assert records == [{"source": str(profile), "level": "warning", "key": "models.fast.targets",
                        "message": records[0]["message"]}]


def test_check_format_json_lists_every_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_KEY", raising=False)
    profile = write(tmp_path / "p.toml", """
        [server]
        host = "0.0.0.0"
        [providers.openai]
        kind = "openai"
        api_key = "env:NOPE_KEY"
        [models.fast]
        targets = ["openai/gpt-4o-mini"]
        """)
    result = invoke("check", "--profile", profile, "--format", "json")
    assert result.exit_code == 1
    records = json.loads(result.stdout)
    assert {(r["level"], r["key"]) for r in records} == {("error", "server.host"),
                                                         ("error", "providers.openai.api_key")}
    assert all(r["source"] == str(profile) for r in records)
    broken = write(tmp_path / "broken.toml", "[server]\nport = 70000\n")
    records = json.loads(invoke("check", "--profile", broken, "--format", "json").stdout)
    assert records[0]["key"] == "server.port" and records[0]["level"] == "error"
    assert json.loads(invoke("check", "--format", "json").stdout) == []


def test_profile_show_fills_defaults_and_masks_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tomllib

    from llmgw.profile import load_profile, parse_profile

    profile = write(tmp_path / "p.toml", """
        [server]
        admin_key = "sk-literal-admin-secret-1234"
        [providers.openai]
        kind = "openai"
        api_key = "env:OPENAI_API_KEY"
        [models.fast]
        targets = ["openai/gpt-4o-mini"]
        [models.alias-of-fast]
        targets = ["fast"]
        [teams.search]
        budget_usd = { daily = 5.0 }
        [keys.ci]
        key = "file:~/ci.key"
        team = "search"
        [cache]
        ttl = "1h"
        """)
    result = invoke("profile", "show", "--profile", profile)
    assert result.exit_code == 0, result.output
    assert "sk-literal-admin-secret-1234" not in result.stdout
    shown = tomllib.loads(result.stdout)
    assert shown["server"]["admin_key"] == "***" and shown["server"]["timeout_s"] == 600.0
    assert shown["providers"]["openai"] == {"kind": "openai", "api_key": "env:OPENAI_API_KEY",
                                            "base_url": "https://api.openai.com/v1"}
    assert shown["models"]["alias-of-fast"]["targets"] == ["openai/gpt-4o-mini"]
    assert shown["keys"]["ci"] == {"key": "file:~/ci.key", "team": "search"}
    assert shown["teams"]["search"] == {"budget_usd": {"daily": 5.0}}
    assert shown["cache"]["ttl"] == 3600.0 and shown["routing"]["retry_budget"] == 0.2
    again = parse_profile(shown)
    original = load_profile(profile)
    for part in ("state", "routing", "models", "teams", "cache", "prices"):
        assert getattr(again, part) == getattr(original, part), part
    as_json = json.loads(invoke("profile", "show", "--profile", profile, "--format", "json").stdout)
    assert as_json == shown
    assert "fast" in invoke("profile", "show").stdout  # the built-in demo
