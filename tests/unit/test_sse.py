"""The SSE decoder: line ends, multi-line data, comments, event names, close(), and split-anywhere fuzzing."""

from __future__ import annotations

import json
import random

import pytest

from llmgw.sse import SSEDecoder, SSEMessage, encode_data


def decode_whole(stream: bytes) -> tuple[list[SSEMessage], int]:
    decoder = SSEDecoder()
    messages = decoder.feed(stream) + decoder.close()
    return messages, decoder.comments


def decode_pieces(pieces: list[bytes]) -> tuple[list[SSEMessage], int]:
    decoder = SSEDecoder()
    messages: list[SSEMessage] = []
    for piece in pieces:
        messages += decoder.feed(piece)
    messages += decoder.close()
    return messages, decoder.comments


# --- basics ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_line_endings(eol: bytes) -> None:
    stream = b"data: one" + eol + eol + b"data: two" + eol + eol
    decoder = SSEDecoder()
    messages = decoder.feed(stream)
    if eol != b"\r":  # a trailing lone "\r" may be half of "\r\n": it waits for the next byte or close()
        assert messages == [SSEMessage(None, b"one"), SSEMessage(None, b"two")]
    assert messages + decoder.close() == [SSEMessage(None, b"one"), SSEMessage(None, b"two")]


def test_mixed_line_endings_in_one_stream() -> None:
    stream = b"data: a\r\n\ndata: b\n\r\ndata: c\r\rdata: d\r\n\r\n"
    messages, _ = decode_whole(stream)
    assert [m.data for m in messages] == [b"a", b"b", b"c", b"d"]


def test_multi_line_data_is_joined_with_newline() -> None:
    messages, _ = decode_whole(b"data: first\ndata: second\ndata:\ndata: fourth\n\n")
    assert messages == [SSEMessage(None, b"first\nsecond\n\nfourth")]


def test_only_one_leading_space_is_stripped() -> None:
    messages, _ = decode_whole(b"data:no-space\n\ndata:  two-spaces\n\ndata\n\n")
    assert [m.data for m in messages] == [b"no-space", b" two-spaces", b""]


def test_comments_are_counted_and_produce_no_message() -> None:
    decoder = SSEDecoder()
    messages = decoder.feed(b": keep-alive\n\n:\n: OPENROUTER PROCESSING\ndata: x\n\n")
    assert messages == [SSEMessage(None, b"x")]
    assert decoder.comments == 3


def test_event_names_apply_to_one_event_only() -> None:
    decoder = SSEDecoder()
    messages = decoder.feed(b"event: message_start\ndata: {}\n\ndata: plain\n\nevent:delta\ndata: d\n\n")
    assert messages == [SSEMessage("message_start", b"{}"), SSEMessage(None, b"plain"), SSEMessage("delta", b"d")]


def test_event_without_data_is_not_dispatched_and_does_not_leak() -> None:
    messages, _ = decode_whole(b"event: ping\n\ndata: after\n\n")
    assert messages == [SSEMessage(None, b"after")]


def test_unknown_fields_id_and_retry_are_ignored() -> None:
    messages, _ = decode_whole(b"id: 7\nretry: 1000\nfoo: bar\ndata: x\n\n")
    assert messages == [SSEMessage(None, b"x")]


def test_data_stays_bytes_even_when_not_utf8() -> None:
    messages, _ = decode_whole(b"data: \xff\xfe\x00\n\n")
    assert messages == [SSEMessage(None, b"\xff\xfe\x00")]


@pytest.mark.parametrize("tail", [b"data: last", b"data: last\n", b"data: last\r", b"data: last\r\n"])
def test_close_dispatches_a_final_event_without_the_blank_line(tail: bytes) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: first\n\n" + tail) == [SSEMessage(None, b"first")]
    assert decoder.close() == [SSEMessage(None, b"last")]


def test_close_with_final_event_name_and_multiline_data() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: done\ndata: a\ndata: b") == []
    assert decoder.close() == [SSEMessage("done", b"a\nb")]


def test_close_with_nothing_pending_returns_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n\n") == [SSEMessage(None, b"x")]
    assert decoder.close() == []
    assert SSEDecoder().close() == []


def test_cr_at_end_of_chunk_waits_for_a_possible_lf() -> None:
    """"\\r" then "\\n" in the next chunk is ONE line end; treating it as two would end the event early."""
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [SSEMessage(None, b"a\nb")]


def test_cr_alone_at_end_of_chunk_followed_by_another_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"data: b\r\r") == []  # last "\r" still pending
    assert decoder.feed(b"") == []
    assert decoder.close() == [SSEMessage(None, b"a\nb")]


