"""Loading a profile: finding it, parsing its TOML, validating every section (see :mod:`llmgw.profile`), and the
checks that need the outside world (secrets that resolve, a host that may listen).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from ..cache.config import CacheConfig
from ..errors import ProfileError
from ..providers.spec import spec_for
from .alerts import read_alerts
from .checker import KIND_NAMES, Checker, type_name
from .schema import LOOPBACK_HOSTS, ModelConfig, Profile, SecretError
from .sections import (
    expand_targets,
    read_model,
    read_prices,
    read_provider,
    read_routing,
    read_server,
    read_state,
    read_telemetry,
)
from .teams import read_keys, read_teams

_LATER_SECTIONS: dict[str, type] = {"teams": dict, "keys": dict, "cache": dict, "guardrails": list}
_TOP_KEYS = {"server", "state", "routing", "providers", "models", "prices", "telemetry", "alerts", *_LATER_SECTIONS}


def parse_profile(data: Mapping[str, Any], source: str = "<profile>") -> Profile:
    """Validate an already-parsed TOML document. Raises :class:`ProfileError` listing every problem."""
    c = Checker()
    c.unknown(data, "", _TOP_KEYS)
    server = read_server(c, data.get("server"))
    state = read_state(c, data.get("state"))
    routing = read_routing(c, data.get("routing"))
    providers = {}
    for name, raw in c.table(data.get("providers"), "providers").items():
        provider = read_provider(c, name, raw)
        if provider is not None:
            providers[name] = provider
    raw_models = {alias: read_model(c, alias, raw)
                  for alias, raw in c.table(data.get("models"), "models").items()}
    targets = expand_targets(c, raw_models, providers)
    models = {}
    for alias, raw in raw_models.items():
        if raw["strategy"] == "loadbalance" and raw["weights"]:
            c.check(len(raw["weights"]) == len(targets[alias]),
                    f"models.{alias}.weights: {len(raw['weights'])} weights for {len(targets[alias])} targets")
        models[alias] = ModelConfig(alias=alias, targets=targets[alias], strategy=raw["strategy"],
                                    weights=raw["weights"], retries=raw["retries"], cache=raw["cache"],
                                    data_classes=raw["data_classes"])
    prices = read_prices(c, data.get("prices"))
    teams = read_teams(c, data.get("teams"), models)
    keys = read_keys(c, data.get("keys"), teams, models)
    telemetry = read_telemetry(c, data.get("telemetry"))
    alerts = read_alerts(c, data.get("alerts"), teams)
    extra = {}
    for section, kind in _LATER_SECTIONS.items():
        if section in data:
            if isinstance(data[section], kind):
                extra[section] = data[section]
            else:
                c.problems.append(f"{section}: expected {KIND_NAMES[kind]}, got {type_name(data[section])}")
    cache = CacheConfig()
    if isinstance(extra.get("cache"), dict):
        try:
            cache = CacheConfig.from_raw(extra["cache"])
        except ValueError as exc:
            c.problems.append(str(exc))
    guardrails: tuple[Any, ...] = ()
    if isinstance(extra.get("guardrails"), list):
        from ..guardrails.rules import parse_rules  # here, not at the top: the PII detectors load phonenumbers

        try:
            guardrails = tuple(parse_rules(extra["guardrails"]))
        except ProfileError as exc:
            c.problems.extend(exc.problems)
    if c.problems:
        raise ProfileError(c.problems, source)
    return Profile(server=server, state=state, providers=providers, models=models, prices=prices,
                   routing=routing, teams=teams, keys=keys, cache=cache, guardrails=guardrails, extra=extra,
                   source=source, telemetry=telemetry, alerts=alerts)


def load_profile(path: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> Profile:
    """Load a profile: ``path``, else ``$LLMGW_PROFILE``, else ``./llmgw.toml``, else the built-in demo."""
    env = os.environ if environ is None else environ
    chosen = path or env.get("LLMGW_PROFILE") or ("llmgw.toml" if Path("llmgw.toml").is_file() else None)
    if chosen is None:
        text = resources.files("llmgw").joinpath("profiles/demo.toml").read_text(encoding="utf-8")
        return _parse_text(text, "<built-in demo>")
    file = Path(chosen).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError([f"file not found (see `llmgw profile init --out {file}`)"], str(file)) from None
    except OSError as exc:
        raise ProfileError([f"cannot read: {exc.strerror}"], str(file)) from None
    return _parse_text(text, str(file))


def _parse_text(text: str, source: str) -> Profile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError([f"invalid TOML: {exc}"], source) from None
    return parse_profile(data, source)


def secret_problems(profile: Profile) -> list[str]:
    """One ``"key.path: why"`` line for every secret reference that cannot be resolved right now."""
    problems = []
    for path, secret in profile.secrets():
        try:
            secret.resolve()
        except SecretError as exc:
            problems.append(f"{path}: {exc}")
    for provider in profile.providers.values():
        spec = spec_for(provider.kind)
        if spec.needs_key and provider.api_key is None:
            problems.append(f"providers.{provider.name}.api_key: missing (kind {provider.kind!r} needs a key,"
                            f" e.g. api_key = \"{spec.api_key}\")")
    return problems


def host_problems(profile: Profile, host: str | None = None) -> list[str]:
    """Refuse an open proxy on a non-loopback host."""
    host = host or profile.server.host
    if host not in LOOPBACK_HOSTS and not profile.governed:
        return [f"server.host: {host!r} is not loopback and no [keys] or [teams] are configured;"
                " refusing to run an open proxy"]
    return []

