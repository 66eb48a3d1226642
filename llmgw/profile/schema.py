"""The profile's schema: frozen dataclasses, and secrets that stay references until resolved.

Contract: a :class:`Secret` (``"env:NAME"`` / ``"file:PATH"``, or a discouraged literal) is resolved only by
:meth:`Secret.resolve` and never appears in ``repr``/``str`` or in any error message. Building these objects checks
nothing: :func:`llmgw.profile.parse_profile` validates a document and builds them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cache.config import CacheConfig
from ..providers.spec import KINDS, SPECS

if TYPE_CHECKING:
    from ..guardrails.rules import Rule

PROVIDER_KINDS = KINDS   # the registry's (llmgw.providers.spec)
STRATEGIES = ("fallback", "loadbalance", "least-latency")
DEFAULT_BASE_URLS: Mapping[str, str] = {kind: spec.base_url for kind, spec in SPECS.items() if spec.base_url}
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
    default_max_tokens: int = 4096        # the output limit reserved and sent for a limited request that has none
    metrics_auth: bool = False            # /metrics needs the admin key
    allowed_hosts: tuple[str, ...] = ()   # Host names served besides loopback ones when no keys exist
    header_timeout_s: float = 15.0        # a new connection's request headers must arrive within this
    body_timeout_s: float = 60.0          # a request's whole body must arrive within this
    keepalive_timeout_s: float = 30.0     # an idle kept-alive client connection is closed after this
    max_connections: int = 4096           # client connections served at once per process; more get a 503


@dataclass(frozen=True)
class RoutingConfig:
    """How hard the router tries: the retry budget and the per-target circuit breaker."""

    retry_budget: float = 0.2      # extra attempts (retries and fallbacks) allowed per request, on average
    retry_reserve: int = 10        # extra attempts allowed before the budget has earned any
    cooldown_failures: int = 3     # consecutive failures that take a target out of rotation
    cooldown_s: float = 30.0       # how long it stays out before one probe request may try it again


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class StateConfig:
    url: str = "sqlite:///~/.llmgw/llmgw.db"
    shared: str | None = None
    password: Secret | None = None    # the PostgreSQL password (``env:``/``file:``), never in the url
    dir: str | None = None            # the local state folder with a postgresql:// url (default ~/.llmgw)

    @property
    def is_postgres(self) -> bool:
        """Whether the request log, minted keys and spend live in PostgreSQL."""
        return self.url.startswith(POSTGRES_SCHEMES)

    @property
    def db_path(self) -> Path:
        """The SQLite file the request log lives in. With a postgresql:// url the log is not in a file: this is
        ``llmgw.db`` in the local state folder (``dir``), whose folder holds the log's spool, the cache and the
        workers' files; the log itself is read through :mod:`llmgw.store.log_backend`."""
        if self.is_postgres:
            return Path(self.dir or "~/.llmgw").expanduser() / "llmgw.db"
        return Path(self.url.removeprefix("sqlite:///")).expanduser()


@dataclass(frozen=True)
class TelemetryConfig:
    """``[telemetry]``: OpenTelemetry traces sent over OTLP/HTTP (protobuf); off when ``otlp_endpoint`` is None.
    ``otlp_endpoint`` is the collector's base URL (``/v1/traces`` is appended unless it ends with it already);
    ``headers`` go with every export (their values are secrets: ``env:``/``file:``); ``sample_ratio`` is the share
    of new traces recorded (a client's ``traceparent`` decides for the traces it continues)."""

    otlp_endpoint: str | None = None
    service_name: str = "llmgw"
    headers: Mapping[str, Secret] = field(default_factory=dict)
    sample_ratio: float = 1.0

    @property
    def enabled(self) -> bool:
        return self.otlp_endpoint is not None


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

    @cached_property
    def name(self) -> str:
        """``provider/model`` (made once: the router and the meter read it several times per request)."""
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
class LongContext:
    """The prices of a whole request whose prompt (``input_tokens``: cached and cache-written tokens included) is
    above ``above`` tokens: every token of it, output included, is billed at these. A rate left ``None`` keeps the
    base price's."""

    above: int
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    cache_write_1h: float | None = None
    reasoning: float | None = None


