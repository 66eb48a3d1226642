"""OpenAI Responses API <-> canonical (OpenAI Chat Completions): requests, answers, usage and streams.

Fixtures follow the documented wire shapes (the Responses API's request, ``response`` object and typed SSE events;
Chat Completions requests, answers and chunks). Streams are fed chunk by chunk and read back with the official
``openai`` SDK's own stream accumulator, so what the SDK would make of them is what is asserted.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from llmgw.errors import InvalidRequest
from llmgw.exchange import Usage
from llmgw.sse import SSEDecoder
from llmgw.translate.responses import responses_request_to_openai, usage_from_responses, usage_to_responses
from llmgw.translate.responses_answer import (
    finish_of,
    openai_response_to_responses,
    responses_response_to_openai,
)
from llmgw.translate.responses_stream import OpenAIStreamToResponses

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def request(input_: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-5", "input": input_, **extra}


# === requests ===================================================================================================


def test_a_string_input_and_instructions_become_system_and_user_messages() -> None:
    body = request("Hello", instructions="Be terse.", max_output_tokens=64, temperature=0.2)
    assert responses_request_to_openai(body) == ({
        "model": "gpt-5", "max_tokens": 64, "temperature": 0.2,
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hello"}],
    }, [])


def test_message_items_keep_their_order_developer_becomes_system_and_parts_become_canonical_parts() -> None:
    body = request([
        {"role": "developer", "content": "Use metric units."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Look:"},
                                                         {"type": "input_image", "image_url": "https://x/y.png",
                                                          "detail": "low"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "A cat.",
                                                              "annotations": []}], "phase": "final_answer"},
        {"role": "user", "content": [{"type": "input_text", "text": "And "}, {"type": "input_text", "text": "now?"}]},
    ])
    body_out, dropped = responses_request_to_openai(body)
    assert body_out["messages"] == [
        {"role": "system", "content": "Use metric units."},
        {"role": "user", "content": [{"type": "text", "text": "Look:"},
                                     {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "And \nnow?"},
    ]
    assert dropped == ["phase"]


def test_function_calls_join_the_assistant_turn_and_outputs_become_tool_messages() -> None:
    body = request([
        {"role": "user", "content": "Weather in Paris and Lyon?"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": '{"city":"Lyon"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "12C"}]},
        {"type": "function_call", "call_id": "call_3", "name": "get_weather", "arguments": '{"city":"Nice"}'},
    ], tools=[{"type": "function", "name": "get_weather", "description": "Weather now", "parameters": WEATHER,
               "strict": True}], tool_choice={"type": "function", "name": "get_weather"}, parallel_tool_calls=False)
    out, dropped = responses_request_to_openai(body)
    calls = [{"id": f"call_{n}", "type": "function", "function": {"name": "get_weather", "arguments": args}}
             for n, args in ((1, '{"city":"Paris"}'), (2, '{"city":"Lyon"}'), (3, '{"city":"Nice"}'))]
    assert out["messages"] == [
        {"role": "user", "content": "Weather in Paris and Lyon?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": calls[:2]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "12C"},
        {"role": "assistant", "content": None, "tool_calls": calls[2:]},
    ]
    assert out["tools"] == [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER,
                                                              "description": "Weather now", "strict": True}}]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert out["parallel_tool_calls"] is False
    assert dropped == ["reasoning"]


def test_settings_with_an_equivalent_are_translated_and_hints_are_dropped_and_named() -> None:
    body = request("Hi", stream=True, text={"format": {"type": "json_schema", "name": "answer", "schema": WEATHER,
                                                       "strict": True}, "verbosity": "low"},
                   reasoning={"effort": "high", "summary": "auto"}, store=False, metadata={"run": "7"},
                   include=["reasoning.encrypted_content"], truncation="auto", prompt_cache_key="conv-1",
                   user="u-1", service_tier="auto", parallel_tool_calls=True, future_knob_2031={"on": True})
    out, dropped = responses_request_to_openai(body)
    assert out == {
        "model": "gpt-5", "messages": [{"role": "user", "content": "Hi"}], "stream": True,
        "stream_options": {"include_usage": True}, "user": "u-1", "prompt_cache_key": "conv-1",
        "service_tier": "auto", "verbosity": "low", "reasoning_effort": "high",
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": WEATHER,
                                                                   "strict": True}},
    }
    assert dropped == ["reasoning.summary", "store", "metadata", "truncation", "future_knob_2031", "include"]


CODEX_TOOLS: list[Any] = [
    {"type": "function", "name": "exec_command", "description": "Runs a command", "strict": False,
     "parameters": WEATHER},
    {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents",
     "tools": [{"type": "function", "name": "spawn_agent", "parameters": WEATHER, "strict": False}]},
    {"type": "custom", "name": "apply_patch", "description": "Edit files.",
     "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
    {"type": "web_search", "external_web_access": False},
]


def test_codex_tools_namespaces_flatten_custom_tools_take_one_string_and_hosted_ones_are_dropped() -> None:
    out, dropped = responses_request_to_openai(request("Hi", tools=CODEX_TOOLS,
                                                       tool_choice={"type": "custom", "name": "apply_patch"}))
    assert [t["function"]["name"] for t in out["tools"]] == ["exec_command", "spawn_agent", "apply_patch"]
    patch = out["tools"][2]["function"]
    assert patch["parameters"]["required"] == ["input"] and patch["parameters"]["properties"]["input"]["type"] == \
        "string"
    assert patch["description"] == "Edit files.\n\nWrite `input` in this lark grammar:\nstart: /.+/"
    assert out["tool_choice"] == {"type": "function", "function": {"name": "apply_patch"}}
    assert dropped == ["format", "web_search"]


def test_custom_tool_calls_and_outputs_in_the_history_become_tool_calls_and_results() -> None:
    out, _ = responses_request_to_openai(request([
        {"role": "user", "content": "Patch it"},
        {"type": "custom_tool_call", "call_id": "call_p", "name": "apply_patch", "input": "*** Begin Patch"},
        {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done!"},
        {"type": "function_call", "call_id": "call_s", "name": "spawn_agent", "namespace": "multi_agent_v1",
         "arguments": "{}"},
    ], tools=CODEX_TOOLS))
    assert out["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_p", "type": "function",
             "function": {"name": "apply_patch", "arguments": '{"input":"*** Begin Patch"}'}}]},
        {"role": "tool", "tool_call_id": "call_p", "content": "Done!"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_s", "type": "function", "function": {"name": "spawn_agent", "arguments": "{}"}}]},
    ]


def test_json_object_format_and_plain_text_format() -> None:
    assert responses_request_to_openai(request("Hi", text={"format": {"type": "json_object"}}))[0][
        "response_format"] == {"type": "json_object"}
    assert "response_format" not in responses_request_to_openai(request("Hi", text={"format": {"type": "text"}}))[0]


@pytest.mark.parametrize(("extra", "param"), [
    ({"previous_response_id": "resp_123"}, "previous_response_id"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt"),
    ({"background": True}, "background"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"include": ["message.output_text.logprobs"]}, "include"),
    ({"tools": [{"type": "local_shell"}]}, "tools[0]"),
    ({"tools": [{"type": "namespace", "name": "ns", "tools": [{"type": "computer_use_preview"}]}]},
     "tools[0].tools[0]"),
    ({"tool_choice": {"type": "web_search"}}, "tool_choice"),
    ({"tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []}}, "tool_choice"),
    ({"text": {"format": {"type": "grammar"}}}, "text.format"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
    ({"input": [{"type": "local_shell_call", "call_id": "c"}]}, "input[0].type"),
    ({"input": [{"type": "hologram_2031", "frames": [1]}]}, "input[0].type"),
    ({"input": [{"role": "narrator", "content": "Meanwhile"}]}, "input[0].role"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
     "input[0].content[0]"),
    ({"input": [{"type": "function_call_output", "call_id": "c",
                 "output": [{"type": "input_image", "image_url": "https://x/y.png"}]}]}, "input[0].output"),
    ({"input": []}, "input"),
])
def test_what_only_the_responses_api_can_honour_is_a_400_naming_the_field(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        responses_request_to_openai({**request("Hi"), **extra})
    assert info.value.param == param and info.value.status == 400
    assert info.value.message.startswith(param + ":")


def test_unset_openai_state_fields_are_no_error() -> None:
    body = request("Hi", previous_response_id=None, background=False, conversation=None)
    assert responses_request_to_openai(body)[0]["messages"] == [{"role": "user", "content": "Hi"}]


# === usage and whole answers ====================================================================================


def test_usage_both_ways_keeps_cached_and_reasoning_tokens() -> None:
    wire = {"input_tokens": 120, "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 0},
            "output_tokens": 50,
            "output_tokens_details": {"reasoning_tokens": 30}, "total_tokens": 170}
    usage = usage_from_responses(wire)
    assert usage == Usage(input_tokens=120, output_tokens=50, cached_tokens=100, reasoning_tokens=30)
    assert usage_to_responses(usage) == wire
    assert usage_from_responses(None) == Usage()


def completion(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "up-model",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}]}


def test_a_canonical_answer_becomes_a_response_the_sdk_reads() -> None:
    calls = [{"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"P"}'}}]
    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": False}]
    usage = Usage(input_tokens=20, output_tokens=9, cached_tokens=5, reasoning_tokens=2)
    body = openai_response_to_responses(completion({"role": "assistant", "content": "Let me see.",
                                                    "tool_calls": calls}, "tool_calls"),
                                        usage, request("Hi", instructions="Be terse.", tools=tools))
    response = Response.model_validate(body)
    assert response.status == "completed" and response.model == "up-model" and response.created_at == 1700000000
    assert response.output_text == "Let me see." and response.instructions == "Be terse."
    message, call = response.output
    assert message.type == "message" and message.id.startswith("msg_")
    assert call.type == "function_call" and call.call_id == "call_a" and call.arguments == '{"city":"P"}'
    assert response.usage is not None and response.usage.input_tokens_details.cached_tokens == 5
    assert response.usage.output_tokens_details.reasoning_tokens == 2 and response.usage.total_tokens == 29
    assert response.tools[0].name == "get_weather" and response.parallel_tool_calls is True


@pytest.mark.parametrize(("finish", "status", "reason"), [("length", "incomplete", "max_output_tokens"),
                                                          ("content_filter", "incomplete", "content_filter"),
                                                          ("stop", "completed", None)])
def test_the_finish_reason_is_the_responses_status(finish: str, status: str, reason: str | None) -> None:
    body = openai_response_to_responses(completion({"role": "assistant", "content": "Cut"}, finish), Usage(),
                                        request("Hi"))
    assert body["status"] == status and body["output"][0]["status"] == status
    assert body["incomplete_details"] == (reason and {"reason": reason})
    assert finish_of(body) == finish
    assert responses_response_to_openai(body)["choices"][0]["finish_reason"] == finish


def test_a_refusal_is_a_refusal_part() -> None:
    body = openai_response_to_responses(completion({"role": "assistant", "content": None, "refusal": "No."}),
                                        Usage(), request("Hi"))
    assert body["output"][0]["content"] == [{"type": "refusal", "refusal": "No."}]


def test_a_response_becomes_a_canonical_answer_reasoning_left_out() -> None:
    body = {"id": "resp_1", "object": "response", "created_at": 1700000000, "model": "gpt-5",
            "status": "completed", "incomplete_details": None,
            "output": [{"type": "reasoning", "id": "rs_1", "summary": []},
                       {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": "Two ", "annotations": []},
                                    {"type": "output_text", "text": "calls.", "annotations": []}]},
                       {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f",
                        "arguments": "{}", "status": "completed"}],
            "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 3,
                      "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 13}}
    assert responses_response_to_openai(body) == {
        "id": "resp_1", "object": "chat.completion", "created": 1700000000, "model": "gpt-5",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls",
                     "message": {"role": "assistant", "content": "Two calls.", "refusal": None,
                                 "tool_calls": [{"id": "call_1", "type": "function",
                                                 "function": {"name": "f", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13,
                  "prompt_tokens_details": {"cached_tokens": 4},
                  "completion_tokens_details": {"reasoning_tokens": 1}},
    }


def test_calls_of_custom_and_namespaced_tools_come_back_as_their_own_items() -> None:
    calls = [{"id": "call_p", "type": "function",
              "function": {"name": "apply_patch", "arguments": '{"input":"*** Begin Patch"}'}},
             {"id": "call_s", "type": "function", "function": {"name": "spawn_agent", "arguments": "{}"}}]
    body = openai_response_to_responses(completion({"role": "assistant", "content": None, "tool_calls": calls},
                                                   "tool_calls"), Usage(), request("Hi", tools=CODEX_TOOLS))
    response = Response.model_validate(body)
    patch, spawn = response.output
    assert patch.type == "custom_tool_call" and patch.input == "*** Begin Patch" and patch.call_id == "call_p"
    assert spawn.type == "function_call" and spawn.namespace == "multi_agent_v1"
    assert responses_response_to_openai(body)["choices"][0]["message"]["tool_calls"] == calls


def test_an_answer_with_hosted_tool_output_has_no_canonical_choice_so_it_is_never_cached() -> None:
    body = {"object": "response", "output": [{"type": "web_search_call", "id": "ws_1", "status": "completed"},
                                             {"type": "message", "content": [{"type": "output_text", "text": "x"}]}]}
    assert responses_response_to_openai(body)["choices"] == []
    assert finish_of(body) == "tool_calls"


# === streams ====================================================================================================


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "up-model", "choices": choices, **extra}


def decode(frames: list[bytes]) -> list[dict[str, Any]]:
    messages = SSEDecoder().feed(b"".join(frames))
    events = [orjson.loads(m.data) for m in messages]
    assert [m.event for m in messages] == [e["type"] for e in events]   # every event names its type
    return events


def run(converter: OpenAIStreamToResponses, chunks: list[tuple[dict[str, Any], Usage | None]],
        tools: list[dict[str, Any]] | None = None) -> tuple[list[dict[str, Any]], Response]:
    """Feed the chunks one by one, finish, and read the events with the SDK's accumulator."""
    frames: list[bytes] = []
    for data, usage in chunks:
        frames += converter.feed(data, usage)
    frames += converter.finish()
    events = decode(frames)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=tools or [], text_format=omit)
    final = None
    for event in events:
        for out in state.handle_event(EVENTS.validate_python(event)):
            if out.type in ("response.completed", "response.incomplete"):
                final = out.response
    assert final is not None
    return events, final


