"""`llmgw serve` as a process, driven by the official google-genai SDK the way Gemini CLI drives a gateway
(``GOOGLE_GEMINI_BASE_URL`` and a key in ``x-goog-api-key``): same-format requests pass through untouched, other
targets are translated, and the virtual key never reaches the upstream or the log."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from llmgw.testing.fake_gemini import FakeGemini
from tests.conftest import CANARY

pytestmark = pytest.mark.e2e

UP_KEY = CANARY
CLIENT_KEY = "sk-llmgw-e2e-gemini-client-0123456789"


@pytest.fixture
async def upstream() -> Any:
    async with FakeGemini(api_key=UP_KEY) as fake:
        yield fake


async def test_google_genai_sdk_against_llmgw_serve(serve: Any, upstream: FakeGemini) -> None:
    server = serve({"providers": {"google": {"kind": "gemini", "api_key": "env:E2E_GEMINI_KEY",
                                             "base_url": upstream.base_url},
                                  "mock": {"kind": "mock"}},
                    "models": {"gemini-2.5-pro": {"targets": ["google/gemini-2.5-pro"]},
                               "local": {"targets": ["mock/mock-model"]}},
                    "teams": {"agents": {}},
                    "keys": {"cli": {"key": "env:E2E_GEMINI_CLIENT_KEY", "team": "agents"}}},
                   env={"E2E_GEMINI_KEY": UP_KEY, "E2E_GEMINI_CLIENT_KEY": CLIENT_KEY})
    client = genai.Client(api_key=CLIENT_KEY, http_options=types.HttpOptions(base_url=server.url,
                                                                              api_version="v1beta"))
    config = types.GenerateContentConfig(
        system_instruction="You are a CLI agent.", temperature=0.1, max_output_tokens=200,
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=512),
        safety_settings=[types.SafetySetting(category=types.HarmCategory.HARM_CATEGORY_HARASSMENT,
                                             threshold=types.HarmBlockThreshold.BLOCK_NONE)])
    answer = await client.aio.models.generate_content(model="gemini-2.5-pro", contents="Explain gateways",
                                                      config=config)
    assert answer.text == "Echo: Explain gateways"
    sent = upstream.requests[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.5-pro:generateContent"
    thinking = sent["body"]["generationConfig"]["thinkingConfig"]   # as the SDK spelled it (versions differ)
    assert sorted(k.replace("_", "").lower() for k in thinking) == ["includethoughts", "thinkingbudget"]
    assert sorted(thinking.values()) == [True, 512]
    assert sent["body"]["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    assert sent["headers"]["x-goog-api-key"] == UP_KEY

    stream = await client.aio.models.generate_content_stream(model="gemini-2.5-pro", contents="stream it now",
                                                             config=config)
    chunks = [chunk async for chunk in stream]
    assert "".join(c.text or "" for c in chunks) == "Echo: stream it now" and len(chunks) >= 2
    assert chunks[-1].usage_metadata is not None and chunks[-1].usage_metadata.candidates_token_count == 4

    count = await client.aio.models.count_tokens(model="gemini-2.5-pro", contents="hi")
    assert count.total_tokens and upstream.requests[-1]["path"].endswith(":countTokens")
    local = await client.aio.models.generate_content(model="local", contents="translated please")
    assert local.text == "Mock answer: translated please" and local.usage_metadata.prompt_token_count

    upstream.fail_next(429, retry_after=3)
    with pytest.raises(errors.ClientError) as info:
        await client.aio.models.generate_content(model="gemini-2.5-pro", contents="x")
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    outsider = genai.Client(api_key="sk-not-a-key", http_options=types.HttpOptions(base_url=server.url))
    with pytest.raises(errors.ClientError) as refused:
        await outsider.aio.models.generate_content(model="local", contents="x")
    assert refused.value.code == 401 and refused.value.status == "UNAUTHENTICATED"
    await client.aio.aclose()
    await outsider.aio.aclose()

    assert server.stop() == 0
    conn = sqlite3.connect(server.db)
    rows = conn.execute("SELECT status, client_format, endpoint, stream, key FROM requests ORDER BY time").fetchall()
    everything = "".join(server.output) + repr(conn.execute("SELECT * FROM requests").fetchall())
    conn.close()
    assert rows == [(200, "gemini", "chat", 0, "cli"), (200, "gemini", "chat", 1, "cli"),
                    (200, "gemini", "count_tokens", 0, "cli"), (200, "gemini", "chat", 0, "cli"),
                    (429, "gemini", "chat", 0, "cli"), (401, "gemini", "chat", 0, "")]
    assert CLIENT_KEY not in everything and UP_KEY not in everything
