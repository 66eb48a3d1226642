"""Reading a profile document's sections: each ``read_<section>(checker, raw)`` returns the section's dataclasses and
records every problem on the :class:`~llmgw.profile.checker.Checker` as ``"key.path: what is wrong"`` (never
stopping at the first). Provider kinds, their default base URLs and whether one is required come from the registry
(:mod:`llmgw.providers.spec`). ``[teams]``/``[keys]`` are read by :mod:`llmgw.profile.teams`, ``[[alerts]]`` by
:mod:`llmgw.profile.alerts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..providers import spec as registry
from .checker import NUMBER, Checker, type_name
from .schema import (
    STRATEGIES,
    LongContext,
    Price,
    ProviderConfig,
    RoutingConfig,
    Secret,
    ServerConfig,
    StateConfig,
    Target,
    TelemetryConfig,
)


def read_server(c: Checker, raw: Any) -> ServerConfig:
    raw = c.table(raw, "server")
    c.unknown(raw, "server", {"host", "port", "workers", "max_body_mb", "timeout_s", "connect_timeout_s",
                              "first_token_timeout_s", "idle_timeout_s", "log_bodies", "admin_key",
                              "default_max_tokens", "metrics_auth", "allowed_hosts", "header_timeout_s",
                              "body_timeout_s", "keepalive_timeout_s", "max_connections"})
    d = ServerConfig()
    server = ServerConfig(
        host=c.get(raw, "host", "server", str, d.host),
        port=c.get(raw, "port", "server", int, d.port),
        workers=c.get(raw, "workers", "server", int, d.workers),
        max_body_mb=float(c.get(raw, "max_body_mb", "server", NUMBER, d.max_body_mb)),
        timeout_s=float(c.get(raw, "timeout_s", "server", NUMBER, d.timeout_s)),
        connect_timeout_s=float(c.get(raw, "connect_timeout_s", "server", NUMBER, d.connect_timeout_s)),
        first_token_timeout_s=float(c.get(raw, "first_token_timeout_s", "server", NUMBER,
                                          d.first_token_timeout_s)),
        idle_timeout_s=float(c.get(raw, "idle_timeout_s", "server", NUMBER, d.idle_timeout_s)),
        log_bodies=c.get(raw, "log_bodies", "server", bool, d.log_bodies),
        admin_key=c.secret(raw, "admin_key", "server"),
        default_max_tokens=c.get(raw, "default_max_tokens", "server", int, d.default_max_tokens),
        metrics_auth=c.get(raw, "metrics_auth", "server", bool, d.metrics_auth),
        allowed_hosts=tuple(c.get(raw, "allowed_hosts", "server", list, list(d.allowed_hosts))),
        header_timeout_s=float(c.get(raw, "header_timeout_s", "server", NUMBER, d.header_timeout_s)),
        body_timeout_s=float(c.get(raw, "body_timeout_s", "server", NUMBER, d.body_timeout_s)),
        keepalive_timeout_s=float(c.get(raw, "keepalive_timeout_s", "server", NUMBER, d.keepalive_timeout_s)),
        max_connections=c.get(raw, "max_connections", "server", int, d.max_connections),
    )
    c.check(0 <= server.port <= 65535, f"server.port: {server.port} is not a TCP port (0-65535)")
    c.check(server.workers >= 1, "server.workers: must be at least 1")
    c.check(server.max_body_mb > 0, "server.max_body_mb: must be greater than 0")
    c.check(server.default_max_tokens >= 1, "server.default_max_tokens: must be at least 1")
    c.check(all(isinstance(h, str) and h for h in server.allowed_hosts),
            "server.allowed_hosts: expected an array of host names")
    c.check(not server.metrics_auth or server.admin_key is not None,
            "server.metrics_auth: needs server.admin_key (the key a scrape must present)")
    c.check(server.max_connections >= 1, "server.max_connections: must be at least 1")
    for name in ("timeout_s", "connect_timeout_s", "first_token_timeout_s", "idle_timeout_s", "header_timeout_s",
                 "body_timeout_s", "keepalive_timeout_s"):
        c.check(getattr(server, name) > 0, f"server.{name}: must be greater than 0")
    return server


def read_routing(c: Checker, raw: Any) -> RoutingConfig:
    raw = c.table(raw, "routing")
    c.unknown(raw, "routing", {"retry_budget", "retry_reserve", "cooldown_failures", "cooldown_s"})
    d = RoutingConfig()
    routing = RoutingConfig(
        retry_budget=float(c.get(raw, "retry_budget", "routing", NUMBER, d.retry_budget)),
        retry_reserve=c.get(raw, "retry_reserve", "routing", int, d.retry_reserve),
        cooldown_failures=c.get(raw, "cooldown_failures", "routing", int, d.cooldown_failures),
        cooldown_s=float(c.get(raw, "cooldown_s", "routing", NUMBER, d.cooldown_s)),
    )
    c.check(0 <= routing.retry_budget <= 10, "routing.retry_budget: must be between 0 and 10")
    c.check(routing.retry_reserve >= 0, "routing.retry_reserve: must not be negative")
    c.check(routing.cooldown_failures >= 1, "routing.cooldown_failures: must be at least 1")
    c.check(routing.cooldown_s >= 0, "routing.cooldown_s: must not be negative")
    return routing


def _shown_url(url: str) -> str:
    """``url`` with any password in it replaced by ``***`` (an error message never carries a secret)."""
    from urllib.parse import urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return "<unparsable url>"
    return url.replace(f":{password}@", ":***@") if password else url


def read_state(c: Checker, raw: Any) -> StateConfig:
    raw = c.table(raw, "state")
    c.unknown(raw, "state", {"url", "shared", "password", "dir"})
    password = c.get(raw, "password", "state", str, None)
    state = StateConfig(url=c.get(raw, "url", "state", str, StateConfig.url),
                        shared=c.get(raw, "shared", "state", str, None),
                        password=Secret(password) if password is not None else None,
                        dir=c.get(raw, "dir", "state", str, None))
    c.check(state.url.startswith("sqlite:///") or state.is_postgres,
            f"state.url: expected 'sqlite:///PATH' or 'postgresql://USER@HOST:PORT/DB', got {_shown_url(state.url)!r}")
    if not state.is_postgres:
        c.check(password is None, "state.password: only for a postgresql:// url")
        c.check(state.dir is None, "state.dir: only for a postgresql:// url (a sqlite:/// url names its folder)")
    elif password is not None:
        c.check(password.startswith(("env:", "file:")) and len(password) > 5,
                "state.password: expected 'env:NAME' or 'file:PATH' (never the password itself)")
    if state.shared is not None:
        c.check(state.shared.startswith(("redis://", "rediss://", "unix://")),
                f"state.shared: expected a redis:// URL, got {state.shared!r}")
    return state


def read_telemetry(c: Checker, raw: Any) -> TelemetryConfig:
    """``[telemetry]``: an http(s) collector URL (no credentials in it: those go in ``headers``, as secrets), a
    service name, export headers and a sample ratio between 0 and 1."""
    from urllib.parse import urlsplit

    raw = c.table(raw, "telemetry")
    c.unknown(raw, "telemetry", {"otlp_endpoint", "service_name", "headers", "sample_ratio"})
    d = TelemetryConfig()
    endpoint = c.get(raw, "otlp_endpoint", "telemetry", str, None)
    if endpoint is not None:
        try:
            parts = urlsplit(endpoint)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != -1
        except ValueError:   # reading the port: not a number or out of range; an unbalanced [IPv6] bracket
            ok = False
        if not ok:
            c.problems.append("telemetry.otlp_endpoint: expected an http:// or https:// URL"
                              f" (e.g. http://127.0.0.1:4318), got {_shown_url(endpoint)!r}")
        elif "@" in parts.netloc:
            c.problems.append("telemetry.otlp_endpoint: credentials do not belong in the URL; put them in"
                              ' telemetry.headers (e.g. authorization = "env:OTLP_TOKEN")')
        elif parts.query or parts.fragment:
            c.problems.append("telemetry.otlp_endpoint: a query or fragment is not allowed in the collector's URL")
    headers: dict[str, Secret] = {}
    for name, value in c.table(c.get(raw, "headers", "telemetry", dict, {}), "telemetry.headers").items():
        if not isinstance(value, str) or not value:
            got = "an empty string" if value == "" else type_name(value)
            c.problems.append(f'telemetry.headers.{name}: expected a string (e.g. "env:NAME"), got {got}')
        elif not name or any(ch in name for ch in " \t\r\n:") or not name.isascii():
            c.problems.append(f"telemetry.headers.{name}: not a valid HTTP header name")
        else:
            headers[name] = Secret(value)
    ratio = float(c.get(raw, "sample_ratio", "telemetry", NUMBER, d.sample_ratio))
    c.check(0.0 <= ratio <= 1.0, f"telemetry.sample_ratio: must be between 0 and 1, got {ratio:g}")
    service = c.get(raw, "service_name", "telemetry", str, d.service_name)
    c.check(bool(service.strip()), "telemetry.service_name: must not be empty")
    if raw and endpoint is None and "otlp_endpoint" not in raw:
        c.problems.append("telemetry.otlp_endpoint: missing (the collector's OTLP/HTTP URL,"
                          " e.g. http://127.0.0.1:4318)")
    return TelemetryConfig(otlp_endpoint=endpoint, service_name=service, headers=headers, sample_ratio=ratio)


_PROVIDER_KEYS = {"kind", "api_key", "base_url", "headers", "latency_ms", "fail_rate", "fail_status", "drop_params"}


def read_provider(c: Checker, name: str, raw: Any) -> ProviderConfig | None:
    path = f"providers.{name}"
    raw = c.table(raw, path)
    c.unknown(raw, path, _PROVIDER_KEYS)
    kind = c.get(raw, "kind", path, str, None)
    if kind is None:
        c.problems.append(f"{path}.kind: missing (one of {', '.join(registry.kinds())})")
        return None
    spec = registry.SPECS.get(kind)
    if spec is None:
        c.problems.append(f"{path}.kind: unknown kind {kind!r} (one of {', '.join(registry.kinds())})")
        return None
    headers = c.table(c.get(raw, "headers", path, dict, {}), f"{path}.headers")
    for key, value in headers.items():
        if not key or any(ch in key for ch in " \t\r\n\x00:") or not key.isascii():
            c.problems.append(f"{path}.headers.{key}: not a valid HTTP header name")
        elif not isinstance(value, str):
            c.problems.append(f"{path}.headers.{key}: expected a string, got {type_name(value)}")
        elif any(ch in value for ch in "\r\n\x00"):
            c.problems.append(f"{path}.headers.{key}: a header value cannot hold a line break or NUL")
    drop = c.get(raw, "drop_params", path, list, [])
    c.check(all(isinstance(p, str) for p in drop), f"{path}.drop_params: expected an array of strings")
    base_url = c.get(raw, "base_url", path, str, None) or spec.base_url
    if spec.base_url_required and base_url is None:
        example = next((p.base_url for p in spec.presets if p.base_url), "https://HOST/v1")
        c.problems.append(f"{path}.base_url: required for kind {kind!r} (e.g. {example})")
    if base_url is not None:
        c.check(base_url.startswith(("http://", "https://")),
                f"{path}.base_url: expected an http:// or https:// URL, got {base_url!r}")
    provider = ProviderConfig(
        name=name,
        kind=kind,
        api_key=c.secret(raw, "api_key", path),
        base_url=base_url.rstrip("/") if base_url else None,
        headers={k: v for k, v in headers.items() if isinstance(v, str)},
        latency_ms=float(c.get(raw, "latency_ms", path, NUMBER, 0.0)),
        fail_rate=float(c.get(raw, "fail_rate", path, NUMBER, 0.0)),
        fail_status=c.get(raw, "fail_status", path, int, 500),
        drop_params=tuple(p for p in drop if isinstance(p, str)),
    )
    c.check(0.0 <= provider.fail_rate <= 1.0, f"{path}.fail_rate: must be between 0.0 and 1.0")
    c.check(400 <= provider.fail_status <= 599, f"{path}.fail_status: must be an HTTP error status (400-599)")
    c.check(provider.latency_ms >= 0, f"{path}.latency_ms: must not be negative")
    return provider


_MODEL_KEYS = {"targets", "strategy", "weights", "retries", "cache", "data_classes"}


def read_model(c: Checker, alias: str, raw: Any) -> dict[str, Any]:
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
    c.check(all(isinstance(w, NUMBER) and not isinstance(w, bool) and w >= 0 for w in weights),
            f"{path}.weights: expected an array of non-negative numbers")
    retries = c.get(raw, "retries", path, int, 0)
    c.check(0 <= retries <= 10, f"{path}.retries: must be between 0 and 10")
    classes = c.get(raw, "data_classes", path, list, [])
    c.check(all(isinstance(x, str) for x in classes), f"{path}.data_classes: expected an array of strings")
    return {
        "targets": [t for t in targets if isinstance(t, str) and t],
        "strategy": strategy,
        "weights": tuple(float(w) for w in weights if isinstance(w, NUMBER)),
        "retries": retries,
        "cache": c.get(raw, "cache", path, bool, True),
        "data_classes": tuple(x for x in classes if isinstance(x, str)),
    }


def expand_targets(c: Checker, raw_models: Mapping[str, dict[str, Any]],
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


_PRICE_RATES = ("input", "output", "cached_input", "cache_write", "cache_write_1h", "reasoning", "audio_input")
_TIER_RATES = ("input", "output", "cached_input", "cache_write", "cache_write_1h", "reasoning")


def _rates(c: Checker, entry: Mapping[str, Any], path: str, names: tuple[str, ...]) -> dict[str, float | None]:
    """Each of ``names`` as a finite, non-negative float (None when absent or wrong); ``input`` and ``output``
    are required."""
    out: dict[str, float | None] = {}
    for k in names:
        value = c.get(entry, k, path, NUMBER, None)
        if value is not None and not (0 <= value < float("inf")):
            c.problems.append(f"{path}.{k}: must be a non-negative number (USD per 1M tokens)")
            value = None
        out[k] = None if value is None else float(value)
        if k in ("input", "output") and k not in entry:
            c.problems.append(f"{path}.{k}: missing (USD per 1M tokens)")
    return out


def read_prices(c: Checker, raw: Any) -> dict[str, Price]:
    """``[prices]``: one table per ``"provider/model"`` or bare model name with the rates of :class:`Price` and an
    optional ``long_context = {above = N, input = …, output = …}`` tier."""
    raw = c.table(raw, "prices")
    out: dict[str, Price] = {}
    for name, entry in raw.items():
        path = f'prices."{name}"'
        entry = c.table(entry, path)
        c.unknown(entry, path, {*_PRICE_RATES, "long_context"})
        before = len(c.problems)
        values = _rates(c, entry, path, _PRICE_RATES)
        tier = None
        if "long_context" in entry:
            tier_path = f"{path}.long_context"
            raw_tier = c.table(entry["long_context"], tier_path)
            c.unknown(raw_tier, tier_path, {"above", *_TIER_RATES})
            above = c.get(raw_tier, "above", tier_path, int, None)
            if above is None and "above" not in raw_tier:
                c.problems.append(f"{tier_path}.above: missing (the prompt size in tokens above which it applies)")
            elif above is not None and above < 0:
                c.problems.append(f"{tier_path}.above: must not be negative")
            rates = _rates(c, raw_tier, tier_path, _TIER_RATES)
            if len(c.problems) == before and above is not None:
                tier = LongContext(above, **{k: v for k, v in rates.items()})  # type: ignore[arg-type]
        if len(c.problems) == before and values["input"] is not None and values["output"] is not None:
            out[name] = Price(**values, long_context=tier)  # type: ignore[arg-type]
    return out
