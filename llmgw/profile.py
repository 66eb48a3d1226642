"""The TOML profile: parsed into frozen dataclasses, every problem reported with its key path.

Contract:
- ``load_profile(path)`` returns a :class:`Profile` or raises :class:`ProfileError` whose ``problems`` list names
  every problem found (not just the first), each as ``"key.path: what is wrong"``.
- Secrets (``"env:NAME"`` / ``"file:PATH"``) stay references inside the profile; they are resolved only by
  :meth:`Secret.resolve` and never appear in ``repr``/``str`` or in any error message.
- ``[teams]``, ``[keys]``, ``[cache]`` and ``[[guardrails]]`` are accepted with shallow type checks.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ProfileError

PROVIDER_KINDS = ("openai", "anthropic", "gemini", "openai-compatible", "mock")
STRATEGIES = ("fallback", "loadbalance", "least-latency")
DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class SecretError(Exception):
    """A secret reference that cannot be resolved; the message names the reference, never a value."""


@dataclass(frozen=True)
class Secret:
    """A reference to a secret: ``env:NAME``, ``file:PATH`` or (discouraged) a literal value."""

    ref: str = field(repr=False)

    def describe(self) -> str:
        """A printable description that never contains the secret itself."""
        if self.ref.startswith(("env:", "file:")):
            return self.ref
        return "<literal>"

    def __repr__(self) -> str:
        return f"Secret({self.describe()})"

    __str__ = __repr__

    def resolve(self) -> str:
        """Return the secret's value, or raise :class:`SecretError` naming the reference."""
        if self.ref.startswith("env:"):
            name = self.ref[4:]
            value = os.environ.get(name)
            if not value:
                raise SecretError(f"environment variable {name} is not set")
            return value
        if self.ref.startswith("file:"):
            path = Path(self.ref[5:]).expanduser()
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from None
            if not value:
                raise SecretError(f"secret file {path} is empty")
            return value
        return self.ref


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 4000
    workers: int = 1
    max_body_mb: float = 8.0
    timeout_s: float = 600.0              # total deadline per request, across every attempt
    connect_timeout_s: float = 10.0       # per connection to an upstream
    first_token_timeout_s: float = 300.0  # per attempt: until a stream's first event, or a whole answer
    idle_timeout_s: float = 120.0         # between two reads of a stream (keep-alive comments count as reads)
    log_bodies: bool = True
    admin_key: Secret | None = None


@dataclass(frozen=True)
class RoutingConfig:
    """How hard the router tries: the retry budget and the per-target circuit breaker."""

    retry_budget: float = 0.2      # extra attempts (retries and fallbacks) allowed per request, on average
    retry_reserve: int = 10        # extra attempts allowed before the budget has earned any
    cooldown_failures: int = 3     # consecutive failures that take a target out of rotation
    cooldown_s: float = 30.0       # how long it stays out before one probe request may try it again


@dataclass(frozen=True)
class StateConfig:
    url: str = "sqlite:///~/.llmgw/llmgw.db"
    shared: str | None = None

    @property
    def db_path(self) -> Path:
        """The SQLite file the request log lives in."""
        return Path(self.url.removeprefix("sqlite:///")).expanduser()


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    kind: str
    api_key: Secret | None = None
    base_url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    latency_ms: float = 0.0
    fail_rate: float = 0.0
    fail_status: int = 500
    drop_params: tuple[str, ...] = ()


@dataclass(frozen=True)
class Target:
    """One place an alias can be answered from: ``provider/model``."""

    provider: str
    model: str

    @property
    def name(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True)
class ModelConfig:
    alias: str
    targets: tuple[Target, ...]
    strategy: str = "fallback"
    weights: tuple[float, ...] = ()
    retries: int = 0
    cache: bool = True
    data_classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Budget:
    """USD limits per UTC day and per UTC month; None means no limit."""

    daily: float | None = None
    monthly: float | None = None


