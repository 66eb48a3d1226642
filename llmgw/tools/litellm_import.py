"""Translating a LiteLLM proxy config (its ``config.yaml``, already parsed) into an llmgw profile.

Contract:
- :func:`translate` is pure: it takes the parsed YAML mapping and returns ``(profile, report)`` — the profile as a
  plain mapping ready for ``tomli_w`` (``providers`` and ``models`` always; ``server``, ``routing``, ``prices`` and
  ``cache`` only when something maps to them), and one ``"key.path: what happened"`` line for every setting that
  has no equivalent here or was mapped with a caveat (names from the config may hold any character: print them
  through :func:`one_line`). It raises :class:`NotALiteLLMConfig` (one line naming the problem) when the document
  is not a LiteLLM proxy config at all.
- Deployments (``model_list`` entries) sharing a ``model_name`` become one alias whose targets are their
  ``provider/model`` pairs; ``router_settings.fallbacks`` (and ``default_fallbacks``) append the fallback aliases'
  own targets after them (never an alias reference: LiteLLM's fallbacks are not transitive and may be mutual).
  A load-balanced alias gives its fallback targets weight 0, so only its own deployments are picked first.
- No secret is ever copied: ``os.environ/NAME`` becomes ``env:NAME``; a literal key becomes ``env:`` of a suggested
  variable name, with a report line telling the user which variable to set. Report lines name key paths, never
  values, so printing them cannot leak a secret.
- :func:`render` turns the result into TOML text and proves it loads with llmgw's own profile reader; a result that
  does not load is a bug in this module and raises :class:`ImportBug`.
"""

from __future__ import annotations

import ipaddress
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

import tomli_w

from ..errors import ProfileError
from ..profile import parse_profile

ENV_PREFIX = "os.environ/"
MAX_RETRIES = 10   # models.*.retries is 0..10

_SECTIONS = ("model_list", "router_settings", "litellm_settings", "general_settings", "environment_variables")


class NotALiteLLMConfig(ValueError):
    """The document is not a LiteLLM proxy config; the message names what is wrong in one line."""


class ImportBug(RuntimeError):
    """The translated profile does not load with llmgw's own reader: a bug in this module, never the user's."""


# --- provider prefixes ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Upstream:
    """How one LiteLLM provider prefix maps: the llmgw kind, the section name, the default base URL, the variable
    LiteLLM reads the key from when ``api_key`` is absent (None: no key needed), whether its ``api_base`` lacks the
    ``/v1`` an OpenAI-compatible base URL has, and whether it is a local server (free unless priced)."""

    kind: str
    name: str
    base_url: str | None = None
    key_env: str | None = None
    add_v1: bool = False
    local: bool = False


def _hosted(name: str, base_url: str, key_env: str) -> _Upstream:
    return _Upstream("openai-compatible", name, base_url, key_env)