def test_a_text_stream_becomes_the_apis_events_in_order() -> None:
    usage = Usage(input_tokens=7, output_tokens=3, cached_tokens=2)
    events, final = run(OpenAIStreamToResponses(request("Hi"), "alias"), [
        (chunk({"role": "assistant", "content": ""}), None), (chunk({"content": "Hello"}), None),
        (chunk({"content": " world"}), None), (chunk({}, "stop"), None), (chunk(usage={"x": 1}), usage)])
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["Hello", " world"]
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["model"] == "up-model"
    assert final.output_text == "Hello world" and final.status == "completed"
    assert final.usage is not None and final.usage.input_tokens == 7 and final.usage.total_tokens == 10
    assert final.usage.input_tokens_details.cached_tokens == 2
    assert len({e["response"]["id"] for e in events if "response" in e}) == 1


def test_streamed_tool_calls_become_function_call_items_with_argument_deltas() -> None:
    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": False}]
    pieces = [
        (chunk({"role": "assistant", "content": "Checking."}), None),
        (chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                "function": {"name": "get_weather", "arguments": ""}}]}), None),
        (chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}), None),
        (chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}), None),
        (chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city":"Lyon"}'}}]}), None),
        (chunk({}, "tool_calls"), None),
    ]
    events, final = run(OpenAIStreamToResponses(request("Hi", tools=tools), "alias"), pieces, tools)
    kinds = [e["type"] for e in events]
    assert kinds.count("response.function_call_arguments.delta") == 3
    assert kinds.index("response.output_item.done") < kinds.index("response.function_call_arguments.delta")
    message, first, second = final.output
    assert message.type == "message" and final.output_text == "Checking."
    assert (first.call_id, first.name, json.loads(first.arguments)) == ("call_1", "get_weather", {"city": "Paris"})
    assert (second.call_id, json.loads(second.arguments)) == ("call_2", {"city": "Lyon"})
    assert final.status == "completed"


