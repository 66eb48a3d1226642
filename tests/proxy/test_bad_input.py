"""Bad input: a precise 4xx in OpenAI's format, no upstream call, no traceback, the worker keeps serving,
and the rejection is logged."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from llmgw.testing import FakeOpenAI

from .conftest import GatewayFactory, log_rows

OK = {"role": "user", "content": "hi"}


def deep(levels: int, pad: int = 0) -> str:
    """A chat body with ``levels`` nested objects in its metadata (and a user of ``pad`` brackets: a long body)."""
    return '{"model": "real", "messages": [{"role": "user", "content": "x"}], "user": "' + "[{" * pad + \
        '", "metadata": ' + '{"a": ' * levels + "1" + "}" * levels + "}"


CASES = [
    ("malformed", b'{"model": "real", "messages": [', 400, "invalid_json", "not valid JSON"),
    ("truncated", b'{"model": "re', 400, "invalid_json", "not valid JSON"),
    ("empty", b"", 400, "invalid_json", "empty"),
    ("array body", b'[{"model": "real"}]', 400, "invalid_json", "JSON object"),
    ("string body", b'"hello"', 400, "invalid_json", "JSON object"),
    ("NaN", b'{"model": "real", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
     400, "invalid_json", "not valid JSON"),
    ("Infinity", b'{"model": "real", "messages": [{"role": "user", "content": "x"}], "temperature": Infinity}',
     400, "invalid_json", "not valid JSON"),
    ("missing model", json.dumps({"messages": [OK]}).encode(), 400, "invalid_value", "model: required"),
    ("model not a string", json.dumps({"model": 3, "messages": [OK]}).encode(), 400, "invalid_value", "model"),
    ("missing messages", json.dumps({"model": "real"}).encode(), 400, "invalid_value", "messages: required"),
    ("messages not a list", json.dumps({"model": "real", "messages": "hi"}).encode(), 400, "invalid_value",
     "messages"),
    ("empty messages", json.dumps({"model": "real", "messages": []}).encode(), 400, "invalid_value", "messages"),
    ("bad role", json.dumps({"model": "real", "messages": [{"role": "wizard", "content": "x"}]}).encode(),
     400, "invalid_value", "messages[0].role"),
    ("bad content", json.dumps({"model": "real", "messages": [{"role": "user", "content": 5}]}).encode(),
     400, "invalid_value", "messages[0].content"),
    ("stream not bool", json.dumps({"model": "real", "messages": [OK], "stream": "yes"}).encode(),
     400, "invalid_value", "stream"),
    ("temperature type", json.dumps({"model": "real", "messages": [OK], "temperature": "hot"}).encode(),
     400, "invalid_value", "temperature"),
    ("max_tokens negative", json.dumps({"model": "real", "messages": [OK], "max_tokens": -1}).encode(),
     400, "invalid_value", "max_tokens"),
    ("max_tokens bool", json.dumps({"model": "real", "messages": [OK], "max_tokens": True}).encode(),
     400, "invalid_value", "max_tokens"),
    ("too deep", deep(100).encode(), 400, "nesting_too_deep", "nested deeper"),
    ("too deep, long", deep(64, pad=20_000).encode(), 400, "nesting_too_deep", "nested deeper"),
    ("way too deep", deep(2000).encode(), 400, None, None),
    ("unknown alias", json.dumps({"model": "nope", "messages": [OK]}).encode(), 404, "model_not_found", "'nope'"),
]


@pytest.mark.parametrize(("name", "body", "status", "code", "message"), CASES, ids=[c[0] for c in CASES])
async def test_bad_chat_request_is_refused_and_logged(
        gateway: GatewayFactory, upstream: FakeOpenAI, tmp_path: Path,
        name: str, body: bytes, status: int, code: str | None, message: str | None) -> None:
    client = await gateway(upstream=upstream.base_url)
    resp = await client.post("/v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == status
    error = (await resp.json())["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code is not None:
        assert error["code"] == code
    if message is not None:
        assert message in error["message"]
    assert "Traceback" not in error["message"]
    assert upstream.requests == [], "a bad request reached the upstream"
    ok = await client.post("/v1/chat/completions", json={"model": "real", "messages": [OK]})
    assert ok.status == 200, "the worker stopped serving after a bad request"
    await client.close()
    rows = log_rows(tmp_path)
    assert [r["status"] for r in rows] == [status, 200]


async def test_a_long_body_at_the_depth_limit_is_served_without_visiting_every_value(
        gateway: GatewayFactory, upstream: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmgw.formats import validate

    walked: list[object] = []
    monkeypatch.setattr(validate, "check_depth", walked.append)
    client = await gateway(upstream=upstream.base_url)
    body = deep(63, pad=20_000).encode()     # the root object and 63 in its metadata: exactly the limit
    assert len(body) >= validate.LONG_BODY_BYTES
    resp = await client.post("/v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 200
    assert walked == []
    await client.close()


async def test_body_over_max_body_mb_is_413(gateway: GatewayFactory, upstream: FakeOpenAI, tmp_path: Path) -> None:
    client = await gateway(upstream=upstream.base_url, server={"max_body_mb": 0.01})
    big = json.dumps({"model": "real", "messages": [{"role": "user", "content": "x" * 20_000}]})
    resp = await client.post("/v1/chat/completions", data=big, headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert "max_body_mb" in (await resp.json())["error"]["message"]

    async def chunks():  # no Content-Length: the limit must hold while reading
        for _ in range(30):
            yield b"x" * 1000

    resp = await client.post("/v1/chat/completions", data=chunks())
    assert resp.status == 413
    assert upstream.requests == []
    await client.close()
    assert [r["status"] for r in log_rows(tmp_path)] == [413, 413]


async def test_a_compressed_body_over_max_body_mb_once_inflated_is_413(gateway: GatewayFactory, upstream: FakeOpenAI,
                                                                        tmp_path: Path) -> None:
    """A small gzip body that inflates past the limit: the limit holds on the body as read, not as sent."""
    client = await gateway(upstream=upstream.base_url, server={"max_body_mb": 0.01})
    big = json.dumps({"model": "real", "messages": [{"role": "user", "content": "x" * 50_000}]}).encode()
    packed = gzip.compress(big)
    assert len(packed) < 1_000
    resp = await client.post("/v1/chat/completions", data=packed,
                             headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert resp.status == 413
    assert "max_body_mb" in (await resp.json())["error"]["message"]
    small = gzip.compress(json.dumps({"model": "real", "messages": [OK]}).encode())
    ok = await client.post("/v1/chat/completions", data=small,
                           headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert ok.status == 200
    assert len(upstream.requests) == 1
    await client.close()
    assert [r["status"] for r in log_rows(tmp_path)] == [413, 200]


async def test_bad_embeddings_request(gateway: GatewayFactory, upstream: FakeOpenAI) -> None:
    client = await gateway(upstream=upstream.base_url)
    for body, param in [({"model": "real-embed"}, "input"), ({"model": "real-embed", "input": []}, "input"),
                        ({"model": "real-embed", "input": [1, "a"]}, "input"),
                        ({"input": "x"}, "model"), ({"model": "real-embed", "input": "x", "dimensions": 0},
                                                    "dimensions")]:
        resp = await client.post("/v1/embeddings", json=body)
        assert resp.status == 400, body
        assert (await resp.json())["error"]["message"].startswith(param)
    assert upstream.requests == []


async def test_unknown_route_and_method_answer_json(gateway: GatewayFactory) -> None:
    client = await gateway()
    resp = await client.get("/v1/nothing-here")
    assert resp.status == 404 and "error" in await resp.json()
    resp = await client.get("/v1/chat/completions")
    assert resp.status == 405 and "error" in await resp.json()