_UPSTREAMS: Mapping[str, _Upstream] = {
    "openai": _Upstream("openai", "openai", key_env="OPENAI_API_KEY"),
    "anthropic": _Upstream("anthropic", "anthropic", key_env="ANTHROPIC_API_KEY"),
    "gemini": _Upstream("gemini", "gemini", key_env="GEMINI_API_KEY"),
    "hosted_vllm": _Upstream("openai-compatible", "vllm", "http://127.0.0.1:8000/v1", add_v1=True, local=True),
    "ollama": _Upstream("openai-compatible", "ollama", "http://127.0.0.1:11434/v1", add_v1=True, local=True),
    "ollama_chat": _Upstream("openai-compatible", "ollama", "http://127.0.0.1:11434/v1", add_v1=True, local=True),
    "lm_studio": _Upstream("openai-compatible", "lm-studio", "http://127.0.0.1:1234/v1", add_v1=True, local=True),
    "llamafile": _Upstream("openai-compatible", "llamafile", "http://127.0.0.1:8080/v1", add_v1=True, local=True),
    "groq": _hosted("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "mistral": _hosted("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "deepseek": _hosted("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "together_ai": _hosted("together", "https://api.together.xyz/v1", "TOGETHERAI_API_KEY"),
    "openrouter": _hosted("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "fireworks_ai": _hosted("fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"),
    "xai": _hosted("xai", "https://api.x.ai/v1", "XAI_API_KEY"),
    "perplexity": _hosted("perplexity", "https://api.perplexity.ai", "PERPLEXITYAI_API_KEY"),
    "deepinfra": _hosted("deepinfra", "https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY"),
    "cerebras": _hosted("cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"),
    "nvidia_nim": _hosted("nvidia-nim", "https://integrate.api.nvidia.com/v1", "NVIDIA_NIM_API_KEY"),
}

# Prefixes LiteLLM knows that have no provider kind here (their auth or wire format is their own), by their name.
_UNSUPPORTED: Mapping[str, str] = {
    "azure": "Azure OpenAI", "azure_ai": "Azure AI", "azure_text": "Azure OpenAI", "bedrock": "Bedrock",
    "sagemaker": "SageMaker", "sagemaker_chat": "SageMaker", "vertex_ai": "Vertex AI",
    "vertex_ai_beta": "Vertex AI", "cohere": "Cohere", "cohere_chat": "Cohere", "huggingface": "Hugging Face",
    "replicate": "Replicate", "watsonx": "watsonx", "watsonx_text": "watsonx", "databricks": "Databricks",
    "cloudflare": "Cloudflare Workers AI", "predibase": "Predibase", "triton": "Triton", "ai21": "AI21",
    "ai21_chat": "AI21", "palm": "PaLM", "clarifai": "Clarifai", "aleph_alpha": "Aleph Alpha",
    "nlp_cloud": "NLP Cloud", "petals": "Petals", "baseten": "Baseten", "vllm": "vLLM in-process (not a server)",
    "text-completion-openai": "OpenAI text completions", "text-completion-codestral": "Codestral completions",
    "codestral": "Codestral", "voyage": "Voyage", "jina_ai": "Jina AI", "snowflake": "Snowflake", "oci": "OCI",
    "github": "GitHub Models", "dashscope": "DashScope", "volcengine": "Volcengine", "custom": "custom handlers",
    "custom_openai": "custom OpenAI", "litellm_proxy": "another LiteLLM proxy",
}

_BARE_MODELS = (("gpt-", "openai"), ("chatgpt-", "openai"), ("o1", "openai"), ("o3", "openai"), ("o4", "openai"),
                ("text-embedding-", "openai"), ("dall-e-", "openai"), ("whisper-", "openai"), ("tts-", "openai"),
                ("omni-moderation-", "openai"), ("text-moderation-", "openai"), ("claude-", "anthropic"),
                ("gemini-", "gemini"))

_OPENAI_HOST = "api.openai.com"
_PLACEHOLDER_KEYS = {"", "none", "null", "empty", "fake", "fake-key", "dummy", "not-needed", "no-key", "x"}

# --- what each litellm_params / model_info / settings key becomes when it does not map ---------------------------

_PER_TARGET = "no per-target equivalent"
_PARAM_NOTES: Mapping[str, str] = {
    "rpm": "no per-target limit (llmgw limits requests per team or key: [teams.NAME] rpm / [keys.NAME] rpm)",
    "tpm": "no per-target limit (llmgw limits tokens per team or key: [teams.NAME] tpm / [keys.NAME] tpm)",
    "timeout": f"{_PER_TARGET} (server.timeout_s is per request, server.first_token_timeout_s per attempt)",
    "stream_timeout": f"{_PER_TARGET} (server.first_token_timeout_s bounds the wait for a stream's first event)",
    "max_retries": f"{_PER_TARGET} (retries are per alias: models.ALIAS.retries)",
    "extra_headers": "not copied (values may be secrets): set providers.NAME.headers by hand",
    "headers": "not copied (values may be secrets): set providers.NAME.headers by hand",
    "organization": "not copied: set providers.NAME.headers = { \"OpenAI-Organization\" = \"...\" } by hand",
    "drop_params": "no blanket equivalent: list the parameters to drop in providers.NAME.drop_params",
    "additional_drop_params": "no equivalent (providers.NAME.drop_params drops what a target cannot honour,"
                              " not what it can)",
}
_PARAM_DEFAULT = "no equivalent (llmgw sends the client's request parameters as they are)"
_MODEL_INFO_NOTES: Mapping[str, str] = {
    "id": "not needed (targets are named provider/model)",
    "mode": "not needed (an alias serves chat, embeddings and the other endpoints alike)",
    "base_model": "not needed (prices are looked up by target; add [prices] for a model the table lacks)",
}
_COST_KEYS = {"input_cost_per_token": "input", "output_cost_per_token": "output",
              "cache_read_input_token_cost": "cached_input"}
_ROUTER_NOTES: Mapping[str, str] = {
    "context_window_fallbacks": "no equivalent (llmgw falls back on failures another target may not have: 429,"
                                " 5xx, timeouts; a context-window 400 ends routing)",
    "content_policy_fallbacks": "no equivalent (a refused request is a 400 that ends routing)",
    "redis_host": "not imported: set state.shared = \"redis://HOST:PORT/0\" to share limits, budgets and cache",
    "redis_port": "not imported: set state.shared = \"redis://HOST:PORT/0\" to share limits, budgets and cache",
    "redis_password": "not imported: put the password in state.shared's URL by hand",
    "redis_url": "not imported: set state.shared to the redis:// URL by hand",
    "retry_policy": "no equivalent (models.ALIAS.retries retries every retryable failure)",
    "model_group_retry_policy": "no equivalent (models.ALIAS.retries retries every retryable failure)",
    "allowed_fails_policy": "no equivalent (routing.cooldown_failures counts every failure)",
}
_GENERAL_NOTES: Mapping[str, str] = {
    "database_url": "no equivalent (llmgw keeps its request log, keys and spend in [state] url, SQLite)",
    "store_model_in_db": "no equivalent (models live in the profile)",
    "master_key": "",
}
_LITELLM_NOTES: Mapping[str, str] = {
    "success_callback": "no equivalent (every request is logged to llmgw's own store: `llmgw logs`, `llmgw tail`)",
    "failure_callback": "no equivalent (every request is logged to llmgw's own store: `llmgw logs`, `llmgw tail`)",
    "callbacks": "no equivalent (every request is logged to llmgw's own store: `llmgw logs`, `llmgw tail`)",
    "drop_params": "no blanket equivalent: list the parameters to drop in providers.NAME.drop_params",
    "max_budget": "no proxy-wide budget: budgets are per team or key ([teams.NAME] budget_usd)",
    "budget_duration": "no proxy-wide budget: budgets are per team or key ([teams.NAME] budget_usd)",
    "default_team_settings": "no equivalent (teams, their limits and budgets are [teams.NAME] tables)",
}

# Settings LiteLLM reads from router_settings or, in older configs, litellm_settings; router_settings wins.
_ROUTER_KEYS = ("routing_strategy", "num_retries", "timeout", "request_timeout", "cooldown_time", "allowed_fails",
                "disable_cooldowns", "fallbacks", "default_fallbacks", "model_group_alias")

_STRATEGIES: Mapping[str, tuple[str, str | None]] = {
    "simple-shuffle": ("loadbalance", None),
    "latency-based-routing": ("least-latency", None),
    "least-busy": ("loadbalance", "no equivalent of least-busy; its aliases load-balance (weighted random)"),
    "usage-based-routing": ("loadbalance", "no equivalent of usage-based routing; its aliases load-balance"),
    "usage-based-routing-v2": ("loadbalance", "no equivalent of usage-based routing; its aliases load-balance"),
    "cost-based-routing": ("loadbalance", "no equivalent of cost-based routing; its aliases load-balance"),
}


# --- the translation ---------------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Deployment:
    alias: str
    target: str
    path: str
    weight: float | None = None
    rpm: float | None = None
    rpm_path: str = ""
    order: float | None = None


@dataclass(slots=True)
class _State:
    """What the translation accumulates: the report, the providers by identity, the env names in use."""

    report: list[str] = field(default_factory=list)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    identities: dict[tuple[Any, ...], str] = field(default_factory=dict)
    env_names: set[str] = field(default_factory=set)
    free: set[str] = field(default_factory=set)   # provider sections that are local servers (priced at zero)
    prices: dict[str, dict[str, float]] = field(default_factory=dict)

    def note(self, path: str, message: str) -> None:
        self.report.append(f"{path}: {message}")


def translate(config: Any) -> tuple[dict[str, Any], list[str]]:
    """Translate a parsed LiteLLM proxy config into an llmgw profile mapping and report lines (module contract)."""
    if not isinstance(config, dict):
        raise NotALiteLLMConfig(f"not a LiteLLM proxy config: expected a mapping at the top, got {_kind(config)}")
    if "model_list" not in config:
        raise NotALiteLLMConfig("not a LiteLLM proxy config: no model_list")
    model_list = config["model_list"]
    if not isinstance(model_list, list):
        raise NotALiteLLMConfig(f"model_list: expected a list of deployments, got {_kind(model_list)}")
    st = _State(env_names=_referenced_env(config))
    for key in config:
        if key not in _SECTIONS:
            st.note(str(key), "unknown section, not imported")
    router = _section(st, config, "router_settings")
    settings = _section(st, config, "litellm_settings")
    general = _section(st, config, "general_settings")
    for name in _section(st, config, "environment_variables"):
        st.note(f"environment_variables.{name}", "not imported (set it in llmgw's environment; values are never"
                                                 " copied)")

    def setting(key: str) -> tuple[str, Any] | None:
        for section_name, section in (("router_settings", router), ("litellm_settings", settings)):
            if key in section:
                return f"{section_name}.{key}", section[key]
        return None

    deployments = [d for i, raw in enumerate(model_list) if (d := _deployment(st, i, raw)) is not None]
    strategy = _strategy(st, setting("routing_strategy"))
    models = _aliases(st, deployments, strategy)
    _fallbacks(st, models, setting("fallbacks"), setting("default_fallbacks"))
    _group_aliases(st, models, setting("model_group_alias"))
    profile: dict[str, Any] = {}
    server: dict[str, Any] = {}
    routing: dict[str, Any] = {}
    _retries(st, models, setting("num_retries"))
    timeout, legacy = setting("timeout"), setting("request_timeout")
    if timeout is not None and legacy is not None:
        st.note(legacy[0], f"ignored: {timeout[0]} is set too")
    timeout = timeout or legacy
    if timeout is not None:
        if _positive(timeout[1]):
            server["timeout_s"] = timeout[1]
        else:
            st.note(timeout[0], "expected a positive number of seconds; not imported")
    _cooldowns(st, routing, setting("cooldown_time"), setting("allowed_fails"), setting("disable_cooldowns"))
    for section_name, section, handled, notes in (
            ("router_settings", router, _ROUTER_KEYS, _ROUTER_NOTES),
            ("litellm_settings", settings, (*_ROUTER_KEYS, "cache", "cache_params"), {**_ROUTER_NOTES,
                                                                                   **_LITELLM_NOTES})):
        for key in section:
            if key not in handled:
                st.note(f"{section_name}.{key}", notes.get(key, "no equivalent"))
        for key in handled:
            if key in section and section_name == "litellm_settings" and key in router:
                st.note(f"litellm_settings.{key}", f"ignored: router_settings.{key} is set too")
    master = general.get("master_key")
    if master is not None:
        server["admin_key"] = _secret(st, "general_settings.master_key", master, "LLMGW_ADMIN_KEY")
        st.note("general_settings.master_key", "became server.admin_key (guards /admin/*); clients of the old proxy"
                                               " need keys here: add [teams] and [keys], or `llmgw keys create`")
    for key in general:
        if key != "master_key":
            st.note(f"general_settings.{key}", _GENERAL_NOTES.get(key, "no equivalent"))
    cache = _cache(st, settings)
    if server:
        profile["server"] = server
    if routing:
        profile["routing"] = routing
    profile["providers"] = st.providers
    profile["models"] = models
    if st.prices:
        profile["prices"] = st.prices
    if cache is not None:
        profile["cache"] = cache
    return profile, list(dict.fromkeys(st.report))


def _kind(value: Any) -> str:
    names = {str: "a string", int: "a number", float: "a number", bool: "a boolean", list: "a list",
             dict: "a mapping", type(None): "nothing"}
    return names.get(type(value), type(value).__name__)


def _section(st: _State, config: Mapping[str, Any], name: str) -> dict[str, Any]:
    raw = config.get(name)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        st.note(name, f"expected a mapping, got {_kind(raw)}; not imported")
        return {}
    return raw


def _finite(value: Any) -> bool:
    """A real number (not a boolean, not infinite, not NaN: YAML has ``.inf`` and ``.nan``)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: Any) -> bool:
    return _finite(value) and value > 0


def _non_negative(value: Any) -> bool:
    return _finite(value) and value >= 0


def _env_name(value: Any) -> str | None:
    """``NAME`` of an ``os.environ/NAME`` reference, else None."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX) and value[len(ENV_PREFIX):]:
        return value[len(ENV_PREFIX):]
    return None


def _referenced_env(config: Any) -> set[str]:
    """Every ``os.environ/NAME`` the config references (so a suggested name never collides with one). Each
    container is visited once: YAML anchors can make a small file a huge tree of shared nodes."""
    found: set[str] = set()
    seen: set[int] = set()
    stack = [config]
    while stack:
        value = stack.pop()
        if isinstance(value, dict | list):
            if id(value) not in seen:
                seen.add(id(value))
                stack.extend(value.values() if isinstance(value, dict) else value)
        elif (name := _env_name(value)) is not None:
            found.add(name)
    return found


def _secret(st: _State, path: str, value: Any, suggested: str) -> str:
    """An ``env:`` reference for a secret: ``os.environ/NAME`` → ``env:NAME``; a literal → ``env:SUGGESTED`` (a
    name not used yet) and a report line telling the user to set it. Never returns the literal."""
    name = _env_name(value)
    if name is not None:
        st.env_names.add(name)
        return f"env:{name}"
    stem, tail = next(((suggested.removesuffix(t), t) for t in ("_API_KEY", "_KEY") if suggested.endswith(t)),
                      (suggested, ""))
    chosen, n = suggested, 2
    while chosen in st.env_names:
        chosen, n = f"{stem}_{n}{tail}", n + 1
    st.env_names.add(chosen)
    st.note(path, f"a literal secret is not copied: set the environment variable {chosen} to it"
                  f" (the profile reads env:{chosen})")
    return f"env:{chosen}"


def _deployment(st: _State, i: int, raw: Any) -> _Deployment | None:
    path = f"model_list[{i}]"
    if not isinstance(raw, dict):
        st.note(path, f"expected a mapping with model_name and litellm_params, got {_kind(raw)}; not imported")
        return None
    alias = raw.get("model_name")
    params = raw.get("litellm_params")
    if not isinstance(alias, str) or not alias:
        st.note(f"{path}.model_name", "missing or not a string; deployment not imported")
        return None
    if not isinstance(params, dict) or not isinstance(params.get("model"), str) or not params["model"]:
        st.note(f"{path}.litellm_params.model", "missing or not a string; deployment not imported")
        return None
    info = raw.get("model_info") or {}
    if not isinstance(info, dict):
        st.note(f"{path}.model_info", f"expected a mapping, got {_kind(info)}; not imported")
        info = {}
    for key in raw:
        if key not in ("model_name", "litellm_params", "model_info"):   # rpm/tpm here: the Router's older form
            st.note(f"{path}.{key}", _PARAM_NOTES.get(key, "no equivalent") if key in ("rpm", "tpm")
                    else "no equivalent")
    if "*" in alias or "*" in params["model"]:
        where = "model_name" if "*" in alias else "litellm_params.model"
        st.note(f"{path}.{where}", "wildcard routing has no equivalent (aliases are exact names; add one alias per"
                                   " model); deployment not imported")
        return None
    prefix, model = _split_model(params)
    upstream = _UPSTREAMS.get(prefix)
    ppath = f"{path}.litellm_params"
    if upstream is None or not model:
        label = _UNSUPPORTED.get(prefix)
        if label:
            why = f"{label} is not a provider kind here"
        elif not prefix:
            why = "no provider prefix llmgw can map (write it as provider/model, e.g. openai/gpt-4o)"
        else:
            why = (f"provider {prefix!r} is not one llmgw maps (kinds: openai, anthropic, gemini,"
                   " openai-compatible)")
        st.note(f"{ppath}.model", f"{why}; deployment not imported")
        for key in params:
            if key not in ("model", "api_key", "api_base"):
                st.note(f"{ppath}.{key}", f"no equivalent ({why})")
        return None
    provider = _provider(st, ppath, upstream, params)
    if provider is None:
        return None
    target = f"{provider}/{model}"
    dep = _Deployment(alias, target, path)
    if _positive(raw.get("rpm")):
        dep.rpm, dep.rpm_path = float(raw["rpm"]), f"{path}.rpm"
    costs: dict[str, float] = {}
    for key, value in params.items():
        kpath = f"{ppath}.{key}"
        if key in ("model", "api_key", "api_base", "custom_llm_provider"):
            continue
        if key == "weight":
            if _non_negative(value):
                dep.weight = float(value)
            else:
                st.note(kpath, "expected a non-negative number; not imported")
        elif key == "order":
            if _positive(value):
                dep.order = float(value)
            else:
                st.note(kpath, "expected a positive number; not imported")
        elif key in _COST_KEYS and _non_negative(value):
            costs[_COST_KEYS[key]] = value
        else:
            if key == "rpm" and _positive(value):
                dep.rpm, dep.rpm_path = float(value), kpath
            st.note(kpath, _PARAM_NOTES.get(key, _PARAM_DEFAULT))
    for key, value in info.items():
        kpath = f"{path}.model_info.{key}"
        if key in _COST_KEYS and _non_negative(value):
            costs.setdefault(_COST_KEYS[key], value)
        else:
            st.note(kpath, _MODEL_INFO_NOTES.get(key, "no equivalent"))
    _price(st, path, target, costs, free=provider in st.free)
    return dep


def _split_model(params: Mapping[str, Any]) -> tuple[str, str]:
    """``(litellm provider prefix, model)`` of a deployment; the prefix is "" when none can be told."""
    model: str = params["model"]
    custom = params.get("custom_llm_provider")
    if isinstance(custom, str) and custom:
        return custom, model.removeprefix(f"{custom}/")
    head, sep, rest = model.partition("/")
    if sep and (head in _UPSTREAMS or head in _UNSUPPORTED):
        return head, rest
    for start, provider in _BARE_MODELS:
        if model.startswith(start):
            return provider, model
    return (head if sep else ""), (rest if sep else model)


def _provider(st: _State, path: str, upstream: _Upstream, params: Mapping[str, Any]) -> str | None:
    """The ``[providers.NAME]`` a deployment's target uses (one per distinct kind, base URL and key), or None when
    the deployment cannot be imported (reported)."""
    kind, name, base_url = upstream.kind, upstream.name, upstream.base_url
    api_base = params.get("api_base")
    if api_base is not None:
        env = _env_name(api_base)
        if env is not None:
            st.note(f"{path}.api_base", f"comes from the environment ({env}); a base URL must be written in the"
                                        " profile: deployment not imported")
            return None
        parts = _url(api_base)
        if parts is None:
            st.note(f"{path}.api_base", "expected an http:// or https:// URL; deployment not imported")
            return None
        if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
            st.note(f"{path}.api_base", "its user, password, query and fragment are not copied (they may hold a"
                                        " secret): set providers.NAME.headers by hand if the server needs them")
            host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
            netloc = host if parts.port is None else f"{host}:{parts.port}"
            api_base = f"{parts.scheme}://{netloc}{parts.path}"
        base_url = _base_url(st, f"{path}.api_base", upstream, api_base.rstrip("/"))
        if kind == "openai" and parts.hostname != _OPENAI_HOST:
            kind, name = "openai-compatible", _host_label(parts.hostname)
    raw_key = params.get("api_key")
    if raw_key is not None and not isinstance(raw_key, str):
        st.note(f"{path}.api_key", f"expected a string, got {_kind(raw_key)}; not imported")
        raw_key = None
    placeholder = raw_key is not None and _env_name(raw_key) is None and raw_key.strip().lower() in _PLACEHOLDER_KEYS
    if placeholder and kind == "openai-compatible":
        st.note(f"{path}.api_key", "a placeholder, not a key; left out (the server needs none)")
        raw_key = None
    if raw_key is None and upstream.key_env is not None and not (kind == "openai-compatible"
                                                                  and upstream.kind == "openai"):
        raw_key = ENV_PREFIX + upstream.key_env   # where LiteLLM reads the key from when api_key is absent
    identity = (kind, base_url, raw_key)
    if identity in st.identities:
        return st.identities[identity]
    section = name
    n = 2
    while section in st.providers:
        section, n = f"{name}-{n}", n + 1
    entry: dict[str, Any] = {"kind": kind}
    if base_url is not None:
        entry["base_url"] = base_url
    suggested = re.sub(r"[^A-Z0-9]+", "_", section.upper()) + "_API_KEY"
    if raw_key is not None:
        entry["api_key"] = _secret(st, f"{path}.api_key", raw_key, suggested)
    st.identities[identity] = section
    st.providers[section] = entry
    if upstream.local or (kind == "openai-compatible" and _loopback(urlsplit(base_url or "").hostname or "")):
        st.free.add(section)
    return section


def _url(value: Any) -> SplitResult | None:
    """An http(s) URL with a host and a valid port, split; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        parts = urlsplit(value)
        parts.port   # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return None
    return parts if parts.scheme in ("http", "https") and parts.hostname else None


def _base_url(st: _State, path: str, upstream: _Upstream, url: str) -> str:
    """An ``api_base`` as the base URL llmgw's kind expects (its API root)."""
    if upstream.kind == "anthropic":
        return url.removesuffix("/messages").removesuffix("/v1")
    if upstream.add_v1 and not url.endswith("/v1"):
        st.note(path, "its OpenAI-compatible API is taken to be under /v1 (base_url ends in /v1); check it")
        return url + "/v1"
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_label(host: str) -> str:
    """A provider section name for an OpenAI-compatible server: ``local`` for a loopback address, ``server`` for
    another address, else the first meaningful label of its host name (``api.groq.com`` → ``groq``, ``vllm`` →
    ``vllm``)."""
    if _loopback(host):
        return "local"
    try:
        ipaddress.ip_address(host)
        return "server"
    except ValueError:
        pass
    labels = host.lower().split(".")
    labels = [x for x in labels[:-1] if x not in ("api", "www", "openai", "inference")] or labels[:1]
    label = re.sub(r"[^a-z0-9-]+", "-", labels[0]).strip("-")
    return label or "server"


def _price(st: _State, path: str, target: str, costs: Mapping[str, float], *, free: bool) -> None:
    """``[prices]`` for a target: USD per token times a million when both input and output costs are given; zero
    for a local server with no costs (as `llmgw profile init` prices one)."""
    if "input" in costs and "output" in costs:
        entry = {k: round(v * 1_000_000, 6) for k, v in costs.items()}
        st.prices[target] = entry
    elif costs:
        st.note(f"{path}.model_info", "a price needs both input_cost_per_token and output_cost_per_token;"
                                      " not imported")
    elif free:
        st.prices.setdefault(target, {"input": 0.0, "output": 0.0})


def _strategy(st: _State, setting: tuple[str, Any] | None) -> str:
    if setting is None:
        return "loadbalance"   # LiteLLM's default is simple-shuffle
    path, value = setting
    mapped = _STRATEGIES.get(value) if isinstance(value, str) else None
    if mapped is None:
        st.note(path, "unknown routing strategy; aliases with several deployments load-balance")
        return "loadbalance"
    if mapped[1]:
        st.note(path, mapped[1])
    return mapped[0]


def _aliases(st: _State, deployments: list[_Deployment], strategy: str) -> dict[str, dict[str, Any]]:
    """One alias per model_name: its deployments' targets (deduplicated, weights merged), the strategy, weights."""
    grouped: dict[str, list[_Deployment]] = {}
    for dep in deployments:
        grouped.setdefault(dep.alias, []).append(dep)
    models: dict[str, dict[str, Any]] = {}
    for alias, deps in grouped.items():
        ordered = any(d.order is not None for d in deps)
        if ordered:
            deps = sorted(deps, key=lambda d: d.order if d.order is not None else float("inf"))
            orders = [d.order for d in deps if d.order is not None]
            if len(set(orders)) < len(orders):
                first = next(d for d in deps if orders.count(d.order) > 1)
                st.note(f"{first.path}.litellm_params.order", "deployments sharing an order are tried in file"
                                                              " order (no load balancing within a tier)")
        weights: dict[str, float] = {}
        use_rpm = all(d.weight is None for d in deps) and all(d.rpm is not None for d in deps)
        for d in deps:
            w = d.weight if d.weight is not None else (d.rpm if use_rpm and d.rpm is not None else 1.0)
            weights[d.target] = weights.get(d.target, 0.0) + w
        if use_rpm and len(set(weights.values())) > 1:
            st.note(deps[0].rpm_path, f"the deployments' rpm became the load-balancing weights of alias {alias!r}"
                                      " (as LiteLLM's simple-shuffle uses them)")
        entry: dict[str, Any] = {"targets": list(weights)}
        if len(weights) > 1:
            entry["strategy"] = "fallback" if ordered else strategy
            if entry["strategy"] == "loadbalance" and len(set(weights.values())) > 1:
                entry["weights"] = [_number(w) for w in weights.values()]
        models[alias] = entry
    return models


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _fallbacks(st: _State, models: dict[str, dict[str, Any]], fallbacks: tuple[str, Any] | None,
               defaults: tuple[str, Any] | None) -> None:
    """Append each alias's fallback aliases' own targets after its deployments."""
    own = {alias: list(entry["targets"]) for alias, entry in models.items()}
    chains: dict[str, list[tuple[str, str]]] = {}
    if fallbacks is not None:
        path, value = fallbacks
        if not isinstance(value, list):
            st.note(path, f"expected a list of {{model_name: [fallbacks]}} mappings, got {_kind(value)}")
            value = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                st.note(f"{path}[{i}]", f"expected a {{model_name: [fallbacks]}} mapping, got {_kind(item)}")
                continue
            for alias, names in item.items():
                ipath = f"{path}[{i}].{alias}"
                names = [names] if isinstance(names, str) else names
                if not isinstance(names, list):
                    st.note(ipath, f"expected a list of model names, got {_kind(names)}")
                    continue
                if alias not in models:
                    st.note(ipath, f"no imported model_name {alias!r}; fallbacks not imported")
                    continue
                chains.setdefault(alias, []).extend((f"{ipath}[{j}]", n) for j, n in enumerate(names))
    if defaults is not None:
        path, value = defaults
        names = [value] if isinstance(value, str) else value
        if isinstance(names, list):
            for alias in models:
                chains.setdefault(alias, []).extend((f"{path}[{j}]", n) for j, n in enumerate(names) if n != alias)
        else:
            st.note(path, f"expected a list of model names, got {_kind(value)}")
    for alias, chain in chains.items():
        entry = models[alias]
        added: list[str] = []
        for path, name in chain:
            if not isinstance(name, str) or name not in own:
                st.note(path, "names no imported model_name; that fallback is not imported")
                continue
            added += [t for t in own[name] if t not in entry["targets"] and t not in added]
        if not added:
            continue
        strategy = entry.get("strategy", "fallback")
        if strategy == "least-latency":
            st.note(f"models.{alias}", "load-balances instead of least-latency: least-latency would rank its"
                                       " fallback targets with its own deployments")
            strategy = "loadbalance"
        if strategy == "loadbalance":
            weights = entry.get("weights") or [1] * len(entry["targets"])
            entry["weights"] = [*weights, *([0] * len(added))]   # fallbacks are never the first pick
            entry["strategy"] = "loadbalance"
        entry["targets"] = [*entry["targets"], *added]


def _group_aliases(st: _State, models: dict[str, dict[str, Any]], setting: tuple[str, Any] | None) -> None:
    """``model_group_alias: {name: model_name}``: the name becomes an alias with the same targets."""
    if setting is None:
        return
    path, value = setting
    if not isinstance(value, dict):
        st.note(path, f"expected a mapping of alias names to model names, got {_kind(value)}")
        return
    for name, spec in value.items():
        target = spec.get("model") if isinstance(spec, dict) else spec
        if not isinstance(target, str) or target not in models:
            st.note(f"{path}.{name}", "names no imported model_name; not imported")
        elif name in models:
            st.note(f"{path}.{name}", "a model_name of that name exists already; not imported")
        else:
            models[str(name)] = {k: list(v) if isinstance(v, list) else v for k, v in models[target].items()}


def _retries(st: _State, models: dict[str, dict[str, Any]], setting: tuple[str, Any] | None) -> None:
    if setting is None:
        return
    path, value = setting
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        st.note(path, "expected a non-negative whole number; not imported")
        return
    if value > MAX_RETRIES:
        st.note(path, f"capped at {MAX_RETRIES} (models.ALIAS.retries is 0-{MAX_RETRIES})")
    if value:
        for entry in models.values():
            entry["retries"] = min(value, MAX_RETRIES)


def _cooldowns(st: _State, routing: dict[str, Any], cooldown: tuple[str, Any] | None,
               allowed: tuple[str, Any] | None, disabled: tuple[str, Any] | None) -> None:
    if cooldown is not None:
        if _non_negative(cooldown[1]):
            routing["cooldown_s"] = cooldown[1]
        else:
            st.note(cooldown[0], "expected a non-negative number of seconds; not imported")
    if allowed is not None:
        value = allowed[1]
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            routing["cooldown_failures"] = value + 1   # LiteLLM cools a deployment down once it fails more often
            st.note(allowed[0], f"became routing.cooldown_failures = {value + 1}, counted as consecutive"
                                " failures rather than failures per minute")
        else:
            st.note(allowed[0], "expected a non-negative whole number; not imported")
    if disabled is not None and disabled[1] is True:
        routing["cooldown_s"] = 0


def _cache(st: _State, settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """``litellm_settings.cache`` (+ ``cache_params``) → ``[cache]``."""
    params = settings.get("cache_params")
    if params is not None and not isinstance(params, dict):
        st.note("litellm_settings.cache_params", f"expected a mapping, got {_kind(params)}; not imported")
        params = {}
    params = params or {}
    if settings.get("cache") is not True:
        for key in params:
            st.note(f"litellm_settings.cache_params.{key}", "not imported (litellm_settings.cache is not true)")
        return None
    cache: dict[str, Any] = {"exact": True}
    for key, value in params.items():
        path = f"litellm_settings.cache_params.{key}"
        if key == "type":
            if value in ("redis-semantic", "qdrant-semantic", "valkey-semantic"):
                cache["semantic"] = True
                st.note(path, "became a semantic cache with llmgw's local embedding model ([cache] model)")
            elif value == "redis":
                st.note(path, "llmgw's cache lives on local disk; with state.shared = \"redis://...\" its entries"
                              " are shared through Redis")
            elif value not in ("local", "disk"):
                st.note(path, "no equivalent cache backend (llmgw's cache lives on local disk)")
        elif key in ("ttl", "default_in_memory_ttl", "default_in_redis_ttl"):
            if _positive(value) and "ttl" not in cache:
                cache["ttl"] = value
            elif not _positive(value):
                st.note(path, "expected a positive number of seconds; not imported")
        elif key == "similarity_threshold":
            if _non_negative(value) and value <= 1:
                cache["threshold"] = value
            else:
                st.note(path, "expected a number between 0 and 1; not imported")
        else:
            st.note(path, "no equivalent")
    return cache


# --- TOML ------------------------------------------------------------------------------------------------------

def env_names(profile: Mapping[str, Any]) -> list[str]:
    """The environment variables a translated profile reads, in order of appearance."""
    refs = [p.get("api_key") for p in profile.get("providers", {}).values()]
    refs.append(profile.get("server", {}).get("admin_key"))
    return list(dict.fromkeys(r[4:] for r in refs if isinstance(r, str) and r.startswith("env:")))


def render(profile: Mapping[str, Any], report: list[str], source: str) -> str:
    """The profile as TOML text, headed by comments naming its source and what did not map. Raises
    :class:`ImportBug` when the text does not load with llmgw's own profile reader."""
    head = [f"# llmgw profile imported from the LiteLLM config {source} by `llmgw import litellm`.",
            "# Check it with `llmgw check --profile FILE`; every key is described in README.md#profile-reference."]
    names = env_names(profile)
    if names:
        head.append(f"# It reads these environment variables: {', '.join(names)}.")
    if report:
        head.append("# What did not map as it was:")
        head += [f"#   {line}" for line in report]
    text = "\n".join(one_line(line) for line in head) + "\n\n" + tomli_w.dumps(dict(profile))
    check_loads(text)
    return text


def one_line(text: str) -> str:
    """A header comment stays one valid comment line whatever a name in it holds: no newline (which could start a
    TOML line), no control character (which TOML forbids in comments)."""
    return "".join(ch if ch.isprintable() else "?" for ch in " ".join(text.split()))


def check_loads(text: str) -> None:
    """Raise :class:`ImportBug` unless ``text`` is TOML that llmgw's profile reader accepts."""
    try:
        parse_profile(tomllib.loads(text), "<imported profile>")
    except tomllib.TOMLDecodeError as exc:
        raise ImportBug(f"the imported profile is not valid TOML: {exc}") from None
    except ProfileError as exc:
        raise ImportBug("the imported profile does not load: " + "; ".join(exc.problems)) from None