def test_a_streamed_custom_tool_call_comes_whole_as_custom_tool_call_input_events() -> None:
    pieces = [(chunk({"tool_calls": [{"index": 0, "id": "call_p", "type": "function",
                                      "function": {"name": "apply_patch", "arguments": '{"input":"*** Be'}}]}), None),
              (chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'gin Patch"}'}}]}), None),
              (chunk({}, "tool_calls"), None)]
    events, final = run(OpenAIStreamToResponses(request("Hi", tools=CODEX_TOOLS), "alias"), pieces, CODEX_TOOLS)
    kinds = [e["type"] for e in events]
    assert "response.function_call_arguments.delta" not in kinds
    assert kinds[-4:] == ["response.custom_tool_call_input.delta", "response.custom_tool_call_input.done",
                          "response.output_item.done", "response.completed"]
    [call] = final.output
    assert call.type == "custom_tool_call" and call.input == "*** Begin Patch" and call.call_id == "call_p"


def test_a_length_cut_ends_with_response_incomplete() -> None:
    events, final = run(OpenAIStreamToResponses(request("Hi"), "alias"),
                        [(chunk({"content": "one two"}), None), (chunk({}, "length"), None)])
    assert events[-1]["type"] == "response.incomplete"
    assert final.status == "incomplete" and final.incomplete_details is not None
    assert final.incomplete_details.reason == "max_output_tokens"


def test_an_empty_stream_still_creates_and_completes_a_response() -> None:
    events, final = run(OpenAIStreamToResponses(request("Hi"), "alias"), [])
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.completed"]
    assert final.output == []


def test_a_failure_mid_stream_is_an_error_event_then_response_failed() -> None:
    converter = OpenAIStreamToResponses(request("Hi"), "alias")
    frames = converter.feed(chunk({"content": "Hel"}))
    frames += converter.fail("server_error", "upstream broke")
    events = decode(frames)
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-2] == {"type": "error", "code": "server_error", "message": "upstream broke", "param": None,
                          "sequence_number": len(events) - 2}
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"] == {"code": "server_error", "message": "upstream broke"}
    assert failed["id"] == events[0]["response"]["id"]
    EVENTS.validate_python(events[-2])
    EVENTS.validate_python(events[-1])
