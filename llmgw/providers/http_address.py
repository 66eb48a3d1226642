"""Where the upstream client sends a request: the URL's parts (:class:`Destination`, parsed once per URL) and the
host's addresses (:class:`Resolver`, looked up once and kept for ``ttl_s``).

Contract: :class:`Destination` takes an ``http``/``https`` URL (anything else is ``aiohttp.InvalidURL``) and keeps
its host, port, whether it is TLS, the pool key ``(host, port, tls)``, and ``head``: the request line and ``Host``
header of a POST to it (the path percent-encoded, so nothing in a URL can end a line).
:meth:`Resolver.addresses` gives ``(family, address)`` pairs for ``host`` in the system resolver's order,
without duplicates; an IP literal is given back as it is, unresolved. A lookup is reused for ``ttl_s`` (300 s by
default, as aiohttp's client kept them), so that opening connections in a burst, or again after an upstream closed
idle ones, waits on no resolver. A failed lookup is not kept: it raises ``socket.gaierror`` (an ``OSError``).
At most :data:`HOSTS_KEPT` hosts are remembered; past that the memory starts afresh.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import aiohttp
from yarl import URL

DNS_TTL_S = 300.0
HOSTS_KEPT = 256


class Destination:
    """What a URL says about where and how to send a request, parsed once per URL."""

    __slots__ = ("head", "host", "key", "port", "tls")

    def __init__(self, url: str) -> None:
        parsed = URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.raw_host:
            raise aiohttp.InvalidURL(url)
        self.tls = parsed.scheme == "https"
        self.host = parsed.raw_host
        self.port = parsed.port or (443 if self.tls else 80)
        self.key = (self.host, self.port, self.tls)
        host = f"[{self.host}]" if ":" in self.host else self.host
        if parsed.explicit_port and parsed.port != (443 if self.tls else 80):
            host = f"{host}:{self.port}"
        path = parsed.raw_path_qs or "/"
        self.head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n".encode("ascii")


class Resolver:
    """Addresses per (host, port), kept for ``ttl_s`` (see the module contract)."""

    def __init__(self, ttl_s: float = DNS_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._known: dict[tuple[str, int], tuple[float, list[tuple[int, str]]]] = {}
        self.lookups = 0
        """How many times the system resolver was asked (for tests and diagnostics)."""

    async def addresses(self, host: str, port: int) -> list[tuple[int, str]]:
        try:
            ipaddress.ip_address(host.partition("%")[0])
            return [(0, host)]
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        now = loop.time()
        known = self._known.get((host, port))
        if known is not None and known[0] > now:
            return known[1]
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        self.lookups += 1
        found = list(dict.fromkeys((family, _address(family, sockaddr)) for family, _, _, _, sockaddr in infos))
        if len(self._known) >= HOSTS_KEPT:
            self._known.clear()
        self._known[host, port] = (now + self.ttl_s, found)
        return found


def _address(family: int, sockaddr: tuple[object, ...]) -> str:
    """The address of a ``getaddrinfo`` result as ``create_connection`` takes it (an IPv6 scope kept)."""
    address = str(sockaddr[0])
    if family == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3] and "%" not in address:
        address = f"{address}%{sockaddr[3]}"
    return address