@dataclass(frozen=True)
class TeamConfig:
    name: str
    rpm: int | None = None
    tpm: int | None = None
    budget: Budget = field(default_factory=Budget)
    models: tuple[str, ...] | None = None   # allow-list of aliases; None = all
    data_class: str | None = None


@dataclass(frozen=True)
class KeyConfig:
    """A virtual key declared in the profile (its secret is a reference, resolved at start-up)."""

    name: str
    key: Secret
    team: str
    rpm: int | None = None
    tpm: int | None = None
    budget: Budget = field(default_factory=Budget)
    models: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Price:
    """USD per one million tokens."""

    input: float
    output: float
    cached_input: float | None = None


@dataclass(frozen=True)
class Profile:
    server: ServerConfig
    state: StateConfig
    providers: Mapping[str, ProviderConfig]
    models: Mapping[str, ModelConfig]
    prices: Mapping[str, Price]
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    teams: Mapping[str, TeamConfig] = field(default_factory=dict)
    keys: Mapping[str, KeyConfig] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<built-in demo>"

    def secrets(self) -> list[tuple[str, Secret]]:
        """Every secret reference in the profile with its key path."""
        found = [(f"providers.{p.name}.api_key", p.api_key) for p in self.providers.values() if p.api_key]
        if self.server.admin_key:
            found.append(("server.admin_key", self.server.admin_key))
        found += [(f"keys.{k.name}.key", k.key) for k in self.keys.values()]
        return found

    @property
    def governed(self) -> bool:
        """Whether clients must present a key (any team or key is configured; minted keys need a team)."""
        return bool(self.teams or self.keys)


# --- validation helpers --------------------------------------------------------------------------------------


