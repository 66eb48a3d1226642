"""A Gemini client and a target of another format: the client's request -> the canonical form, and canonical answers
(whole, and streams fed chunk by chunk) -> Gemini's GenerateContentResponse."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llmgw.errors import InvalidRequest
from llmgw.exchange import Usage
from llmgw.translate.gemini import gemini_to_openai, usage_from_gemini
from llmgw.translate.gemini_client import gemini_request_to_openai, schema_to_json
from llmgw.translate.gemini_client_stream import (
    OpenAIStreamToGemini,
    openai_response_to_gemini,
    usage_metadata,
)

WEATHER = {"name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING", "nullable": True}},
                          "required": ["city"], "propertyOrdering": ["city"]}}
# What Gemini CLI sends on a tool round trip (shape of @google/genai 1.x requests).
AGENT = {
    "systemInstruction": {"role": "user", "parts": [{"text": "You are a CLI agent."}, {"text": "Be brief."}]},
    "contents": [
        {"role": "user", "parts": [{"text": "What is the weather in Paris?"}]},
        {"role": "model", "parts": [{"text": "Let me check.", "thoughtSignature": "c2ln"},
                                    {"functionCall": {"id": "fc-1", "name": "get_weather", "args": {"city": "Paris"}},
                                     "thoughtSignature": "c2lnMg=="}]},
        {"role": "user", "parts": [{"functionResponse": {"id": "fc-1", "name": "get_weather",
                                                         "response": {"output": "Sunny, 21C"}}}]},
    ],
    "tools": [{"functionDeclarations": [WEATHER]}],
    "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    "generationConfig": {"temperature": 0.2, "topP": 0.95, "topK": 64, "maxOutputTokens": 512,
                         "stopSequences": ["END"], "thinkingConfig": {"includeThoughts": True,
                                                                       "thinkingBudget": 1024}},
    "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
}


def test_an_agent_round_trip_becomes_the_canonical_conversation() -> None:
    body, dropped = gemini_request_to_openai(AGENT, "gemini-pro", stream=True)
    assert body["model"] == "gemini-pro" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "system", "content": "You are a CLI agent.\nBe brief."},
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "fc-1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
             "extra_content": {"google": {"thought_signature": "c2lnMg=="}}}]},
        {"role": "tool", "tool_call_id": "fc-1", "content": '{"output":"Sunny, 21C"}'},
    ]
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": ["string", "null"]}},
                       "required": ["city"]}}}]
    assert body["tool_choice"] == "auto"
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["stop"]) == (0.2, 0.95, 512, ["END"])
    assert dropped == ["thoughtSignature", "generationConfig.topK", "generationConfig.thinkingConfig",
                       "safetySettings"]


def test_snake_case_fields_read_like_camel_case() -> None:
    body, _ = gemini_request_to_openai({
        "system_instruction": {"parts": [{"text": "Sys"}]},
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
        "generation_config": {"max_output_tokens": 9, "candidate_count": 1}}, "a")
    assert body["messages"][0] == {"role": "system", "content": "Sys"}
    assert (body["max_tokens"], body["n"]) == (9, 1)


def test_calls_without_ids_are_answered_in_order_by_name() -> None:
    body, _ = gemini_request_to_openai({"contents": [
        {"role": "user", "parts": [{"text": "two cities"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "w", "args": {"c": "A"}}},
                                    {"functionCall": {"name": "w", "args": {"c": "B"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "w", "response": {"t": 1}}},
                                   {"functionResponse": {"name": "w", "response": {"t": 2}}},
                                   {"text": "and now?"}]}]}, "a")
    assistant, first, second, user = body["messages"][1:]
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_1_0", "call_1_1"]
    assert assistant["content"] is None
    assert (first["tool_call_id"], second["tool_call_id"]) == ("call_1_0", "call_1_1")
    assert user == {"role": "user", "content": "and now?"}


def test_a_response_numbered_by_the_client_answers_the_call_of_its_name() -> None:
    """Gemini CLI numbers calls that came without an id itself (``name-<time>-<n>``) and sends that id back."""
    body, _ = gemini_request_to_openai({"contents": [
        {"role": "user", "parts": [{"text": "ls"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "list_directory", "args": {"path": "."}}}]},
        {"role": "user", "parts": [{"functionResponse": {"id": "list_directory-1759-0", "name": "list_directory",
                                                         "response": {"output": "a.py"}}}]}]}, "a")
    assert body["messages"][1]["tool_calls"][0]["id"] == "call_1_0"
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "call_1_0", "content": '{"output":"a.py"}'}


def test_media_parts() -> None:
    body, _ = gemini_request_to_openai({"contents": [{"role": "user", "parts": [
        {"text": "look"}, {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
        {"inlineData": {"mimeType": "audio/mpeg", "data": "SUQz"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}}]}]}, "a")
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
        {"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}},
        {"type": "file", "file": {"filename": "file.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]


def test_thought_parts_are_dropped_and_named() -> None:
    body, dropped = gemini_request_to_openai({"contents": [
        {"role": "user", "parts": [{"text": "q"}]},
        {"role": "model", "parts": [{"text": "thinking...", "thought": True}, {"text": "answer"}]}]}, "a")
    assert body["messages"][1] == {"role": "assistant", "content": "answer"}
    assert dropped == ["thought"]


@pytest.mark.parametrize(("config", "tools", "choice"), [
    ({"mode": "NONE"}, ["get_weather", "other"], "none"),
    ({"mode": "ANY"}, ["get_weather", "other"], "required"),
    ({"mode": "ANY", "allowedFunctionNames": ["other"]}, ["other"],
     {"type": "function", "function": {"name": "other"}}),
    ({"mode": "ANY", "allowedFunctionNames": ["other", "get_weather"]}, ["get_weather", "other"], "required"),
])
def test_function_calling_config(config: dict[str, Any], tools: list[str], choice: Any) -> None:
    body, _ = gemini_request_to_openai({
        "contents": [{"parts": [{"text": "hi"}]}],
        "tools": [{"functionDeclarations": [WEATHER, {"name": "other"}]}],
        "toolConfig": {"functionCallingConfig": config}}, "a")
    assert [t["function"]["name"] for t in body["tools"]] == tools
    assert body["tool_choice"] == choice


def test_a_tool_config_without_tools_is_left_out() -> None:
    body, _ = gemini_request_to_openai({"contents": [{"parts": [{"text": "hi"}]}], "tools": [],
                                        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}}}, "a")
    assert "tools" not in body and "tool_choice" not in body


@pytest.mark.parametrize(("config", "expected"), [
    ({"responseMimeType": "application/json"}, {"type": "json_object"}),
    ({"responseMimeType": "application/json", "responseSchema": {"type": "OBJECT", "properties": {
        "a": {"type": "INTEGER"}}}},
     {"type": "json_schema", "json_schema": {"name": "response", "schema": {
         "type": "object", "properties": {"a": {"type": "integer"}}}}}),
    ({"responseMimeType": "application/json", "responseJsonSchema": {"type": "array"}},
     {"type": "json_schema", "json_schema": {"name": "response", "schema": {"type": "array"}}}),
    ({"responseMimeType": "text/plain"}, None),
])
def test_response_formats(config: dict[str, Any], expected: Any) -> None:
    body, _ = gemini_request_to_openai({"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": config},
                                       "a")
    assert body.get("response_format") == expected


@pytest.mark.parametrize(("request_body", "param"), [
    ({"cachedContent": "cachedContents/abc"}, "cachedContent"),
    ({"tools": [{"googleSearch": {}}]}, "tools[0].googleSearch"),
    ({"contents": [{"role": "user", "parts": [{"executableCode": {"code": "1"}}]}]}, "contents[0].parts[0]"),
    ({"contents": [{"role": "user", "parts": [{"hologram": {}}]}]}, "contents[0].parts[0]"),
    ({"contents": [{"role": "narrator", "parts": [{"text": "x"}]}]}, "contents[0].role"),
    ({"contents": [{"role": "user", "parts": [{"fileData": {"mimeType": "video/mp4",
                                                            "fileUri": "files/abc"}}]}]},
     "contents[0].parts[0].fileData"),
    ({"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "w", "response": {}}}]}]},
     "contents[0].parts[0].functionResponse"),
    ({"generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}}, "generationConfig.responseModalities"),
    ({"generationConfig": {"responseLogprobs": True}}, "generationConfig.responseLogprobs"),
    ({"generationConfig": {"responseMimeType": "text/x.enum"}}, "generationConfig.responseMimeType"),
    ({"systemInstruction": {"parts": [{"inlineData": {"mimeType": "image/png", "data": ""}}]}},
     "systemInstruction.parts[0]"),
])
def test_what_would_change_the_answer_is_refused_naming_the_field(request_body: dict[str, Any],
                                                                   param: str) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], **request_body}
    with pytest.raises(InvalidRequest) as info:
        gemini_request_to_openai(body, "a")
    assert info.value.param == param and info.value.message.startswith(param + ": ")


def test_schema_to_json_keeps_property_names() -> None:
    schema = {"type": "OBJECT", "properties": {"type": {"type": "STRING"}, "nullable": {"type": "ARRAY",
                                                                                          "items": {"type": "NUMBER"}}}}
    assert schema_to_json(schema) == {"type": "object", "properties": {
        "type": {"type": "string"}, "nullable": {"type": "array", "items": {"type": "number"}}}}


# --- answers ----------------------------------------------------------------------------------------------------

CANONICAL = {
    "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Checking.",
        "tool_calls": [{"id": "call_a", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        "extra_content": {"google": {"thought_signature": "sig"}}}]}}],
    "usage": {"prompt_tokens": 20, "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 4},
              "completion_tokens_details": {"reasoning_tokens": 3}},
}


def test_a_canonical_answer_as_gemini() -> None:
    answer = openai_response_to_gemini(CANONICAL)
    assert answer == {
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "Checking."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_a"},
             "thoughtSignature": "sig"}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 6, "totalTokenCount": 29,
                          "cachedContentTokenCount": 4, "thoughtsTokenCount": 3},
        "modelVersion": "gpt-4o-mini", "responseId": "chatcmpl-1"}
    # and back: the gateway's own reading of Gemini answers gives the same usage and call
    again = gemini_to_openai(answer, "m")
    assert again["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"city":"Paris"}'
    assert usage_from_gemini(answer["usageMetadata"]) == Usage(input_tokens=20, output_tokens=9, cached_tokens=4,
                                                               reasoning_tokens=3)


@pytest.mark.parametrize(("finish", "gemini"), [("stop", "STOP"), ("length", "MAX_TOKENS"),
                                                ("content_filter", "SAFETY"), ("weird", "STOP"), (None, "STOP")])
def test_finish_reasons(finish: Any, gemini: str) -> None:
    body = {"choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": None}}]}
    candidate = openai_response_to_gemini(body, Usage(1, 1))["candidates"][0]
    assert candidate["finishReason"] == gemini and candidate["content"]["parts"] == [{"text": ""}]


def test_usage_metadata_is_the_inverse_of_usage_from_gemini() -> None:
    usage = Usage(input_tokens=100, output_tokens=40, cached_tokens=30, reasoning_tokens=15)
    assert usage_from_gemini(usage_metadata(usage)) == usage
    assert usage_metadata(Usage(5, 2)) == {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}


# --- streams ----------------------------------------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {"id": "chatcmpl-9", "object": "chat.completion.chunk", "model": "gpt-x",
            "choices": [{"index": index, "delta": delta or {}, "finish_reason": finish}]}


USAGE_CHUNK = {"id": "chatcmpl-9", "object": "chat.completion.chunk", "model": "gpt-x", "choices": [],
               "usage": {"prompt_tokens": 7, "completion_tokens": 5}}


def test_a_text_stream_chunk_by_chunk() -> None:
    converter = OpenAIStreamToGemini("alias")
    out: list[list[dict[str, Any]]] = [
        converter.feed(chunk({"role": "assistant", "content": ""})),
        converter.feed(chunk({"content": "Hel"})),
        converter.feed(chunk({"content": "lo"})),
        converter.feed(chunk({}, "stop")),
        converter.feed(USAGE_CHUNK, Usage(7, 5)),
        converter.finish(),
    ]
    assert [len(o) for o in out] == [0, 1, 1, 0, 1, 0]
    assert out[1][0] == {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}],
                         "modelVersion": "gpt-x", "responseId": "chatcmpl-9"}
    assert out[4][0] == {"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]},
                                         "finishReason": "STOP", "index": 0}],
                         "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 5, "totalTokenCount": 12},
                         "modelVersion": "gpt-x", "responseId": "chatcmpl-9"}


def test_streamed_tool_call_fragments_arrive_as_whole_function_calls() -> None:
    converter = OpenAIStreamToGemini("alias")
    events = [
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                               "function": {"name": "get_weather", "arguments": '{"city"'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Paris"}'}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": ':"Lyon"}'}}]}),
        chunk({}, "tool_calls"),
    ]
    assert all(converter.feed(e) == [] for e in events)
    [last] = converter.feed(USAGE_CHUNK, Usage(7, 5))
    assert last["candidates"] == [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}},
        {"functionCall": {"name": "get_weather", "args": {"city": "Lyon"}, "id": "call_2"}}]},
        "finishReason": "STOP", "index": 0}]
    assert converter.finish() == []


def test_a_stream_without_a_usage_chunk_is_closed_by_finish() -> None:
    converter = OpenAIStreamToGemini("alias")
    converter.feed(chunk({"content": "cut"}))
    converter.feed(chunk({}, "length"))
    [last] = converter.finish()
    assert last["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert last["usageMetadata"]["promptTokenCount"] == 0
    assert converter.finish() == [] and converter.feed(chunk({"content": "late"})) == []


def test_a_stream_round_trips_through_the_gateways_gemini_reader() -> None:
    """What the client gets, read back by the gateway's Gemini upstream reader, is the same text and calls."""
    converter = OpenAIStreamToGemini("alias")
    sent = [*converter.feed(chunk({"content": "Hi "})), *converter.feed(chunk({"content": "there"})),
            *converter.feed(chunk({}, "stop")), *converter.feed(USAGE_CHUNK, Usage(7, 5))]
    text = "".join(p["text"] for c in sent for p in c["candidates"][0]["content"]["parts"])
    assert text == "Hi there"
    assert orjson.loads(orjson.dumps(sent[-1]))["usageMetadata"]["totalTokenCount"] == 12
