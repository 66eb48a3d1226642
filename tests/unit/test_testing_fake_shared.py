"""What the fake upstreams share: llmgw.testing.answers, llmgw.testing.wire and FakeServer's request prologue."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from llmgw.testing.answers import (
    blake2b_bytes,
    content_text,
    count_words,
    cut_answer,
    embedding,
    json_fragments,
    last_user_text,
    message_tokens,
    part_texts,
    shake_bytes,
    split_words,
    text_tokens,
)
from llmgw.testing.server import FakeServer, call_name
from llmgw.testing.wire import (
    RecordedHeaders,
    bearer_token,
    by_status,
    json_response,
    recorded_headers,
    send_events,
    sse,
)

# -- answers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "one", "Echo: hello  big world ", "  lead", "   ", "a\nb\tc"])
def test_split_words_gives_the_text_back(text: str) -> None:
    pieces = split_words(text)
    assert "".join(pieces) == text
    assert count_words(pieces) == len(text.split())


def test_split_words_keeps_the_space_before_each_word() -> None:
    assert split_words("Echo: hello  world ") == ["Echo:", " hello", "  world "]
    assert split_words("   ") == ["   "] and count_words(["   "]) == 0


def test_cut_answer_stops_then_caps() -> None:
    assert cut_answer("one two three") == (["one", " two", " three"], None, False)
    cut = cut_answer("one two three", stops=["", "three", "two"])
    assert cut.pieces == ["one "] and cut.stop == "two" and not cut.capped and cut.words == 1
    capped = cut_answer("one two three", stops=["three"], limit=1)
    assert capped == (["one"], None, True)
    assert cut_answer("one two", limit=2) == (["one", " two"], None, False)


def test_cut_answer_picks_the_first_started_or_the_first_completed_stop() -> None:
    text = "abcdef"
    assert cut_answer(text, stops=["bcdef", "cd"]).stop == "bcdef"  # starts first
    assert cut_answer(text, stops=["bcdef", "cd"], first_completed=True).stop == "cd"  # ends first
    assert cut_answer(text, stops=["cd", "c"], first_completed=True).stop == "c"


def test_message_text_and_tokens() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": 3}, {"text": "b"}, "x"]
    assert part_texts(parts) == ["a"]
    assert part_texts(parts, kind=None) == ["a", "b"]
    assert content_text("plain") == "plain" and content_text(parts) == "a" and content_text(None) == ""
    messages: list[Any] = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "x"}, "junk",
                           {"content": "no role"}]
    assert last_user_text(messages, lambda m: m["content"]) == "first"
    assert last_user_text(messages, lambda m: m["content"], default_role="user") == "no role"
    assert last_user_text([], lambda m: "never") == ""
    assert text_tokens("") == 0 and text_tokens("abcde") == 2 and text_tokens(b"abcd") == 1
    assert message_tokens(["abcde", ""]) == (2 + 3) + (0 + 3)


def test_json_fragments_give_the_json_back() -> None:
    text = orjson.dumps({"city": "Paris", "n": [1, 2]}).decode()
    fragments = json_fragments(text)
    assert "".join(fragments) == text and len(fragments) > 5


@pytest.mark.parametrize("draw", [shake_bytes, blake2b_bytes])
@pytest.mark.parametrize("dimensions", [1, 8, 40])
def test_embedding_is_a_deterministic_unit_vector(draw: Any, dimensions: int) -> None:
    vector = embedding("alpha", dimensions, draw=draw)
    assert len(vector) == dimensions
    assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-9)
    assert embedding("alpha", dimensions, draw=draw) == vector
    assert dimensions == 1 or embedding("beta", dimensions, draw=draw) != vector  # one dimension: just ±1


def test_embedding_hashes_differ() -> None:
    assert embedding("alpha", 8) == embedding("alpha", 8, draw=shake_bytes)
    assert embedding("alpha", 8) != embedding("alpha", 8, draw=blake2b_bytes)
    assert len(blake2b_bytes(b"x", 200)) >= 200


# -- wire ----------------------------------------------------------------------------------------------------


def test_recorded_headers() -> None:
    sent = CIMultiDict([("X-Beta", "a-1"), ("Authorization", "Bearer  sk-1 "), ("x-beta", "b-2")])
    headers = recorded_headers(make_mocked_request("GET", "/", headers=sent))
    assert isinstance(headers, RecordedHeaders) and isinstance(headers, dict)
    assert headers["X-BETA"] == "a-1, b-2" == headers.get("x-beta")
    assert "authorization" in headers and "Authorization" in headers and 1 not in headers
    assert set(headers) == {"x-beta", "authorization"}
    assert headers.get("missing", "none") == "none"


@pytest.mark.parametrize(
    ("auth", "token"), [(None, None), ("Basic x", None), ("Bearer ", ""), ("Bearer  sk-1 ", "sk-1")]
)
def test_bearer_token(auth: str | None, token: str | None) -> None:
    headers = {"Authorization": auth} if auth is not None else {}
    assert bearer_token(make_mocked_request("GET", "/", headers=headers)) == token


def test_by_status_and_json_response() -> None:
    table = {429: "rate"}
    assert by_status(table, 429, client_error="client", server_error="server") == "rate"
    assert by_status(table, 418, client_error="client", server_error="server") == "client"
    assert by_status(table, 599, client_error="client", server_error="server") == "server"
    response = json_response({"a": [1]}, status=201, headers={"x-id": "1"})
    assert response.status == 201 and response.body == b'{"a":[1]}'
    assert list(response.headers.items()) == [("x-id", "1"), ("Content-Type", "application/json")]


def test_sse_framing() -> None:
    assert sse(b"{}") == b"data: {}\n\n"
    assert sse(b"{}", "ping") == b"event: ping\ndata: {}\n\n"
    assert sse(b"{}", crlf=True) == b"data: {}\r\n\r\n"


async def test_send_events_paces_each_event_and_ends_with_done(aiohttp_client: Any) -> None:
    events = [sse(b"1"), sse(b"2")]

    async def handler(request: web.Request) -> web.StreamResponse:
        delay = float(request.query["delay"])
        return await send_events(request, events, delay=delay, done=b"data: [DONE]\n\n", headers={"x-id": "7"},
                                 close="close" in request.query)

    app = web.Application()
    app.router.add_get("/", handler)
    client = await aiohttp_client(app)
    for query in ("?delay=0", "?delay=0.05&close=1"):
        started = time.monotonic()
        resp = await client.get("/" + query)
        body = await resp.read()
        assert body == b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
        assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert resp.headers["Cache-Control"] == "no-cache" and resp.headers["x-id"] == "7"
        if "close" in query:
            assert time.monotonic() - started >= 0.1  # two paced events; done is not paced
            assert resp.headers.get("Connection", "").lower() == "close"


# -- FakeServer's prologue, through a toy provider ---------------------------------------------------------------


class ToyFake(FakeServer):
    """A provider whose every answer names the hook that gave it."""

    max_request_bytes = 1024
    id_prefix = "t"
    id_random_bytes = 2
    id_digits = 3

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.post("/echo", self._endpoint(self._echo)),
            web.get("/plain", self._endpoint(self._echo, parse=False)),
        ]

    async def _echo(self, request: web.Request, body: Any) -> web.StreamResponse:
        return json_response({"body": body, "id": self._next_id()})

    def _presented_key(self, request: web.Request) -> str | None:
        return bearer_token(request)

    def _refuse_key(self, key: str | None) -> web.Response:
        return json_response({"hook": "key", "key": key}, status=401)

    def _check_headers(self, request: web.Request) -> web.Response | None:
        return None if "x-version" in request.headers else json_response({"hook": "headers"}, status=400)

    def _failure_response(self, status: int, message: str, retry_after: float | None) -> web.Response:
        return json_response({"hook": "failure", "message": message, "retry_after": retry_after}, status=status)

    def _invalid_json(self) -> web.Response:
        return json_response({"hook": "json"}, status=400)

    def _too_large(self) -> web.Response | None:
        return json_response({"hook": "too large"}, status=413)

    def _check_body(self, body: Any) -> web.Response | None:
        return None if isinstance(body, dict) else json_response({"hook": "body"}, status=422)

    def _not_found(self, request: web.Request) -> web.Response:
        return json_response({"hook": "not found"}, status=404)


async def test_prologue_order() -> None:
    good = {"Authorization": "Bearer k", "x-version": "1"}
    async with ToyFake(api_key="k") as fake:
        ids = f"t{fake._id_base[1:]}"  # the prefix, then this fake's random part
        async def send(path: str, data: bytes | None = b"{}", headers: dict[str, str] = good) -> tuple[int, Any]:
            async with aiohttp.ClientSession() as session, session.request(
                "POST" if data is not None else "GET", fake.base_url + path, data=data, headers=headers
            ) as resp:
                return resp.status, await resp.json()

        assert await send("/echo", b"x" * 2048, {}) == (413, {"hook": "too large"})  # before the key
        assert await send("/echo", b"{}", {}) == (401, {"hook": "key", "key": None})
        assert await send("/echo", b"{}", {"Authorization": "Bearer "}) == (401, {"hook": "key", "key": None})
        assert await send("/echo", b"{}", {"Authorization": "Bearer j"}) == (401, {"hook": "key", "key": "j"})
        assert await send("/echo", b"{}", {"Authorization": "Bearer k"}) == (400, {"hook": "headers"})
        fake.queue_failures(503, 1, "down", 2.5)
        assert await send("/plain", None) == (200, {"body": None, "id": f"{ids}001"})  # takes no failure
        assert await send("/nowhere", None) == (404, {"hook": "not found"})  # takes no failure either
        assert await send("/echo", b"not json") == (503, {"hook": "failure", "message": "down", "retry_after": 2.5})
        assert await send("/echo", b"not json") == (400, {"hook": "json"})
        assert await send("/echo", b"") == (400, {"hook": "json"})
        assert await send("/echo", b"[1]") == (422, {"hook": "body"})
        assert await send("/echo", b'{"a": 1}') == (200, {"body": {"a": 1}, "id": f"{ids}002"})
        assert await send("/nowhere", None, {}) == (401, {"hook": "key", "key": None})

    assert len(fake.requests) == 13
    first, last_echo = fake.requests[0], fake.requests[-2]
    assert first["body"] is None and first["path"] == "/echo"
    assert last_echo == {"method": "POST", "path": "/echo", "query": {}, "headers": last_echo["headers"],
                         "body": {"a": 1}}
    assert last_echo["headers"]["X-Version"] == "1"


async def test_empty_body_and_records_off() -> None:
    class Lenient(ToyFake):
        accepts_empty_body = True

    async with Lenient(record_requests=False) as fake, aiohttp.ClientSession() as session, session.post(
        fake.base_url + "/echo?x=1", data=b"", headers={"x-version": "1"}
    ) as resp:
        assert resp.status == 422  # an empty body reads as None, which the toy's _check_body refuses
    assert fake.requests == []


async def test_pace_and_settings() -> None:
    fake = ToyFake(api_key="k", chunk_delay_s=0.02)
    started = time.monotonic()
    await fake._pace(3)
    assert time.monotonic() - started >= 0.05
    fake.chunk_delay_s = 0
    started = time.monotonic()
    await asyncio.wait_for(fake._pace(1000), 1)
    assert time.monotonic() - started < 0.5
    fake.set_answer("fixed")
    assert fake._answer == "fixed"
    with pytest.raises(ValueError):
        fake.queue_failures(99, 1, "x", None)
    with pytest.raises(ValueError):
        fake.queue_failures(500, 0, "x", None)


def test_call_name() -> None:
    assert call_name({"name": "f"}, 0, "tool call") == "f"
    for call in ({}, {"name": ""}, {"name": 3}):
        with pytest.raises(ValueError, match="tool use 2 needs a name"):
            call_name(call, 2, "tool use")