class _Checker:
    """Collects problems while reading a raw TOML mapping."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def table(self, raw: Any, path: str) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.problems.append(f"{path}: expected a table, got {_type_name(raw)}")
            return {}
        return raw

    def unknown(self, raw: Mapping[str, Any], path: str, allowed: set[str]) -> None:
        for key in raw:
            if key not in allowed:
                prefix = f"{path}." if path else ""
                self.problems.append(f"{prefix}{key}: unknown key (allowed: {', '.join(sorted(allowed))})")

    def get(self, raw: Mapping[str, Any], key: str, path: str, kind: type | tuple[type, ...], default: Any) -> Any:
        if key not in raw:
            return default
        value = raw[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            want = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
            self.problems.append(f"{path}.{key}: expected {want}, got {_type_name(value)}")
            return default
        return value

    def secret(self, raw: Mapping[str, Any], key: str, path: str) -> Secret | None:
        value = self.get(raw, key, path, str, None)
        return Secret(value) if value else None

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            self.problems.append(message)


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "an array",
               dict: "a table"}


def _type_name(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "an array",
             dict: "a table"}
    return names.get(type(value), type(value).__name__)


# --- sections ------------------------------------------------------------------------------------------------

_NUMBER = (int, float)


def _server(c: _Checker, raw: Any) -> ServerConfig:
    raw = c.table(raw, "server")
    c.unknown(raw, "server", {"host", "port", "workers", "max_body_mb", "timeout_s", "connect_timeout_s",
                              "first_token_timeout_s", "idle_timeout_s", "log_bodies", "admin_key"})
    d = ServerConfig()
    server = ServerConfig(
        host=c.get(raw, "host", "server", str, d.host),
        port=c.get(raw, "port", "server", int, d.port),
        workers=c.get(raw, "workers", "server", int, d.workers),
        max_body_mb=float(c.get(raw, "max_body_mb", "server", _NUMBER, d.max_body_mb)),
        timeout_s=float(c.get(raw, "timeout_s", "server", _NUMBER, d.timeout_s)),
        connect_timeout_s=float(c.get(raw, "connect_timeout_s", "server", _NUMBER, d.connect_timeout_s)),
        first_token_timeout_s=float(c.get(raw, "first_token_timeout_s", "server", _NUMBER,
                                          d.first_token_timeout_s)),
        idle_timeout_s=float(c.get(raw, "idle_timeout_s", "server", _NUMBER, d.idle_timeout_s)),
        log_bodies=c.get(raw, "log_bodies", "server", bool, d.log_bodies),
        admin_key=c.secret(raw, "admin_key", "server"),
    )
    c.check(0 <= server.port <= 65535, f"server.port: {server.port} is not a TCP port (0-65535)")
    c.check(server.workers >= 1, "server.workers: must be at least 1")
    c.check(server.max_body_mb > 0, "server.max_body_mb: must be greater than 0")
    for name in ("timeout_s", "connect_timeout_s", "first_token_timeout_s", "idle_timeout_s"):
        c.check(getattr(server, name) > 0, f"server.{name}: must be greater than 0")
    return server


def _routing(c: _Checker, raw: Any) -> RoutingConfig:
    raw = c.table(raw, "routing")
    c.unknown(raw, "routing", {"retry_budget", "retry_reserve", "cooldown_failures", "cooldown_s"})
    d = RoutingConfig()
    routing = RoutingConfig(
        retry_budget=float(c.get(raw, "retry_budget", "routing", _NUMBER, d.retry_budget)),
        retry_reserve=c.get(raw, "retry_reserve", "routing", int, d.retry_reserve),
        cooldown_failures=c.get(raw, "cooldown_failures", "routing", int, d.cooldown_failures),
        cooldown_s=float(c.get(raw, "cooldown_s", "routing", _NUMBER, d.cooldown_s)),
    )
    c.check(0 <= routing.retry_budget <= 10, "routing.retry_budget: must be between 0 and 10")
    c.check(routing.retry_reserve >= 0, "routing.retry_reserve: must not be negative")
    c.check(routing.cooldown_failures >= 1, "routing.cooldown_failures: must be at least 1")
    c.check(routing.cooldown_s >= 0, "routing.cooldown_s: must not be negative")
    return routing


def _state(c: _Checker, raw: Any) -> StateConfig:
    raw = c.table(raw, "state")
    c.unknown(raw, "state", {"url", "shared"})
    state = StateConfig(url=c.get(raw, "url", "state", str, StateConfig.url),
                        shared=c.get(raw, "shared", "state", str, None))
    c.check(state.url.startswith("sqlite:///"), f"state.url: expected 'sqlite:///PATH', got {state.url!r}")
    if state.shared is not None:
        c.check(state.shared.startswith(("redis://", "rediss://", "unix://")),
                f"state.shared: expected a redis:// URL, got {state.shared!r}")
    return state


_PROVIDER_KEYS = {"kind", "api_key", "base_url", "headers", "latency_ms", "fail_rate", "fail_status", "drop_params"}


def _provider(c: _Checker, name: str, raw: Any) -> ProviderConfig | None:
    path = f"providers.{name}"
    raw = c.table(raw, path)
    c.unknown(raw, path, _PROVIDER_KEYS)
    kind = c.get(raw, "kind", path, str, None)
    if kind is None:
        c.problems.append(f"{path}.kind: missing (one of {', '.join(PROVIDER_KINDS)})")
        return None
    if kind not in PROVIDER_KINDS:
        c.problems.append(f"{path}.kind: unknown kind {kind!r} (one of {', '.join(PROVIDER_KINDS)})")
        return None
    headers = c.table(c.get(raw, "headers", path, dict, {}), f"{path}.headers")
    for key, value in headers.items():
        c.check(isinstance(value, str), f"{path}.headers.{key}: expected a string, got {_type_name(value)}")
    drop = c.get(raw, "drop_params", path, list, [])
    c.check(all(isinstance(p, str) for p in drop), f"{path}.drop_params: expected an array of strings")
    base_url = c.get(raw, "base_url", path, str, None) or DEFAULT_BASE_URLS.get(kind)
    if kind == "openai-compatible" and base_url is None:
        c.problems.append(f"{path}.base_url: required for kind 'openai-compatible' (e.g. http://127.0.0.1:8000/v1)")
    if base_url is not None:
        c.check(base_url.startswith(("http://", "https://")),
                f"{path}.base_url: expected an http:// or https:// URL, got {base_url!r}")
    provider = ProviderConfig(
        name=name,
        kind=kind,
        api_key=c.secret(raw, "api_key", path),
        base_url=base_url.rstrip("/") if base_url else None,
        headers={k: v for k, v in headers.items() if isinstance(v, str)},
        latency_ms=float(c.get(raw, "latency_ms", path, _NUMBER, 0.0)),
        fail_rate=float(c.get(raw, "fail_rate", path, _NUMBER, 0.0)),
        fail_status=c.get(raw, "fail_status", path, int, 500),
        drop_params=tuple(p for p in drop if isinstance(p, str)),
    )
    c.check(0.0 <= provider.fail_rate <= 1.0, f"{path}.fail_rate: must be between 0.0 and 1.0")
    c.check(400 <= provider.fail_status <= 599, f"{path}.fail_status: must be an HTTP error status (400-599)")
    c.check(provider.latency_ms >= 0, f"{path}.latency_ms: must not be negative")
    return provider


_MODEL_KEYS = {"targets", "strategy", "weights", "retries", "cache", "data_classes"}


def _model_raw(c: _Checker, alias: str, raw: Any) -> dict[str, Any]:
    path = f"models.{alias}"
    raw = c.table(raw, path)
    c.unknown(raw, path, _MODEL_KEYS)
    if "targets" not in raw:
        c.problems.append(f"{path}.targets: missing (e.g. targets = [\"openai/gpt-4o-mini\"])")
    targets = c.get(raw, "targets", path, list, [])
    if isinstance(raw.get("targets"), list) and not targets:
        c.problems.append(f"{path}.targets: must name at least one target")
    for i, t in enumerate(targets):
        c.check(isinstance(t, str) and bool(t), f"{path}.targets[{i}]: expected a 'provider/model' string")
    strategy = c.get(raw, "strategy", path, str, "fallback")
    c.check(strategy in STRATEGIES, f"{path}.strategy: unknown strategy {strategy!r} (one of {', '.join(STRATEGIES)})")
    weights = c.get(raw, "weights", path, list, [])
    c.check(all(isinstance(w, _NUMBER) and not isinstance(w, bool) and w >= 0 for w in weights),
            f"{path}.weights: expected an array of non-negative numbers")
    retries = c.get(raw, "retries", path, int, 0)
    c.check(0 <= retries <= 10, f"{path}.retries: must be between 0 and 10")
    classes = c.get(raw, "data_classes", path, list, [])
    c.check(all(isinstance(x, str) for x in classes), f"{path}.data_classes: expected an array of strings")
    return {
        "targets": [t for t in targets if isinstance(t, str) and t],
        "strategy": strategy,
        "weights": tuple(float(w) for w in weights if isinstance(w, _NUMBER)),
        "retries": retries,
        "cache": c.get(raw, "cache", path, bool, True),
        "data_classes": tuple(x for x in classes if isinstance(x, str)),
    }


def _expand_targets(c: _Checker, raw_models: Mapping[str, dict[str, Any]],
                    providers: Mapping[str, ProviderConfig]) -> dict[str, tuple[Target, ...]]:
    """Resolve each alias's targets; a target without ``/`` names another alias. Reports cycles."""
    resolved: dict[str, tuple[Target, ...]] = {}

    def expand(alias: str, stack: tuple[str, ...]) -> tuple[Target, ...]:
        if alias in resolved:
            return resolved[alias]
        out: list[Target] = []
        for i, ref in enumerate(raw_models[alias]["targets"]):
            path = f"models.{alias}.targets[{i}]"
            if "/" in ref:
                provider, model = ref.split("/", 1)
                if provider not in providers:
                    c.problems.append(f"{path}: unknown provider {provider!r} in {ref!r}"
                                      f" (declared: {', '.join(providers) or 'none'})")
                elif not model:
                    c.problems.append(f"{path}: {ref!r} names no model after the '/'")
                else:
                    out.append(Target(provider, model))
            elif ref in stack or ref == alias:
                c.problems.append(f"{path}: alias cycle {' -> '.join((*stack, alias, ref))}")
            elif ref in raw_models:
                out.extend(expand(ref, (*stack, alias)))
            else:
                c.problems.append(f"{path}: {ref!r} is neither 'provider/model' nor a declared alias")
        resolved[alias] = tuple(dict.fromkeys(out))
        return resolved[alias]

    for alias in raw_models:
        expand(alias, ())
    return resolved


