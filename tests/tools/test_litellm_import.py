"""Translating LiteLLM proxy configs: aliases, targets, load balancing, fallbacks, secrets, router settings and the
report of what did not map — on published config shapes (tests/fixtures/litellm/), each result loaded with llmgw's
own profile reader."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmgw.profile import Profile, parse_profile
from llmgw.tools.litellm_import import ImportBug, NotALiteLLMConfig, check_loads, env_names, render, translate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "litellm"
LITERALS = ("sk-proj-LITERALsecretVALUE0123456789abcdef", "sk-ant-api03-LITERALanthropicSECRET-0123456789",
            "sk-master-LITERAL-1234567890", "SECRETdbPASSWORD", "sk-lf-LITERALlangfuseSECRET")


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text(encoding="utf-8"))
    return data


def imported(name_or_config: str | dict[str, Any]) -> tuple[dict[str, Any], list[str], Profile]:
    """The translation, its report, and the profile llmgw loads from the rendered TOML."""
    config = fixture(name_or_config) if isinstance(name_or_config, str) else name_or_config
    profile, report = translate(config)
    text = render(profile, report, "config.yaml")
    loaded = parse_profile(tomllib.loads(text))
    return profile, report, loaded


def targets(loaded: Profile, alias: str) -> list[str]:
    return [t.name for t in loaded.models[alias].targets]


def paths(report: list[str]) -> list[str]:
    return [line.split(": ", 1)[0] for line in report]


def test_every_fixture_loads_and_never_carries_a_literal_secret() -> None:
    fixtures = sorted(FIXTURES.glob("*.yaml"))
    assert len(fixtures) >= 5
    for path in fixtures:
        profile, report = translate(yaml.safe_load(path.read_text(encoding="utf-8")))
        text = render(profile, report, path.name)
        check_loads(text)
        for literal in LITERALS:
            assert literal not in text, f"{path.name}: a literal secret reached the profile"
            assert all(literal not in line for line in report), f"{path.name}: a literal secret reached the report"


def test_simple_openai_anthropic_gemini() -> None:
    profile, report, loaded = imported("simple")
    assert {name: p.kind for name, p in loaded.providers.items()} == {
        "openai": "openai", "anthropic": "anthropic", "gemini": "gemini"}
    assert profile["providers"]["openai"]["api_key"] == "env:OPENAI_API_KEY"
    assert profile["providers"]["anthropic"]["api_key"] == "env:ANTHROPIC_API_KEY"
    assert targets(loaded, "gpt-4o") == ["openai/gpt-4o"]
    assert targets(loaded, "claude-sonnet") == ["anthropic/claude-3-5-sonnet-20241022"]
    assert targets(loaded, "gemini-flash") == ["gemini/gemini-2.0-flash"]
    # a bare OpenAI model name with no key uses the same provider: LiteLLM reads OPENAI_API_KEY for it too
    assert targets(loaded, "embeddings") == ["openai/text-embedding-3-small"]
    assert paths(report) == ["model_list[3].model_info.mode", "litellm_settings.drop_params"]
    assert env_names(profile) == ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"]


def test_load_balanced_deployments_fallbacks_and_router_settings() -> None:
    profile, report, loaded = imported("loadbalance")
    gpt = loaded.models["gpt-4o"]
    # two OpenAI deployments with different keys are two providers, weighted 3:1; claude's targets follow at weight 0
    assert targets(loaded, "gpt-4o") == ["openai/gpt-4o", "openai-2/gpt-4o", "anthropic/claude-3-5-sonnet-20241022",
                                         "anthropic/claude-3-5-haiku-20241022"]
    assert gpt.strategy == "loadbalance" and gpt.weights == (3.0, 1.0, 0.0, 0.0)
    assert profile["providers"]["openai"]["api_key"] == "env:OPENAI_API_KEY_EAST"
    assert profile["providers"]["openai-2"]["api_key"] == "env:OPENAI_API_KEY_WEST"
    # mutual fallbacks expand to concrete targets (no alias cycle), not transitively
    assert targets(loaded, "claude") == ["anthropic/claude-3-5-sonnet-20241022", "anthropic/claude-3-5-haiku-20241022",
                                         "openai/gpt-4o", "openai-2/gpt-4o", "openai/gpt-4o-mini"]
    assert loaded.models["claude"].weights == (1.0, 1.0, 0.0, 0.0, 0.0)
    assert targets(loaded, "gpt-4o-mini") == ["openai/gpt-4o-mini"]
    assert targets(loaded, "gpt-4") == targets(loaded, "gpt-4o")   # model_group_alias
    assert {m.retries for m in loaded.models.values()} == {2}
    assert loaded.server.timeout_s == 45
    assert loaded.routing.cooldown_s == 60 and loaded.routing.cooldown_failures == 3
    assert loaded.cache.enabled and loaded.cache.exact and loaded.cache.ttl_s == 600
    assert paths(report) == [
        "model_list[4].litellm_params.rpm", "model_list[4].litellm_params.tpm", "router_settings.allowed_fails",
        "router_settings.context_window_fallbacks", "router_settings.redis_host", "router_settings.redis_port",
        "router_settings.redis_password", "litellm_settings.cache_params.type",
        "litellm_settings.cache_params.namespace"]
    assert "[teams.NAME] rpm" in report[0]


def test_fallbacks_of_a_single_deployment_keep_the_fallback_order() -> None:
    config = {"model_list": [
        {"model_name": "a", "litellm_params": {"model": "openai/gpt-4o"}},
        {"model_name": "b", "litellm_params": {"model": "anthropic/claude-3-5-haiku-latest"}},
        {"model_name": "c", "litellm_params": {"model": "gemini/gemini-2.0-flash"}}],
        "router_settings": {"fallbacks": [{"a": ["b", "c", "missing"]}, {"nope": ["a"]}]}}
    profile, report, loaded = imported(config)
    assert targets(loaded, "a") == ["openai/gpt-4o", "anthropic/claude-3-5-haiku-latest", "gemini/gemini-2.0-flash"]
    assert loaded.models["a"].strategy == "fallback" and "weights" not in profile["models"]["a"]
    assert sorted(paths(report)) == ["router_settings.fallbacks[0].a[2]", "router_settings.fallbacks[1].nope"]


def test_default_fallbacks_apply_to_every_alias_but_itself() -> None:
    config = {"model_list": [
        {"model_name": "a", "litellm_params": {"model": "openai/gpt-4o"}},
        {"model_name": "safe", "litellm_params": {"model": "anthropic/claude-3-5-haiku-latest"}}],
        "litellm_settings": {"default_fallbacks": ["safe"]}}
    _, report, loaded = imported(config)
    assert targets(loaded, "a") == ["openai/gpt-4o", "anthropic/claude-3-5-haiku-latest"]
    assert targets(loaded, "safe") == ["anthropic/claude-3-5-haiku-latest"]
    assert report == []


def test_routing_strategies_order_and_rpm_weights() -> None:
    two = [{"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", "api_key": "os.environ/K1"}},
           {"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", "api_key": "os.environ/K2"}}]
    _, _, loaded = imported({"model_list": two, "router_settings": {"routing_strategy": "latency-based-routing"}})
    assert loaded.models["m"].strategy == "least-latency"
    _, report, loaded = imported({"model_list": two, "router_settings": {"routing_strategy": "least-busy"}})
    assert loaded.models["m"].strategy == "loadbalance"
    assert paths(report) == ["router_settings.routing_strategy"]
    # least-latency would rank fallback targets with the alias's own: it load-balances them at weight 0 instead
    three = [*two, {"model_name": "f", "litellm_params": {"model": "anthropic/claude-3-5-haiku-latest"}}]
    _, report, loaded = imported({"model_list": three, "router_settings": {
        "routing_strategy": "latency-based-routing", "fallbacks": [{"m": ["f"]}]}})
    assert loaded.models["m"].strategy == "loadbalance" and loaded.models["m"].weights == (1, 1, 0)
    assert "models.m" in paths(report)
    # order: lower first, as a fallback chain
    ordered = [{"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", "order": 2}},
               {"model_name": "m", "litellm_params": {"model": "anthropic/claude-3-5-haiku-latest", "order": 1}}]
    _, report, loaded = imported({"model_list": ordered})
    assert loaded.models["m"].strategy == "fallback"
    assert targets(loaded, "m") == ["anthropic/claude-3-5-haiku-latest", "openai/gpt-4o"]
    assert report == []
    # rpm with no weight: simple-shuffle's weights
    rpm = [{"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", "api_key": "os.environ/K1", "rpm": 900}},
           {"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", "api_key": "os.environ/K2", "rpm": 300}}]
    _, report, loaded = imported({"model_list": rpm})
    assert loaded.models["m"].weights == (900, 300)
    assert sorted(paths(report)) == ["model_list[0].litellm_params.rpm", "model_list[0].litellm_params.rpm",
                                     "model_list[1].litellm_params.rpm"]
    assert sum("load-balancing weights" in line for line in report) == 1


def test_secrets_become_env_references() -> None:
    profile, report, loaded = imported("secrets")
    assert profile["providers"]["openai"]["api_key"] == "env:OPENAI_API_KEY"
    assert profile["providers"]["openai-2"]["api_key"] == "env:OPENAI_2_API_KEY"
    assert profile["providers"]["anthropic"]["api_key"] == "env:ANTHROPIC_API_KEY"
    assert profile["server"]["admin_key"] == "env:LLMGW_ADMIN_KEY"
    assert loaded.server.admin_key is not None and loaded.server.admin_key.describe() == "env:LLMGW_ADMIN_KEY"
    assert targets(loaded, "gpt-4o-mini") == ["openai/gpt-4o-mini", "openai-2/gpt-4o-mini"]
    told = {line.split(": ", 1)[0]: line for line in report if "a literal secret is not copied" in line}
    assert set(told) == {"model_list[1].litellm_params.api_key", "model_list[2].litellm_params.api_key",
                         "general_settings.master_key"}
    assert "OPENAI_2_API_KEY" in told["model_list[1].litellm_params.api_key"]
    assert "LLMGW_ADMIN_KEY" in told["general_settings.master_key"]
    assert "general_settings.database_url" in paths(report)
    assert "environment_variables.LANGFUSE_SECRET_KEY" in paths(report)


def test_a_suggested_name_never_takes_a_variable_the_config_already_uses() -> None:
    config = {"model_list": [
        {"model_name": "a", "litellm_params": {"model": "anthropic/claude-3-5-haiku-latest", "api_key": "sk-ant-x1"}},
        {"model_name": "b", "litellm_params": {"model": "anthropic/claude-3-5-haiku-latest",
                                               "api_key": "os.environ/ANTHROPIC_API_KEY"}}],
        "general_settings": {"master_key": "os.environ/LLMGW_ADMIN_KEY"}}
    profile, _, _ = imported(config)
    keys = {name: p["api_key"] for name, p in profile["providers"].items()}
    assert keys == {"anthropic": "env:ANTHROPIC_2_API_KEY", "anthropic-2": "env:ANTHROPIC_API_KEY"}
    assert profile["server"]["admin_key"] == "env:LLMGW_ADMIN_KEY"


def test_openai_compatible_servers() -> None:
    profile, report, loaded = imported("local")
    kinds = {name: (p.kind, p.base_url) for name, p in loaded.providers.items()}
    assert kinds == {"vllm": ("openai-compatible", "http://127.0.0.1:8000/v1"),
                     "ollama": ("openai-compatible", "http://localhost:11434/v1"),
                     "local": ("openai-compatible", "http://127.0.0.1:8001/v1"),
                     "groq": ("openai-compatible", "https://api.groq.com/openai/v1")}
    assert targets(loaded, "llama-3.1-8b") == ["vllm/meta-llama/Llama-3.1-8B-Instruct"]
    assert targets(loaded, "qwen") == ["local/Qwen/Qwen2.5-7B-Instruct"]
    assert loaded.providers["local"].api_key is None   # "none" is a placeholder, not a key
    assert profile["providers"]["groq"]["api_key"] == "env:GROQ_API_KEY"
    assert loaded.prices["groq/llama-3.3-70b-versatile"].input == pytest.approx(0.59)
    assert loaded.prices["groq/llama-3.3-70b-versatile"].output == pytest.approx(0.79)
    assert loaded.prices["vllm/meta-llama/Llama-3.1-8B-Instruct"].input == 0.0
    assert loaded.server.admin_key is not None and loaded.server.admin_key.describe() == "env:LITELLM_MASTER_KEY"
    assert paths(report) == ["model_list[1].litellm_params.api_base", "model_list[2].litellm_params.api_key",
                             "general_settings.master_key"]


def test_hosted_prefixes_and_base_urls() -> None:
    config = {"model_list": [
        {"model_name": "g", "litellm_params": {"model": "groq/llama-3.1-8b-instant"}},
        {"model_name": "o", "litellm_params": {"model": "openrouter/anthropic/claude-3.5-sonnet"}},
        {"model_name": "a", "litellm_params": {"model": "anthropic/claude-3-5-haiku-latest",
                                               "api_base": "https://anthropic.internal/v1/messages"}},
        {"model_name": "e", "litellm_params": {"model": "openai/gpt-4o", "api_base": "os.environ/OPENAI_BASE"}}]}
    profile, report, loaded = imported(config)
    assert loaded.providers["groq"].base_url == "https://api.groq.com/openai/v1"
    assert profile["providers"]["groq"]["api_key"] == "env:GROQ_API_KEY"
    assert targets(loaded, "o") == ["openrouter/anthropic/claude-3.5-sonnet"]
    assert loaded.providers["anthropic"].base_url == "https://anthropic.internal"
    assert "e" not in loaded.models
    assert paths(report) == ["model_list[3].litellm_params.api_base"]
    assert "OPENAI_BASE" in report[0]


def test_unsupported_providers_and_settings_are_reported_by_path() -> None:
    profile, report, loaded = imported("unsupported")
    assert list(loaded.models) == ["gpt-4o"]
    assert targets(loaded, "gpt-4o") == ["openai/gpt-4o"]
    assert loaded.models["gpt-4o"].retries == 3 and loaded.server.timeout_s == 600
    by_path = {line.split(": ", 1)[0]: line for line in report}
    assert "Azure OpenAI is not a provider kind here" in by_path["model_list[0].litellm_params.model"]
    assert by_path["model_list[2].litellm_params.aws_region_name"] == (
        "model_list[2].litellm_params.aws_region_name: no equivalent (Bedrock is not a provider kind here)")
    assert "Vertex AI" in by_path["model_list[3].litellm_params.vertex_project"]
    assert "wildcard" in by_path["model_list[4].model_name"]
    for path in ("model_list[0].litellm_params.api_version", "model_list[1].litellm_params.timeout",
                 "model_list[1].litellm_params.temperature", "litellm_settings.success_callback",
                 "litellm_settings.callbacks", "litellm_settings.set_verbose", "general_settings.alerting",
                 "general_settings.store_model_in_db"):
        assert path in by_path, path
    assert len(report) == len(set(report))
    assert "aws" not in str(profile)


def test_semantic_cache_and_cooldowns() -> None:
    config = {"model_list": [{"model_name": "m", "litellm_params": {"model": "openai/gpt-4o"}}],
              "router_settings": {"disable_cooldowns": True, "num_retries": 50},
              "litellm_settings": {"cache": True, "cache_params": {"type": "redis-semantic",
                                                                   "similarity_threshold": 0.9, "ttl": 3600}}}
    _, report, loaded = imported(config)
    assert loaded.cache.semantic and loaded.cache.threshold == 0.9 and loaded.cache.ttl_s == 3600
    assert loaded.routing.cooldown_s == 0
    assert loaded.models["m"].retries == 10
    assert paths(report) == ["router_settings.num_retries", "litellm_settings.cache_params.type"]
    # cache_params without cache: true is not a cache
    _, report, loaded = imported({"model_list": config["model_list"],
                                  "litellm_settings": {"cache_params": {"type": "local"}}})
    assert not loaded.cache.enabled and paths(report) == ["litellm_settings.cache_params.type"]


@pytest.mark.parametrize(("config", "message"), [
    ([1, 2], "expected a mapping at the top, got a list"),
    ("just text", "expected a mapping at the top, got a string"),
    (None, "expected a mapping at the top, got nothing"),
    ({"general_settings": {}}, "no model_list"),
    ({"model_list": {"a": 1}}, "model_list: expected a list of deployments, got a mapping"),
])
def test_not_a_litellm_config(config: Any, message: str) -> None:
    with pytest.raises(NotALiteLLMConfig, match=message):
        translate(config)


def test_malformed_entries_are_reported_not_raised() -> None:
    config = {"model_list": [
        "gpt-4o", {"litellm_params": {"model": "openai/gpt-4o"}}, {"model_name": "x", "litellm_params": {}},
        {"model_name": "y", "litellm_params": {"model": "openai/gpt-4o", "api_base": "http://h:99999/v1"}},
        {"model_name": "z", "litellm_params": {"model": "mystery-model"}},
        {"model_name": "w", "litellm_params": {"model": "openai/gpt-4o", "weight": -1}, "model_info": "bad"}],
        "router_settings": "oops", "surprise": 1}
    _, report, loaded = imported(config)
    assert list(loaded.models) == ["w"]
    assert paths(report) == [
        "surprise", "router_settings", "model_list[0]", "model_list[1].model_name",
        "model_list[2].litellm_params.model", "model_list[3].litellm_params.api_base",
        "model_list[4].litellm_params.model", "model_list[5].model_info", "model_list[5].litellm_params.weight"]
    assert "provider/model" in report[6]


def test_a_profile_that_does_not_load_is_a_bug() -> None:
    with pytest.raises(ImportBug, match="does not load"):
        render({"models": {"a": {"targets": ["nowhere/x"]}}}, [], "config.yaml")


def test_names_cannot_inject_toml() -> None:
    evil = 'x"]\n[server]\nhost = "0.0.0.0"\n# \x00\x7f\r\u2028'
    config = {"model_list": [{"model_name": evil, "litellm_params": {"model": "openai/gpt-4o"}},
                             {"model_name": "w", "litellm_params": {"model": "bedrock/x", evil: 1}}]}
    profile, report = translate(config)
    text = render(profile, report, "config.yaml\n[server]\nhost = '0.0.0.0'")
    loaded = parse_profile(tomllib.loads(text))
    assert loaded.server.host == "127.0.0.1"
    assert list(loaded.models) == [evil]


def test_shared_yaml_anchors_are_walked_once() -> None:
    """A "billion laughs" document: ten levels of ten references each, a few hundred bytes of YAML."""
    lines = ['a0: &a0 ["os.environ/DEEP_KEY"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    lines += ["model_list:", "  - model_name: m", "    litellm_params: {model: openai/gpt-4o, api_key: sk-lit}",
              "    model_info: {extra: *a9}"]
    config = yaml.safe_load("\n".join(lines))
    profile, report = translate(config)
    assert profile["providers"]["openai"]["api_key"] == "env:OPENAI_API_KEY"
    assert "a9" in paths(report) and "model_list[0].model_info.extra" in paths(report)


def test_deployment_level_rpm_and_both_timeouts() -> None:
    config = {"model_list": [
        {"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", "api_key": "os.environ/K1"}, "rpm": 30},
        {"model_name": "m", "litellm_params": {"model": "openai/gpt-4o", "api_key": "os.environ/K2"}, "rpm": 10}],
        "router_settings": {"timeout": 20}, "litellm_settings": {"request_timeout": 600}}
    _, report, loaded = imported(config)
    assert loaded.models["m"].weights == (30, 10) and loaded.server.timeout_s == 20
    assert sorted(paths(report)) == ["litellm_settings.request_timeout", "model_list[0].rpm", "model_list[0].rpm",
                                     "model_list[1].rpm"]


def test_infinite_and_nan_numbers_are_refused() -> None:
    config = yaml.safe_load("""
