"""The provider contract and the registry of provider kinds.

A provider adapter turns the canonical request (an OpenAI Chat Completions body, already validated) into one
upstream's wire format and its answers back into the canonical form:

- ``chat(ex, body, model) -> UpstreamReply`` — a whole answer;
- ``stream(ex, body, model) -> AsyncIterator[StreamEvent]`` — canonical ``chat.completion.chunk`` events as
  they arrive, the usage chunk included (the renderer decides whether the client sees it);
- ``embeddings(ex, body, model) -> UpstreamReply``.

Every upstream failure is raised as :class:`UpstreamFailure` — for streams, before the first event when the
upstream refuses the request, or mid-stream when it breaks. Adapters never raise anything else for upstream
trouble, never log secrets, and never read the client's key.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, Protocol

import aiohttp

from ..exchange import Exchange, StreamEvent, UpstreamReply
from ..profile import ProviderConfig


class UpstreamFailure(Exception):
    """An upstream did not answer usefully. ``status`` is its HTTP status, 0 for a connection failure."""

    def __init__(self, status: int, message: str, *, retry_after: float | None = None,
                 timeout: bool = False, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.timeout = timeout
        self.body = body

    @property
    def retryable(self) -> bool:
        """Worth another attempt (here or on another target): 408, 409, 429, 5xx, 529, resets, timeouts."""
        return self.status == 0 or self.timeout or self.status in (408, 409, 429) or self.status >= 500


class Provider(Protocol):
    """What the router needs from an adapter."""

    config: ProviderConfig

    async def chat(self, ex: Exchange, body: dict[str, Any], model: str) -> UpstreamReply: ...

    def stream(self, ex: Exchange, body: dict[str, Any], model: str) -> AsyncIterator[StreamEvent]: ...

    async def embeddings(self, ex: Exchange, body: dict[str, Any], model: str) -> UpstreamReply: ...


class ProviderContext:
    """What every adapter is built with: its config, the shared HTTP session, its resolved key, and a RNG."""

    def __init__(self, config: ProviderConfig, session: aiohttp.ClientSession, api_key: str | None,
                 rng: random.Random, timeout_s: float) -> None:
        self.config = config
        self.session = session
        self.api_key = api_key
        self.rng = rng
        self.timeout_s = timeout_s


ProviderFactory = Callable[[ProviderContext], Provider]


class ProviderBase:
    """Shared plumbing for adapters."""

    kind: ClassVar[str] = ""

    def __init__(self, ctx: ProviderContext) -> None:
        self.ctx = ctx
        self.config = ctx.config


def registry() -> dict[str, ProviderFactory]:
    """Provider kind -> adapter class. Imported lazily so that importing one adapter never imports all."""
    from .mock import MockProvider
    from .openai import OpenAIProvider

    return {
        "openai": OpenAIProvider,
        "openai-compatible": OpenAIProvider,
        "mock": MockProvider,
    }


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a ``Retry-After`` header given in seconds (HTTP dates are rare from APIs and ignored)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
