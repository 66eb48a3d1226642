"""The provider contract and the plumbing adapters share. Which adapter serves which kind is the registry's
business (:mod:`llmgw.providers.spec`).

A provider adapter turns the canonical request (an OpenAI Chat Completions body, already validated) into one
upstream's wire format and its answers back into the canonical form:

- ``build(body, model, *, stream, ...) -> (payload, dropped)`` — pure (no I/O, the exchange untouched): the upstream
  payload and the names of the parameters left out (:mod:`llmgw.providers.params`); ``chat`` and ``stream`` send
  what it builds and record ``dropped`` on the exchange (:func:`record_dropped`);
- ``chat(ex, body, model) -> UpstreamReply`` — a whole answer;
- ``stream(ex, body, model) -> AsyncIterator[StreamEvent]`` — canonical ``chat.completion.chunk`` events as
  they arrive, the usage chunk included (the renderer decides whether the client sees it);
- ``embeddings(ex, body, model) -> UpstreamReply``;
- ``count_tokens(ex, model) -> dict | None`` — the upstream's count of a request in the adapter's native format,
  or None: no upstream count, estimate locally (the default).

An adapter that ``speaks(client_format)`` — the client's format is one of its kind's ``native_formats`` in the
registry — gets the client's own body (:meth:`ProviderBase.native_body`) and may pass it through untranslated.

Every upstream failure is raised as :class:`UpstreamFailure` — for streams, before the first event when the
upstream refuses the request, or mid-stream when it breaks. Adapters never raise anything else for upstream
trouble, never log secrets, and never read the client's key.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Protocol

import aiohttp
import orjson

from ..exchange import Exchange, StreamEvent, UpstreamReply
from ..profile import ProviderConfig
from .http_client import UpstreamClient, UpstreamResponse
from .spec import ProviderSpec, spec_for


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

    def speaks(self, client_format: str) -> bool: ...

    async def chat(self, ex: Exchange, body: dict[str, Any], model: str) -> UpstreamReply: ...

    def stream(self, ex: Exchange, body: dict[str, Any], model: str) -> AsyncIterator[StreamEvent]: ...

    async def embeddings(self, ex: Exchange, body: dict[str, Any], model: str) -> UpstreamReply: ...

    async def count_tokens(self, ex: Exchange, model: str) -> dict[str, Any] | None: ...


class ProviderContext:
    """What every adapter is built with: its config, the shared upstream client, its resolved key, a RNG, and the
    socket timeouts for whole answers (``timeout``: connect) and streams (``stream_timeout``: connect, and idle
    between reads). Attempt and total deadlines are the router's."""

    def __init__(self, config: ProviderConfig, session: UpstreamClient, api_key: str | None,
                 rng: random.Random, *, connect_timeout_s: float = 10.0, idle_timeout_s: float = 120.0) -> None:
        self.config = config
        self.session = session
        self.api_key = api_key
        self.rng = rng
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s)
        self.stream_timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s,
                                                    sock_read=idle_timeout_s)


ProviderFactory = Callable[[ProviderContext], Provider]


class ProviderBase:
    """Shared plumbing for adapters: the kind's :class:`ProviderSpec`, its native formats and base URL."""

    def __init__(self, ctx: ProviderContext) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.spec: ProviderSpec = spec_for(ctx.config.kind)
        self.native_formats: tuple[str, ...] = self.spec.native_formats   # clients of these pass through
        self.native_format: str = self.native_formats[0]    # the format of the upstream's own answers
        base_url = ctx.config.base_url or self.spec.base_url
        if base_url is None and self.spec.base_url_required:
            raise ValueError(f"providers.{ctx.config.name}.base_url: required for kind {ctx.config.kind!r}")
        self.base_url: str = (base_url or "").rstrip("/")

    def speaks(self, client_format: str) -> bool:
        """Whether a client of ``client_format`` is passed through untranslated (one of ``native_formats``)."""
        return client_format in self.native_formats

    def native_body(self, ex: Exchange) -> dict[str, Any] | None:
        """The client's own body when this adapter speaks the client's format, else None."""
        return ex.client_body if ex.client_format in self.native_formats else None

    async def count_tokens(self, ex: Exchange, model: str) -> dict[str, Any] | None:
        """No upstream count: the caller estimates locally."""
        return None

    async def failure_from(self, resp: UpstreamResponse) -> UpstreamFailure:
        """Turn a non-200 answer into an :class:`UpstreamFailure` with the upstream's own message."""
        return UpstreamFailure(resp.status, f"HTTP {resp.status}")

    async def post(self, url: str, payload: bytes, headers: Mapping[str, str]) -> bytes:
        """POST a JSON payload for a whole answer; its body, or an :class:`UpstreamFailure`."""
        try:
            async with self.ctx.session.post(url, data=payload, headers=headers, timeout=self.ctx.timeout) as resp:
                if resp.status != 200:
                    raise await self.failure_from(resp)
                return await resp.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_failure(exc) from None


def record_dropped(ex: Exchange, dropped: Iterable[str]) -> None:
    """Note on the exchange what a build left out, once per name (a retried exchange builds again)."""
    ex.dropped_params.extend(name for name in dropped if name not in ex.dropped_params)


def encode(ex: Exchange, built: tuple[dict[str, Any], list[str]]) -> bytes:
    """A ``build`` result as the bytes to send, its dropped names recorded on ``ex``."""
    payload, dropped = built
    record_dropped(ex, dropped)
    return orjson.dumps(payload)


def adapter_for(kind: str) -> ProviderFactory:
    """The adapter class for a provider kind, imported on first use (see :mod:`llmgw.providers.spec`)."""
    return spec_for(kind).adapter_class()


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a ``Retry-After`` header given in seconds (HTTP dates are rare from APIs and ignored)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


async def error_body(resp: UpstreamResponse) -> Any:
    """The parsed body of an upstream's error answer, or None when it has none or it is not JSON."""
    try:
        raw = await resp.read()
        return orjson.loads(raw) if raw else None
    except (aiohttp.ClientError, orjson.JSONDecodeError):
        return None


def loads_object(raw: bytes) -> dict[str, Any]:
    """An upstream's JSON object, or an :class:`UpstreamFailure` (502) when it is not one."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamFailure(502, "upstream answered with invalid JSON") from None
    if not isinstance(value, dict):
        raise UpstreamFailure(502, "upstream answered with a JSON value that is not an object")
    return value


def transport_failure(exc: BaseException) -> UpstreamFailure:
    """A connection error or timeout as an :class:`UpstreamFailure` (status 0; never the URL or a key)."""
    if isinstance(exc, asyncio.TimeoutError):
        return UpstreamFailure(0, "upstream timed out", timeout=True)
    return UpstreamFailure(0, f"upstream connection failed: {type(exc).__name__}")