def test_encode_data_round_trips() -> None:
    payload = json.dumps({"text": "héllo 👋"}, ensure_ascii=False).encode()
    assert encode_data(payload) == b"data: " + payload + b"\n\n"
    stream = encode_data(payload) + encode_data(b"{}", event="message_stop")
    messages, _ = decode_whole(stream)
    assert messages == [SSEMessage(None, payload), SSEMessage("message_stop", b"{}")]


# --- recorded-looking streams, split anywhere ------------------------------------------------------------------

TEXT = "héllo 👋 日本語"


def _openai_chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> dict:
    chunk = {"id": "chatcmpl-9x", "object": "chat.completion.chunk", "created": 1726000000, "model": "gpt-4o-mini",
             "system_fingerprint": "fp_0ba0d124f1",
             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    if usage is not None:
        chunk["choices"] = []
        chunk["usage"] = usage
    return chunk


def _openai_stream(eol: str, pieces: list[str]) -> bytes:
    events = [_openai_chunk({"role": "assistant", "content": ""})]
    events += [_openai_chunk({"content": p}) for p in pieces]
    events.append(_openai_chunk({}, finish="stop"))
    events.append(_openai_chunk({}, usage={"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}))
    out = ": OPENAI PROCESSING" + eol + eol
    for event in events:
        out += "data: " + json.dumps(event, ensure_ascii=False, separators=(",", ":")) + eol + eol
    out += "data: [DONE]" + eol + eol
    return out.encode("utf-8")


def _anthropic_stream(pieces: list[str]) -> bytes:
    events: list[tuple[str, dict]] = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "content": [],
            "model": "claude-3-5-haiku-latest", "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 25, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
    ]
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": p}}) for p in pieces]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 15}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    out = ""
    for name, data in events:
        out += f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
    return out.encode("utf-8")


PIECES = ["hé", "llo ", "👋", " 日本", "語"]

STREAMS = {
    "openai-lf": _openai_stream("\n", PIECES),
    "openai-crlf": _openai_stream("\r\n", PIECES),
    "openai-cr": _openai_stream("\r", PIECES),
    "openai-one-piece": _openai_stream("\n", [TEXT]),
    "anthropic": _anthropic_stream(PIECES),
    "multiline-and-comments": (
        ": hello\r\n"
        "event: note\r\ndata: line one\r\ndata: line two — ✓\r\n\r\n"
        ":\n"
        "id: 3\nretry: 10\ndata: {\"text\": \"日本語\"}\n\n"
        "event: orphan\n\n"
        "data: 👋 final without blank line"
    ).encode(),
}


def _openai_text(messages: list[SSEMessage]) -> str:
    text = ""
    for m in messages:
        if m.data == b"[DONE]":
            continue
        for choice in json.loads(m.data)["choices"]:
            text += choice["delta"].get("content") or ""
    return text


@pytest.mark.parametrize("name", [n for n in STREAMS if n.startswith("openai")])
def test_openai_streams_decode_to_the_expected_events(name: str) -> None:
    messages, comments = decode_whole(STREAMS[name])
    assert comments == 1
    assert messages[-1] == SSEMessage(None, b"[DONE]")
    assert all(m.event is None for m in messages)
    assert _openai_text(messages) == TEXT
    assert json.loads(messages[-2].data)["usage"]["total_tokens"] == 14


def test_anthropic_stream_decodes_event_names_and_text() -> None:
    messages, comments = decode_whole(STREAMS["anthropic"])
    assert comments == 0
    names = [m.event for m in messages]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    for m in messages:
        assert json.loads(m.data)["type"] == m.event
    text = "".join(json.loads(m.data)["delta"]["text"] for m in messages if m.event == "content_block_delta")
    assert text == TEXT


def test_mixed_stream_decodes_as_expected() -> None:
    messages, comments = decode_whole(STREAMS["multiline-and-comments"])
    assert comments == 2
    assert messages == [
        SSEMessage("note", "line one\nline two — ✓".encode()),
        SSEMessage(None, '{"text": "日本語"}'.encode()),
        SSEMessage(None, "👋 final without blank line".encode()),
    ]


@pytest.mark.parametrize("name", list(STREAMS))
def test_split_at_every_byte_offset_gives_the_same_messages(name: str) -> None:
    stream = STREAMS[name]
    expected = decode_whole(stream)
    assert expected[0], "the stream must decode to something"
    for offset in range(len(stream) + 1):
        got = decode_pieces([stream[:offset], stream[offset:]])
        assert got == expected, f"split at byte {offset} of {len(stream)} changed the messages"


@pytest.mark.parametrize("name", list(STREAMS))
def test_random_many_piece_splits_give_the_same_messages(name: str) -> None:
    stream = STREAMS[name]
    expected = decode_whole(stream)
    rng = random.Random(f"llmgw-sse-{name}")
    for _ in range(300):
        count = rng.randint(2, min(60, len(stream)))
        cuts = sorted(rng.sample(range(1, len(stream)), count - 1))
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert b"".join(pieces) == stream
        assert decode_pieces(pieces) == expected, f"split at {cuts} changed the messages"


@pytest.mark.parametrize("name", list(STREAMS))
def test_byte_at_a_time_and_empty_feeds(name: str) -> None:
    stream = STREAMS[name]
    pieces: list[bytes] = []
    for i in range(len(stream)):
        pieces += [stream[i:i + 1], b""]
    assert decode_pieces(pieces) == decode_whole(stream)


def test_a_line_without_end_is_refused_once_it_passes_the_cap_and_memory_stays_bounded() -> None:
    from llmgw.sse import SSELineTooLong

    decoder = SSEDecoder(max_line_bytes=1_000_000)
    decoder.feed(b'data: {"a": 1}\n\n')
    piece = b"x" * 65536
    fed = 0
    with pytest.raises(SSELineTooLong, match="longer than 1000000 bytes"):
        decoder.feed(b"data: ")
        while fed < 300_000_000:   # an upstream's 300 MB line
            decoder.feed(piece)
            fed += len(piece)
            assert decoder.buffered <= 1_000_000 + len(piece)
    assert fed < 1_100_000 and decoder.buffered == 0


def test_an_event_of_many_data_lines_is_capped_too() -> None:
    from llmgw.sse import SSELineTooLong

    decoder = SSEDecoder(max_line_bytes=10_000)
    with pytest.raises(SSELineTooLong):
        for _ in range(1000):
            decoder.feed(b"data: " + b"y" * 100 + b"\n")


def test_a_long_line_in_many_pieces_is_decoded_whole_below_the_cap() -> None:
    decoder = SSEDecoder(max_line_bytes=5_000_000)
    assert decoder.feed(b"data: ") == []
    for _ in range(64):
        assert decoder.feed(b"z" * 65536) == []
    messages = decoder.feed(b"\r\n\r\n")
    assert [len(m.data) for m in messages] == [64 * 65536]


def _data_of_pieces(pieces: list[bytes]) -> tuple[list[bytes], int]:
    decoder = SSEDecoder()
    datas: list[bytes] = []
    for piece in pieces:
        datas += decoder.feed_data(piece)
    return datas + [m.data for m in decoder.close()], decoder.comments


FAST_SHAPES = {
    **STREAMS,
    "data-only": b"".join(encode_data(json.dumps({"n": i}).encode()) for i in range(6)) + b"data: [DONE]\n\n",
    "data-then-comment": b'data: {"a": 1}\n\n: keep-alive\n\ndata: {"b": 2}\n\n',
    "data-then-event": b'data: {"a": 1}\n\nevent: note\ndata: x\n\ndata: {"b": 2}\n\n',
    "data-then-blank-lines": b'data: {"a": 1}\n\n\n\ndata: {"b": 2}\n\n',
    "data-without-space": b'data: {"a": 1}\n\ndata:{"b": 2}\n\n',
    "empty-data-and-data-in-data": b'data: \n\ndata: data: x\n\ndata: {"c": 3}\n\n',
    "two-data-lines": b'data: {"a": 1}\n\ndata: line one\ndata: line two\n\ndata: {"b": 2}\n\n',
}


@pytest.mark.parametrize("name", list(FAST_SHAPES))
def test_feed_data_gives_the_data_feed_gives_however_the_stream_is_split(name: str) -> None:
    stream = FAST_SHAPES[name]
    messages, comments = decode_whole(stream)
    expected = ([m.data for m in messages], comments)
    assert _data_of_pieces([stream]) == expected
    rng = random.Random(f"llmgw-sse-data-{name}")
    for offset in range(len(stream) + 1):
        assert _data_of_pieces([stream[:offset], stream[offset:]]) == expected, f"split at byte {offset}"
    for _ in range(100):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, min(20, len(stream) - 1))))
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert _data_of_pieces(pieces) == expected, f"split at {cuts}"



def test_a_read_of_plain_data_events_is_split_without_the_line_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SSEDecoder, "feed", lambda self, chunk: pytest.fail("the line parser was used"))
    assert SSEDecoder().feed_data(FAST_SHAPES["data-only"]) == [json.dumps({"n": i}).encode() for i in range(6)] + [
        b"[DONE]"]
