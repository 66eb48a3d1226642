"""/admin/events cannot be made to hold the traffic in memory: each subscriber's queue is bounded by bytes (bodies
included), the oldest records go first, and the reader is told how many it missed."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from llmgw.proxy.events import EventHub, events_handler


def record(i: int, body: int) -> dict[str, Any]:
    return {"id": f"req_{i:04d}", "time": 0.0, "status": 200, "error_message": None,
            "request": b'{"content": "' + b"x" * body + b'"}', "response": {"text": "y" * 10}}


async def test_a_stalled_bodies_subscriber_holds_at_most_its_byte_budget() -> None:
    hub = EventHub(max_bytes=1_000_000)
    stalled, light = hub.subscribe(bodies=True), hub.subscribe(bodies=False)
    for i in range(100):
        hub.publish(record(i, 300_000))   # 30 MB of bodies in all
    assert stalled.queued_bytes <= 1_000_000 and stalled.dropped >= 96
    assert light.dropped == 0            # without bodies the same records are small
    hub.publish(record(100, 2_000_000))  # larger than the budget on its own: not queued
    assert stalled.dropped >= 97
    hub.close()
    kept = [r["id"] async for r in stalled]
    assert kept == sorted(kept) and kept[-1] == "req_0099"   # the newest stay, in order
    assert len([r async for r in light]) == 101


async def test_the_http_reader_is_told_what_it_missed(aiohttp_client: Any) -> None:
    hub = EventHub(max_bytes=2_000_000)
    app = web.Application()
    app.router.add_get("/admin/events", events_handler(hub, None))
    client = await aiohttp_client(app)
    resp = await client.get("/admin/events?bodies=1")
    assert (await resp.content.readuntil(b"\n\n")).startswith(b": connected")
    for i in range(200):                  # the reader reads nothing meanwhile: 200 MB offered
        hub.publish(record(i, 1_000_000))
        if i % 20 == 0:
            await asyncio.sleep(0)
    (subscription,) = hub._subscribers
    assert subscription.queued_bytes <= 2_000_000 and subscription.dropped > 150
    seen = b""
    while b": dropped " not in seen:
        seen += await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)
    assert b"records (this reader was too slow)" in seen
    resp.close()
