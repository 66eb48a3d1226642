"""Recorded streams split at every byte offset and at random: SSEDecoder + the stream translation give the same
canonical chunks as the unsplit stream (multi-byte UTF-8 characters and CRLF pairs cut in half included)."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from llmgw.exchange import Usage
from llmgw.sse import SSEDecoder
from llmgw.translate.anthropic_stream import AnthropicStreamToOpenAI

TEXT = "héllo 👋 日本語"
TEXT_PIECES = ["h", "é", "llo ", "👋", " 日本", "語"]
ARGS = {"city": "Zürich", "note": "☃ snow ❄"}
ARG_PIECES = ['{"city": "Z', 'ürich", "no', 'te": "☃ sn', 'ow ❄"}']
SEEDS = range(20)
RANDOM_SPLITS_PER_SEED = 25


# --- the recorded OpenAI Chat Completions stream ---------------------------------------------------------------


def _openai_chunk(delta: dict[str, Any] | None, finish: str | None = None,
                  usage: dict[str, Any] | None = None) -> dict[str, Any]:
    chunk: dict[str, Any] = {"id": "chatcmpl-AZb3wq8o6Zr1", "object": "chat.completion.chunk", "created": 1733000000,
                             "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_0705bf87c0",
                             "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                                                   "finish_reason": finish}]}
    if usage is not None:
        chunk["usage"] = usage
    return chunk


OPENAI_CHUNKS: list[dict[str, Any]] = [
    _openai_chunk({"role": "assistant", "content": "", "refusal": None}),
    *[_openai_chunk({"content": piece}) for piece in TEXT_PIECES],
    _openai_chunk({"tool_calls": [{"index": 0, "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "type": "function",
                                   "function": {"name": "get_weather", "arguments": ""}}]}),
    *[_openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}) for piece in ARG_PIECES],
    _openai_chunk({}, "tool_calls"),
    _openai_chunk(None, usage={"prompt_tokens": 31, "completion_tokens": 24, "total_tokens": 55,
                               "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                               "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                             "accepted_prediction_tokens": 0,
                                                             "rejected_prediction_tokens": 0}}),
]
# orjson writes non-ASCII as raw UTF-8, as OpenAI does: the multi-byte characters are really in the bytes.
OPENAI_STREAM = (b": OPENAI PROCESSING\n\n"
                 + b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in OPENAI_CHUNKS)
                 + b"data: [DONE]\n\n")


# --- the recorded Anthropic Messages stream --------------------------------------------------------------------


ANTHROPIC_EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("message_start", {"type": "message_start", "message": {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "content": [],
        "model": "claude-sonnet-4-5-20250929", "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 25, "cache_creation_input_tokens": 10, "cache_read_input_tokens": 300,
                  "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "text", "text": ""}}),
    ("ping", {"type": "ping"}),
    *[("content_block_delta", {"type": "content_block_delta", "index": 0,
                               "delta": {"type": "text_delta", "text": piece}}) for piece in TEXT_PIECES],
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1,
                             "delta": {"type": "input_json_delta", "partial_json": ""}}),
    *[("content_block_delta", {"type": "content_block_delta", "index": 1,
                               "delta": {"type": "input_json_delta", "partial_json": piece}}) for piece in ARG_PIECES],
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                       "usage": {"output_tokens": 89}}),
    ("message_stop", {"type": "message_stop"}),
]


def _anthropic_stream(eol: bytes) -> bytes:
    out = b""
    for name, data in ANTHROPIC_EVENTS:
        out += b"event: " + name.encode() + eol + b"data: " + orjson.dumps(data) + eol + eol
    return out


ANTHROPIC_STREAMS = {"lf": _anthropic_stream(b"\n"), "crlf": _anthropic_stream(b"\r\n"), "cr": _anthropic_stream(b"\r")}
EXPECTED_USAGE = Usage(input_tokens=335, output_tokens=89, cached_tokens=300, cache_write_tokens=10)


# --- pipelines: pieces of bytes in, canonical chunks out -------------------------------------------------------


def openai_pipeline(pieces: list[bytes]) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    messages = []
    for piece in pieces:
        messages += decoder.feed(piece)
    messages += decoder.close()
    assert decoder.comments == 1
    assert messages[-1].data == b"[DONE]"
    return [orjson.loads(m.data) for m in messages if m.data != b"[DONE]"]


def anthropic_pipeline(pieces: list[bytes]) -> list[tuple[dict[str, Any], Usage | None]]:
    decoder = SSEDecoder()
    converter = AnthropicStreamToOpenAI()
    out: list[tuple[dict[str, Any], Usage | None]] = []

    def handle(messages: list[Any]) -> None:
        for message in messages:
            data = orjson.loads(message.data)
            assert message.event == data["type"]  # the event line survived whatever the split
            for event in converter.feed(message.event, data):
                assert event.raw is None
                assert event.format == "openai"
                assert abs(event.data["created"] - time.time()) < 60
                # ``created`` is the converter's clock: not part of what a split may change
                out.append(({k: v for k, v in event.data.items() if k != "created"}, event.usage))

    for piece in pieces:
        handle(decoder.feed(piece))
    handle(decoder.close())
    assert converter.error is None
    assert converter.usage == EXPECTED_USAGE
    return out


def two_piece_splits(stream: bytes) -> list[list[bytes]]:
    return [[stream[:i], stream[i:]] for i in range(len(stream) + 1)]


def random_splits(stream: bytes, seed: int, count: int) -> list[list[bytes]]:
    rng = random.Random(seed)
    splits = []
    for _ in range(count):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, min(64, len(stream) - 1))))
        bounds = [0, *cuts, len(stream)]
        splits.append([stream[a:b] for a, b in itertools.pairwise(bounds)])
    return splits


def assert_all_splits_equal(stream: bytes, pipeline: Callable[[list[bytes]], Any], splits: list[list[bytes]]) -> Any:
    whole = pipeline([stream])
    for pieces in splits:
        assert b"".join(pieces) == stream
        offsets = list(itertools.accumulate(len(p) for p in pieces[:-1]))
        try:
            got = pipeline(pieces)
        except (AssertionError, orjson.JSONDecodeError) as exc:
            pytest.fail(f"split at byte offsets {offsets} broke the stream: {exc!r}")
        if got != whole:
            pytest.fail(f"split at byte offsets {offsets} changed the result")
    return whole


# --- the OpenAI stream -----------------------------------------------------------------------------------------


def openai_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def openai_arguments(chunks: list[dict[str, Any]]) -> str:
    return "".join(call["function"].get("arguments") or "" for c in chunks if c["choices"]
                   for call in c["choices"][0]["delta"].get("tool_calls") or [])


def test_openai_stream_really_holds_multi_byte_utf8() -> None:
    for char in ("é", "👋", "日", "語", "ü", "☃", "❄"):
        assert char.encode() in OPENAI_STREAM
    assert b"\\u" not in OPENAI_STREAM


def test_openai_stream_unsplit_gives_the_recorded_chunks() -> None:
    chunks = openai_pipeline([OPENAI_STREAM])
    assert chunks == OPENAI_CHUNKS
    assert openai_text(chunks) == TEXT
    assert orjson.loads(openai_arguments(chunks)) == ARGS
    assert Usage.from_openai(chunks[-1]["usage"]) == Usage(input_tokens=31, output_tokens=24)


def test_openai_stream_split_at_every_byte_offset() -> None:
    whole = assert_all_splits_equal(OPENAI_STREAM, openai_pipeline, two_piece_splits(OPENAI_STREAM))
    assert whole == OPENAI_CHUNKS
    assert openai_text(whole) == TEXT


@pytest.mark.parametrize("seed", SEEDS)
def test_openai_stream_random_multi_piece_splits(seed: int) -> None:
    splits = random_splits(OPENAI_STREAM, seed, RANDOM_SPLITS_PER_SEED)
    whole = assert_all_splits_equal(OPENAI_STREAM, openai_pipeline, splits)
    assert openai_text(whole) == TEXT
    assert orjson.loads(openai_arguments(whole)) == ARGS


def test_openai_stream_one_byte_at_a_time() -> None:
    chunks = openai_pipeline([OPENAI_STREAM[i:i + 1] for i in range(len(OPENAI_STREAM))])
    assert chunks == OPENAI_CHUNKS
    assert openai_text(chunks) == TEXT


# --- the Anthropic stream --------------------------------------------------------------------------------------


def canonical_text(events: list[tuple[dict[str, Any], Usage | None]]) -> str:
    return "".join(d["choices"][0]["delta"].get("content") or "" for d, _ in events if d["choices"])


def canonical_arguments(events: list[tuple[dict[str, Any], Usage | None]]) -> str:
    return "".join(call["function"].get("arguments") or "" for d, _ in events if d["choices"]
                   for call in d["choices"][0]["delta"].get("tool_calls") or [])


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "object": "chat.completion.chunk",
            "model": "claude-sonnet-4-5-20250929",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}


EXPECTED_CANONICAL: list[tuple[dict[str, Any], Usage | None]] = [
    (_chunk({"role": "assistant", "content": ""}), None),
    *[(_chunk({"content": piece}), None) for piece in TEXT_PIECES],
    (_chunk({"tool_calls": [{"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                             "function": {"name": "get_weather", "arguments": ""}}]}), None),
    *[(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}), None) for piece in ["", *ARG_PIECES]],
    (_chunk({}, "tool_calls"), None),
    ({"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "object": "chat.completion.chunk", "model": "claude-sonnet-4-5-20250929",
      "choices": [], "usage": {"prompt_tokens": 335, "completion_tokens": 89, "total_tokens": 424,
                               "prompt_tokens_details": {"cached_tokens": 300}}}, EXPECTED_USAGE),
]


@pytest.mark.parametrize("variant", list(ANTHROPIC_STREAMS))
def test_anthropic_stream_unsplit_gives_the_expected_canonical_chunks(variant: str) -> None:
    stream = ANTHROPIC_STREAMS[variant]
    assert "👋".encode() in stream
    events = anthropic_pipeline([stream])
    assert events == EXPECTED_CANONICAL
    assert canonical_text(events) == TEXT
    assert orjson.loads(canonical_arguments(events)) == ARGS


def test_anthropic_line_ending_variants_give_identical_chunks() -> None:
    results = [anthropic_pipeline([stream]) for stream in ANTHROPIC_STREAMS.values()]
    assert results[0] == results[1] == results[2]
    assert ANTHROPIC_STREAMS["crlf"].count(b"\r\n") == 3 * len(ANTHROPIC_EVENTS)


@pytest.mark.parametrize("variant", list(ANTHROPIC_STREAMS))
def test_anthropic_stream_split_at_every_byte_offset(variant: str) -> None:
    stream = ANTHROPIC_STREAMS[variant]
    whole = assert_all_splits_equal(stream, anthropic_pipeline, two_piece_splits(stream))
    assert whole == EXPECTED_CANONICAL
    assert canonical_text(whole) == TEXT


@pytest.mark.parametrize("variant", list(ANTHROPIC_STREAMS))
@pytest.mark.parametrize("seed", SEEDS)
def test_anthropic_stream_random_multi_piece_splits(variant: str, seed: int) -> None:
    stream = ANTHROPIC_STREAMS[variant]
    whole = assert_all_splits_equal(stream, anthropic_pipeline, random_splits(stream, seed, RANDOM_SPLITS_PER_SEED))
    assert whole == EXPECTED_CANONICAL
    assert canonical_text(whole) == TEXT
    assert orjson.loads(canonical_arguments(whole)) == ARGS


@pytest.mark.parametrize("variant", list(ANTHROPIC_STREAMS))
def test_anthropic_stream_one_byte_at_a_time(variant: str) -> None:
    stream = ANTHROPIC_STREAMS[variant]
    assert anthropic_pipeline([stream[i:i + 1] for i in range(len(stream))]) == EXPECTED_CANONICAL
