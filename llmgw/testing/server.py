"""What every fake upstream shares: serving its aiohttp app on a free loopback port (as an async context manager
or from the command line), the settings every provider has, and the prologue every request goes through."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Final, NamedTuple, Self

import orjson
from aiohttp import web

from .wire import recorded_headers


class Received(NamedTuple):
    """A request as the fake read it (:meth:`FakeServer._receive`)."""

    body: Any  # the parsed JSON; None when not read, empty (see accepts_empty_body), too large or not JSON
    parsed: bool  # False when a body was read and is not JSON
    too_large: web.Response | None  # the answer to a body over max_request_bytes, when the fake gives one


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Answer = Callable[[web.Request, Any], Awaitable[web.StreamResponse]]


class FakeServer:
    """A fake upstream: its lifecycle, the settings every provider has, and the prologue of every request.

    Lifecycle: ``start()`` binds ``host:port`` (port 0 picks a free one, read back into :attr:`port`) and serves
    :meth:`make_app`; :attr:`base_url` is ``http://HOST:PORT`` plus the provider's ``url_suffix`` once started and
    raises ``RuntimeError`` before; ``close()`` is idempotent. ``async with`` starts and closes it.

    Settings: ``api_key`` (None accepts any or no key), ``chunk_delay_s`` (the pause before each stream event; a
    whole answer pauses as long as its stream would in total, :meth:`_pace`; may change between requests),
    ``record_requests``, the fixed answer text (:meth:`set_answer`) and the queue of failures
    (:meth:`queue_failures`, which each provider's ``fail_next`` fills).

    ``requests``: every request that reaches the fake, in arrival order, as ``{"method", "path", "query",
    "headers", "body"}``; ``query`` is a dict, ``headers`` a :class:`~.wire.RecordedHeaders` (lower-cased keys,
    lookups ignore case, a repeated header joined with ``", "``), ``body`` the parsed JSON or None (not read, or
    not JSON). Nothing is recorded when ``record_requests`` is False (long-running processes).

    The prologue (:meth:`_prologue`), in this order: read the body (when the endpoint takes one) and record the
    request; a body over ``max_request_bytes`` gets :meth:`_too_large`; a key other than ``api_key`` (as
    :meth:`_presented_key` finds it) gets :meth:`_refuse_key`; then :meth:`_check_headers`. Endpoints without a
    body stop there. Then a queued failure is taken and answered (:meth:`_failure_response`), a body that is not
    JSON gets :meth:`_invalid_json`, and last :meth:`_check_body`. Provider modules implement these hooks, list
    their endpoints in :meth:`_routes` (wrapped by :meth:`_endpoint`) and say what an unknown path gets
    (:meth:`_not_found`).
    """

    url_suffix: ClassVar[str] = ""
    max_request_bytes: ClassVar[int] = 64 * 1024 * 1024
    accepts_empty_body: ClassVar[bool] = False  # an empty body reads as None rather than as invalid JSON
    id_prefix: ClassVar[str] = ""  # ids are this, id_random_bytes random bytes in hex, then a counter
    id_random_bytes: ClassVar[int] = 5
    id_digits: ClassVar[int] = 19  # the counter's width

    def __init__(self, *, api_key: str | None = None, chunk_delay_s: float = 0.0, host: str = "127.0.0.1",
                 port: int = 0, record_requests: bool = True) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.chunk_delay_s = chunk_delay_s
        self.record_requests = record_requests
        self.requests: list[dict[str, Any]] = []
        self._answer: str | None = None
        self._calls_left: int | None = None  # answers the configured tool calls still make; None: until reset
        self._failures: deque[tuple[int, str, float | None]] = deque()
        self._ids = itertools.count(1)
        self._id_base = self.id_prefix + os.urandom(self.id_random_bytes).hex()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # -- configuration --------------------------------------------------------------------------------------

    def queue_failures(self, status: int, times: int, message: str, retry_after: float | None) -> None:
        """Make the next ``times`` calls answer ``status`` (the provider's ``fail_next`` says in which shape)."""
        if not 100 <= status <= 599:
            raise ValueError(f"not an HTTP status: {status}")
        if times < 1:
            raise ValueError("times must be at least 1")
        self._failures.extend([(status, message, retry_after)] * times)

    def set_answer(self, text: str | None) -> None:
        """Answer every call with ``text``; None goes back to the provider's default answer (``"Echo: "`` plus the
        last user message's text)."""
        self._answer = text

    def _calls_for(self, times: int | None) -> None:
        """Note for how many answers the tool calls being configured last (each provider's ``set_tool_calls``-like
        method calls this): ``times`` answers, then text again; None until they are reset. ``ValueError`` below 1."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        self._calls_left = times

    # -- used by the endpoints ------------------------------------------------------------------------------

    def _spend_calls(self) -> bool:
        """Count one answer made with the configured tool calls; True when it was the last of their ``times``
        (the provider then goes back to text)."""
        if self._calls_left is None:
            return False
        self._calls_left -= 1
        return self._calls_left == 0

    def _take_failure(self) -> tuple[int, str, float | None] | None:
        return self._failures.popleft() if self._failures else None

    def _next_id(self) -> str:
        """A fresh id: ``id_prefix``, this fake's random part, and a counter ``id_digits`` wide."""
        return f"{self._id_base}{next(self._ids):0{self.id_digits}d}"

    async def _pace(self, events: int) -> None:
        """Sleep as long as a stream of ``events`` events would take (nothing when ``chunk_delay_s`` is 0)."""
        if self.chunk_delay_s > 0:
            await asyncio.sleep(self.chunk_delay_s * events)

    async def _receive(self, request: web.Request, *, parse: bool) -> Received:
        """Read the body (when ``parse``) and record the request (see the class contract)."""
        body: Any = None
        parsed = True
        too_large = None
        if parse:
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                too_large = self._too_large()
                if too_large is None:
                    raise
            else:
                if raw or not self.accepts_empty_body:
                    try:
                        body = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        parsed = False
        if self.record_requests:
            self.requests.append({"method": request.method, "path": request.path, "query": dict(request.query),
                                  "headers": recorded_headers(request), "body": body})
        return Received(body, parsed, too_large)

    async def _prologue(self, request: web.Request, *, parse: bool) -> tuple[Any, web.Response | None]:
        """Receive the request and screen it (see the class contract); returns (body, early answer or None)."""
        body, parsed, too_large = await self._receive(request, parse=parse)
        if too_large is not None:
            return body, too_large
        if self.api_key is not None:
            key = self._presented_key(request)
            if not key or key != self.api_key:
                return body, self._refuse_key(key or None)
        refusal = self._check_headers(request)
        if refusal is not None or not parse:
            return body, refusal
        failure = self._take_failure()
        if failure is not None:
            return body, self._failure_response(*failure)
        if not parsed:
            return body, self._invalid_json()
        return body, self._check_body(body)

    def _endpoint(self, answer: Answer, *, parse: bool = True) -> Handler:
        """A request handler: :meth:`_prologue`, then ``answer(request, body)`` unless the prologue answered."""

        async def handle(request: web.Request) -> web.StreamResponse:
            body, early = await self._prologue(request, parse=parse)
            return early if early is not None else await answer(request, body)

        return handle

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        """Any other path: the prologue (without a body), then :meth:`_not_found`."""
        _, early = await self._prologue(request, parse=False)
        return early if early is not None else self._not_found(request)

    # -- provider hooks -------------------------------------------------------------------------------------

    def _routes(self) -> list[web.RouteDef]:
        """The provider's endpoints (handlers made with :meth:`_endpoint`)."""
        raise NotImplementedError

    def _presented_key(self, request: web.Request) -> str | None:
        """The API key the request carries, where the provider reads it; None or ``""`` without one."""
        raise NotImplementedError

    def _refuse_key(self, key: str | None) -> web.Response:
        """The answer to a request without a key (``key`` None) or with a key other than ``api_key``."""
        raise NotImplementedError

    def _check_headers(self, request: web.Request) -> web.Response | None:
        """The answer to a request missing a header the provider requires (after the key), or None."""
        return None

    def _failure_response(self, status: int, message: str, retry_after: float | None) -> web.Response:
        """The provider's answer to a queued failure."""
        raise NotImplementedError

    def _invalid_json(self) -> web.Response:
        """The provider's answer to a body that is not JSON."""
        raise NotImplementedError

    def _too_large(self) -> web.Response | None:
        """The provider's answer to a body over ``max_request_bytes``; None leaves it to aiohttp (413, unrecorded)."""
        return None

    def _check_body(self, body: Any) -> web.Response | None:
        """The answer to a body every endpoint of the provider refuses, or None."""
        return None

    def _not_found(self, request: web.Request) -> web.Response:
        """The provider's answer to an unknown path."""
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The fake's aiohttp application: :meth:`_routes`, then every other path to :meth:`_unknown`. The
        fake serves it itself; tests can also mount it with ``aiohttp_client``."""
        app = web.Application(client_max_size=self.max_request_bytes)
        app[FAKE] = self
        app.router.add_routes([*self._routes(), web.route("*", "/{tail:.*}", self._unknown)])
        return app

    @property
    def base_url(self) -> str:
        """The provider's API root as its SDKs and the gateway's ``base_url`` expect it."""
        if self._base_url is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._base_url

    async def start(self) -> None:
        if self._runner is not None:
            return
        runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        self._base_url = f"http://{self.host}:{self.port}{self.url_suffix}"

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


FAKE: Final = web.AppKey("llmgw_fake", FakeServer)  # the fake serving an application


def call_name(call: Mapping[str, Any], index: int, what: str) -> str:
    """The ``name`` of a tool call a test configures (``set_tool_calls`` and the like); ``ValueError``
    (``"WHAT INDEX needs a name"``) unless it is a non-empty string."""
    name = call.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} {index} needs a name")
    return name


def run_cli(factory: type[FakeServer], label: str, prog: str, argv: list[str] | None = None) -> None:
    """``python -m PROG --port N``: serve a fake upstream until SIGINT/SIGTERM, printing one line,
    ``fake LABEL listening on BASE_URL``, once it accepts connections. Nothing is recorded, so it can run under
    load indefinitely."""
    parser = argparse.ArgumentParser(prog=prog, description=f"Serve a fake {label} upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    parser.add_argument("--api-key", default=None, help="require this key (default: accept any)")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between stream events")
    args = parser.parse_args(argv)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        options: dict[str, Any] = {"api_key": args.api_key, "chunk_delay_s": args.chunk_delay, "host": args.host,
                                   "port": args.port, "record_requests": False}
        async with factory(**options) as fake:
            print(f"fake {label} listening on {fake.base_url}", flush=True)
            await stop.wait()

    try:
        import uvloop
    except ImportError:
        asyncio.run(serve())
    else:
        uvloop.run(serve())
