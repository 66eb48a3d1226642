"""An upstream stream whose SSE line never ends is cut at the decoder's cap (16 MiB) as an upstream failure, and
the request falls back to the next target, instead of buffering the line whole."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from llmgw.profile import parse_profile
from llmgw.proxy.app import make_app
from llmgw.sse import MAX_LINE_BYTES

from .attacks import attack_sections, logged
from .upstream import AttackUpstream


def falling_back(tmp_path: Path, upstream: AttackUpstream) -> web.Application:
    """A gateway whose alias ``long`` tries the attacking upstream, then the mock."""
    sections = attack_sections(tmp_path / "llmgw.db", upstream.url, daily=None)
    sections["providers"]["mock"] = {"kind": "mock"}
    sections["models"]["long"] = {"targets": ["up/big", "mock/m"]}
    sections["teams"] = {}
    sections["keys"] = {}
    return make_app(parse_profile(sections))


async def test_an_endless_sse_line_is_an_upstream_failure_and_falls_back(aiohttp_client: Any, tmp_path: Path,
                                                                         upstream: AttackUpstream) -> None:
    upstream.endless_line = MAX_LINE_BYTES + 4 * 1024 * 1024
    client = await aiohttp_client(falling_back(tmp_path, upstream))
    resp = await client.post("/v1/chat/completions", json={"model": "long", "stream": True,
                                                           "messages": [{"role": "user", "content": "hi"}]})
    body = await resp.read()
    assert resp.status == 200 and b"[DONE]" in body
    assert resp.headers["x-llmgw-target"] == "mock/m" and resp.headers["x-llmgw-attempts"] == "2"
    await client.close()
    attempts = logged(tmp_path / "llmgw.db")[0]["attempts_json"]
    assert f"longer than {MAX_LINE_BYTES} bytes" in attempts and '"status":502' in attempts


async def test_an_endless_sse_line_mid_stream_ends_the_stream_with_an_error(aiohttp_client: Any, tmp_path: Path,
                                                                           upstream: AttackUpstream) -> None:
    """After the first event nothing can fall back: the client gets what came, then an error event, and the log
    the upstream failure (502)."""
    upstream.endless_line, upstream.endless_after_chunk = MAX_LINE_BYTES + 4 * 1024 * 1024, True
    client = await aiohttp_client(falling_back(tmp_path, upstream))
    async with asyncio.timeout(30):   # a stream left open would hang here
        resp = await client.post("/v1/chat/completions", json={"model": "long", "stream": True,
                                                               "messages": [{"role": "user", "content": "hi"}]})
        body = await resp.read()
    await client.close()
    assert resp.status == 200 and b"Hello" in body and b"[DONE]" not in body
    error = orjson.loads(body.rstrip().rsplit(b"data: ", 1)[1])["error"]
    assert "malformed event stream" in error["message"] and f"longer than {MAX_LINE_BYTES} bytes" in error["message"]
    [row] = logged(tmp_path / "llmgw.db")
    assert row["status"] == 502 and row["error"] == "upstream_error" and row["target"] == "up/big"
