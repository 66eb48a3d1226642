"""The client wire formats and their registry.

Each format is one module with one :class:`~llmgw.formats.base.WireFormat` (see its contract); ``FORMATS`` lists
them by name and the server serves each one's ``routes``. Adding a client format is one module plus one line in
``_ALL`` below. Nothing outside a format's module branches on a format's name: it asks :func:`named`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ..exchange import CANONICAL
from .anthropic_messages import AnthropicMessages
from .base import Route, WireFormat
from .gemini_generate import GeminiGenerate
from .openai_chat import OpenAIChat
from .openai_responses import OpenAIResponses

_ALL: tuple[WireFormat, ...] = (OpenAIChat(), AnthropicMessages(), GeminiGenerate(), OpenAIResponses())

FORMATS: Mapping[str, WireFormat] = MappingProxyType({f.name: f for f in _ALL})
"""Every client format by name (the name is what exchanges, replies, events and log rows carry)."""


def named(name: str) -> WireFormat:
    """The format called ``name`` (a ``KeyError`` for a name no format has)."""
    return FORMATS[name]


def canonical() -> WireFormat:
    """The canonical format (OpenAI Chat Completions): the form inside the gateway, and the one errors of
    routes that belong to no format are written in."""
    return FORMATS[CANONICAL]


__all__ = ["FORMATS", "Route", "WireFormat", "canonical", "named"]