def _prices(c: _Checker, raw: Any) -> dict[str, Price]:
    raw = c.table(raw, "prices")
    out: dict[str, Price] = {}
    for name, entry in raw.items():
        path = f'prices."{name}"'
        entry = c.table(entry, path)
        c.unknown(entry, path, {"input", "output", "cached_input"})
        values = {k: c.get(entry, k, path, _NUMBER, None) for k in ("input", "output", "cached_input")}
        for k in ("input", "output"):
            if values[k] is None and k not in entry:
                c.problems.append(f"{path}.{k}: missing (USD per 1M tokens)")
        if all(v is None or v >= 0 for v in values.values()) and values["input"] is not None \
                and values["output"] is not None:
            cached = values["cached_input"]
            out[name] = Price(float(values["input"]), float(values["output"]),
                              None if cached is None else float(cached))
        elif any(v is not None and v < 0 for v in values.values()):
            c.problems.append(f"{path}: prices must not be negative")
    return out


def _limits(c: _Checker, raw: dict[str, Any], path: str) -> dict[str, Any]:
    """rpm, tpm, budget_usd and models, shared by teams and keys."""
    out: dict[str, Any] = {}
    for name in ("rpm", "tpm"):
        value = c.get(raw, name, path, int, None)
        c.check(value is None or value >= 0, f"{path}.{name}: must not be negative")
        out[name] = value
    budget = c.table(raw.get("budget_usd"), f"{path}.budget_usd") if "budget_usd" in raw else {}
    c.unknown(budget, f"{path}.budget_usd", {"daily", "monthly"})
    limits = {k: c.get(budget, k, f"{path}.budget_usd", _NUMBER, None) for k in ("daily", "monthly")}
    for k, v in limits.items():
        c.check(v is None or v >= 0, f"{path}.budget_usd.{k}: must not be negative")
    out["budget"] = Budget(**{k: None if v is None else float(v) for k, v in limits.items()})
    models = c.get(raw, "models", path, list, None)
    if models is not None:
        c.check(all(isinstance(m, str) for m in models), f"{path}.models: expected an array of alias names")
        models = tuple(m for m in models if isinstance(m, str))
    out["models"] = models
    return out


