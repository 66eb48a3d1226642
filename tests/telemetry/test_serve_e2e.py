"""`llmgw serve` as a real process with [telemetry]: its spans reach a real OTLP/HTTP collector, continue the
client's trace, and the upstream sees each attempt's traceparent."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from llmgw.testing import FakeOpenAI
from tests.conftest import CANARY
from tests.e2e.conftest import start_serve, write_profile

from .conftest import CLIENT, SERVER, Collector

pytestmark = pytest.mark.e2e

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


async def test_serve_exports_the_request_and_its_attempts(tmp_path: Path, collector: Collector) -> None:
    async with FakeOpenAI(api_key=CANARY) as upstream:
        upstream.fail_next(503)
        db = tmp_path / "llmgw.db"
        profile = write_profile(tmp_path / "profile.toml", {
            "state": {"url": f"sqlite:///{db}"},
            "providers": {"up": {"kind": "openai-compatible", "base_url": upstream.base_url,
                                 "api_key": "env:E2E_UP_KEY"}},
            "models": {"smart": {"targets": ["up/gpt-main", "up/gpt-backup"]}},
            "telemetry": {"otlp_endpoint": collector.url, "service_name": "llmgw-e2e"},
        })
        server = await asyncio.to_thread(start_serve, profile, db, env={"E2E_UP_KEY": CANARY})
        try:
            body = {"model": "smart", "messages": [{"role": "user", "content": "trace me"}]}
            async with aiohttp.ClientSession() as session, session.post(
                    f"{server.url}/v1/chat/completions", json=body,
                    headers={"traceparent": f"00-{TRACE}-{PARENT}-01"}) as resp:
                assert resp.status == 200
                usage = (await resp.json())["usage"]
                assert resp.headers["x-llmgw-attempts"] == "2"
        finally:
            code = await asyncio.to_thread(server.stop, 30.0, signal.SIGTERM)   # a graceful stop flushes the spans
        assert code == 0, "".join(server.output)
        spans = await collector.wait_for(3, timeout=5)
        assert len(spans) == 3, spans
        (root,) = collector.named(SERVER)
        attempts = sorted(collector.named(CLIENT), key=lambda s: s["attributes"]["llmgw.attempt"])
        assert root["trace_id"] == TRACE and root["parent_span_id"] == PARENT
        assert root["name"] == "chat smart" and root["resource"]["service.name"] == "llmgw-e2e"
        assert root["attributes"]["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
        assert root["attributes"]["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
        assert [a["parent_span_id"] for a in attempts] == [root["span_id"]] * 2
        assert [a["attributes"].get("http.response.status_code") for a in attempts] == [503, 200]
        sent = [r["headers"].get("traceparent") for r in upstream.requests]
        assert sent == [f"00-{TRACE}-{a['span_id']}-01" for a in attempts]
