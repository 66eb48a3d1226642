"""Canonical (OpenAI Chat Completions) <-> Gemini generateContent translation (llmgw.translate.gemini)."""

from __future__ import annotations

import base64
import re
import struct
from typing import Any

import orjson
import pytest

from llmgw.errors import InvalidRequest
from llmgw.exchange import Usage
from llmgw.sse import SSEDecoder
from llmgw.testing.fake_gemini import (
    GEMINI_EMBEDDINGS_SAMPLE,
    GEMINI_FUNCTION_CALL_SAMPLE,
    GEMINI_RESPONSE_SAMPLE,
    GEMINI_STREAM_SAMPLE,
)
from llmgw.translate.gemini import (
    gemini_embeddings_to_openai,
    gemini_to_openai,
    openai_embeddings_to_gemini,
    openai_to_gemini,
    usage_from_gemini,
)
from llmgw.translate.gemini_stream import GeminiStreamToOpenAI

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": ["string", "null"], "enum": ["c", "f"]},
                # a property whose *name* is a rejected keyword must survive
                "additionalProperties": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}},
                                                    "additionalProperties": False}},
                "mode": {"const": "fast"},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def translate(body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    out, _ = openai_to_gemini(body, **kwargs)
    return out


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


# --- requests ----------------------------------------------------------------------------------------------------


def test_minimal_request_copies_nothing_but_contents() -> None:
    out, dropped = openai_to_gemini({"model": "gpt-x", "messages": [user("hi")], "stream": True,
                                     "stream_options": {"include_usage": True}})
    assert out == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert dropped == []


def test_system_and_developer_become_system_instruction() -> None:
    out = translate({"messages": [
        {"role": "system", "content": "Be terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        user("hello"),
    ]})
    assert out["systemInstruction"] == {"parts": [{"text": "Be terse."}, {"text": "Answer in French."}]}
    assert out["contents"] == [{"role": "user", "parts": [{"text": "hello"}]}]


def test_a_system_message_after_the_first_turn_is_a_marked_user_part_at_its_position() -> None:
    out = translate({"messages": [
        {"role": "system", "content": "Be terse."},
        user("fix it"),
        {"role": "system", "content": [{"type": "text", "text": "cwd: /src"}]},
        {"role": "assistant", "content": "done"},
        {"role": "developer", "content": "Answer in French."},
        {"role": "system", "content": ""},
    ]})
    assert out["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "fix it"}, {"text": "<system>\ncwd: /src\n</system>"}]},
        {"role": "model", "parts": [{"text": "done"}]},
        {"role": "user", "parts": [{"text": "<system>\nAnswer in French.\n</system>"}]},
    ]


def test_roles_map_and_consecutive_turns_merge() -> None:
    out = translate({"messages": [user("a"), user("b"), {"role": "assistant", "content": "c"},
                                  {"role": "assistant", "content": [{"type": "text", "text": "d"}]}, user("e")]})
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
        {"role": "model", "parts": [{"text": "c"}, {"text": "d"}]},
        {"role": "user", "parts": [{"text": "e"}]},
    ]


def test_images_data_url_inline_and_http_url_file_data() -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    out = translate({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?x=1"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/photo"}},
    ]}]})
    assert out["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": png}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?x=1"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/photo"}},
    ]


def test_non_base64_data_url_is_encoded_and_audio_and_files_are_inline() -> None:
    out = translate({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/svg+xml,%3Csvg%2F%3E"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
    ]}]})
    assert out["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/svg+xml", "data": base64.b64encode(b"<svg/>").decode()}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
    ]