def _teams(c: _Checker, raw: Any, aliases: Collection[str]) -> dict[str, TeamConfig]:
    teams = {}
    for name, entry in c.table(raw, "teams").items():
        path = f"teams.{name}"
        entry = c.table(entry, path)
        c.unknown(entry, path, {"rpm", "tpm", "budget_usd", "models", "data_class"})
        limits = _limits(c, entry, path)
        for alias in limits["models"] or ():
            c.check(alias in aliases, f"{path}.models: unknown alias {alias!r}")
        teams[name] = TeamConfig(name=name, data_class=c.get(entry, "data_class", path, str, None), **limits)
    return teams


def _keys(c: _Checker, raw: Any, teams: Mapping[str, TeamConfig], aliases: Collection[str]) -> dict[str, KeyConfig]:
    keys = {}
    for name, entry in c.table(raw, "keys").items():
        path = f"keys.{name}"
        entry = c.table(entry, path)
        c.unknown(entry, path, {"key", "team", "rpm", "tpm", "budget_usd", "models"})
        secret = c.secret(entry, "key", path)
        team = c.get(entry, "team", path, str, None)
        if secret is None:
            c.problems.append(f"{path}.key: missing (e.g. key = \"env:LLMGW_{name.upper()}_KEY\")")
        if team is None:
            c.problems.append(f"{path}.team: missing (the [teams.*] this key belongs to)")
        elif team not in teams:
            c.problems.append(f"{path}.team: unknown team {team!r} (declared: {', '.join(teams) or 'none'})")
        limits = _limits(c, entry, path)
        for alias in limits["models"] or ():
            c.check(alias in aliases, f"{path}.models: unknown alias {alias!r}")
        if secret is not None and team is not None:
            keys[name] = KeyConfig(name=name, key=secret, team=team, **limits)
    return keys


