"""The Gemini client format's own reading of requests, answers and stream chunks: texts, usage, finish reasons, the
stream guard's channels, estimates and Google's error bodies."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llmgw.errors import InvalidRequest, RateLimited
from llmgw.exchange import Exchange, StreamEvent, Usage
from llmgw.formats import named
from llmgw.formats.gemini_generate import GeminiGenerate
from llmgw.guardrails.stream import StreamGuard

WIRE = GeminiGenerate()


def visited(body: dict[str, Any], endpoint: str = "chat") -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    WIRE.request_texts(endpoint, body, lambda text, where: seen.append((where, text)) or text.upper())
    return seen


def test_it_is_the_registrys_gemini_format() -> None:
    assert named("gemini").__class__ is GeminiGenerate
    assert {(r.path, r.endpoint, r.stream) for r in WIRE.routes} >= {
        ("/v1beta/models/{model}:generateContent", "chat", False),
        ("/v1beta/models/{model}:streamGenerateContent", "chat", True),
        ("/v1/models/{model}:countTokens", "count_tokens", False)}


def test_request_texts_visit_every_text_in_place() -> None:
    body = {
        "system_instruction": {"parts": [{"text": "sys"}]},
        "contents": [{"role": "user", "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png",
                                                                                 "data": "AAA"}}]},
                     {"role": "model", "parts": [{"text": "hmm", "thought": True},
                                                 {"functionCall": {"name": "f", "args": {"q": "x", "n": [1, "y"]}}}]},
                     {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"out": "z"}}}]}],
        "tools": [{"functionDeclarations": [{"name": "f", "description": "finds", "parameters": {
            "type": "OBJECT", "properties": {"q": {"type": "STRING", "description": "the query"}}}}]}],
        "generationConfig": {"stopSequences": ["STOP"], "responseSchema": {"type": "STRING", "enum": ["a"]}},
    }
    seen = visited(body)
    expected = [("systemInstruction.parts[0].text", "sys"), ("contents[0].parts[0].text", "hi"),
                ("contents[1].parts[0].text", "hmm"), ("contents[1].parts[1].functionCall.args.q", "x"),
                ("contents[1].parts[1].functionCall.args.n[1]", "y"),
                ("contents[2].parts[0].functionResponse.response.out", "z"),
                ("tools[0].functionDeclarations[0].description", "finds"),
                ("tools[0].functionDeclarations[0].parameters.properties.q.description", "the query"),
                ("generationConfig.stopSequences[0]", "STOP"), ("generationConfig.responseSchema.enum[0]", "a")]
    assert [pair for pair in seen if pair in expected] == expected   # in document order
    assert body["system_instruction"]["parts"][0]["text"] == "SYS"
    assert list(body["contents"][1]["parts"][1]["functionCall"]["args"].values()) == ["X", [1, "Y"]]
    assert body["contents"][0]["parts"][1]["inlineData"]["data"] == "AAA"


def test_count_tokens_texts_inside_a_generate_content_request() -> None:
    body = {"generateContentRequest": {"model": "models/m", "contents": [{"parts": [{"text": "count"}]}]}}
    assert visited(body, "count_tokens") == [("contents[0].parts[0].text", "count")]


def test_parse_fills_the_exchange_and_keeps_a_translation_error() -> None:
    ex = Exchange("gemini", "chat")
    ex.route_params, ex.stream = {"model": "pro"}, True
    body = {"contents": [{"parts": [{"text": "hi"}]}], "tools": [{"googleSearch": {}}]}
    WIRE.parse(ex, body)
    assert (ex.alias, ex.stream, ex.client_body) == ("pro", True, body)
    assert isinstance(ex.translation_error, InvalidRequest) and ex.translation_error.param == "tools[0].googleSearch"
    assert ex.body == {"model": "pro", "messages": []}
    with pytest.raises(InvalidRequest) as info:
        WIRE.parse(Exchange("gemini", "chat"), body)   # no alias in the path
    assert info.value.param == "model"


def test_answers_read_for_replay_and_the_cache() -> None:
    answer = {"candidates": [{"content": {"role": "model", "parts": [
        {"text": "thinking", "thought": True}, {"text": "Sunny."},
        {"functionCall": {"name": "w", "args": {"c": "P"}}}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 4, "thoughtsTokenCount": 2},
        "modelVersion": "gemini-2.5-pro"}
    assert WIRE.answer_text(answer) == 'Sunny.\nw({"c":"P"})'
    assert WIRE.answer_usage(answer) == Usage(input_tokens=10, output_tokens=6, reasoning_tokens=2)
    canonical = WIRE.canonical_answer(answer)
    assert canonical["choices"][0]["finish_reason"] == "tool_calls" and canonical["model"] == "gemini-2.5-pro"
    assert WIRE.answer_text({"choices": []}) is None and WIRE.answer_usage({"usage": {}}) is None


@pytest.mark.parametrize(("chunk", "delta"), [
    ({"candidates": [{"content": {"parts": [{"text": "a"}, {"text": "b"}]}}]}, ("ab", None)),
    ({"candidates": [{"content": {"parts": [{"text": "x", "thought": True}]}}]}, (None, None)),
    ({"candidates": [{"content": {"parts": [{"text": "end"}]}, "finishReason": "STOP"}]}, ("end", "stop")),
    ({"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "MAX_TOKENS"}]}, (None, "length")),
    ({"candidates": [{"content": {"parts": [{"functionCall": {"name": "f"}}]}}]}, (None, "tool_calls")),
    ({"promptFeedback": {"blockReason": "SAFETY"}}, (None, "content_filter")),
    ({"usageMetadata": {"promptTokenCount": 1}}, (None, None)),
])
def test_event_delta(chunk: dict[str, Any], delta: tuple[Any, Any]) -> None:
    assert WIRE.event_delta(chunk) == delta


class HoldAll:
    """A guard pipe that holds everything back until it is flushed, and writes names in capitals."""

    def __init__(self) -> None:
        self.buffer = ""

    def feed(self, text: str) -> str:
        self.buffer += text
        return ""

    def flush(self) -> str:
        out, self.buffer = self.buffer.replace("bob", "BOB").replace("cut", "CUT"), ""
        return out


def test_guard_event_holds_texts_back_and_puts_them_before_the_calls_of_the_last_chunk() -> None:
    guard = StreamGuard(lambda where, json: HoldAll())  # type: ignore[arg-type,return-value]
    first = StreamEvent({"candidates": [{"content": {"role": "model", "parts": [{"text": "hel"}]}, "index": 0}],
                         "responseId": "r1"}, b"raw", format="gemini")
    [out] = guard.process(first)
    assert out.raw is None and out.data["candidates"][0]["content"]["parts"] == [{"text": ""}]
    last = StreamEvent({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "lo"}, {"functionCall": {"name": "f", "args": {"to": "bob"}}}]},
        "finishReason": "STOP", "index": 0}]}, b"raw", format="gemini")
    [out] = guard.process(last)
    assert out.data["candidates"][0]["content"]["parts"] == [
        {"text": ""}, {"text": "hello"}, {"functionCall": {"name": "f", "args": {"to": "BOB"}}}]
    assert guard.channels() == [] and guard.finish() == []


def test_text_still_held_at_the_end_comes_in_an_extra_chunk() -> None:
    guard = StreamGuard(lambda where, json: HoldAll())  # type: ignore[arg-type,return-value]
    guard.process(StreamEvent({"candidates": [{"content": {"parts": [{"text": "cut", "thought": True}]},
                                               "index": 0}], "modelVersion": "m"}, None, format="gemini"))
    [extra] = guard.finish()
    assert extra.format == "gemini" and extra.flush
    assert extra.data == {"candidates": [{"content": {"role": "model", "parts": [{"text": "CUT", "thought": True}]},
                                          "index": 0}], "modelVersion": "m"}


def test_estimates_count_text_by_its_length() -> None:
    body = {"contents": [{"parts": [{"text": "x" * 400}]}], "systemInstruction": {"parts": [{"text": "y" * 40}]}}
    assert WIRE.estimate_input_tokens(body) == (400 + 40 + 24 + 3) // 4
    assert WIRE.estimate_input_tokens({"generateContentRequest": body}) == WIRE.estimate_input_tokens(body)
    assert WIRE.count_tokens_answer(12) == {"totalTokens": 12}


def test_errors_are_googles() -> None:
    body = WIRE.error_body(InvalidRequest("contents: required", param="contents", code="invalid_value"))
    assert body["error"]["code"] == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    assert body["error"]["details"][1] == {"@type": "type.googleapis.com/google.rpc.BadRequest",
                                           "fieldViolations": [{"field": "contents",
                                                                "description": "contents: required"}]}
    limited = WIRE.render_error(RateLimited("slow down", retry_after=2.5))
    error = orjson.loads(limited.body)["error"]
    assert limited.status == 429 and limited.headers["Retry-After"] == "3"
    assert error["status"] == "RESOURCE_EXHAUSTED" and error["details"][-1]["retryDelay"] == "3s"


def test_replay_puts_the_alias_in_the_path() -> None:
    body = {"contents": [{"parts": [{"text": "again"}]}]}
    assert WIRE.replay_call(body, "team/pro") == ("/v1beta/models/team%2Fpro:generateContent", body)


def test_the_output_cap_is_maxoutputtokens_in_the_spelling_the_client_uses() -> None:
    ex = Exchange("gemini", "chat")
    ex.client_body = {"contents": [], "generation_config": {"temperature": 0.5}}
    assert WIRE.output_cap(ex) is None
    WIRE.set_output_cap(ex, 1024)
    assert ex.client_body["generation_config"] == {"temperature": 0.5, "maxOutputTokens": 1024}
    assert WIRE.output_cap(ex) == 1024
    ex.client_body = {"contents": []}
    WIRE.set_output_cap(ex, 7)
    assert ex.client_body["generationConfig"] == {"maxOutputTokens": 7} and WIRE.output_cap(ex) == 7
