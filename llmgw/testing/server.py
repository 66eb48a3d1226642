"""What every fake upstream shares: serving its aiohttp app on a free loopback port, as an async context manager."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections import deque
from typing import Any, ClassVar, Self

from aiohttp import web


class FakeServer:
    """Lifecycle of a fake upstream.

    Contract: ``start()`` binds ``host:port`` (port 0 picks a free one, read back into :attr:`port`) and serves
    :meth:`make_app`; :attr:`base_url` is ``http://HOST:PORT`` plus the provider's ``url_suffix`` once started and
    raises ``RuntimeError`` before; ``close()`` is idempotent.
    """

    url_suffix: ClassVar[str] = ""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._failures: deque[tuple[int, str, float | None]] = deque()

    def queue_failures(self, status: int, times: int, message: str, retry_after: float | None) -> None:
        """Make the next ``times`` calls answer ``status`` (the provider's ``fail_next`` says in which shape)."""
        if not 100 <= status <= 599:
            raise ValueError(f"not an HTTP status: {status}")
        if times < 1:
            raise ValueError("times must be at least 1")
        self._failures.extend([(status, message, retry_after)] * times)

    def _take_failure(self) -> tuple[int, str, float | None] | None:
        return self._failures.popleft() if self._failures else None

    def make_app(self) -> web.Application:
        raise NotImplementedError

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
