"""Guardrails end to end: `llmgw serve` with PII redaction and a blocking rule, driven by both official SDKs.
The fake upstream never sees the PII, blocked requests never reach it, and restored answers parse in the SDKs."""

from __future__ import annotations

import sqlite3
from typing import Any

import anthropic
import openai
import pytest

from llmgw.testing import FakeAnthropic, FakeOpenAI
from tests.conftest import CANARY

pytestmark = pytest.mark.e2e

EMAIL = "canary.person@example.org"
CARD = "5555 5555 5555 4444"


async def test_pii_redacted_upstream_restored_for_clients_and_blocks_stay_local(serve: Any) -> None:
    async with FakeOpenAI() as oa, FakeAnthropic() as an:
        server = serve({
            "providers": {"oa": {"kind": "openai-compatible", "base_url": oa.base_url},
                          "an": {"kind": "anthropic", "base_url": an.base_url, "api_key": "env:E2E_ANT_KEY"}},
            "models": {"gpt": {"targets": ["oa/gpt-4o-mini"]}, "claude": {"targets": ["an/claude-haiku-4-5"]}},
            "guardrails": [
                {"name": "pii", "kind": "pii", "action": "redact", "restore": True},
                {"name": "codenames", "kind": "denylist", "terms": ["project zeus"], "action": "block"},
            ]}, env={"E2E_ANT_KEY": CANARY})
        prompt = f"My email is {EMAIL} and my card is {CARD}."
        oai = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
        ant = anthropic.AsyncAnthropic(base_url=server.url, api_key="x", max_retries=0)
        try:
            answer = await oai.chat.completions.create(model="gpt", messages=[{"role": "user", "content": prompt}])
            assert EMAIL in answer.choices[0].message.content and CARD in answer.choices[0].message.content
            stream = await oai.chat.completions.create(model="gpt", stream=True,
                                                       messages=[{"role": "user", "content": prompt}])
            streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert EMAIL in streamed
            async with ant.messages.stream(model="claude", max_tokens=200,
                                           messages=[{"role": "user", "content": prompt}]) as s:
                text = "".join([t async for t in s.text_stream])
            assert EMAIL in text and CARD in text

            with pytest.raises(openai.PermissionDeniedError) as blocked:
                await oai.chat.completions.create(model="gpt",
                                                  messages=[{"role": "user", "content": "status of Project Zeus?"}])
            assert "codenames" in str(blocked.value)
            with pytest.raises(anthropic.PermissionDeniedError):
                await ant.messages.create(model="claude", max_tokens=10,
                                          messages=[{"role": "user", "content": "project zeus"}])
        finally:
            await oai.close()
            await ant.close()
        sent = repr([r["body"] for r in oa.requests + an.requests])
        assert EMAIL not in sent and "5555" not in sent and "<EMAIL_1>" in sent
        assert "zeus" not in sent.lower(), "a blocked request reached a provider"
        assert len(oa.requests) == 2 and len(an.requests) == 1
    assert server.stop() == 0
    conn = sqlite3.connect(server.db)
    rows = conn.execute("SELECT status, request, response FROM requests ORDER BY time").fetchall()
    conn.close()
    assert [r[0] for r in rows] == [200, 200, 200, 403, 403]
    assert EMAIL not in repr(rows) and CARD not in repr(rows)