_LATER_SECTIONS: dict[str, type] = {"teams": dict, "keys": dict, "cache": dict, "guardrails": list}
_TOP_KEYS = {"server", "state", "routing", "providers", "models", "prices", *_LATER_SECTIONS}


def parse_profile(data: Mapping[str, Any], source: str = "<profile>") -> Profile:
    """Validate an already-parsed TOML document. Raises :class:`ProfileError` listing every problem."""
    c = _Checker()
    c.unknown(data, "", _TOP_KEYS)
    server = _server(c, data.get("server"))
    state = _state(c, data.get("state"))
    routing = _routing(c, data.get("routing"))
    providers = {}
    for name, raw in c.table(data.get("providers"), "providers").items():
        provider = _provider(c, name, raw)
        if provider is not None:
            providers[name] = provider
    raw_models = {alias: _model_raw(c, alias, raw)
                  for alias, raw in c.table(data.get("models"), "models").items()}
    targets = _expand_targets(c, raw_models, providers)
    models = {}
    for alias, raw in raw_models.items():
        if raw["strategy"] == "loadbalance" and raw["weights"]:
            c.check(len(raw["weights"]) == len(targets[alias]),
                    f"models.{alias}.weights: {len(raw['weights'])} weights for {len(targets[alias])} targets")
        models[alias] = ModelConfig(alias=alias, targets=targets[alias], strategy=raw["strategy"],
                                    weights=raw["weights"], retries=raw["retries"], cache=raw["cache"],
                                    data_classes=raw["data_classes"])
    prices = _prices(c, data.get("prices"))
    teams = _teams(c, data.get("teams"), models)
    keys = _keys(c, data.get("keys"), teams, models)
    extra = {}
    for section, kind in _LATER_SECTIONS.items():
        if section in data:
            if isinstance(data[section], kind):
                extra[section] = data[section]
            else:
                c.problems.append(f"{section}: expected {_KIND_NAMES[kind]}, got {_type_name(data[section])}")
    if isinstance(extra.get("cache"), dict):
        from .cache.config import CacheConfig

        try:
            CacheConfig.from_raw(extra["cache"])
        except ValueError as exc:
            c.problems.append(str(exc))
    if isinstance(extra.get("guardrails"), list):
        from .guardrails.rules import parse_rules  # here: the guardrails' detectors load phonenumbers

        try:
            parse_rules(extra["guardrails"])
        except ProfileError as exc:
            c.problems.extend(exc.problems)
    if c.problems:
        raise ProfileError(c.problems, source)
    return Profile(server=server, state=state, providers=providers, models=models, prices=prices,
                   routing=routing, teams=teams, keys=keys, extra=extra, source=source)


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
    needs_key = ("openai", "anthropic", "gemini")
    for provider in profile.providers.values():
        if provider.kind in needs_key and provider.api_key is None:
            problems.append(f"providers.{provider.name}.api_key: missing (kind {provider.kind!r} needs a key,"
                            f" e.g. api_key = \"env:{provider.kind.upper()}_API_KEY\")")
    return problems


def host_problems(profile: Profile, host: str | None = None) -> list[str]:
    """Refuse an open proxy on a non-loopback host."""
    host = host or profile.server.host
    if host not in LOOPBACK_HOSTS and not profile.governed:
        return [f"server.host: {host!r} is not loopback and no [keys] or [teams] are configured;"
                " refusing to run an open proxy"]
    return []

