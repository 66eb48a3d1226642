"""What the server says to someone who finds it: ``GET /`` (name, version, endpoints, docs) and the answer to a
path it does not serve.

Contracts:
- :func:`landing` answers ``GET /`` with JSON: ``name``, ``version``, ``endpoints`` (``"METHOD PATH"`` →
  what it is, every client format's routes included) and ``docs``. It needs no key and says nothing about the
  profile (no aliases, providers or keys).
- :func:`unknown_path` turns a 404 or 405 of the router into an error in the format the path suggests: the format
  of the served route that the path ends with (``/v1/v1/messages`` → Anthropic's, with the hint to drop the
  extra ``/v1`` from the client's base URL), else of the served route it starts with, else the canonical format.
  Format names are never compared here: the format comes from :data:`llmgw.formats.FORMATS`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from aiohttp import web

from .. import __version__
from ..errors import GatewayError
from ..formats import FORMATS, WireFormat, canonical

DOCS = "README.md (quick start, commands, profile reference) and docs/ in the llmgw source; `llmgw --help`"

_GETS: dict[str, str] = {
    "GET /v1/models": "the profile's aliases (OpenAI and Anthropic SDKs)",
    "GET /health": "liveness, with the version",
    "GET /ready": "readiness: profile loaded, request log writable",
    "GET /metrics": "Prometheus metrics",
    "GET /admin/events": "server-sent events of finished requests (admin key once keys exist)",
}


def _served() -> Iterator[tuple[WireFormat, str, str]]:
    """Every client-format route: (format, path, endpoint kind)."""
    for wire in FORMATS.values():
        for route in wire.routes:
            yield wire, route.path, route.endpoint


def endpoints() -> dict[str, str]:
    """``"METHOD PATH"`` → what it serves, every client format's routes first."""
    posts = {f"POST {path}": f"{endpoint} ({wire.name} format)" for wire, path, endpoint in _served()}
    return {**posts, **_GETS}


async def landing(request: web.Request) -> web.Response:
    """``GET /``: who this is and what it serves."""
    return web.json_response({"name": "llmgw", "version": __version__,
                              "description": "a local AI gateway: OpenAI, Anthropic, Gemini SDKs in, any provider out",
                              "endpoints": endpoints(), "docs": DOCS},
                             dumps=lambda value: json.dumps(value, indent=2))  # read by people, in a browser


def _suggestion(path: str) -> tuple[WireFormat, str | None, str]:
    """The format ``path`` suggests, the served path it most likely meant, and the extra prefix before it."""
    exact = [wire for wire, served, _ in _served() if path == served]
    if exact:
        return exact[0], None, ""
    ends = [(wire, served) for wire, served, _ in _served() if path.endswith(served)]
    if ends:
        wire, served = max(ends, key=lambda pair: len(pair[1]))
        return wire, served, path[:-len(served)]
    starts = [(wire, served) for wire, served, _ in _served() if path.startswith(served + "/")]
    if starts:
        wire, served = max(starts, key=lambda pair: len(pair[1]))
        return wire, None, ""
    return canonical(), None, ""


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def unknown_path(request: web.Request, exc: web.HTTPException) -> web.Response:
    """The router's 404/405 (``exc``) for ``request`` in the format its path suggests, with a hint (see the
    module contract)."""
    wire, meant, extra = _suggestion(request.path)
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = " or ".join(sorted(exc.allowed_methods - {"HEAD"})) or "another method"
        message, code = f"{request.method} is not served at {request.path}; send {allowed}", "method_not_allowed"
    elif meant is not None:
        message, code = f"no endpoint at {request.path}: did you mean {meant}?", "not_found"
        if meant.startswith(extra + "/"):
            message += f" The SDK adds {extra} itself: use base_url={_origin(request)}"
        else:
            message += f" Remove {extra!r} from the client's base URL."
    else:
        message, code = f"no endpoint at {request.path}; `GET /` lists the endpoints", "not_found"
    return wire.render_error(GatewayError(message, status=exc.status, code=code))
