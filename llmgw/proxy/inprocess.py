"""Serving a profile in-process, for commands that send traffic through the real gateway (smoke, replay)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager

from aiohttp import web

from ..profile import Profile
from .app import make_app


@asynccontextmanager
async def serving(profile: Profile, *, fail_targets: Collection[str] = ()) -> AsyncIterator[str]:
    """Serve ``profile`` with :func:`~llmgw.proxy.app.make_app` on a free loopback port and yield its base URL. On exit
    the app shuts down as ``llmgw serve`` does, which flushes its request log."""
    runner = web.AppRunner(make_app(profile, fail_targets=fail_targets), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
