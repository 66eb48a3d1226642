"""The provider kind registry (llmgw.providers.spec): one entry per kind, read by profile validation,
`llmgw profile init`, `llmgw models`, `llmgw check` and the adapters."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import MappingProxyType

import pytest
from typer.testing import CliRunner

from llmgw.cli.main import app
from llmgw.cli.profile_cmd import starter
from llmgw.profile import DEFAULT_BASE_URLS, PROVIDER_KINDS, ProfileError, parse_profile, secret_problems
from llmgw.providers import spec as registry
from llmgw.providers.base import ProviderBase, adapter_for
from llmgw.providers.mock import MockProvider
from llmgw.providers.spec import KINDS, SPECS, Preset, ProviderSpec, init_presets, spec_for

WIRE_FORMATS = {"openai", "anthropic", "gemini", "responses"}


def test_every_kind_has_an_adapter_native_formats_and_a_consistent_entry() -> None:
    assert KINDS == ("openai", "anthropic", "gemini", "openai-compatible", "mock")
    for kind, spec in SPECS.items():
        assert spec.kind == kind
        adapter = spec.adapter_class()
        assert issubclass(adapter, ProviderBase)  # type: ignore[arg-type]
        assert adapter_for(kind) is adapter
        assert spec.native_formats and set(spec.native_formats) <= WIRE_FORMATS
        assert not (spec.base_url and spec.base_url_required)
        assert spec.needs_key == bool(spec.api_key), "a kind that needs a key names the reference init writes"
        assert spec.init_presets(), f"{kind}: profile init offers no way to start with it"
        assert set(spec.params.refuses).isdisjoint(spec.params.drops)


def test_the_profile_reads_kinds_and_default_urls_from_the_registry() -> None:
    assert PROVIDER_KINDS == KINDS
    assert {k: s.base_url for k, s in SPECS.items() if s.base_url} == DEFAULT_BASE_URLS
    assert DEFAULT_BASE_URLS["gemini"] == "https://generativelanguage.googleapis.com"


def test_an_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="one of openai, anthropic, gemini, openai-compatible, mock"):
        spec_for("azure")


def test_profile_init_offers_every_preset_of_the_registry_in_order() -> None:
    assert list(init_presets()) == ["openai", "anthropic", "gemini", "local", "ollama", "mock"]
    assert [name for name, (_, preset) in init_presets().items() if preset.default] == ["openai"]


def test_importing_the_registry_imports_no_adapter() -> None:
    code = ("import sys, llmgw.providers.spec, llmgw.profile\n"
            "bad = [m for m in ('llmgw.providers.openai', 'llmgw.providers.anthropic', 'llmgw.providers.gemini',"
            " 'llmgw.providers.mock', 'llmgw.translate.gemini', 'aiohttp', 'phonenumbers', 'numpy', 'model2vec')"
            " if m in sys.modules]\n"
            "assert not bad, bad\n"
            "llmgw.profile.load_profile(None)\n"
            "assert 'phonenumbers' not in sys.modules and 'numpy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env={"PATH": ""}, cwd=Path(__file__).parent)


# --- a new kind is one registry line ----------------------------------------------------------------------------

ECHO = ProviderSpec("echo", "mock:MockProvider", "openai", base_url_required=True, needs_key=True,
                    api_key="env:ECHO_API_KEY", free=True,
                    presets=(Preset("echo-local", "echo-1", "http://127.0.0.1:9999/v1", free=True),))


@pytest.fixture
def echo(monkeypatch: pytest.MonkeyPatch) -> ProviderSpec:
    monkeypatch.setattr(registry, "SPECS", MappingProxyType({**SPECS, "echo": ECHO}))
    return ECHO


def test_a_registered_kind_is_validated_as_its_entry_says(echo: ProviderSpec) -> None:
    with pytest.raises(ProfileError) as info:
        parse_profile({"providers": {"e": {"kind": "echo"}}})
    assert info.value.problems == ["providers.e.base_url: required for kind 'echo' (e.g. http://127.0.0.1:9999/v1)"]
    profile = parse_profile({"providers": {"e": {"kind": "echo", "base_url": "http://h/v1"}}})
    assert secret_problems(profile) == ['providers.e.api_key: missing (kind \'echo\' needs a key,'
                                        ' e.g. api_key = "env:ECHO_API_KEY")']
    with pytest.raises(ProfileError) as info:
        parse_profile({"providers": {"x": {"kind": "azure"}}})
    assert "one of openai, anthropic, gemini, openai-compatible, mock, echo" in info.value.problems[0]
    assert adapter_for("echo") is MockProvider


def test_a_registered_kind_is_offered_by_profile_init(echo: ProviderSpec, tmp_path: Path) -> None:
    data = starter(["echo-local"])
    assert data["providers"] == {"echo-local": {"kind": "echo", "api_key": "env:ECHO_API_KEY",
                                                "base_url": "http://127.0.0.1:9999/v1"}}
    assert data["prices"] == {"echo-local/echo-1": {"input": 0.0, "output": 0.0}}
    out = tmp_path / "llmgw.toml"
    result = CliRunner().invoke(app, ["profile", "init", "--out", str(out), "--provider", "echo-local"])
    assert result.exit_code == 0, result.output
    assert 'kind = "echo"' in out.read_text()


def test_llmgw_models_prices_a_free_kind_at_zero(echo: ProviderSpec, tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(textwrap.dedent("""
        [providers.e]
        kind = "echo"
        base_url = "http://127.0.0.1:9/v1"
        [providers.o]
        kind = "openai-compatible"
        base_url = "http://127.0.0.1:9/v1"
        [models.a]
        targets = ["e/echo-1", "o/some-local-model"]
    """))
    result = CliRunner().invoke(app, ["models", "--profile", str(profile), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["target"], r["input_per_1m"]) for r in rows] == [("e/echo-1", 0.0), ("o/some-local-model", None)]
