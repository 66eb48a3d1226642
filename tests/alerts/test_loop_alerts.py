"""Loop alerts: one key sending the same prompt over and over fires once; varied prompts do not."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from llmgw.alerts.loops import LoopDetector, prompt_digest
from llmgw.proxy.app import ALERTS, make_app

from .support import CI_KEY, OPS_KEY, Receiver, alert_profile, bearer, chat

LOOP = [{"kind": "anomaly", "webhook": "env:SLACK_WEBHOOK_URL", "loop_count": 20, "loop_window": "5m"}]


async def test_the_same_prompt_twenty_times_fires_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with Receiver() as hook:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", hook.url)
        async with TestClient(TestServer(make_app(alert_profile(tmp_path, LOOP)))) as client:
            engine = client.app[ALERTS]
            for n in range(30):   # near-identical: spacing, case and a counter differ
                prompt = f"Retry  the build, attempt {n}" if n % 2 else f"retry the build, ATTEMPT {n}"
                assert (await client.post("/v1/chat/completions", json=chat(prompt), headers=bearer(CI_KEY))
                        ).status == 200
                assert (await client.post("/v1/chat/completions", json=chat(f"question {'x' * n}"),
                                          headers=bearer(OPS_KEY))).status == 200
                if n % 7 == 0:
                    await engine.check()
            await engine.check()
            await engine.idle()
        texts = hook.texts()
    assert texts == ["llmgw: key ci sent the same prompt 20 times within 300s — a client stuck in a loop?"]


def test_detector_counts_within_the_window() -> None:
    detector = LoopDetector(3, 10.0)
    assert [detector.observe("k", "d", t) for t in (0.0, 5.0, 20.0, 21.0)] == [False, False, False, False]
    assert detector.observe("k", "d", 22.0) is True       # 20, 21, 22
    assert detector.observe("other", "d", 22.0) is False  # per key
    detector.prune(40.0)
    assert len(detector) == 0


def test_digest_reads_the_last_user_message_of_every_format() -> None:
    same = prompt_digest({"messages": [{"role": "user", "content": "old"}, {"role": "user", "content": "Fix it 3"}]})
    assert same is not None
    assert prompt_digest(orjson.dumps({"messages": [{"role": "system", "content": "s"},
                                                    {"role": "user", "content": "fix  IT 4"}]})) == same
    assert prompt_digest({"messages": [{"role": "user", "content": [{"type": "text", "text": "Fix it 5"}]}]}) == same
    assert prompt_digest({"contents": [{"parts": [{"text": "fix it 6"}]}]}) == same                     # Gemini
    assert prompt_digest({"input": "fix it 7"}) == same                                                 # Responses
    assert prompt_digest({"input": [{"role": "user", "content": [{"type": "input_text", "text": "fix it 8"}]}]}) == same
    assert prompt_digest({"messages": [{"role": "user", "content": "fix that"}]}) != same
    assert prompt_digest({"messages": [{"role": "assistant", "content": "fix it"}]}) is None
    assert prompt_digest(None) is None and prompt_digest(b"not json") is None
    assert prompt_digest(b'{"input": "' + b"x" * 100 + b'"}', max_bytes=50) is None