model_list:
  - {model_name: m, litellm_params: {model: openai/gpt-4o, api_key: os.environ/K1, weight: .inf}}
  - {model_name: m, litellm_params: {model: openai/gpt-4o, api_key: os.environ/K2, weight: 2}}
router_settings: {timeout: .inf, cooldown_time: .nan}
""")
    profile, report, loaded = imported(config)
    assert loaded.server.timeout_s == 600 and loaded.routing.cooldown_s == 30
    assert "weights" in profile["models"]["m"] and loaded.models["m"].weights == (1, 2)
    assert sorted(paths(report)) == ["model_list[0].litellm_params.weight", "router_settings.cooldown_time",
                                     "router_settings.timeout"]


def test_credentials_in_an_api_base_are_not_copied() -> None:
    config = {"model_list": [
        {"model_name": "m", "litellm_params": {"model": "hosted_vllm/llama",
                                               "api_base": "https://bob:hunter2pass@vllm.internal:8443/v1?key=qsecret"}},
        {"model_name": "n", "litellm_params": {"model": "openai/x", "api_base": "http://[::1]:9000/v1#frag"}}]}
    profile, report = translate(config)
    text = render(profile, report, "config.yaml")
    assert "hunter2pass" not in text and "qsecret" not in text and "bob" not in text
    assert profile["providers"]["vllm"]["base_url"] == "https://vllm.internal:8443/v1"
    assert profile["providers"]["local"]["base_url"] == "http://[::1]:9000/v1"
    assert paths(report) == ["model_list[0].litellm_params.api_base", "model_list[1].litellm_params.api_base"]


def test_bare_openai_model_names_and_equal_rpm() -> None:
    config = {"model_list": [
        {"model_name": "img", "litellm_params": {"model": "dall-e-3"}},
        {"model_name": "m", "litellm_params": {"model": "openai/a", "api_base": "http://10.0.0.5:8000/v1", "rpm": 5}},
        {"model_name": "m", "litellm_params": {"model": "openai/b", "api_base": "http://10.0.0.5:8000/v1", "rpm": 5}}]}
    profile, report, loaded = imported(config)
    assert targets(loaded, "img") == ["openai/dall-e-3"]
    assert targets(loaded, "m") == ["server/a", "server/b"] and "weights" not in profile["models"]["m"]
    assert "server/a" not in loaded.prices   # not a loopback server: not assumed free
    assert paths(report) == ["model_list[1].litellm_params.rpm", "model_list[2].litellm_params.rpm"]
