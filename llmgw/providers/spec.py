"""The registry of provider kinds: one :class:`ProviderSpec` per kind, and the only place kinds are listed.

Profile validation (kinds, default base URLs, a required ``base_url``, a missing key), ``llmgw profile init``
(its ``--provider`` choices and starter entries), ``llmgw models`` (free kinds), ``llmgw check`` and the adapters
(default base URL, native formats, parameter table) all read it. Adding a provider kind is one adapter module in
this package and one :class:`ProviderSpec` line in :data:`SPECS`.

Contract: importing this module imports no adapter and nothing heavy; :meth:`ProviderSpec.adapter_class` imports
the adapter on first use. :data:`SPECS` keeps the order kinds are listed in messages and help texts.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from .params import PASS_THROUGH, ParamTable

if TYPE_CHECKING:
    from .base import ProviderFactory


@dataclass(frozen=True, slots=True)
class Preset:
    """A ready-made provider for ``llmgw profile init``: its name there (a ``--provider`` choice), the model the
    starter routes to, its base URL when the kind has none, whether it costs nothing (a local server: the
    starter prices its target at zero), and whether the starter includes it when no ``--provider`` is given."""

    name: str
    model: str
    base_url: str | None = None
    free: bool = False
    default: bool = False


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """Everything the gateway knows about one provider kind apart from its adapter's code."""

    kind: str
    adapter: str                   # "module:Class" in llmgw.providers, imported on first use
    native_formats: tuple[str, ...]  # the client wire formats it takes untranslated (llmgw.formats names); the
                                     # first is the one its own answers are in when no client format matches
    base_url: str | None = None    # the default; None: the kind has none, or it must be given (below)
    base_url_required: bool = False
    needs_key: bool = False
    api_key: str | None = None     # the key reference `profile init` writes and a missing key's hint names
    model: str | None = None       # the model `profile init` routes to
    presets: tuple[Preset, ...] = ()   # `profile init` choices; default: one named after the kind
    free: bool = False             # answers cost nothing unless [prices] says otherwise (`llmgw models`)
    init_default: bool = False     # in the starter profile when `profile init` is given no --provider
    params: ParamTable = PASS_THROUGH

    def adapter_class(self) -> ProviderFactory:
        """The adapter class, imported on first use."""
        module, _, name = self.adapter.partition(":")
        factory: ProviderFactory = getattr(importlib.import_module(f"{__package__}.{module}"), name)
        return factory

    def init_presets(self) -> tuple[Preset, ...]:
        """The ``llmgw profile init`` choices of this kind."""
        if self.presets:
            return self.presets
        return (Preset(self.kind, self.model, free=self.free, default=self.init_default),) if self.model else ()


# Parameters that change what the model must produce and that translated targets cannot honour (refused unless
# listed in drop_params), and hints without an equivalent there (dropped and reported).
ANTHROPIC_PARAMS = ParamTable(
    "Anthropic",
    refuses=("response_format", "logprobs", "top_logprobs", "audio", "modalities", "prediction", "logit_bias", "n"),
    drops=("seed", "presence_penalty", "frequency_penalty", "service_tier", "reasoning_effort", "store",
           "prompt_cache_key", "safety_identifier", "verbosity", "web_search_options"),
    ranges=MappingProxyType({"temperature": (0.0, 1.0)}),
)
GEMINI_PARAMS = ParamTable(
    "Gemini",
    refuses=("logprobs", "top_logprobs", "logit_bias", "audio", "modalities", "prediction", "n"),
    drops=("user", "metadata", "service_tier", "parallel_tool_calls", "reasoning_effort", "store",
           "prompt_cache_key", "safety_identifier", "verbosity", "web_search_options"),
    ranges=MappingProxyType({"temperature": (0.0, 2.0)}),
)

# The mock answers from the last user message: it cannot give several choices, follow a response format, or score
# tokens; tools it calls (deterministically) and hints it ignores harmlessly.
MOCK_PARAMS = ParamTable(
    "mock",
    refuses=("n", "response_format", "logprobs", "top_logprobs", "logit_bias", "audio", "modalities", "prediction"),
)


def _registry(*specs: ProviderSpec) -> Mapping[str, ProviderSpec]:
    return MappingProxyType({spec.kind: spec for spec in specs})


SPECS: Mapping[str, ProviderSpec] = _registry(
    ProviderSpec("openai", "openai:OpenAIProvider", ("openai", "responses"), base_url="https://api.openai.com/v1",
                 needs_key=True, api_key="env:OPENAI_API_KEY", model="gpt-4o-mini", init_default=True),
    ProviderSpec("anthropic", "anthropic:AnthropicProvider", ("anthropic",), base_url="https://api.anthropic.com",
                 needs_key=True, api_key="env:ANTHROPIC_API_KEY", model="claude-3-5-haiku-latest",
                 params=ANTHROPIC_PARAMS),
    ProviderSpec("gemini", "gemini:GeminiProvider", ("gemini",), base_url="https://generativelanguage.googleapis.com",
                 needs_key=True, api_key="env:GEMINI_API_KEY", model="gemini-2.0-flash", params=GEMINI_PARAMS),
    ProviderSpec("openai-compatible", "openai:OpenAIProvider", ("openai",), base_url_required=True,
                 presets=(Preset("local", "meta-llama/Llama-3.1-8B-Instruct", "http://127.0.0.1:8000/v1", free=True),
                          Preset("ollama", "llama3.1", "http://127.0.0.1:11434/v1", free=True))),
    ProviderSpec("mock", "mock:MockProvider", ("openai",), model="mock-model", free=True, params=MOCK_PARAMS),
)
KINDS: tuple[str, ...] = tuple(SPECS)
OFFLINE_KIND = "mock"
"""The built-in kind that needs no network and costs nothing: what ``llmgw smoke --offline`` swaps every provider
for."""


def kinds() -> tuple[str, ...]:
    """The provider kinds, in registry order (read at call time: :data:`SPECS` is all there is to change)."""
    return tuple(SPECS)


def spec_for(kind: str) -> ProviderSpec:
    """The spec of a provider kind; ``KeyError`` naming the known kinds when there is none."""
    try:
        return SPECS[kind]
    except KeyError:
        raise KeyError(f"unknown provider kind {kind!r} (one of {', '.join(kinds())})") from None


def init_presets() -> Mapping[str, tuple[ProviderSpec, Preset]]:
    """Every ``llmgw profile init --provider`` choice, by name, in registry order."""
    return {preset.name: (spec, preset) for spec in SPECS.values() for preset in spec.init_presets()}
