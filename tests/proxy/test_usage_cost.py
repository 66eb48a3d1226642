"""Usage and cost in the log equal what the upstream reported, token for token, streamed and not, whichever
client format asked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmgw.exchange import Usage
from llmgw.pricing import PriceTable
from llmgw.profile import Target
from llmgw.testing import FakeOpenAI, prompt_tokens_for
from llmgw.testing.fake_anthropic import FakeAnthropic, anthropic_input_tokens_for

from .conftest import GatewayFactory, log_rows

KEY = "sk-usage-test"


@pytest.fixture
async def anthropic_up(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("FAKE_ANT_KEY", KEY)
    async with FakeAnthropic(api_key=KEY) as fake:
        fake.set_usage(cache_read=40, cache_write=7)
        yield fake


def _sse_json(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


@pytest.mark.parametrize("client", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_usage_with_cache_tokens_is_logged_exactly(
        gateway: GatewayFactory, anthropic_up: FakeAnthropic, tmp_path: Path, client: str, stream: bool) -> None:
    http = await gateway(providers={"ant": {"kind": "anthropic", "base_url": anthropic_up.base_url,
                                            "api_key": "env:FAKE_ANT_KEY"}},
                         models={"claude": {"targets": ["ant/claude-3-5-haiku-latest"]}})
    words = "please count every one of these words"
    if client == "openai":
        resp = await http.post("/v1/chat/completions", json={
            "model": "claude", "stream": stream, "messages": [{"role": "user", "content": words}]})
    else:
        resp = await http.post("/v1/messages", json={
            "model": "claude", "stream": stream, "max_tokens": 100, "messages": [{"role": "user", "content": words}]},
            headers={"anthropic-version": "2023-06-01"})
    assert resp.status == 200
    await resp.read()
    sent = anthropic_up.requests[-1]["body"]
    expected = Usage(input_tokens=anthropic_input_tokens_for(sent) + 40 + 7,
                     output_tokens=len(("Echo: " + words).split()), cached_tokens=40, cache_write_tokens=7)
    await http.close()
    [row] = log_rows(tmp_path)
    assert (row["input_tokens"], row["output_tokens"], row["cached_tokens"], row["cache_write_tokens"]) == (
        expected.input_tokens, expected.output_tokens, 40, 7)
    price = PriceTable.load().cost(Target("ant", "claude-3-5-haiku-latest"), expected)
    assert price > 0 and row["cost_usd"] == pytest.approx(price, rel=1e-12)


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_usage_is_logged_exactly_for_an_anthropic_client(
        gateway: GatewayFactory, upstream: FakeOpenAI, tmp_path: Path, stream: bool) -> None:
    http = await gateway(upstream=upstream.base_url)
    messages = [{"role": "user", "content": "how many tokens is this"}]
    resp = await http.post("/v1/messages", json={"model": "real", "stream": stream, "max_tokens": 50,
                                                 "messages": messages})
    text = await resp.text()
    sent = upstream.requests[-1]["body"]["messages"]
    expected = (prompt_tokens_for(sent), len(("Echo: " + messages[0]["content"]).split()))
    if stream:
        delta = [e for e in _sse_json(text) if e["type"] == "message_delta"][-1]
        told = (delta["usage"]["input_tokens"], delta["usage"]["output_tokens"])
    else:
        usage = json.loads(text)["usage"]
        told = (usage["input_tokens"], usage["output_tokens"])
    assert told == expected
    await http.close()
    [row] = log_rows(tmp_path)
    assert (row["input_tokens"], row["output_tokens"]) == expected
    price = PriceTable.load().cost(Target("up", "gpt-4o-mini"), Usage(*expected))
    assert row["cost_usd"] == pytest.approx(price, rel=1e-12)
