"""The client-format contract: what the server's handlers need from each wire format clients speak."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from ..errors import GatewayError
from ..exchange import Exchange


class ClientFormat(Protocol):
    """One client wire format (OpenAI Chat Completions, Anthropic Messages)."""

    name: str

    def parse(self, ex: Exchange, body: dict[str, Any]) -> None:
        """Validate the client's body (raise :class:`InvalidRequest` naming the field) and fill the exchange:
        ``client_body``, canonical ``body``, ``alias``, ``stream``, ``include_usage``."""

    def render_reply(self, ex: Exchange, headers: dict[str, str]) -> web.Response: ...

    async def render_stream(self, request: web.Request, ex: Exchange,
                            headers: dict[str, str]) -> web.StreamResponse: ...

    def render_error(self, error: GatewayError, headers: Mapping[str, str] | None = None) -> web.Response: ...
