"""The chunks of one upstream read become stream events: runs of plain-text chunks travel as one event, their bytes
unchanged; every chunk is checked."""

from __future__ import annotations

import orjson
import pytest

from llmgw.providers import openai_chunks
from llmgw.providers.base import UpstreamFailure
from llmgw.providers.openai_chunks import TextTemplate, chunk_events, run_text
from llmgw.sse import encode_data


def chunk(content: str | None = None, *, role: str | None = None, finish: str | None = None, id: str = "c1",
          **delta_extra: object) -> dict[str, object]:
    delta: dict[str, object] = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    delta.update(delta_extra)
    return {"id": id, "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def payloads(*chunks: dict[str, object]) -> list[bytes]:
    return [orjson.dumps(c) for c in chunks]


def test_a_run_of_text_becomes_one_event_with_the_same_bytes_and_text() -> None:
    datas = payloads(chunk("", role="assistant"), chunk("Hel"), chunk("lo "), chunk("world"), chunk(finish="stop"))
    events, finished = chunk_events(datas, merge=True)
    assert len(events) == 1 and finished
    assert events[0].raw == b"".join(encode_data(d) for d in datas)             # the client gets the same bytes
    choice = events[0].data["choices"][0]
    assert choice["delta"] == {"role": "assistant", "content": "Hello world"}
    assert choice["finish_reason"] == "stop"                                    # the finish joined the run
    assert events[0].flush


def test_a_finish_that_says_more_than_the_finish_stays_its_own_event() -> None:
    with_logprobs = chunk(finish="stop")
    with_logprobs["choices"][0]["logprobs"] = {"content": []}  # type: ignore[index]
    with_stop_reason = chunk(finish="stop")
    with_stop_reason["choices"][0]["stop_reason"] = "</s>"  # type: ignore[index]
    other_model = {**chunk(finish="stop"), "model": "m2"}
    with_usage = {**chunk(finish="stop"), "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    with_text = chunk("!", finish="length")
    other_id = chunk(finish="stop", id="c9")
    for finishing in (with_logprobs, with_stop_reason, other_model, with_usage, with_text, other_id):
        datas = payloads(chunk("Hi"), finishing)
        events, finished = chunk_events(datas, merge=True)
        assert finished and len(events) == 2, finishing
        assert events[0].data["choices"][0]["finish_reason"] is None
        assert events[1].data == finishing and events[1].raw == encode_data(datas[1])
        assert b"".join(e.raw or b"" for e in events) == b"".join(encode_data(d) for d in datas)


def test_without_merge_every_chunk_is_its_own_event() -> None:
    datas = payloads(chunk("a"), chunk("b"), chunk(finish="stop"))
    events, finished = chunk_events(datas, merge=False)
    assert [e.raw for e in events] == [encode_data(d) for d in datas] and finished
    assert [e.flush for e in events] == [False, False, True]


def test_anything_but_plain_text_breaks_the_run_and_keeps_its_order() -> None:
    tool = chunk(tool_calls=[{"index": 0, "function": {"arguments": "{"}}])
    refusal = chunk(refusal="no")
    other_id = chunk("x", id="c2")
    usage = {"id": "c1", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
    logprobs = chunk("y")
    logprobs["choices"][0]["logprobs"] = {"content": []}  # type: ignore[index]
    two_choices = chunk("z")
    two_choices["choices"].append({"index": 1, "delta": {"content": "w"}, "finish_reason": None})  # type: ignore[attr-defined]
    datas = payloads(chunk("a"), chunk("b"), tool, chunk("c"), refusal, chunk("d"), other_id, usage, logprobs,
                     two_choices)
    events, finished = chunk_events(datas, merge=True)
    texts = [e.data["choices"][0]["delta"].get("content") if e.data.get("choices") else None for e in events]
    assert texts == ["ab", None, "c", None, "d", "x", None, "y", "z"]
    assert b"".join(e.raw or b"" for e in events) == b"".join(encode_data(d) for d in datas)
    assert events[6].usage is not None and events[6].usage.output_tokens == 2
    assert not finished


def test_a_multi_line_payload_keeps_one_data_line_per_line() -> None:
    datas = [b'{"id": "c1", "choices": [{"index": 0,\n"delta": {"content": "a"}}]}', orjson.dumps(chunk("b"))]
    events, _ = chunk_events(datas, merge=True)
    assert len(events) == 1 and events[0].data["choices"][0]["delta"]["content"] == "ab"
    assert events[0].raw == encode_data(datas[0]) + encode_data(datas[1])


@pytest.mark.parametrize("datas, message", [
    ([b'{"choices": []}', b"{not json"], "invalid JSON"),
    ([b'{"choices": []}', b"[1, 2]"], "not an object"),
    ([orjson.dumps(chunk("a")), b'{"error": {"message": "overloaded"}}'], "upstream stream error: overloaded"),
])
def test_a_bad_chunk_fails_the_read(datas: list[bytes], message: str) -> None:
    with pytest.raises(UpstreamFailure) as caught:
        chunk_events(datas, merge=True)
    assert caught.value.status == 502 and message in caught.value.message


def test_run_text_refuses_odd_shapes() -> None:
    assert run_text({"choices": [{"index": 0, "delta": {"content": 5}}]}) is None
    assert run_text({"choices": [{"index": 0, "delta": "text"}]}) is None
    assert run_text({"choices": ["x"]}) is None
    assert run_text({"choices": [{"index": 2, "delta": {"content": "a"}}]}) is None
    assert run_text({"choices": [{"index": 0, "delta": {"content": "a"}}], "usage": {"x": 1}}) is None
    assert run_text({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}) == ""


def test_openais_first_chunk_with_a_null_refusal_joins_the_run() -> None:
    first = chunk("", role="assistant", refusal=None)
    datas = payloads(first, chunk("Hi"), chunk(" there"))
    events, _ = chunk_events(datas, merge=True)
    assert len(events) == 1
    assert events[0].data["choices"][0]["delta"] == {"role": "assistant", "content": "Hi there", "refusal": None}
    assert run_text(chunk("", refusal="I can't")) is None


TRICKY_TEXTS = ["plain", ' a "quoted" word', "back\\slash\\", "emoji 👋 and 日本語", "\u2028line\nbreak\ttab", "",
                "}]}"]


def test_text_chunks_of_a_learnt_shape_read_exactly_as_parsed_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    datas = payloads(chunk("", role="assistant", refusal=None), *[chunk(t) for t in TRICKY_TEXTS], chunk(finish="stop"))
    datas.append(b'{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
                 b'"delta":{"content":"\\u00e9t\\u00e9"},"finish_reason":null}]}')   # escaped the other way
    expected, finished = chunk_events(datas, merge=True)
    parsed: list[bytes] = []
    real = openai_chunks.loads_object
    monkeypatch.setattr(openai_chunks, "loads_object", lambda data: parsed.append(data) or real(data))
    got, finished_too = chunk_events(datas, merge=True, template=TextTemplate())
    assert [(e.data, e.raw, e.flush) for e in got] == [(e.data, e.raw, e.flush) for e in expected]
    assert finished and finished_too
    assert got[0].data["choices"][0]["delta"]["content"] == "".join(TRICKY_TEXTS)
    assert len(parsed) < len(datas) - 4            # the text chunks after the first two were not parsed whole


def test_a_payload_that_only_looks_like_a_text_chunk_is_parsed_whole() -> None:
    template = TextTemplate()
    chunk_events(payloads(chunk("a"), chunk("b")), merge=True, template=template)
    prefix = b'{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"'
    suffix = b'"},"finish_reason":null}]}'
    assert orjson.dumps(chunk("x")) == prefix + b"x" + suffix
    # the same bytes around a "text" that closes the string and opens a second choice with a finish reason
    forged = prefix + b'a"},"finish_reason":"stop"},{"index":1,"delta":{"content":"b' + suffix
    events, finished = chunk_events([forged], merge=True, template=template)
    assert finished
    assert len(events[0].data["choices"]) == 2 and events[0].data["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("payload", [
    b'{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"x"},'
    b'"finish_reason":"ok"}]}',                                    # a finish as long as the learnt suffix's null
    b'{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"x"},'
    b'"finish_reason":null} ]}',                                   # the learnt suffix but for one space
    b'{"id":"c2","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"x"},'
    b'"finish_reason":null}]}',                                    # the learnt prefix but for one byte (its id)
    b' {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"x"},'
    b'"finish_reason":null}]}',                                    # a space before the learnt prefix
])
def test_a_payload_off_the_learnt_shape_at_either_end_is_parsed_whole(payload: bytes,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    template = TextTemplate()
    chunk_events(payloads(chunk("a"), chunk("b")), merge=True, template=template)
    parsed: list[bytes] = []
    real = openai_chunks.loads_object
    monkeypatch.setattr(openai_chunks, "loads_object", lambda data: parsed.append(data) or real(data))
    events, _ = chunk_events([payload], merge=True, template=template)
    assert parsed == [payload]
    assert events[0].data == orjson.loads(payload)


@pytest.mark.parametrize("shape", [
    # a key that ends in an escaped quote and "content", before the delta's own key (after a newline)
    b'{"id":"c1","xx\\"content":"%s","choices":[{"index":0,"delta":{"content"\n:"hello"}}]}',
    # a "content" key outside a delta that has none
    b'{"id":"c1","content":"%s","choices":[{"index":0,"delta":{"role":"assistant"}}]}',
    # the delta's key spelt with an escape, and another "content" key elsewhere
    b'{"id":"c1","meta":{"content":"%s"},"choices":[{"index":0,"delta":{"cont\\u0065nt":"hello"}}]}',
])
def test_a_shape_that_could_be_misread_is_not_learnt(shape: bytes) -> None:
    datas = [shape % b"" if b"role" in shape else shape % b"hello", shape % b"EVIL", shape % b"EVIL2"]
    expected, _ = chunk_events(datas, merge=True)
    got, _ = chunk_events(datas, merge=True, template=TextTemplate())
    assert [(e.data, e.raw) for e in got] == [(e.data, e.raw) for e in expected]
    assert "EVIL" not in got[0].data["choices"][0]["delta"].get("content", "")


def test_a_shape_is_learnt_across_json_whitespace_and_still_read_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    shape = b'{"id": "c1", "choices": [{"index": 0, "delta": {"content"\r\n :\t"%s"}}]}'
    datas = [shape % text for text in (b"a", b"b\\n", b"\\u00e9", b"d")]
    parsed: list[bytes] = []
    real = openai_chunks.loads_object
    monkeypatch.setattr(openai_chunks, "loads_object", lambda data: parsed.append(data) or real(data))
    events, _ = chunk_events(datas, merge=True, template=TextTemplate())
    assert len(events) == 1 and events[0].data["choices"][0]["delta"]["content"] == "ab\n\u00e9d"
    assert parsed == datas[:1]


def test_the_opening_chunk_without_text_is_not_learnt_and_the_first_text_chunk_is() -> None:
    """The opening chunk (a role, empty content) rarely has the shape of the text chunks after it: learning it would
    cost a learn and a failed read for nothing."""
    template = TextTemplate()
    chunk_events(payloads(chunk("", role="assistant", refusal=None)), merge=True, template=template)
    assert template.chunk is None
    chunk_events(payloads(chunk("Hi"), chunk(" there")), merge=True, template=template)
    assert template.chunk is not None and template.chunk["choices"][0]["delta"] == {"content": "Hi"}


def _one_by_one(template: TextTemplate, datas: list[bytes], prefix: bytes, suffix: bytes) -> list[str]:
    """The texts a payload-by-payload reader takes: each of the learnt shape with exactly one string between."""
    texts = []
    for data in datas:
        if not (data.startswith(prefix) and data.endswith(suffix)):
            break
        try:
            texts.append(orjson.loads(data[len(prefix) - 1:len(data) - len(suffix) + 1]))
        except orjson.JSONDecodeError:
            break
    return texts


def test_the_template_reads_exactly_the_payloads_of_its_shape_with_one_string_each() -> None:
    """Payloads of the learnt shape are read up to the first whose middle is not exactly one JSON string: forged
    middles (a lone quote, a string and a half, a string left open by an escaped quote) stop the read, also where
    two of them would read as strings if their middles were joined."""
    import random

    template = TextTemplate()
    chunk_events(payloads(chunk("a"), chunk("b")), merge=True, template=template)
    prefix = b'{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"'
    suffix = b'"},"finish_reason":null}]}'
    pieces = [orjson.dumps(chunk(t)) for t in ("x", "", "é\n", '"q"', "\\", "👋", "a\\\"b")]
    pieces += [prefix[:-1] + b'"' + suffix[1:],                       # a middle of one quote
               prefix + b'x","' + suffix, prefix + b'x\\"' + suffix,  # a string and a half; an open string
               prefix + b'x"' + b' "y' + suffix, orjson.dumps(chunk("z", finish="stop")), b"{}"]
    rng = random.Random(7)
    for _ in range(3000):
        datas = [rng.choice(pieces) for _ in range(rng.randrange(1, 9))]
        start = rng.randrange(len(datas))
        texts, upto = template.read(datas, start)
        assert texts == _one_by_one(template, datas[start:], prefix, suffix), datas
        assert upto == start + len(texts)
    forged = [prefix + b'x","' + suffix, prefix[:-1] + b'"' + suffix[1:]]    # '["x","' + ',' + '"]' reads 2
    assert template.read(forged, 0) == ([], 0)
