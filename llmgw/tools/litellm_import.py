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

import tomllib
from collections.abc import Mapping
from typing import Any

import tomli_w

from ..errors import ProfileError
from ..profile import parse_profile
from .litellm_deployments import (
    Deployment,
    ImportState,
    non_negative,
    positive,
    read_deployment,
    referenced_env,
    secret_reference,
    yaml_type,
)
from .litellm_tables import GENERAL_NOTES, LITELLM_NOTES, ROUTER_KEYS, ROUTER_NOTES, SECTIONS, STRATEGIES

MAX_RETRIES = 10   # models.*.retries is 0..10



class NotALiteLLMConfig(ValueError):
    """The document is not a LiteLLM proxy config; the message names what is wrong in one line."""


class ImportBug(RuntimeError):
    """The translated profile does not load with llmgw's own reader: a bug in this module, never the user's."""


def translate(config: Any) -> tuple[dict[str, Any], list[str]]:
    """Translate a parsed LiteLLM proxy config into an llmgw profile mapping and report lines (module contract)."""
    if not isinstance(config, dict):
        raise NotALiteLLMConfig(f"not a LiteLLM proxy config: expected a mapping at the top, got {yaml_type(config)}")
    if "model_list" not in config:
        raise NotALiteLLMConfig("not a LiteLLM proxy config: no model_list")
    model_list = config["model_list"]
    if not isinstance(model_list, list):
        raise NotALiteLLMConfig(f"model_list: expected a list of deployments, got {yaml_type(model_list)}")
    st = ImportState(env_names=referenced_env(config))
    for key in config:
        if key not in SECTIONS:
            st.note(str(key), "unknown section, not imported")
    router = config_section(st, config, "router_settings")
    settings = config_section(st, config, "litellm_settings")
    general = config_section(st, config, "general_settings")
    for name in config_section(st, config, "environment_variables"):
        st.note(f"environment_variables.{name}", "not imported (set it in llmgw's environment; values are never"
                                                 " copied)")

    def setting(key: str) -> tuple[str, Any] | None:
        for section_name, section in (("router_settings", router), ("litellm_settings", settings)):
            if key in section:
                return f"{section_name}.{key}", section[key]
        return None

    deployments = [d for i, raw in enumerate(model_list) if (d := read_deployment(st, i, raw)) is not None]
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
        if positive(timeout[1]):
            server["timeout_s"] = timeout[1]
        else:
            st.note(timeout[0], "expected a positive number of seconds; not imported")
    _cooldowns(st, routing, setting("cooldown_time"), setting("allowed_fails"), setting("disable_cooldowns"))
    for section_name, section, handled, notes in (
            ("router_settings", router, ROUTER_KEYS, ROUTER_NOTES),
            ("litellm_settings", settings, (*ROUTER_KEYS, "cache", "cache_params"), {**ROUTER_NOTES,
                                                                                   **LITELLM_NOTES})):
        for key in section:
            if key not in handled:
                st.note(f"{section_name}.{key}", notes.get(key, "no equivalent"))
        for key in handled:
            if key in section and section_name == "litellm_settings" and key in router:
                st.note(f"litellm_settings.{key}", f"ignored: router_settings.{key} is set too")
    master = general.get("master_key")
    if master is not None:
        server["admin_key"] = secret_reference(st, "general_settings.master_key", master, "LLMGW_ADMIN_KEY")
        st.note("general_settings.master_key", "became server.admin_key (guards /admin/*); clients of the old proxy"
                                               " need keys here: add [teams] and [keys], or `llmgw keys create`")
    for key in general:
        if key != "master_key":
            st.note(f"general_settings.{key}", GENERAL_NOTES.get(key, "no equivalent"))
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


def config_section(st: ImportState, config: Mapping[str, Any], name: str) -> dict[str, Any]:
    raw = config.get(name)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        st.note(name, f"expected a mapping, got {yaml_type(raw)}; not imported")
        return {}
    return raw


def _strategy(st: ImportState, setting: tuple[str, Any] | None) -> str:
    if setting is None:
        return "loadbalance"   # LiteLLM's default is simple-shuffle
    path, value = setting
    mapped = STRATEGIES.get(value) if isinstance(value, str) else None
    if mapped is None:
        st.note(path, "unknown routing strategy; aliases with several deployments load-balance")
        return "loadbalance"
    if mapped[1]:
        st.note(path, mapped[1])
    return mapped[0]


def _aliases(st: ImportState, deployments: list[Deployment], strategy: str) -> dict[str, dict[str, Any]]:
    """One alias per model_name: its deployments' targets (deduplicated, weights merged), the strategy, weights."""
    grouped: dict[str, list[Deployment]] = {}
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


def _fallbacks(st: ImportState, models: dict[str, dict[str, Any]], fallbacks: tuple[str, Any] | None,
               defaults: tuple[str, Any] | None) -> None:
    """Append each alias's fallback aliases' own targets after its deployments."""
    own = {alias: list(entry["targets"]) for alias, entry in models.items()}
    chains: dict[str, list[tuple[str, str]]] = {}
    if fallbacks is not None:
        path, value = fallbacks
        if not isinstance(value, list):
            st.note(path, f"expected a list of {{model_name: [fallbacks]}} mappings, got {yaml_type(value)}")
            value = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                st.note(f"{path}[{i}]", f"expected a {{model_name: [fallbacks]}} mapping, got {yaml_type(item)}")
                continue
            for alias, names in item.items():
                ipath = f"{path}[{i}].{alias}"
                names = [names] if isinstance(names, str) else names
                if not isinstance(names, list):
                    st.note(ipath, f"expected a list of model names, got {yaml_type(names)}")
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
            st.note(path, f"expected a list of model names, got {yaml_type(value)}")
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


def _group_aliases(st: ImportState, models: dict[str, dict[str, Any]], setting: tuple[str, Any] | None) -> None:
    """``model_group_alias: {name: model_name}``: the name becomes an alias with the same targets."""
    if setting is None:
        return
    path, value = setting
    if not isinstance(value, dict):
        st.note(path, f"expected a mapping of alias names to model names, got {yaml_type(value)}")
        return
    for name, spec in value.items():
        target = spec.get("model") if isinstance(spec, dict) else spec
        if not isinstance(target, str) or target not in models:
            st.note(f"{path}.{name}", "names no imported model_name; not imported")
        elif name in models:
            st.note(f"{path}.{name}", "a model_name of that name exists already; not imported")
        else:
            models[str(name)] = {k: list(v) if isinstance(v, list) else v for k, v in models[target].items()}


def _retries(st: ImportState, models: dict[str, dict[str, Any]], setting: tuple[str, Any] | None) -> None:
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


def _cooldowns(st: ImportState, routing: dict[str, Any], cooldown: tuple[str, Any] | None,
               allowed: tuple[str, Any] | None, disabled: tuple[str, Any] | None) -> None:
    if cooldown is not None:
        if non_negative(cooldown[1]):
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


def _cache(st: ImportState, settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """``litellm_settings.cache`` (+ ``cache_params``) → ``[cache]``."""
    params = settings.get("cache_params")
    if params is not None and not isinstance(params, dict):
        st.note("litellm_settings.cache_params", f"expected a mapping, got {yaml_type(params)}; not imported")
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
            if positive(value) and "ttl" not in cache:
                cache["ttl"] = value
            elif not positive(value):
                st.note(path, "expected a positive number of seconds; not imported")
        elif key == "similarity_threshold":
            if non_negative(value) and value <= 1:
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