@pytest.mark.parametrize(("part", "param"), [
    ({"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}, "messages[0].content[0].image_url.url"),
    ({"type": "image_url", "image_url": {"url": "data:image/png;base64"}}, "messages[0].content[0].image_url.url"),
    ({"type": "file", "file": {"file_id": "file-abc"}}, "messages[0].content[0].file"),
    ({"type": "input_audio", "input_audio": {"data": "x", "format": "flac"}},
     "messages[0].content[0].input_audio.format"),
    ({"type": "video", "video": {}}, "messages[0].content[0].type"),
])
def test_bad_content_parts_name_their_path(part: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        translate({"messages": [{"role": "user", "content": [part]}]})
    assert info.value.param == param
    assert info.value.status == 400


def test_parallel_tool_calls_and_results_round_trip() -> None:
    out = translate({"messages": [
        user("Weather and time in Paris?"),
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21, "sky": "clear"}'},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "14:05"}]},
        user("Thanks"),
    ], "tools": [WEATHER_TOOL, TIME_TOOL]})
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "Weather and time in Paris?"}]},
        {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_time", "args": {}}},
        ]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21, "sky": "clear"}}},
            {"functionResponse": {"name": "get_time", "response": {"content": "14:05"}}},
            {"text": "Thanks"},
        ]},
    ]


def test_assistant_text_comes_before_its_calls_and_signatures_come_back() -> None:
    out = translate({"messages": [user("x"), {"role": "assistant", "content": "Let me check.", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": "{}"},
         "extra_content": {"google": {"thought_signature": "c2lnbmF0dXJl"}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "[1, 2]"}]})
    assert out["contents"][1] == {"role": "model", "parts": [
        {"text": "Let me check."},
        {"functionCall": {"name": "get_time", "args": {}}, "thoughtSignature": "c2lnbmF0dXJl"},
    ]}
    # a JSON value that is not an object is wrapped like any text
    assert out["contents"][2]["parts"] == [{"functionResponse": {"name": "get_time",
                                                                 "response": {"content": "[1, 2]"}}}]


def test_invalid_tool_call_arguments_name_the_path() -> None:
    messages = [user("x"), {"role": "assistant", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "get_weather", "arguments": "{city: Paris"}}]}]
    with pytest.raises(InvalidRequest) as info:
        translate({"messages": messages})
    assert info.value.param == "messages[1].tool_calls[1].function.arguments"
    messages[1]["tool_calls"][1]["function"]["arguments"] = '["Paris"]'
    with pytest.raises(InvalidRequest, match="JSON object"):
        translate({"messages": messages})


def test_tool_result_for_an_unknown_call_is_refused() -> None:
    with pytest.raises(InvalidRequest) as info:
        translate({"messages": [user("x"), {"role": "tool", "tool_call_id": "nope", "content": "1"}]})
    assert info.value.param == "messages[1].tool_call_id"


def test_legacy_function_messages() -> None:
    out = translate({"messages": [
        user("x"),
        {"role": "assistant", "content": None, "function_call": {"name": "get_time", "arguments": '{"tz": "UTC"}'}},
        {"role": "function", "name": "get_time", "content": "noon"},
    ], "functions": [{"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}],
        "function_call": {"name": "get_time"}})
    assert out["contents"][1]["parts"] == [{"functionCall": {"name": "get_time", "args": {"tz": "UTC"}}}]
    assert out["contents"][2]["parts"] == [{"functionResponse": {"name": "get_time", "response": {"content": "noon"}}}]
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}}


def test_json_schema_bounds_gemini_has_no_field_for_are_left_out() -> None:
    limit = {"type": "integer", "exclusiveMinimum": 0, "maximum": 2000, "multipleOf": 1}
    tags = {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
    out = translate({"messages": [user("x")], "tools": [{"type": "function", "function": {
        "name": "read", "parameters": {"type": "object", "properties": {"limit": limit, "tags": tags}}}}]})
    assert out["tools"][0]["functionDeclarations"][0]["parameters"]["properties"] == {
        "limit": {"type": "integer", "maximum": 2000}, "tags": {"type": "array", "items": {"type": "string"}}}


def test_tools_become_declarations_with_a_schema_gemini_accepts() -> None:
    out = translate({"messages": [user("x")], "tools": [WEATHER_TOOL, TIME_TOOL]})
    assert out["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather for a city", "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "nullable": True, "enum": ["c", "f"]},
                "additionalProperties": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}},
                "mode": {"enum": ["fast"]},
            },
            "required": ["city"],
        }},
        {"name": "get_time"},  # an object with no properties: Gemini wants no parameters at all
    ]}]
    assert "toolConfig" not in out
    assert WEATHER_TOOL["function"]["parameters"]["additionalProperties"] is False  # input untouched


