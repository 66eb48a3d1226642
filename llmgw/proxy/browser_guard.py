"""The guard of an open local proxy against browsers: a gateway without keys must not become the proxy of every
web page its user visits.

Contract (:func:`browser_guard`, installed by ``make_app`` only when the profile has no ``[keys]``/``[teams]``):
- ``Host``: only loopback names (``localhost`` and ``*.localhost``, loopback IP literals such as ``127.0.0.1``
  and ``[::1]``) and the names in ``[server] allowed_hosts`` are served. A page on ``evil.example`` whose name is
  re-bound to 127.0.0.1 (DNS rebinding) is refused, so it can neither call the models nor read
  ``/admin/events``. A request without a ``Host`` header (not a browser) passes.
- ``Origin``: a request that carries one is a browser's; it is served only when the origin's host is allowed as
  above (``Origin: null`` never is). Cross-site pages cannot spend the user's upstream keys.
- ``Content-Type``: a POST whose body a web page may send to any site without asking first (a CORS "simple"
  request: ``text/plain``, ``application/x-www-form-urlencoded``, ``multipart/form-data``) is refused. Other
  types (JSON, or none) pass: a page can send those only after a CORS preflight, which the gateway never grants.
- A refusal is a 403 in OpenAI's error format naming what was refused and how to allow it; nothing reaches the
  handlers (no exchange, no log row, no upstream call).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from aiohttp import web

from ..errors import GatewayError
from ..formats import canonical
from ..profile import LOOPBACK_HOSTS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]
_SHOWN = 80   # characters of a refused value repeated in the message


def host_name(value: str) -> str:
    """The host of a ``Host`` header value or a URL's netloc: without port or brackets, lower-case, no final dot."""
    value = value.strip().lower()
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def is_allowed(name: str, allowed: frozenset[str]) -> bool:
    """Whether ``name`` (from :func:`host_name`) is served: listed, a loopback name, or a loopback IP literal."""
    if name in allowed or name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


_SIMPLE_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})


def is_simple_type(content_type: str) -> bool:
    """Whether a page may POST this content type cross-site without a CORS preflight (a non-JSON body)."""
    return content_type.partition(";")[0].strip().lower() in _SIMPLE_TYPES


def refusal(request: web.Request, allowed: frozenset[str]) -> GatewayError | None:
    """Why ``request`` must not be served by an open proxy, or None (see the module contract)."""
    host = request.headers.get("Host")
    if host is not None and not is_allowed(host_name(host), allowed):
        return GatewayError(
            f"host {host[:_SHOWN]!r} is not served: with no keys configured the gateway answers only loopback names"
            " and [server] allowed_hosts (a guard against DNS rebinding)", status=403, code="host_not_allowed")
    origin = request.headers.get("Origin")
    if origin is not None:
        try:
            origin_host = urlsplit(origin.strip()).hostname or ""
        except ValueError:
            origin_host = ""
        if origin.strip() == "null" or not is_allowed(origin_host.rstrip("."), allowed):
            return GatewayError(
                f"cross-site request from origin {origin[:_SHOWN]!r} refused: with no keys configured only loopback"
                " origins and [server] allowed_hosts may call the gateway", status=403, code="origin_not_allowed")
    content_type = request.headers.get("Content-Type")
    if request.method == "POST" and content_type is not None and is_simple_type(content_type):
        return GatewayError(
            f"content type {content_type[:_SHOWN]!r} refused: send the body as Content-Type: application/json",
            status=403, code="content_type_not_allowed")
    return None


def browser_guard(allowed_hosts: Iterable[str] = ()) -> Middleware:
    """The aiohttp middleware that refuses what :func:`refusal` names; ``allowed_hosts`` adds to the loopback
    names (``[server] allowed_hosts``)."""
    allowed = frozenset({*LOOPBACK_HOSTS, *(host_name(h) for h in allowed_hosts)})

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        problem = refusal(request, allowed)
        if problem is not None:
            return canonical().render_error(problem)
        return await handler(request)

    return guard
