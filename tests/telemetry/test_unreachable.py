"""A collector that is down never fails or slows a request: spans are dropped and counted, and shutdown is bounded."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from llmgw.telemetry.tracer import CLOSE_TIMEOUT_S, EXPORT_TIMEOUT_S

from .conftest import GatewayFactory


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_requests_do_not_wait_on_a_dead_collector(gateway: GatewayFactory,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    client = await gateway(telemetry={"otlp_endpoint": f"http://127.0.0.1:{closed_port()}"})
    chat = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
    started = time.perf_counter()
    for _ in range(40):
        resp = await client.post("/v1/chat/completions", json=chat)
        assert resp.status == 200
    assert time.perf_counter() - started < 5        # nothing waited on the export's retries
    await asyncio.sleep(1.5)          # the export thread tries (and fails) meanwhile
    with caplog.at_level(logging.INFO, logger="llmgw.telemetry"):
        closing = time.perf_counter()
        await client.close()
        assert time.perf_counter() - closing < CLOSE_TIMEOUT_S + EXPORT_TIMEOUT_S + 2
    lines = [r.getMessage() for r in caplog.records if r.name == "llmgw.telemetry"]
    assert any("span(s) dropped" in line and "not taken by the collector" in line for line in lines), lines
    # The OTLP exporter's own per-batch errors are kept out of the log.
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry") and r.levelno >= logging.ERROR]
