"""The floor: the least an aiohttp proxy can do per request.

``python bench/forwarder.py --port N --upstream http://127.0.0.1:UP`` serves ``POST /v1/chat/completions`` by
posting the body unchanged to the upstream with one pooled ``aiohttp.ClientSession`` and answering with the
upstream's status and body; an SSE answer is streamed back chunk by chunk as it arrives. ``GET /health`` answers
200. No parsing, no validation, no logging: whatever llmgw does on top of this is its overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def _session(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
    app[SESSION] = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))
    yield
    await app[SESSION].close()


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    headers = {"Content-Type": "application/json"}
    async with request.app[SESSION].post(request.app[UPSTREAM], data=body, headers=headers) as upstream:
        content_type = upstream.headers.get("Content-Type", "application/json")
        if not content_type.startswith("text/event-stream"):
            return web.Response(status=upstream.status, body=await upstream.read(),
                                headers={"Content-Type": content_type})
        response = web.StreamResponse(status=upstream.status, headers={"Content-Type": content_type,
                                                                       "Cache-Control": "no-cache"})
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app(upstream: str) -> web.Application:
    """``upstream`` is the upstream's base URL, e.g. ``http://127.0.0.1:8001`` (``/v1/...`` is appended)."""
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/") + "/v1/chat/completions"
    app.cleanup_ctx.append(_session)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Minimal aiohttp forwarder (benchmark floor).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="upstream base URL, e.g. http://127.0.0.1:8001")
    args = parser.parse_args()
    with contextlib.suppress(ImportError):  # the same event loop as llmgw serve, so the floor is comparable
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(make_app(args.upstream), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
