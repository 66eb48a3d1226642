"""Reading a LiteLLM config's ``model_list``: each deployment becomes an llmgw provider section (one per distinct
upstream, keyed by what identifies it), a ``provider/model`` target and, where the deployment carries costs, a price;
secrets become ``env:`` references and never their values (see :mod:`llmgw.tools.litellm_import` for the whole
translation's contract). :class:`ImportState` is what the translation accumulates, report lines included.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

from .litellm_tables import (
    BARE_MODELS,
    COST_KEYS,
    MODEL_INFO_NOTES,
    OPENAI_HOST,
    PARAM_DEFAULT,
    PARAM_NOTES,
    PLACEHOLDER_KEYS,
    UNSUPPORTED,
    UPSTREAMS,
    Upstream,
)

ENV_PREFIX = "os.environ/"


@dataclass(slots=True)
class Deployment:
    alias: str
    target: str
    path: str
    weight: float | None = None
    rpm: float | None = None
    rpm_path: str = ""
    order: float | None = None


@dataclass(slots=True)
class ImportState:
    """What the translation accumulates: the report, the providers by identity, the env names in use."""

    report: list[str] = field(default_factory=list)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    identities: dict[tuple[Any, ...], str] = field(default_factory=dict)
    env_names: set[str] = field(default_factory=set)
    free: set[str] = field(default_factory=set)   # provider sections that are local servers (priced at zero)
    prices: dict[str, dict[str, float]] = field(default_factory=dict)

    def note(self, path: str, message: str) -> None:
        self.report.append(f"{path}: {message}")


def yaml_type(value: Any) -> str:
    names = {str: "a string", int: "a number", float: "a number", bool: "a boolean", list: "a list",
             dict: "a mapping", type(None): "nothing"}
    return names.get(type(value), type(value).__name__)


def finite(value: Any) -> bool:
    """A real number (not a boolean, not infinite, not NaN: YAML has ``.inf`` and ``.nan``)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def positive(value: Any) -> bool:
    return finite(value) and value > 0


def non_negative(value: Any) -> bool:
    return finite(value) and value >= 0


def env_reference(value: Any) -> str | None:
    """``NAME`` of an ``os.environ/NAME`` reference, else None."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX) and value[len(ENV_PREFIX):]:
        return value[len(ENV_PREFIX):]
    return None


def referenced_env(config: Any) -> set[str]:
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
        elif (name := env_reference(value)) is not None:
            found.add(name)
    return found


def secret_reference(st: ImportState, path: str, value: Any, suggested: str) -> str:
    """An ``env:`` reference for a secret: ``os.environ/NAME`` → ``env:NAME``; a literal → ``env:SUGGESTED`` (a
    name not used yet) and a report line telling the user to set it. Never returns the literal."""
    name = env_reference(value)
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


def read_deployment(st: ImportState, i: int, raw: Any) -> Deployment | None:
    path = f"model_list[{i}]"
    if not isinstance(raw, dict):
        st.note(path, f"expected a mapping with model_name and litellm_params, got {yaml_type(raw)}; not imported")
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
        st.note(f"{path}.model_info", f"expected a mapping, got {yaml_type(info)}; not imported")
        info = {}
    for key in raw:
        if key not in ("model_name", "litellm_params", "model_info"):   # rpm/tpm here: the Router's older form
            st.note(f"{path}.{key}", PARAM_NOTES.get(key, "no equivalent") if key in ("rpm", "tpm")
                    else "no equivalent")
    if "*" in alias or "*" in params["model"]:
        where = "model_name" if "*" in alias else "litellm_params.model"
        st.note(f"{path}.{where}", "wildcard routing has no equivalent (aliases are exact names; add one alias per"
                                   " model); deployment not imported")
        return None
    prefix, model = _split_model(params)
    upstream = UPSTREAMS.get(prefix)
    ppath = f"{path}.litellm_params"
    if upstream is None or not model:
        label = UNSUPPORTED.get(prefix)
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
    dep = Deployment(alias, target, path)
    if positive(raw.get("rpm")):
        dep.rpm, dep.rpm_path = float(raw["rpm"]), f"{path}.rpm"
    costs: dict[str, float] = {}
    for key, value in params.items():
        kpath = f"{ppath}.{key}"
        if key in ("model", "api_key", "api_base", "custom_llm_provider"):
            continue
        if key == "weight":
            if non_negative(value):
                dep.weight = float(value)
            else:
                st.note(kpath, "expected a non-negative number; not imported")
        elif key == "order":
            if positive(value):
                dep.order = float(value)
            else:
                st.note(kpath, "expected a positive number; not imported")
        elif key in COST_KEYS and non_negative(value):
            costs[COST_KEYS[key]] = value
        else:
            if key == "rpm" and positive(value):
                dep.rpm, dep.rpm_path = float(value), kpath
            st.note(kpath, PARAM_NOTES.get(key, PARAM_DEFAULT))
    for key, value in info.items():
        kpath = f"{path}.model_info.{key}"
        if key in COST_KEYS and non_negative(value):
            costs.setdefault(COST_KEYS[key], value)
        else:
            st.note(kpath, MODEL_INFO_NOTES.get(key, "no equivalent"))
    _price(st, path, target, costs, free=provider in st.free)
    return dep


def _split_model(params: Mapping[str, Any]) -> tuple[str, str]:
    """``(litellm provider prefix, model)`` of a deployment; the prefix is "" when none can be told."""
    model: str = params["model"]
    custom = params.get("custom_llm_provider")
    if isinstance(custom, str) and custom:
        return custom, model.removeprefix(f"{custom}/")
    head, sep, rest = model.partition("/")
    if sep and (head in UPSTREAMS or head in UNSUPPORTED):
        return head, rest
    for start, provider in BARE_MODELS:
        if model.startswith(start):
            return provider, model
    return (head if sep else ""), (rest if sep else model)


def _provider(st: ImportState, path: str, upstream: Upstream, params: Mapping[str, Any]) -> str | None:
    """The ``[providers.NAME]`` a deployment's target uses (one per distinct kind, base URL and key), or None when
    the deployment cannot be imported (reported)."""
    kind, name, base_url = upstream.kind, upstream.name, upstream.base_url
    api_base = params.get("api_base")
    if api_base is not None:
        env = env_reference(api_base)
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
        if kind == "openai" and parts.hostname != OPENAI_HOST:
            kind, name = "openai-compatible", _host_label(parts.hostname)
    raw_key = params.get("api_key")
    if raw_key is not None and not isinstance(raw_key, str):
        st.note(f"{path}.api_key", f"expected a string, got {yaml_type(raw_key)}; not imported")
        raw_key = None
    placeholder = raw_key is not None and env_reference(raw_key) is None and raw_key.strip().lower() in PLACEHOLDER_KEYS
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
        entry["api_key"] = secret_reference(st, f"{path}.api_key", raw_key, suggested)
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


def _base_url(st: ImportState, path: str, upstream: Upstream, url: str) -> str:
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


def _price(st: ImportState, path: str, target: str, costs: Mapping[str, float], *, free: bool) -> None:
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