@dataclass(frozen=True)
class Price:
    """USD per one million tokens. ``input``: a prompt token neither read from nor written to the provider's
    prompt cache; ``cached_input``: one read from it (absent: billed as input); ``cache_write``: one written to it
    (Anthropic's 5-minute write; absent: billed as input); ``cache_write_1h``: one written with a 1-hour lifetime
    (absent: billed as ``cache_write``); ``output``: a completion token; ``reasoning``: a hidden reasoning token
    (absent: billed as output, as every shipped provider does); ``audio_input``: an audio prompt token (listed;
    see docs/pricing.md); ``long_context``: the tier above a prompt size."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    cache_write_1h: float | None = None
    reasoning: float | None = None
    audio_input: float | None = None
    long_context: LongContext | None = None


ALERT_KINDS = ("budget", "anomaly")
ALERT_PERIODS = ("hour", "day", "week")


@dataclass(frozen=True)
class AlertConfig:
    """One ``[[alerts]]`` entry (see docs/alerts.md). ``kind = "budget"``: fire when a team's or key's spend crosses
    each share in ``at`` of its daily or monthly budget, once per budget period. ``kind = "anomaly"``: fire when a
    group's (``by``: team, key) spend over the last ``window_s`` is at least ``factor`` times what its own history
    (the ``history_s`` before) spends in such a window and ``min_usd`` above it; and, unless ``loop_count`` is 0,
    when one key sends the same last user message ``loop_count`` times within ``loop_window_s``; each at most once
    per ``period``. ``teams``/``keys`` (None: all) narrow who is watched. ``webhook`` is a secret reference to a
    Slack-compatible incoming-webhook URL (None: the alert is logged and streamed only)."""

    index: int
    kind: str
    name: str = ""
    webhook: Secret | None = None
    teams: tuple[str, ...] | None = None
    keys: tuple[str, ...] | None = None
    at: tuple[float, ...] = (0.5, 0.8, 1.0)
    period: str = "day"
    factor: float = 3.0
    window_s: float = 900.0
    history_s: float = 7 * 86400.0
    min_usd: float = 1.0
    by: tuple[str, ...] = ("team", "key")
    loop_count: int = 20
    loop_window_s: float = 300.0

    @property
    def label(self) -> str:
        """How messages name this entry: its ``name``, else ``alerts[i]``."""
        return self.name or f"alerts[{self.index}]"


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
    cache: CacheConfig = field(default_factory=CacheConfig)   # [cache], validated (off when absent)
    guardrails: tuple[Rule, ...] = ()                          # [[guardrails]], parsed
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)  # [telemetry] (off when absent)
    alerts: tuple[AlertConfig, ...] = ()                       # [[alerts]]
    extra: Mapping[str, Any] = field(default_factory=dict)    # the raw [teams], [keys], [cache], [[guardrails]]
    source: str = "<built-in demo>"

    def secrets(self) -> list[tuple[str, Secret]]:
        """Every secret reference in the profile with its key path."""
        found = [(f"providers.{p.name}.api_key", p.api_key) for p in self.providers.values() if p.api_key]
        if self.server.admin_key:
            found.append(("server.admin_key", self.server.admin_key))
        found += [(f"keys.{k.name}.key", k.key) for k in self.keys.values()]
        if self.state.password:
            found.append(("state.password", self.state.password))
        found += [(f"telemetry.headers.{name}", value) for name, value in self.telemetry.headers.items()]
        found += [(f"alerts[{a.index}].webhook", a.webhook) for a in self.alerts if a.webhook is not None]
        return found

    @property
    def governed(self) -> bool:
        """Whether clients must present a key (any team or key is configured; minted keys need a team)."""
        return bool(self.teams or self.keys)