@pytest.mark.parametrize(("choice", "config"), [
    ("auto", {"mode": "AUTO"}),
    ("none", {"mode": "NONE"}),
    ("required", {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "get_time"}}, {"mode": "ANY", "allowedFunctionNames": ["get_time"]}),
    ({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [
        {"type": "function", "function": {"name": "get_time"}}]}},
     {"mode": "ANY", "allowedFunctionNames": ["get_time"]}),
])
def test_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    out = translate({"messages": [user("x")], "tools": [WEATHER_TOOL, TIME_TOOL], "tool_choice": choice})
    assert out["toolConfig"] == {"functionCallingConfig": config}


def test_tool_choice_allowed_tools_auto_narrows_the_declarations() -> None:
    out = translate({"messages": [user("x")], "tools": [WEATHER_TOOL, TIME_TOOL], "tool_choice": {
        "type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [
            {"type": "function", "function": {"name": "get_weather"}}]}}})
    assert [d["name"] for d in out["tools"][0]["functionDeclarations"]] == ["get_weather"]
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


def test_tool_choice_errors_and_non_function_tools() -> None:
    with pytest.raises(InvalidRequest) as info:
        translate({"messages": [user("x")], "tools": [TIME_TOOL],
                   "tool_choice": {"type": "function", "function": {"name": "nope"}}})
    assert info.value.param == "tool_choice"
    with pytest.raises(InvalidRequest) as info:
        translate({"messages": [user("x")], "tools": [{"type": "custom", "custom": {"name": "x"}}]})
    assert info.value.param == "tools[0].type"


def test_generation_config() -> None:
    out = translate({"messages": [user("x")], "temperature": 0.2, "top_p": 0.9, "max_tokens": 50,
                     "max_completion_tokens": 64, "stop": ["END", "##"], "seed": 7, "presence_penalty": 0.5,
                     "frequency_penalty": -0.5, "n": 1})
    assert out["generationConfig"] == {"temperature": 0.2, "topP": 0.9, "seed": 7, "presencePenalty": 0.5,
                                       "frequencyPenalty": -0.5, "maxOutputTokens": 64,
                                       "stopSequences": ["END", "##"]}
    assert translate({"messages": [user("x")], "stop": "END", "max_tokens": 5, "top_k": 40})["generationConfig"] == {
        "topK": 40, "maxOutputTokens": 5, "stopSequences": ["END"]}
    assert "generationConfig" not in translate({"messages": [user("x")], "stop": [""]})


def test_response_format() -> None:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
              "properties": {"a": {"type": "integer"}}, "required": ["a"], "additionalProperties": False}
    out = translate({"messages": [user("x")], "response_format": {"type": "json_schema", "json_schema": {
        "name": "thing", "strict": True, "schema": schema}}})
    assert out["generationConfig"] == {"responseMimeType": "application/json", "responseJsonSchema": {
        "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"], "additionalProperties": False}}
    out = translate({"messages": [user("x")], "response_format": {"type": "json_object"}})
    assert out["generationConfig"] == {"responseMimeType": "application/json"}
    assert "generationConfig" not in translate({"messages": [user("x")], "response_format": {"type": "text"}})
    with pytest.raises(InvalidRequest) as info:
        translate({"messages": [user("x")], "response_format": {"type": "grammar"}})
    assert info.value.param == "response_format"


@pytest.mark.parametrize(("name", "value"), [
    ("n", 2), ("logprobs", True), ("top_logprobs", 3), ("logit_bias", {"50256": -100}),
    ("audio", {"voice": "alloy", "format": "wav"}), ("modalities", ["text", "audio"]),
    ("prediction", {"type": "content"}),
])
def test_unsupported_parameters_raise_unless_dropped(name: str, value: Any) -> None:
    body = {"messages": [user("x")], name: value}
    with pytest.raises(InvalidRequest) as info:
        translate(body)
    assert info.value.param == name
    assert info.value.code == "unsupported_parameter"
    assert name in info.value.message and "drop_params" in info.value.message
    out, dropped = openai_to_gemini(body, drop=(name,))
    assert dropped == [name]
    assert out == {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}


