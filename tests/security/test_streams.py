"""An upstream stream whose SSE line never ends is cut at the decoder's cap (16 MiB) as an upstream failure, and
the request falls back to the next target, instead of buffering the line whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmgw.profile import parse_profile
from llmgw.proxy.app import make_app
from llmgw.sse import MAX_LINE_BYTES

from .attacks import attack_sections, logged
from .upstream import AttackUpstream


async def test_an_endless_sse_line_is_an_upstream_failure_and_falls_back(aiohttp_client: Any, tmp_path: Path,
                                                                         upstream: AttackUpstream) -> None:
    upstream.endless_line = MAX_LINE_BYTES + 4 * 1024 * 1024
    sections = attack_sections(tmp_path / "llmgw.db", upstream.url, daily=None)
    sections["providers"]["mock"] = {"kind": "mock"}
    sections["models"]["long"] = {"targets": ["up/big", "mock/m"]}
    sections["teams"] = {}
    sections["keys"] = {}
    client = await aiohttp_client(make_app(parse_profile(sections)))
    resp = await client.post("/v1/chat/completions", json={"model": "long", "stream": True,
                                                           "messages": [{"role": "user", "content": "hi"}]})
    body = await resp.read()
    assert resp.status == 200 and b"[DONE]" in body
    assert resp.headers["x-llmgw-target"] == "mock/m" and resp.headers["x-llmgw-attempts"] == "2"
    await client.close()
    attempts = logged(tmp_path / "llmgw.db")[0]["attempts_json"]
    assert f"longer than {MAX_LINE_BYTES} bytes" in attempts and '"status":502' in attempts
