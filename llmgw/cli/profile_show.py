"""The effective profile as data: what ``llmgw profile show`` prints.

Contract: :func:`effective` turns a loaded :class:`~llmgw.profile.Profile` back into the profile's own TOML keys
with every default filled in and alias references expanded to their targets. Secrets never appear: an
``env:``/``file:`` reference is shown as the reference (it names where the secret is, not the secret), a literal
value as :data:`MASK`. Absent optional values are left out (TOML has no null). Parsing the result gives the same
profile (apart from literal secrets).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..profile import Budget, KeyConfig, ModelConfig, Price, Profile, ProviderConfig, Secret, TeamConfig
from ..providers.spec import OFFLINE_KIND, spec_for
from ..store.log_backend import describe_url

MASK = "***"


def _secret(secret: Secret | None) -> str | None:
    if secret is None:
        return None
    return secret.ref if secret.ref.startswith(("env:", "file:")) else MASK


def _clean(table: Mapping[str, Any]) -> dict[str, Any]:
    """``table`` without its None values (and without empty tables and lists that mean "none")."""
    return {k: v for k, v in table.items() if v is not None and v != {} and v != ()}


def _budget(budget: Budget) -> dict[str, float] | None:
    return _clean({"daily": budget.daily, "monthly": budget.monthly}) or None


def _provider(p: ProviderConfig) -> dict[str, Any]:
    """A provider with its kind's default base URL; the mock's latency and failure knobs only for the mock."""
    table = {"kind": p.kind, "api_key": _secret(p.api_key), "base_url": p.base_url or spec_for(p.kind).base_url,
             "headers": dict(p.headers), "drop_params": list(p.drop_params) or None}
    if p.kind == OFFLINE_KIND:
        table |= {"latency_ms": p.latency_ms, "fail_rate": p.fail_rate, "fail_status": p.fail_status}
    return _clean(table)


def _model(m: ModelConfig) -> dict[str, Any]:
    return _clean({"targets": [t.name for t in m.targets], "strategy": m.strategy,
                   "weights": list(m.weights) or None, "retries": m.retries, "cache": m.cache,
                   "data_classes": list(m.data_classes) or None})


def _team(t: TeamConfig) -> dict[str, Any]:
    return _clean({"rpm": t.rpm, "tpm": t.tpm, "budget_usd": _budget(t.budget),
                   "models": None if t.models is None else list(t.models), "data_class": t.data_class})


def _key(k: KeyConfig) -> dict[str, Any]:
    return _clean({"key": _secret(k.key), "team": k.team, "rpm": k.rpm, "tpm": k.tpm,
                   "budget_usd": _budget(k.budget), "models": None if k.models is None else list(k.models)})


def _price(p: Price) -> dict[str, Any]:
    tier = p.long_context
    return _clean({"input": p.input, "output": p.output, "cached_input": p.cached_input,
                   "cache_write": p.cache_write, "cache_write_1h": p.cache_write_1h, "reasoning": p.reasoning,
                   "audio_input": p.audio_input,
                   "long_context": None if tier is None else _clean(dataclasses.asdict(tier))})


def _cache(profile: Profile) -> dict[str, Any] | None:
    c = profile.cache
    if not c.enabled:
        return None
    return _clean({"exact": c.exact, "semantic": c.semantic, "threshold": c.threshold, "ttl": c.ttl_s,
                   "max_mb": c.max_mb, "model": c.model, "allow_download": c.allow_download, "dir": c.dir,
                   "shared": c.shared, "word_threshold": c.word_threshold, "max_swaps": c.max_swaps})


def _telemetry(profile: Profile) -> dict[str, Any] | None:
    t = profile.telemetry
    if not t.enabled:
        return None
    return _clean({"otlp_endpoint": t.otlp_endpoint, "service_name": t.service_name, "sample_ratio": t.sample_ratio,
                   "headers": {name: _secret(value) for name, value in t.headers.items()}})


def effective(profile: Profile) -> dict[str, Any]:
    """The profile as TOML-ready data (see the module contract)."""
    s = profile.server
    data: dict[str, Any] = {
        "server": _clean({"host": s.host, "port": s.port, "workers": s.workers, "max_body_mb": s.max_body_mb,
                          "timeout_s": s.timeout_s, "connect_timeout_s": s.connect_timeout_s,
                          "first_token_timeout_s": s.first_token_timeout_s, "idle_timeout_s": s.idle_timeout_s,
                          "log_bodies": s.log_bodies, "admin_key": _secret(s.admin_key)}),
        "state": _clean({"url": describe_url(profile.state.url), "shared": profile.state.shared,
                         "password": _secret(profile.state.password), "dir": profile.state.dir}),
        "routing": {"retry_budget": profile.routing.retry_budget, "retry_reserve": profile.routing.retry_reserve,
                    "cooldown_failures": profile.routing.cooldown_failures,
                    "cooldown_s": profile.routing.cooldown_s},
        "providers": {name: _provider(p) for name, p in profile.providers.items()},
        "models": {alias: _model(m) for alias, m in profile.models.items()},
        "teams": {name: _team(t) for name, t in profile.teams.items()},
        "keys": {name: _key(k) for name, k in profile.keys.items()},
        "cache": _cache(profile),
        "guardrails": list(profile.extra.get("guardrails") or []),
        "prices": {name: _price(p) for name, p in profile.prices.items()},
        "telemetry": _telemetry(profile),
    }
    return {k: v for k, v in data.items() if v not in (None, {}, [])}