def test_harmless_values_of_must_honour_parameters_pass() -> None:
    out, dropped = openai_to_gemini({"messages": [user("x")], "logprobs": False, "modalities": ["text"], "n": 1})
    assert dropped == []
    assert out == {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}


def test_hints_are_dropped_and_named() -> None:
    out, dropped = openai_to_gemini({"messages": [user("x")], "user": "u-1", "metadata": {"a": "b"},
                                     "service_tier": "auto", "parallel_tool_calls": False,
                                     "reasoning_effort": "low", "store": True, "seed": 3})
    assert dropped == ["user", "metadata", "service_tier", "parallel_tool_calls", "reasoning_effort", "store"]
    assert out["generationConfig"] == {"seed": 3}
    assert set(out) == {"contents", "generationConfig"}


def test_unknown_role_is_refused() -> None:
    with pytest.raises(InvalidRequest) as info:
        translate({"messages": [{"role": "narrator", "content": "x"}]})
    assert info.value.param == "messages[0].role"


# --- usage -------------------------------------------------------------------------------------------------------


def test_usage_counts_cached_and_thoughts() -> None:
    usage = usage_from_gemini({"promptTokenCount": 1000, "cachedContentTokenCount": 600, "candidatesTokenCount": 50,
                               "thoughtsTokenCount": 200, "totalTokenCount": 1250})
    assert usage == Usage(input_tokens=1000, output_tokens=250, cached_tokens=600, reasoning_tokens=200)
    assert usage.to_openai() == {"prompt_tokens": 1000, "completion_tokens": 250, "total_tokens": 1250,
                                 "prompt_tokens_details": {"cached_tokens": 600},
                                 "completion_tokens_details": {"reasoning_tokens": 200}}
    assert usage_from_gemini(None) == Usage()
    assert usage_from_gemini({"promptTokenCount": 3}) == Usage(input_tokens=3)
    assert usage_from_gemini({"promptTokenCount": 3, "toolUsePromptTokenCount": 4}).input_tokens == 7


# --- answers -----------------------------------------------------------------------------------------------------


def test_recorded_text_response() -> None:
    resp = orjson.loads(GEMINI_RESPONSE_SAMPLE)
    out = gemini_to_openai(resp, "gemini-2.5-flash")
    assert out["id"] == "chatcmpl-" + resp["responseId"]
    assert out["object"] == "chat.completion"
    assert out["model"] == "gemini-2.5-flash"
    assert isinstance(out["created"], int)
    assert out["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop", "message": {
        "role": "assistant", "refusal": None, "content": resp["candidates"][0]["content"]["parts"][0]["text"]}}]
    assert out["usage"] == {"prompt_tokens": 8, "completion_tokens": 18 + 389, "total_tokens": 415,
                            "completion_tokens_details": {"reasoning_tokens": 389}}


def test_recorded_function_call_response() -> None:
    out = gemini_to_openai(orjson.loads(GEMINI_FUNCTION_CALL_SAMPLE), "gemini-2.0-flash")
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert re.fullmatch(r"call_[0-9a-f]{24}", call["id"])
    assert call["type"] == "function"
    assert call["function"] == {"name": "find_theaters",
                                "arguments": '{"location":"Mountain View, CA","movie":"Barbie"}'}


def test_text_thoughts_parallel_calls_and_signatures() -> None:
    resp = {"candidates": [{"content": {"role": "model", "parts": [
        {"text": "Planning the lookups...", "thought": True},
        {"text": "Checking "},
        {"text": "both."},
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig-1"},
        {"functionCall": {"name": "get_time", "args": {}}},
    ]}, "finishReason": "STOP"}]}
    message = gemini_to_openai(resp, "m")["choices"][0]["message"]
    assert message["content"] == "Checking both."
    first, second = message["tool_calls"]
    assert first["extra_content"] == {"google": {"thought_signature": "sig-1"}}
    assert "extra_content" not in second
    assert first["id"] != second["id"]
    assert [c["function"]["arguments"] for c in message["tool_calls"]] == ['{"city":"Paris"}', "{}"]
    # the signature goes back to Gemini when the client sends the call back
    back = translate({"messages": [user("x"), message, {"role": "tool", "tool_call_id": first["id"], "content": "1"},
                                   {"role": "tool", "tool_call_id": second["id"], "content": "2"}]})
    assert back["contents"][1]["parts"][1] == {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                               "thoughtSignature": "sig-1"}


