"""The TOML profile: parsed into frozen dataclasses, every problem reported with its key path.

Contract:
- ``load_profile(path)`` returns a :class:`Profile` or raises :class:`ProfileError` whose ``problems`` list names
  every problem found (not just the first), each as ``"key.path: what is wrong"``.
- Secrets (``"env:NAME"`` / ``"file:PATH"``) stay references inside the profile; they are resolved only by
  :meth:`Secret.resolve` and never appear in ``repr``/``str`` or in any error message.
- ``[cache]`` is validated into :attr:`Profile.cache` (a :class:`~llmgw.cache.config.CacheConfig`) and
  ``[[guardrails]]`` parsed into :attr:`Profile.guardrails` (:class:`~llmgw.guardrails.rules.Rule` s), once, at load
  time, their problems reported with the others; ``[teams]`` and ``[keys]`` are typed too. The raw tables stay in
  :attr:`Profile.extra`.
- Provider kinds and what each needs come from the registry, :mod:`llmgw.providers.spec`.

Modules: :mod:`.schema` (the dataclasses and :class:`Secret`), :mod:`.sections` (reading each section),
:mod:`.load` (finding, parsing and checking a whole profile). Everything is importable from here.
"""

from ..errors import ProfileError
from .load import host_problems, load_profile, parse_profile, secret_problems
from .schema import (
    DEFAULT_BASE_URLS,
    LOOPBACK_HOSTS,
    PROVIDER_KINDS,
    STRATEGIES,
    AlertConfig,
    Budget,
    KeyConfig,
    LongContext,
    ModelConfig,
    Price,
    Profile,
    ProviderConfig,
    RoutingConfig,
    Secret,
    SecretError,
    ServerConfig,
    StateConfig,
    Target,
    TeamConfig,
    TelemetryConfig,
)

__all__ = [
    "DEFAULT_BASE_URLS",
    "LOOPBACK_HOSTS",
    "PROVIDER_KINDS",
    "STRATEGIES",
    "AlertConfig",
    "Budget",
    "KeyConfig",
    "LongContext",
    "ModelConfig",
    "Price",
    "Profile",
    "ProfileError",
    "ProviderConfig",
    "RoutingConfig",
    "Secret",
    "SecretError",
    "ServerConfig",
    "StateConfig",
    "Target",
    "TeamConfig",
    "TelemetryConfig",
    "host_problems",
    "load_profile",
    "parse_profile",
    "secret_problems",
]
