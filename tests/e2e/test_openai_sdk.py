"""`llmgw serve` as a real process, driven by the official openai SDK, in front of a fake OpenAI upstream
that speaks the exact wire format."""

from __future__ import annotations

import sqlite3
from typing import Any

import openai
import pytest

from llmgw.testing import FakeOpenAI, answer_for
from tests.conftest import CANARY

pytestmark = pytest.mark.e2e

UP_KEY = CANARY
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a gateway?"}]


def profile(upstream_url: str) -> dict[str, Any]:
    return {
        "server": {"log_bodies": True},
        "providers": {"openai": {"kind": "openai", "api_key": "env:E2E_OPENAI_KEY", "base_url": upstream_url},
                      "vllm": {"kind": "openai-compatible", "base_url": upstream_url}},
        "models": {"fast": {"targets": ["openai/gpt-4o-mini"]},
                   "local": {"targets": ["vllm/meta-llama/Llama-3.1-8B-Instruct"]},
                   "embed": {"targets": ["openai/text-embedding-3-small"]}},
    }


@pytest.fixture
async def upstream() -> Any:
    async with FakeOpenAI() as fake:
        yield fake


def rows(db: Any) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    out = conn.execute("SELECT * FROM requests ORDER BY time").fetchall()
    conn.close()
    return out


async def test_openai_sdk_against_llmgw_serve(serve: Any, upstream: FakeOpenAI) -> None:
    server = serve(profile(upstream.base_url), env={"E2E_OPENAI_KEY": UP_KEY})
    client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="anything", max_retries=0)

    raw = await client.chat.completions.with_raw_response.create(model="fast", messages=MESSAGES, max_tokens=50)
    completion = raw.parse()
    assert completion.choices[0].message.content == answer_for(MESSAGES)
    assert raw.headers["x-llmgw-target"] == "openai/gpt-4o-mini"
    assert upstream.requests[-1]["body"]["model"] == "gpt-4o-mini"
    assert upstream.requests[-1]["headers"]["Authorization"] == f"Bearer {UP_KEY}"

    stream = await client.chat.completions.create(model="fast", messages=MESSAGES, stream=True)
    parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    assert len(parts) > 2 and "".join(parts) == answer_for(MESSAGES)

    stream = await client.chat.completions.create(model="local", messages=MESSAGES, stream=True,
                                                  stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(answer_for(MESSAGES).split())
    assert "Authorization" not in upstream.requests[-1]["headers"], "no key configured for the vLLM provider"

    emb = await client.embeddings.create(model="embed", input=["a", "b"])
    assert len(emb.data) == 2
    assert sorted([m.id async for m in client.models.list()]) == ["embed", "fast", "local"]

    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="missing", messages=MESSAGES)
    upstream.fail_next(500)
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="fast", messages=MESSAGES)
    assert info.value.status_code == 502
    await client.close()

    assert server.stop() == 0
    logged = rows(server.db)
    assert [r["status"] for r in logged] == [200, 200, 200, 200, 404, 502]
    assert logged[1]["output_tokens"] == len(answer_for(MESSAGES).split())  # usage captured from the stream
    everything = "".join(server.output) + "".join(str(tuple(r)) for r in logged)
    assert UP_KEY not in everything