@pytest.mark.parametrize(("reason", "finish"), [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("OTHER", "stop"), ("MALFORMED_FUNCTION_CALL", "stop"), ("LANGUAGE", "stop"), (None, "stop"),
])
def test_finish_reasons(reason: str | None, finish: str) -> None:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": "x"}]}}
    if reason:
        candidate["finishReason"] = reason
    assert gemini_to_openai({"candidates": [candidate]}, "m")["choices"][0]["finish_reason"] == finish


def test_blocked_prompt_is_a_content_filter_with_empty_content() -> None:
    out = gemini_to_openai({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
                            "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}}, "m")
    assert out["choices"][0]["finish_reason"] == "content_filter"
    assert out["choices"][0]["message"]["content"] == ""
    assert out["usage"]["prompt_tokens"] == 7
    assert out["id"].startswith("chatcmpl-")


def test_safety_stop_without_content() -> None:
    out = gemini_to_openai({"candidates": [{"finishReason": "SAFETY", "index": 0}]}, "m")
    assert out["choices"][0]["message"]["content"] == ""
    assert out["choices"][0]["finish_reason"] == "content_filter"


# --- streams -----------------------------------------------------------------------------------------------------

# A streamed answer with thinking, text and two parallel function calls, as streamGenerateContent?alt=sse sends it.
TOOL_STREAM = (
    b'data: {"candidates": [{"content": {"parts": [{"text": "**Planning**", "thought": true}],"role": "model"},'
    b'"index": 0}],"usageMetadata": {"promptTokenCount": 60,"totalTokenCount": 80,"thoughtsTokenCount": 20},'
    b'"modelVersion": "gemini-2.5-flash","responseId": "r-1"}\r\n\r\n'
    b'data: {"candidates": [{"content": {"parts": [{"text": "Let me "}],"role": "model"},"index": 0}],'
    b'"usageMetadata": {"promptTokenCount": 60,"candidatesTokenCount": 2,"totalTokenCount": 82,'
    b'"thoughtsTokenCount": 20},"modelVersion": "gemini-2.5-flash","responseId": "r-1"}\r\n\r\n'
    b'data: {"candidates": [{"content": {"parts": [{"text": "check."},'
    b'{"functionCall": {"name": "get_weather","args": {"city": "Paris"}},"thoughtSignature": "c2ln"},'
    b'{"functionCall": {"name": "get_time","args": {"tz": "CET"}}}],"role": "model"},'
    b'"finishReason": "STOP","index": 0}],'
    b'"usageMetadata": {"promptTokenCount": 60,"candidatesTokenCount": 30,"totalTokenCount": 110,'
    b'"cachedContentTokenCount": 32,"thoughtsTokenCount": 20},'
    b'"modelVersion": "gemini-2.5-flash","responseId": "r-1"}\r\n\r\n'
)


def run_stream(raw: bytes) -> tuple[GeminiStreamToOpenAI, list[Any]]:
    converter = GeminiStreamToOpenAI("gemini-2.5-flash", "chatcmpl-abc")
    decoder = SSEDecoder()
    events = []
    for i in range(0, len(raw), 7):  # arbitrary splits
        for message in decoder.feed(raw[i:i + 7]):
            events.extend(converter.feed(orjson.loads(message.data)))
    for message in decoder.close():
        events.extend(converter.feed(orjson.loads(message.data)))
    events.extend(converter.finish())
    return converter, events


def test_stream_of_text_and_parallel_function_calls() -> None:
    converter, events = run_stream(TOOL_STREAM)
    assert converter.finished
    for event in events:
        assert event.raw is None and event.format == "openai"
        assert event.data["id"] == "chatcmpl-abc"
        assert event.data["object"] == "chat.completion.chunk"
        assert event.data["model"] == "gemini-2.5-flash"
    deltas = [e.data["choices"][0]["delta"] for e in events[:-1]]
    finishes = [e.data["choices"][0]["finish_reason"] for e in events[:-1]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1:3] == [{"content": "Let me "}, {"content": "check."}]
    weather, time_ = deltas[3]["tool_calls"], deltas[4]["tool_calls"]
    assert weather == [{"index": 0, "id": weather[0]["id"], "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        "extra_content": {"google": {"thought_signature": "c2ln"}}}]
    assert time_ == [{"index": 1, "id": time_[0]["id"], "type": "function",
                      "function": {"name": "get_time", "arguments": '{"tz":"CET"}'}}]
    assert re.fullmatch(r"call_[0-9a-f]{24}", weather[0]["id"]) and weather[0]["id"] != time_[0]["id"]
    assert deltas[5] == {} and finishes == [None] * 5 + ["tool_calls"]
    last = events[-1]
    assert last.data["choices"] == []
    assert last.usage == Usage(input_tokens=60, output_tokens=50, cached_tokens=32, reasoning_tokens=20)
    assert last.data["usage"] == last.usage.to_openai()
    assert all(e.usage is None for e in events[:-1])


def test_recorded_text_stream() -> None:
    _, events = run_stream(GEMINI_STREAM_SAMPLE.encode())
    text = "".join(e.data["choices"][0]["delta"].get("content", "") for e in events if e.data["choices"])
    assert text == "Hello! How can I help you today?"
    assert events[-2].data["choices"][0]["finish_reason"] == "stop"
    assert events[-1].usage == Usage(input_tokens=2, output_tokens=9)
    assert len(events) == 5  # role, two texts, finish, usage


def test_stream_max_tokens_and_blocked_prompt() -> None:
    converter = GeminiStreamToOpenAI("m", "id")
    events = converter.feed({"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "MAX_TOKENS"}]})
    assert events[-1].data["choices"][0]["finish_reason"] == "length"
    assert converter.feed({"usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1}}) == []
    assert [e.data["choices"] for e in converter.finish()] == [[]]
    assert converter.finish() == []

    blocked = GeminiStreamToOpenAI("m", "id")
    events = blocked.feed({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                           "usageMetadata": {"promptTokenCount": 4}})
    assert [e.data["choices"][0]["finish_reason"] for e in events] == [None, "content_filter"]
    assert blocked.finished
    assert blocked.finish()[-1].usage == Usage(input_tokens=4)


def test_stream_finish_without_finish_reason_still_closes() -> None:
    converter = GeminiStreamToOpenAI("m", "id")
    assert not converter.finished
    events = converter.finish()
    assert [e.data["choices"][0]["finish_reason"] for e in events[:-1]] == [None, "stop"]
    assert events[-1].data["choices"] == []


# --- embeddings --------------------------------------------------------------------------------------------------


def test_embeddings_request_and_recorded_response() -> None:
    request, dropped = openai_embeddings_to_gemini({"input": ["a", "b"], "dimensions": 3, "user": "u",
                                                    "model": "alias"}, "gemini-embedding-001")
    assert request == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 3},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 3},
    ]}
    assert dropped == ["user"]
    assert openai_embeddings_to_gemini({"input": "one"}, "models/x")[0] == {
        "requests": [{"model": "models/x", "content": {"parts": [{"text": "one"}]}}]}
    with pytest.raises(InvalidRequest) as info:
        openai_embeddings_to_gemini({"input": [1, 2, 3]}, "x")
    assert info.value.param == "input"

    resp = orjson.loads(GEMINI_EMBEDDINGS_SAMPLE)
    body, usage = gemini_embeddings_to_openai(resp, "gemini-embedding-001")
    assert body == {"object": "list", "model": "gemini-embedding-001",
                    "data": [{"object": "embedding", "index": i, "embedding": e["values"]}
                             for i, e in enumerate(resp["embeddings"])],
                    "usage": {"prompt_tokens": 0, "total_tokens": 0}}
    assert usage == Usage()
    body, _ = gemini_embeddings_to_openai(resp, "m", "base64")
    packed = base64.b64decode(body["data"][0]["embedding"])
    assert struct.unpack("<3f", packed) == pytest.approx(resp["embeddings"][0]["values"], rel=1e-6)
