"""Anthropic Messages <-> canonical (OpenAI Chat Completions): requests, answers, usage, stop reasons and streams.

Fixtures follow the providers' documented wire shapes (Anthropic Messages request/response/SSE events; OpenAI
Chat Completions request/response/chunks). Every test asserts the exact output.
"""

from __future__ import annotations

import json
import re
import socket
import time
from typing import Any

import anthropic
import orjson
import pytest
from aiohttp import web

from llmgw.errors import InvalidRequest
from llmgw.exchange import StreamEvent, Usage
from llmgw.sse import SSEDecoder
from llmgw.translate.anthropic import (
    DEFAULT_MAX_TOKENS,
    anthropic_response_to_openai,
    openai_request_to_anthropic,
    openai_response_to_anthropic,
    usage_from_anthropic,
    usage_to_anthropic,
)
from llmgw.translate.anthropic_client import anthropic_request_to_openai
from llmgw.translate.anthropic_stream import AnthropicStreamToOpenAI, OpenAIStreamToAnthropic, error_event, sse_bytes

CLAUDE = "claude-sonnet-4-5-20250929"
WEATHER_SCHEMA = {"type": "object",
                  "properties": {"location": {"type": "string", "description": "The city and state"},
                                 "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                  "required": ["location"]}


def a_request(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": CLAUDE, "max_tokens": 1024, "messages": messages, **extra}


# === anthropic_request_to_openai ================================================================================


def test_a2o_system_string_and_multi_turn_string_messages() -> None:
    body = a_request([{"role": "user", "content": "Hello, Claude"},
                      {"role": "assistant", "content": "Hello! How can I help?"},
                      {"role": "user", "content": "Can you describe LLMs to me?"}],
                     system="You are a terse assistant.")
    assert anthropic_request_to_openai(body) == ({
        "model": CLAUDE,
        "messages": [{"role": "system", "content": "You are a terse assistant."},
                     {"role": "user", "content": "Hello, Claude"},
                     {"role": "assistant", "content": "Hello! How can I help?"},
                     {"role": "user", "content": "Can you describe LLMs to me?"}],
        "max_tokens": 1024,
    }, [])


def test_a2o_system_blocks_with_cache_control_are_joined_and_cache_control_dropped() -> None:
    body = a_request([{"role": "user", "content": "Summarise the book."}],
                     system=[{"type": "text", "text": "You are an AI assistant analysing literary works."},
                             {"type": "text", "text": "<the entire contents of Pride and Prejudice>",
                              "cache_control": {"type": "ephemeral"}}])
    out, dropped = anthropic_request_to_openai(body)
    assert out["messages"] == [
        {"role": "system",
         "content": "You are an AI assistant analysing literary works.\n<the entire contents of Pride and Prejudice>"},
        {"role": "user", "content": "Summarise the book."},
    ]
    assert dropped == ["cache_control"]


def test_a2o_system_blocks_without_cache_control_drop_nothing() -> None:
    out, dropped = anthropic_request_to_openai(a_request([{"role": "user", "content": "Hi"}],
                                                         system=[{"type": "text", "text": "One."},
                                                                 {"type": "text", "text": "Two."}]))
    assert out["messages"][0] == {"role": "system", "content": "One.\nTwo."}
    assert dropped == []


def test_a2o_no_system_means_no_system_message() -> None:
    out, _ = anthropic_request_to_openai(a_request([{"role": "user", "content": "Hi"}]))
    assert out["messages"] == [{"role": "user", "content": "Hi"}]


def test_a2o_text_blocks_user_joined_with_newline_assistant_concatenated() -> None:
    body = a_request([
        {"role": "user", "content": [{"type": "text", "text": "First paragraph."},
                                     {"type": "text", "text": "Second paragraph."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Part one. "},
                                          {"type": "text", "text": "Part two."}]},
        {"role": "user", "content": [{"type": "text", "text": "Go on.", "cache_control": {"type": "ephemeral"}}]},
    ])
    out, dropped = anthropic_request_to_openai(body)
    assert out["messages"] == [{"role": "user", "content": "First paragraph.\nSecond paragraph."},
                               {"role": "assistant", "content": "Part one. Part two."},
                               {"role": "user", "content": "Go on."}]
    assert dropped == ["cache_control"]


def test_a2o_images_base64_to_data_url_and_url_kept_never_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the translator must not touch the network")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    body = a_request([{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}},
        {"type": "image", "source": {"type": "url",
                                     "url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus.jpg"}},
        {"type": "text", "text": "Compare these two images."},
    ]}])
    out, dropped = anthropic_request_to_openai(body)
    assert out["messages"] == [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}},
        {"type": "image_url",
         "image_url": {"url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus.jpg"}},
        {"type": "text", "text": "Compare these two images."},
    ]}]
    assert dropped == []


def test_a2o_image_with_untranslatable_source_names_its_path() -> None:
    body = a_request([{"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello"},
                      {"role": "user", "content": [{"type": "text", "text": "Look:"},
                                                   {"type": "image", "source": {"type": "file",
                                                                                "file_id": "file_011CNha8"}}]}])
    with pytest.raises(InvalidRequest) as info:
        anthropic_request_to_openai(body)
    assert info.value.param == "messages[2].content[1].source"
    assert info.value.message.startswith("messages[2].content[1].source:")


def test_a2o_tool_use_blocks_become_tool_calls_with_json_arguments() -> None:
    tool_input = {"location": "San Francisco, CA", "unit": "celsius"}
    body = a_request([
        {"role": "user", "content": "What's the weather like in San Francisco?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "I'll check the weather."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": tool_input},
        ]},
    ])
    out, _ = anthropic_request_to_openai(body)
    assert out["messages"][1] == {
        "role": "assistant", "content": "I'll check the weather.",
        "tool_calls": [{"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                        "function": {"name": "get_weather",
                                     "arguments": '{"location":"San Francisco, CA","unit":"celsius"}'}}],
    }
    assert json.loads(out["messages"][1]["tool_calls"][0]["function"]["arguments"]) == tool_input


def test_a2o_assistant_with_only_tool_use_has_null_content_and_empty_input_is_empty_object() -> None:
    body = a_request([{"role": "user", "content": "Ping the server."},
                      {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "ping",
                                                         "input": {}}]}])
    out, _ = anthropic_request_to_openai(body)
    assert out["messages"][1] == {"role": "assistant", "content": None,
                                  "tool_calls": [{"id": "toolu_1", "type": "function",
                                                  "function": {"name": "ping", "arguments": "{}"}}]}


def test_a2o_tool_results_string_blocks_and_error_go_before_the_users_text() -> None:
    body = a_request([
        {"role": "user", "content": "Weather in Paris, Tokyo and Oslo?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_paris", "name": "get_weather", "input": {"location": "Paris"}},
            {"type": "tool_use", "id": "toolu_tokyo", "name": "get_weather", "input": {"location": "Tokyo"}},
            {"type": "tool_use", "id": "toolu_oslo", "name": "get_weather", "input": {"location": "Oslo"}},
        ]},
        {"role": "user", "content": [
            {"type": "text", "text": "Here you go."},  # before the results on purpose: results must still lead
            {"type": "tool_result", "tool_use_id": "toolu_paris", "content": "18 degrees, sunny"},
            {"type": "tool_result", "tool_use_id": "toolu_tokyo",
             "content": [{"type": "text", "text": "25 degrees"}, {"type": "text", "text": "humid"}]},
            {"type": "tool_result", "tool_use_id": "toolu_oslo",
             "content": "ConnectionError: the weather service API is not available (HTTP 500)", "is_error": True},
        ]},
    ])
    out, dropped = anthropic_request_to_openai(body)
    assert out["messages"][2:] == [
        {"role": "tool", "tool_call_id": "toolu_paris", "content": "18 degrees, sunny"},
        {"role": "tool", "tool_call_id": "toolu_tokyo", "content": "25 degrees\nhumid"},
        {"role": "tool", "tool_call_id": "toolu_oslo",
         "content": "[tool error] ConnectionError: the weather service API is not available (HTTP 500)"},
        {"role": "user", "content": "Here you go."},
    ]
    assert [c["id"] for c in out["messages"][1]["tool_calls"]] == ["toolu_paris", "toolu_tokyo", "toolu_oslo"]
    assert dropped == []


def test_a2o_image_inside_a_tool_result_is_not_lost_silently() -> None:
    """A tool result may hold images (a screenshot, a file read); a canonical tool message holds only text. The
    image must either reach the canonical request or be refused with the path named, never vanish."""
    body = a_request([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_shot", "content": [
        {"type": "text", "text": "Screenshot taken."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
    ]}]}])
    try:
        out, _ = anthropic_request_to_openai(body)
    except InvalidRequest as exc:
        assert exc.param is not None and exc.param.startswith("messages[0].content[0]")
        return
    assert "data:image/png;base64,iVBORw0KGgo=" in orjson.dumps(out["messages"]).decode()


def test_a2o_parallel_tool_results_only_give_only_tool_messages() -> None:
    body = a_request([{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "A"},
        {"type": "tool_result", "tool_use_id": "toolu_b", "content": "B"},
    ]}])
    out, _ = anthropic_request_to_openai(body)
    assert out["messages"] == [{"role": "tool", "tool_call_id": "toolu_a", "content": "A"},
                               {"role": "tool", "tool_call_id": "toolu_b", "content": "B"}]


def test_a2o_tools_become_functions() -> None:
    body = a_request([{"role": "user", "content": "Hi"}], tools=[
        {"name": "get_weather", "description": "Get the current weather in a given location",
         "input_schema": WEATHER_SCHEMA},
        {"type": "custom", "name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ])
    out, dropped = anthropic_request_to_openai(body)
    assert out["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA,
                                          "description": "Get the current weather in a given location"}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
    ]
    assert dropped == []


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, {"tool_choice": "auto"}),
    ({"type": "any"}, {"tool_choice": "required"}),
    ({"type": "none"}, {"tool_choice": "none"}),
    ({"type": "tool", "name": "get_weather"},
     {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}),
    ({"type": "auto", "disable_parallel_tool_use": True}, {"tool_choice": "auto", "parallel_tool_calls": False}),
    ({"type": "any", "disable_parallel_tool_use": True}, {"tool_choice": "required", "parallel_tool_calls": False}),
    ({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
     {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "parallel_tool_calls": False}),
    ({"type": "auto", "disable_parallel_tool_use": False}, {"tool_choice": "auto"}),
], ids=["auto", "any", "none", "tool", "auto-serial", "any-serial", "tool-serial", "auto-parallel-explicit"])
def test_a2o_tool_choice(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    body = a_request([{"role": "user", "content": "Hi"}],
                     tools=[{"name": "get_weather", "input_schema": WEATHER_SCHEMA}], tool_choice=choice)
    out, _ = anthropic_request_to_openai(body)
    assert {k: out[k] for k in ("tool_choice", "parallel_tool_calls") if k in out} == expected


def test_a2o_sampling_stop_metadata_and_stream() -> None:
    body = a_request([{"role": "user", "content": "Hi"}], max_tokens=256, temperature=0.7, top_p=0.9,
                     stop_sequences=["\n\nHuman:", "END"], metadata={"user_id": "13803d75-b4b5-4c3e-b2a2"},
                     stream=True)
    assert anthropic_request_to_openai(body) == ({
        "model": CLAUDE, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 256,
        "temperature": 0.7, "top_p": 0.9, "stream": True, "stop": ["\n\nHuman:", "END"],
        "stream_options": {"include_usage": True}, "user": "13803d75-b4b5-4c3e-b2a2",
    }, [])


def test_a2o_defaults_no_stream_options_when_not_streaming_and_default_max_tokens() -> None:
    body = {"model": CLAUDE, "messages": [{"role": "user", "content": "Hi"}], "stream": False,
            "stop_sequences": [], "metadata": {}}
    assert anthropic_request_to_openai(body) == ({
        "model": CLAUDE, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": DEFAULT_MAX_TOKENS,
        "stream": False,
    }, [])
    assert DEFAULT_MAX_TOKENS == 4096


def test_a2o_hints_are_dropped_and_named_once() -> None:
    body = a_request(
        [{"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]},
         {"role": "assistant", "content": [
             {"type": "thinking", "thinking": "Let me think.", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"},
             {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
             {"type": "text", "text": "Hello."}]},
         {"role": "user", "content": [{"type": "text", "text": "Bye", "cache_control": {"type": "ephemeral"}}]}],
        top_k=5, thinking={"type": "enabled", "budget_tokens": 2048},
        context_management={"edits": [{"type": "clear_tool_uses_20250919"}]}, service_tier="auto",
        container="container_011CN", mcp_servers=[], output_config={"effort": "low"},
    )
    out, dropped = anthropic_request_to_openai(body)
    assert dropped == ["cache_control", "thinking", "top_k", "context_management", "service_tier", "container",
                       "mcp_servers", "output_config"]
    assert out == {"model": CLAUDE, "max_tokens": 1024,
                   "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                                {"role": "user", "content": "Bye"}]}


def test_a2o_documents_become_text_or_file_parts_and_urls_are_refused_naming_the_source() -> None:
    body = a_request([{"role": "user", "content": [
        {"type": "text", "text": "Summarise:"},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
         "title": "report.pdf"},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Plain words."},
         "title": "Notes", "context": "From the wiki", "citations": {"enabled": True}},
        {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "Chunk one."}]}},
    ]}])
    out, dropped = anthropic_request_to_openai(body)
    assert out["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Summarise:"},
        {"type": "file", "file": {"filename": "report.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
        {"type": "text", "text": "Document: Notes\n\nFrom the wiki\n\nPlain words."},
        {"type": "text", "text": "Chunk one."},
    ]}]
    assert dropped == ["citations"]
    url = a_request([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                     {"role": "user", "content": [
                         {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}]}])
    with pytest.raises(InvalidRequest) as info:
        anthropic_request_to_openai(url)
    assert info.value.param == "messages[2].content[0].source"
    assert info.value.code == "unsupported_parameter" and info.value.status == 400
    assert info.value.message == ("messages[2].content[0].source: document source type 'url' exists only on"
                                  " Anthropic targets")


def test_a2o_system_role_messages_keep_their_position() -> None:
    body = a_request([
        {"role": "user", "content": [{"type": "text", "text": "Fix the bug"}]},
        {"role": "system", "content": [{"type": "text", "text": "# Environment\ncwd: /src",
                                        "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": "On it."},
        {"role": "system", "content": "Be brief from now on.", "output_config": {"effort": "low"}},
        {"role": "user", "content": "Go"},
    ], system=[{"type": "text", "text": "You are a coding agent."}])
    out, dropped = anthropic_request_to_openai(body)
    assert out["messages"] == [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": "Fix the bug"},
        {"role": "system", "content": "# Environment\ncwd: /src"},
        {"role": "assistant", "content": "On it."},
        {"role": "system", "content": "Be brief from now on."},
        {"role": "user", "content": "Go"},
    ]
    assert dropped == ["cache_control", "output_config"]


def test_a2o_system_message_cleared_at_the_next_user_message_is_shown_only_until_then() -> None:
    reminder = {"role": "system", "content": "Reminder", "clear_at": "next_user_message"}
    earlier = a_request([{"role": "user", "content": "a"}, reminder, {"role": "assistant", "content": "b"},
                         {"role": "user", "content": "c"}])
    assert [m["content"] for m in anthropic_request_to_openai(earlier)[0]["messages"]] == ["a", "b", "c"]
    last = a_request([{"role": "user", "content": "a"}, reminder])
    assert anthropic_request_to_openai(last)[0]["messages"] == [{"role": "user", "content": "a"},
                                                               {"role": "system", "content": "Reminder"}]
    only_config = a_request([{"role": "user", "content": "a"}, {"role": "system", "output_config": {}}])
    assert anthropic_request_to_openai(only_config) == (
        {"model": CLAUDE, "max_tokens": 1024, "messages": [{"role": "user", "content": "a"}]}, ["output_config"])


@pytest.mark.parametrize(("message", "param"), [
    ({"role": "narrator", "content": "Meanwhile..."}, "messages[1].role"),
    ({"role": "system", "content": [{"type": "tool_addition", "tool": {"type": "tool_reference",
                                                                       "name": "Bash"}}]},
     "messages[1].content[0]"),
    ({"role": "assistant", "content": [{"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
                                        "input": {"query": "x"}}]}, "messages[1].content[0]"),
    ({"role": "user", "content": [{"type": "container_upload", "file_id": "file_011"}]}, "messages[1].content[0]"),
    ({"role": "user", "content": [{"type": "hologram_2031", "data": "?"}]}, "messages[1].content[0]"),
], ids=["unknown-role", "tool-addition", "server-tool-use", "container-upload", "unknown-block"])
def test_a2o_what_only_anthropic_can_honour_is_a_400_naming_it(message: dict[str, Any], param: str) -> None:
    body = a_request([{"role": "user", "content": "Hi"}, message])
    with pytest.raises(InvalidRequest) as info:
        anthropic_request_to_openai(body)
    assert info.value.param == param
    assert info.value.code == "unsupported_parameter" and info.value.status == 400
    assert info.value.message.startswith(f"{param}: ") and "exist only on Anthropic targets" in info.value.message


def test_a2o_search_results_compaction_and_fallback_blocks() -> None:
    result = {"type": "search_result", "source": "https://kb/1", "title": "Gateways",
              "content": [{"type": "text", "text": "A gateway routes calls."}], "citations": {"enabled": True}}
    body = a_request([
        {"role": "user", "content": [result, {"type": "text", "text": "Summarise"}]},
        {"role": "assistant", "content": [{"type": "compaction", "content": "Earlier: we fixed the build."},
                                          {"type": "fallback", "from": {"model": "a"}, "to": {"model": "b"}},
                                          {"type": "text", "text": "Done."}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [
            {**result, "citations": None}, {"type": "tool_reference", "tool_name": "Bash"}]}]},
    ])
    out, dropped = anthropic_request_to_openai(body)
    text = "Search result: Gateways (https://kb/1)\nA gateway routes calls."
    assert out["messages"] == [
        {"role": "user", "content": f"{text}\nSummarise"},
        {"role": "assistant", "content": "Earlier: we fixed the build.Done."},
        {"role": "tool", "tool_call_id": "toolu_1", "content": text},
    ]
    assert dropped == ["citations", "fallback", "tool_reference"]


def test_a2o_unknown_fields_tool_hints_and_output_config() -> None:
    body = a_request([{"role": "user", "content": "Hi"}],
                     tools=[{"name": "Read", "input_schema": WEATHER_SCHEMA, "defer_loading": True,
                             "cache_control": {"type": "ephemeral"}}],
                     output_config={"effort": "high", "format": {"type": "json_schema", "schema": WEATHER_SCHEMA}},
                     speed="fast", future_knob_2031={"on": True}, mcp_servers=[])
    out, dropped = anthropic_request_to_openai(body)
    assert out["tools"] == [{"type": "function", "function": {"name": "Read", "parameters": WEATHER_SCHEMA}}]
    assert out["response_format"] == {"type": "json_schema",
                                      "json_schema": {"name": "output", "schema": WEATHER_SCHEMA}}
    assert dropped == ["defer_loading", "cache_control", "output_config", "speed", "future_knob_2031", "mcp_servers"]


@pytest.mark.parametrize(("extra", "param"), [
    ({"max_tokens": 0}, "max_tokens"),
    ({"mcp_servers": [{"type": "url", "url": "https://mcp.example.com", "name": "x"}]}, "mcp_servers"),
    ({"tool_choice": {"type": "auto_v2"}}, "tool_choice"),
    ({"output_config": {"format": {"type": "grammar", "grammar": "..."}}}, "output_config.format"),
], ids=["max-tokens-0", "mcp-servers", "new-tool-choice", "new-output-format"])
def test_a2o_top_level_fields_only_anthropic_can_honour_are_a_400_naming_them(extra: dict[str, Any],
                                                                               param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        anthropic_request_to_openai(a_request([{"role": "user", "content": "Hi"}], **extra))
    assert info.value.param == param and info.value.code == "unsupported_parameter"


@pytest.mark.parametrize("tool", [
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
    {"type": "bash_20250124", "name": "bash"},
    {"name": "no_schema"},
], ids=["web_search", "bash", "missing-input-schema"])
def test_a2o_server_tools_are_invalid_request_naming_the_tool(tool: dict[str, Any]) -> None:
    body = a_request([{"role": "user", "content": "Hi"}],
                     tools=[{"name": "get_weather", "input_schema": WEATHER_SCHEMA}, tool])
    with pytest.raises(InvalidRequest) as info:
        anthropic_request_to_openai(body)
    assert info.value.param == "tools[1]"
    assert info.value.code == "unsupported_parameter"
    assert info.value.message == (f"tools[1]: server tool {tool.get('type') or tool['name']!r} exists only on"
                                  " Anthropic targets")


# === openai_request_to_anthropic ================================================================================


def o_request(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": messages, **extra}


def test_o2a_system_and_developer_become_system_model_is_left_out() -> None:
    body = o_request([{"role": "system", "content": "You are terse."},
                      {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                      {"role": "user", "content": "Hello!"}])
    assert openai_request_to_anthropic(body) == ({
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello!"}]}],
        "max_tokens": 4096,
        "system": "You are terse.\n\nAnswer in French.",
    }, [])


def test_o2a_parallel_tool_calls_and_consecutive_tool_messages_make_one_user_turn() -> None:
    body = o_request([
        {"role": "user", "content": "What's the weather in Paris and Tokyo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_paris", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\"}"}},
            {"id": "call_tokyo", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"location\": \"Tokyo\", \"unit\": \"celsius\"}"}},
        ]},
        {"role": "tool", "tool_call_id": "call_paris", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_tokyo", "content": [{"type": "text", "text": "25C"}]},
        {"role": "user", "content": "Thanks! Which is warmer?"},
    ])
    out, dropped = openai_request_to_anthropic(body)
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "What's the weather in Paris and Tokyo?"}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_paris", "name": "get_weather", "input": {"location": "Paris"}},
            {"type": "tool_use", "id": "call_tokyo", "name": "get_weather",
             "input": {"location": "Tokyo", "unit": "celsius"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_paris", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "call_tokyo", "content": "25C"},
            {"type": "text", "text": "Thanks! Which is warmer?"},
        ]},
    ]
    assert dropped == []


def test_o2a_same_role_turns_are_merged_and_assistant_text_precedes_tool_use() -> None:
    body = o_request([
        {"role": "user", "content": "First."},
        {"role": "user", "content": [{"type": "text", "text": "Second."}]},
        {"role": "assistant", "content": "Let me look."},
        {"role": "assistant", "content": "Checking now.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}]},
        {"role": "assistant", "content": ""},  # nothing to send: no empty turn
    ])
    out, _ = openai_request_to_anthropic(body)
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "First."}, {"type": "text", "text": "Second."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me look."},
                                          {"type": "text", "text": "Checking now."},
                                          {"type": "tool_use", "id": "call_1", "name": "lookup", "input": {}}]},
    ]


def test_o2a_invalid_tool_call_arguments_name_their_path() -> None:
    body = o_request([
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_ok", "type": "function", "function": {"name": "a", "arguments": "{}"}},
            {"id": "call_bad", "type": "function", "function": {"name": "b", "arguments": "{\"city\": Paris"}},
        ]},
    ])
    with pytest.raises(InvalidRequest) as info:
        openai_request_to_anthropic(body)
    assert info.value.param == "messages[1].tool_calls[1].function.arguments"
    assert info.value.message == "messages[1].tool_calls[1].function.arguments: tool-call arguments are not valid JSON"


def test_o2a_images_data_url_to_base64_and_https_url_to_url_source() -> None:
    body = o_request([{"role": "user", "content": [
        {"type": "text", "text": "What's in these images?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/boardwalk.jpg", "detail": "high"}},
    ]}])
    out, _ = openai_request_to_anthropic(body)
    assert out["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What's in these images?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "iVBORw0KGgoAAAANSUhEUg=="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/boardwalk.jpg"}},
    ]}]


def test_o2a_unsupported_content_part_is_invalid_request() -> None:
    body = o_request([{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}}]}])
    with pytest.raises(InvalidRequest) as info:
        openai_request_to_anthropic(body)
    assert info.value.param == "messages[0].content[0] (input_audio)"
    assert info.value.code == "unsupported_parameter"


def test_o2a_function_role_is_invalid_request() -> None:
    with pytest.raises(InvalidRequest) as info:
        openai_request_to_anthropic(o_request([{"role": "function", "name": "f", "content": "x"}]))
    assert info.value.param == "messages[0].role"


@pytest.mark.parametrize(("fields", "expected"), [
    ({"max_completion_tokens": 300, "max_tokens": 50}, 300),
    ({"max_tokens": 50}, 50),
    ({}, 4096),
    ({"max_completion_tokens": None, "max_tokens": None}, 4096),
], ids=["max_completion_tokens-wins", "max_tokens", "default", "nulls"])
def test_o2a_max_tokens_precedence(fields: dict[str, Any], expected: int) -> None:
    out, _ = openai_request_to_anthropic(o_request([{"role": "user", "content": "Hi"}], **fields))
    assert out["max_tokens"] == expected


@pytest.mark.parametrize("temperature", [1.0, 0.3, 0, 1])
def test_o2a_temperature_in_anthropics_range_is_sent_as_given(temperature: float) -> None:
    out, dropped = openai_request_to_anthropic(o_request([{"role": "user", "content": "Hi"}],
                                                         temperature=temperature))
    assert out["temperature"] == temperature
    assert dropped == []


@pytest.mark.parametrize("temperature", [1.7, 2, 1.0001])
def test_o2a_temperature_above_one_is_refused_never_clamped(temperature: float) -> None:
    with pytest.raises(InvalidRequest) as info:
        openai_request_to_anthropic(o_request([{"role": "user", "content": "Hi"}], temperature=temperature))
    assert info.value.status == 400
    assert info.value.param == "temperature"
    assert info.value.message.startswith(f"temperature: {temperature:g} is out of range for Anthropic targets")
    assert "0 to 1" in info.value.message and "drop_params" in info.value.message


def test_o2a_out_of_range_temperature_listed_in_drop_params_is_left_out_and_named() -> None:
    out, dropped = openai_request_to_anthropic(o_request([{"role": "user", "content": "Hi"}], temperature=1.5),
                                               drop=["temperature"])
    assert "temperature" not in out
    assert dropped == ["temperature"]


def test_o2a_null_temperature_and_top_p_are_left_out() -> None:
    out, _ = openai_request_to_anthropic(o_request([{"role": "user", "content": "Hi"}], temperature=None,
                                                   top_p=None))
    assert "temperature" not in out
    assert "top_p" not in out


@pytest.mark.parametrize(("stop", "expected"), [("END", ["END"]), (["\n\n", "Observation:"], ["\n\n", "Observation:"])])
def test_o2a_stop_string_or_list(stop: Any, expected: list[str]) -> None:
    out, _ = openai_request_to_anthropic(o_request([{"role": "user", "content": "Hi"}], stop=stop, top_p=0.5))
    assert out["stop_sequences"] == expected
    assert out["top_p"] == 0.5


def test_o2a_tools_user_and_stream() -> None:
    body = o_request([{"role": "user", "content": "Hi"}], stream=True, stream_options={"include_usage": True},
                     user="user-1234", tools=[
                         {"type": "function", "function": {"name": "get_weather",
                                                           "description": "Get the current weather",
                                                           "parameters": WEATHER_SCHEMA}},
                         {"type": "function", "function": {"name": "now"}},
                     ])
    assert openai_request_to_anthropic(body) == ({
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "max_tokens": 4096,
        "stream": True,
        "tools": [{"name": "get_weather", "input_schema": WEATHER_SCHEMA, "description": "Get the current weather"},
                  {"name": "now", "input_schema": {"type": "object", "properties": {}}}],
        "metadata": {"user_id": "user-1234"},
    }, [])


def test_o2a_non_function_tool_is_invalid_request() -> None:
    body = o_request([{"role": "user", "content": "Hi"}],
                     tools=[{"type": "custom", "custom": {"name": "code_exec"}}])
    with pytest.raises(InvalidRequest) as info:
        openai_request_to_anthropic(body)
    assert info.value.param == "tools[0].type"


@pytest.mark.parametrize(("choice", "parallel", "expected"), [
    ("auto", None, {"type": "auto"}),
    ("required", None, {"type": "any"}),
    ("none", None, {"type": "none"}),
    ({"type": "function", "function": {"name": "get_weather"}}, None, {"type": "tool", "name": "get_weather"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ({"type": "function", "function": {"name": "get_weather"}}, False,
     {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}),
    ("auto", True, {"type": "auto"}),
    (None, None, None),
], ids=["auto", "required", "none", "named", "serial-only", "required-serial", "named-serial", "parallel-true",
        "absent"])
def test_o2a_tool_choice_and_parallel_tool_calls(choice: Any, parallel: Any, expected: Any) -> None:
    body = o_request([{"role": "user", "content": "Hi"}],
                     tools=[{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}])
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    out, _ = openai_request_to_anthropic(body)
    assert out.get("tool_choice") == expected


def test_o2a_tool_choice_none_never_carries_disable_parallel_tool_use() -> None:
    """Anthropic's ``{"type": "none"}`` tool choice has no ``disable_parallel_tool_use`` field (only auto, any and
    tool do): with no tool allowed, ``parallel_tool_calls: false`` has nothing to restrict."""
    body = o_request([{"role": "user", "content": "Hi"}], tool_choice="none", parallel_tool_calls=False,
                     tools=[{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}])
    out, _ = openai_request_to_anthropic(body)
    assert out["tool_choice"] == {"type": "none"}


MUST_HONOUR = [
    ("response_format", {"type": "json_object"}),
    ("response_format", {"type": "json_schema", "json_schema": {"name": "answer", "strict": True,
                                                               "schema": {"type": "object", "properties": {}}}}),
    ("n", 2),
    ("logprobs", True),
    ("top_logprobs", 3),
]
MUST_HONOUR_IDS = ["json_object", "json_schema", "n", "logprobs", "top_logprobs"]


@pytest.mark.parametrize(("name", "value"), MUST_HONOUR, ids=MUST_HONOUR_IDS)
def test_o2a_parameters_that_change_the_output_are_refused(name: str, value: Any) -> None:
    with pytest.raises(InvalidRequest) as info:
        openai_request_to_anthropic(o_request([{"role": "user", "content": "Hi"}], **{name: value}))
    assert info.value.param == name
    assert info.value.code == "unsupported_parameter"
    assert info.value.message == (f"{name}: not supported by Anthropic targets; remove it or list it in the"
                                  " provider's drop_params")


@pytest.mark.parametrize(("name", "value"), MUST_HONOUR, ids=MUST_HONOUR_IDS)
def test_o2a_parameters_that_change_the_output_are_dropped_when_listed(name: str, value: Any) -> None:
    out, dropped = openai_request_to_anthropic(o_request([{"role": "user", "content": "Hi"}], **{name: value}),
                                               drop=[name, "unrelated"])
    assert out == {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "max_tokens": 4096}
    assert dropped == [name]


@pytest.mark.parametrize("fields", [{"response_format": {"type": "text"}}, {"n": 1}, {"logprobs": False},
                                    {"response_format": None}, {"top_logprobs": 0}],
                         ids=["response_format-text", "n-1", "logprobs-false", "response_format-null",
                              "top_logprobs-0"])
def test_o2a_harmless_values_of_must_honour_parameters_are_accepted(fields: dict[str, Any]) -> None:
    out, dropped = openai_request_to_anthropic(o_request([{"role": "user", "content": "Hi"}], **fields))
    assert out == {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "max_tokens": 4096}
    assert dropped == []


def test_o2a_hints_are_dropped_and_named() -> None:
    body = o_request([{"role": "user", "content": "Hi"}], seed=42, presence_penalty=0.5, reasoning_effort="low",
                     frequency_penalty=0.1, store=True, stream_options={"include_usage": True})
    out, dropped = openai_request_to_anthropic(body)
    assert dropped == ["seed", "presence_penalty", "frequency_penalty", "reasoning_effort", "store"]
    assert out == {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "max_tokens": 4096}


def test_o2a_dropped_must_honour_come_before_hints() -> None:
    body = o_request([{"role": "user", "content": "Hi"}], seed=1, n=3, logprobs=True, top_logprobs=2)
    _, dropped = openai_request_to_anthropic(body, drop={"n", "logprobs", "top_logprobs"})
    assert dropped == ["logprobs", "top_logprobs", "n", "seed"]


# === answers ====================================================================================================


ANTHROPIC_TEXT_MESSAGE = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant", "model": CLAUDE,
    "content": [{"type": "text", "text": "Hi! My name is Claude."}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 2095, "output_tokens": 503},
}
ANTHROPIC_TOOL_MESSAGE = {
    "id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant", "model": CLAUDE,
    "content": [
        {"type": "text", "text": "I'll check both cities."},
        {"type": "tool_use", "id": "toolu_paris", "name": "get_weather", "input": {"location": "Paris"}},
        {"type": "tool_use", "id": "toolu_tokyo", "name": "get_weather",
         "input": {"location": "Tokyo", "unit": "celsius"}},
    ],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 50, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 2000,
              "output_tokens": 30},
}


def pop_created(body: dict[str, Any]) -> dict[str, Any]:
    created = body.pop("created")
    assert isinstance(created, int)
    assert abs(created - time.time()) < 60
    return body


def test_anthropic_text_response_to_openai() -> None:
    body, usage = anthropic_response_to_openai(ANTHROPIC_TEXT_MESSAGE)
    assert pop_created(body) == {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "object": "chat.completion", "model": CLAUDE,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi! My name is Claude.", "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2095, "completion_tokens": 503, "total_tokens": 2598},
    }
    assert usage == Usage(input_tokens=2095, output_tokens=503)


def test_anthropic_parallel_tool_use_response_to_openai_with_cache_usage() -> None:
    body, usage = anthropic_response_to_openai(ANTHROPIC_TOOL_MESSAGE)
    assert pop_created(body) == {
        "id": "msg_01Aq9w938a90dw8q", "object": "chat.completion", "model": CLAUDE,
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "I'll check both cities.", "refusal": None,
            "tool_calls": [
                {"id": "toolu_paris", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}},
                {"id": "toolu_tokyo", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"location":"Tokyo","unit":"celsius"}'}},
            ]}}],
        "usage": {"prompt_tokens": 3050, "completion_tokens": 30, "total_tokens": 3080,
                  "prompt_tokens_details": {"cached_tokens": 2000}},
    }
    assert usage == Usage(input_tokens=3050, output_tokens=30, cached_tokens=2000, cache_write_tokens=1000)


def test_anthropic_tool_only_response_has_null_content_and_empty_response_has_empty_string() -> None:
    only_tool = {**ANTHROPIC_TOOL_MESSAGE, "content": ANTHROPIC_TOOL_MESSAGE["content"][1:2]}
    body, _ = anthropic_response_to_openai(only_tool)
    assert body["choices"][0]["message"] == {
        "role": "assistant", "content": None, "refusal": None,
        "tool_calls": [{"id": "toolu_paris", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}}]}
    empty = {**ANTHROPIC_TEXT_MESSAGE, "content": [], "stop_reason": "max_tokens"}
    body, _ = anthropic_response_to_openai(empty)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "", "refusal": None}
    assert body["choices"][0]["finish_reason"] == "length"


def test_anthropic_response_text_blocks_are_concatenated_and_thinking_is_skipped() -> None:
    resp = {**ANTHROPIC_TEXT_MESSAGE, "content": [
        {"type": "thinking", "thinking": "Hmm.", "signature": "sig"},
        {"type": "text", "text": "Part one, "}, {"type": "text", "text": "part two."}]}
    body, _ = anthropic_response_to_openai(resp)
    assert body["choices"][0]["message"]["content"] == "Part one, part two."


@pytest.mark.parametrize(("stop_reason", "finish_reason"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("pause_turn", "stop"), ("refusal", "content_filter"), ("model_context_window_exceeded", "length"),
    (None, "stop"), ("some_future_reason", "stop"),
])
def test_stop_reason_to_finish_reason(stop_reason: str | None, finish_reason: str) -> None:
    body, _ = anthropic_response_to_openai({**ANTHROPIC_TEXT_MESSAGE, "stop_reason": stop_reason})
    assert body["choices"][0]["finish_reason"] == finish_reason


def test_anthropic_response_without_id_gets_a_chatcmpl_id() -> None:
    body, usage = anthropic_response_to_openai({"content": [{"type": "text", "text": "x"}]})
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{32}", body["id"])
    assert usage == Usage()
    assert body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


OPENAI_TEXT_COMPLETION = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion", "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I assist you today?",
                                         "refusal": None, "annotations": []},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
    "service_tier": "default",
}
OPENAI_TOOL_COMPLETION = {
    "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1699896916, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "refusal": None,
        "tool_calls": [
            {"id": "call_paris", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\n\"location\": \"Paris\"\n}"}},
            {"id": "call_tokyo", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"location\": \"Tokyo\", \"unit\": \"celsius\"}"}},
        ]}}],
    "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99,
              "prompt_tokens_details": {"cached_tokens": 64}},
}


def test_openai_text_response_to_anthropic() -> None:
    usage = Usage.from_openai(OPENAI_TEXT_COMPLETION["usage"])
    out = openai_response_to_anthropic(OPENAI_TEXT_COMPLETION, usage)
    assert re.fullmatch(r"msg_[0-9a-f]{24}", out.pop("id"))
    assert out == {"type": "message", "role": "assistant", "model": "gpt-4.1-2025-04-14",
                   "content": [{"type": "text", "text": "Hello! How can I assist you today?"}],
                   "stop_reason": "end_turn", "stop_sequence": None,
                   "usage": {"input_tokens": 19, "output_tokens": 10, "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 0}}


def test_openai_parallel_tool_calls_response_to_anthropic() -> None:
    usage = Usage.from_openai(OPENAI_TOOL_COMPLETION["usage"])
    out = openai_response_to_anthropic({**OPENAI_TOOL_COMPLETION, "id": "msg_01keepme"}, usage)
    assert out == {"id": "msg_01keepme", "type": "message", "role": "assistant", "model": "gpt-4o-mini",
                   "content": [
                       {"type": "tool_use", "id": "call_paris", "name": "get_weather", "input": {"location": "Paris"}},
                       {"type": "tool_use", "id": "call_tokyo", "name": "get_weather",
                        "input": {"location": "Tokyo", "unit": "celsius"}}],
                   "stop_reason": "tool_use", "stop_sequence": None,
                   "usage": {"input_tokens": 18, "output_tokens": 17, "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 64}}


def test_openai_response_text_and_tool_calls_and_unparseable_arguments() -> None:
    resp = {"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": [{"type": "text", "text": "Calling."}],
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{oops"}},
                       {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": ""}}]}}]}
    out = openai_response_to_anthropic(resp, Usage())
    assert out["content"] == [{"type": "text", "text": "Calling."},
                              {"type": "tool_use", "id": "call_1", "name": "f", "input": {"_raw_arguments": "{oops"}},
                              {"type": "tool_use", "id": "call_2", "name": "g", "input": {}}]


@pytest.mark.parametrize(("finish_reason", "stop_reason"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("function_call", "tool_use"),
    ("content_filter", "refusal"), (None, "end_turn"), ("something_new", "end_turn"),
])
def test_finish_reason_to_stop_reason(finish_reason: str | None, stop_reason: str) -> None:
    resp = {**OPENAI_TEXT_COMPLETION,
            "choices": [{**OPENAI_TEXT_COMPLETION["choices"][0], "finish_reason": finish_reason}]}
    assert openai_response_to_anthropic(resp, Usage())["stop_reason"] == stop_reason


def test_openai_response_without_choices_is_an_empty_message() -> None:
    out = openai_response_to_anthropic({"id": "x", "model": "m", "choices": []}, Usage())
    assert out["content"] == []
    assert out["stop_reason"] == "end_turn"


@pytest.mark.parametrize(("stop_reason", "content"), [
    ("end_turn", ANTHROPIC_TEXT_MESSAGE["content"]),
    ("max_tokens", ANTHROPIC_TEXT_MESSAGE["content"]),
    ("tool_use", ANTHROPIC_TOOL_MESSAGE["content"]),
])
def test_response_round_trip_anthropic_openai_anthropic(stop_reason: str, content: list[dict[str, Any]]) -> None:
    original = {**ANTHROPIC_TOOL_MESSAGE, "content": content, "stop_reason": stop_reason}
    body, usage = anthropic_response_to_openai(original)
    back = openai_response_to_anthropic(body, usage)
    assert back == original


# --- usage ------------------------------------------------------------------------------------------------------


def test_usage_from_anthropic_counts_cache_reads_and_writes_as_input() -> None:
    assert usage_from_anthropic({"input_tokens": 50, "cache_creation_input_tokens": 1000,
                                 "cache_read_input_tokens": 2000, "output_tokens": 30}) == \
        Usage(input_tokens=3050, output_tokens=30, cached_tokens=2000, cache_write_tokens=1000)
    assert usage_from_anthropic({"input_tokens": 25, "output_tokens": 1, "cache_creation_input_tokens": None,
                                 "cache_read_input_tokens": None}) == Usage(input_tokens=25, output_tokens=1)
    assert usage_from_anthropic(None) == Usage()
    assert usage_from_anthropic({}) == Usage()


def test_usage_to_anthropic_is_the_inverse() -> None:
    assert usage_to_anthropic(Usage(input_tokens=3050, output_tokens=30, cached_tokens=2000,
                                    cache_write_tokens=1000)) == \
        {"input_tokens": 50, "output_tokens": 30, "cache_creation_input_tokens": 1000,
         "cache_read_input_tokens": 2000}
    assert usage_to_anthropic(Usage()) == {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                                           "cache_read_input_tokens": 0}
    # an upstream that reports more cached than prompt tokens never yields a negative count
    assert usage_to_anthropic(Usage(input_tokens=10, cached_tokens=20))["input_tokens"] == 0


@pytest.mark.parametrize("raw", [
    {"input_tokens": 50, "output_tokens": 30, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 2000},
    {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    {"input_tokens": 7, "output_tokens": 3, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 11},
])
def test_usage_round_trip(raw: dict[str, int]) -> None:
    assert usage_to_anthropic(usage_from_anthropic(raw)) == raw
    usage = usage_from_anthropic(raw)
    assert usage_from_anthropic(usage_to_anthropic(usage)) == usage


# === AnthropicStreamToOpenAI ====================================================================================


def sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


ANTHROPIC_TOOL_STREAM = b"".join([
    sse("message_start", {"type": "message_start", "message": {
        "id": "msg_014p7gG3wDgGV9EUtLvnow3U", "type": "message", "role": "assistant", "model": CLAUDE,
        "stop_sequence": None, "content": [], "stop_reason": None,
        "usage": {"input_tokens": 472, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 128,
                  "output_tokens": 2}}}),
    sse("content_block_start", {"type": "content_block_start", "index": 0,
                                "content_block": {"type": "text", "text": ""}}),
    sse("ping", {"type": "ping"}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                "delta": {"type": "text_delta", "text": "Okay"}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                "delta": {"type": "text_delta", "text": ", let's check the weather."}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
    sse("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 1,
                                "delta": {"type": "input_json_delta", "partial_json": ""}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 1,
                                "delta": {"type": "input_json_delta", "partial_json": "{\"location\":"}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 1,
                                "delta": {"type": "input_json_delta", "partial_json": " \"San Francisco, CA\""}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 1,
                                "delta": {"type": "input_json_delta", "partial_json": ", \"unit\": \"fahrenheit\"}"}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
    sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                          "usage": {"output_tokens": 89}}),
    sse("message_stop", {"type": "message_stop"}),
])


def run_anthropic_stream(stream: bytes) -> tuple[AnthropicStreamToOpenAI, list[StreamEvent]]:
    decoder = SSEDecoder()
    converter = AnthropicStreamToOpenAI()
    events: list[StreamEvent] = []
    for message in decoder.feed(stream) + decoder.close():
        events += converter.feed(message.event, orjson.loads(message.data))
    return converter, events


def chunk(delta: dict[str, Any], finish: str | None = None, *, msg_id: str = "msg_014p7gG3wDgGV9EUtLvnow3U",
          model: str = CLAUDE) -> dict[str, Any]:
    return {"id": msg_id, "object": "chat.completion.chunk", "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}


def without_created(events: list[StreamEvent]) -> list[dict[str, Any]]:
    created = {e.data["created"] for e in events}
    assert len(created) == 1
    assert abs(created.pop() - time.time()) < 60
    return [{k: v for k, v in e.data.items() if k != "created"} for e in events]


def test_anthropic_stream_to_canonical_chunks() -> None:
    converter, events = run_anthropic_stream(ANTHROPIC_TOOL_STREAM)
    expected_usage = Usage(input_tokens=600, output_tokens=89, cached_tokens=128, cache_write_tokens=0)
    assert without_created(events) == [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Okay"}),
        chunk({"content": ", let's check the weather."}),
        chunk({"tool_calls": [{"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"location\":"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": " \"San Francisco, CA\""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ", \"unit\": \"fahrenheit\"}"}}]}),
        chunk({}, "tool_calls"),
        {"id": "msg_014p7gG3wDgGV9EUtLvnow3U", "object": "chat.completion.chunk", "model": CLAUDE, "choices": [],
         "usage": {"prompt_tokens": 600, "completion_tokens": 89, "total_tokens": 689,
                   "prompt_tokens_details": {"cached_tokens": 128}}},
    ]
    assert [e.usage for e in events] == [None] * 9 + [expected_usage]
    assert all(e.raw is None and e.format == "openai" for e in events)
    assert converter.usage == expected_usage
    assert converter.error is None
    arguments = "".join(c["function"]["arguments"] for e in events for ch in e.data["choices"]
                        for c in ch["delta"].get("tool_calls", []))
    assert json.loads(arguments) == {"location": "San Francisco, CA", "unit": "fahrenheit"}


def test_anthropic_stream_several_tool_blocks_get_consecutive_tool_call_indexes() -> None:
    converter = AnthropicStreamToOpenAI()
    converter.feed("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": CLAUDE, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 1}}})
    out: list[StreamEvent] = []
    for index, call_id in ((1, "toolu_a"), (2, "toolu_b")):
        out += converter.feed("content_block_start", {"type": "content_block_start", "index": index,
                                                      "content_block": {"type": "tool_use", "id": call_id,
                                                                        "name": "f", "input": {}}})
        out += converter.feed("content_block_delta", {"type": "content_block_delta", "index": index,
                                                      "delta": {"type": "input_json_delta",
                                                                "partial_json": f"{{\"n\": {index}}}"}})
        out += converter.feed("content_block_stop", {"type": "content_block_stop", "index": index})
    assert [e.data["choices"][0]["delta"]["tool_calls"] for e in out] == [
        [{"index": 0, "id": "toolu_a", "type": "function", "function": {"name": "f", "arguments": ""}}],
        [{"index": 0, "function": {"arguments": "{\"n\": 1}"}}],
        [{"index": 1, "id": "toolu_b", "type": "function", "function": {"name": "f", "arguments": ""}}],
        [{"index": 1, "function": {"arguments": "{\"n\": 2}"}}],
    ]


def test_anthropic_stream_event_name_is_used_when_data_has_no_type_and_others_are_ignored() -> None:
    converter = AnthropicStreamToOpenAI()
    assert converter.feed("ping", {"type": "ping"}) == []
    assert converter.feed("content_block_stop", {"type": "content_block_stop", "index": 0}) == []
    assert converter.feed("content_block_start", {"type": "content_block_start", "index": 0,
                                                  "content_block": {"type": "thinking", "thinking": ""}}) == []
    assert converter.feed("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                  "delta": {"type": "thinking_delta", "thinking": "Hmm"}}) == []
    assert converter.feed("some_future_event", {"type": "some_future_event"}) == []
    [event] = converter.feed("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "x"}})
    assert event.data["choices"][0]["delta"] == {"content": "x"}


def test_anthropic_stream_text_block_start_with_text_emits_it() -> None:
    converter = AnthropicStreamToOpenAI()
    [event] = converter.feed("content_block_start", {"type": "content_block_start", "index": 0,
                                                     "content_block": {"type": "text", "text": "Pre"}})
    assert event.data["choices"][0]["delta"] == {"content": "Pre"}


@pytest.mark.parametrize(("stop_reason", "finish_reason"), [
    ("end_turn", "stop"), ("max_tokens", "length"), ("stop_sequence", "stop"), ("refusal", "content_filter"),
    ("pause_turn", "stop"), ("unknown_reason", "stop"),
])
def test_anthropic_stream_message_delta_stop_reasons(stop_reason: str, finish_reason: str) -> None:
    converter = AnthropicStreamToOpenAI()
    [event] = converter.feed("message_delta", {"type": "message_delta",
                                               "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                               "usage": {"output_tokens": 4}})
    assert event.data["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish_reason}]
    assert event.usage is None
    assert converter.usage == Usage(output_tokens=4)


def test_anthropic_stream_message_delta_usage_overrides_and_keeps_start_values() -> None:
    converter = AnthropicStreamToOpenAI()
    converter.feed("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "model": CLAUDE, "usage": {"input_tokens": 100, "cache_read_input_tokens": 50,
                                                 "cache_creation_input_tokens": None, "output_tokens": 1}}})
    assert converter.feed("message_delta", {"type": "message_delta", "delta": {},
                                            "usage": {"output_tokens": 20, "cache_creation_input_tokens": None,
                                                      "input_tokens": 110}}) == []
    [last] = converter.feed("message_stop", {"type": "message_stop"})
    assert last.usage == Usage(input_tokens=160, output_tokens=20, cached_tokens=50)
    assert last.data["usage"] == {"prompt_tokens": 160, "completion_tokens": 20, "total_tokens": 180,
                                  "prompt_tokens_details": {"cached_tokens": 50}}


def test_anthropic_stream_error_event_sets_error() -> None:
    stream = ANTHROPIC_TOOL_STREAM.split(b"event: content_block_stop")[0] + sse(
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    converter, events = run_anthropic_stream(stream)
    assert converter.error == {"type": "overloaded_error", "message": "Overloaded"}
    assert len(events) == 3  # role chunk and the two text deltas; nothing for the error itself
    bare = AnthropicStreamToOpenAI()
    assert bare.feed("error", {"type": "error"}) == []
    assert bare.error == {"type": "api_error", "message": "stream error"}


# === OpenAIStreamToAnthropic ====================================================================================


def oai_chunk(delta: dict[str, Any] | None, finish: str | None = None,
              usage: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
                           "model": "gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb",
                           "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                                                 "finish_reason": finish}]}
    if usage is not None:
        out["usage"] = usage
    return out


OPENAI_TOOL_CHUNKS = [
    oai_chunk({"role": "assistant", "content": "", "refusal": None}),
    oai_chunk({"content": "Let me check "}),
    oai_chunk({"content": "both cities."}),
    oai_chunk({"tool_calls": [{"index": 0, "id": "call_paris", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
    oai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"location\": "}}]}),
    oai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
    oai_chunk({"tool_calls": [{"index": 1, "id": "call_tokyo", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
    oai_chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{\"location\": \"Tokyo\"}"}}]}),
    oai_chunk({}, "tool_calls"),
    oai_chunk(None, usage={"prompt_tokens": 82, "completion_tokens": 41, "total_tokens": 123,
                           "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0},
                           "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                         "accepted_prediction_tokens": 0,
                                                         "rejected_prediction_tokens": 0}}),
]
ZERO_USAGE = {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
FINAL_USAGE = {"input_tokens": 18, "output_tokens": 41, "cache_creation_input_tokens": 0,
               "cache_read_input_tokens": 64}


def to_anthropic_bytes(chunks: list[dict[str, Any]], model: str = "gpt-4o-mini") -> tuple[bytes, list[bytes]]:
    converter = OpenAIStreamToAnthropic(model)
    pieces: list[bytes] = []
    for c in chunks:
        pieces += converter.feed(c, Usage.from_openai(c["usage"]) if c.get("usage") else None)
    pieces += converter.finish()
    return b"".join(pieces), pieces


def parse_events(stream: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    decoder = SSEDecoder()
    return [(m.event, orjson.loads(m.data)) for m in decoder.feed(stream) + decoder.close()]


def test_openai_stream_to_anthropic_events() -> None:
    stream, pieces = to_anthropic_bytes(OPENAI_TOOL_CHUNKS)
    events = parse_events(stream)
    message_id = events[0][1]["message"]["id"]
    assert re.fullmatch(r"msg_[0-9a-f]{24}", message_id)
    assert events == [
        ("message_start", {"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "content": [], "model": "gpt-4o-mini",
            "stop_reason": None, "stop_sequence": None, "usage": ZERO_USAGE}}),
        ("ping", {"type": "ping"}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Let me check "}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "both cities."}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "call_paris", "name": "get_weather", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": "{\"location\": "}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
            "type": "tool_use", "id": "call_tokyo", "name": "get_weather", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 2,
                                 "delta": {"type": "input_json_delta", "partial_json": "{\"location\": \"Tokyo\"}"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 2}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                           "usage": FINAL_USAGE}),
        ("message_stop", {"type": "message_stop"}),
    ]
    # every piece is one whole SSE event whose name is its data's type
    assert len(pieces) == len(events)
    for piece, (name, data) in zip(pieces, events, strict=True):
        assert piece == b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
        assert data["type"] == name


def test_openai_stream_to_anthropic_state() -> None:
    converter = OpenAIStreamToAnthropic("fallback-model")
    assert converter.started is False
    first = converter.feed(oai_chunk({"role": "assistant", "content": ""}) | {"model": None})
    assert converter.started is True
    assert [name for name, _ in parse_events(b"".join(first))] == ["message_start", "ping"]
    assert parse_events(first[0])[0][1]["message"]["model"] == "fallback-model"
    converter.feed(oai_chunk({"content": "Hi"}, "length"))
    assert converter.stop_reason == "max_tokens"
    converter.feed(oai_chunk(None, usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}),
                   Usage(input_tokens=5, output_tokens=2))
    assert converter.usage == Usage(input_tokens=5, output_tokens=2)
    events = parse_events(b"".join(converter.finish()))
    assert events == [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
                           "usage": {"input_tokens": 5, "output_tokens": 2, "cache_creation_input_tokens": 0,
                                     "cache_read_input_tokens": 0}}),
        ("message_stop", {"type": "message_stop"}),
    ]


def test_openai_stream_to_anthropic_keeps_msg_ids_and_finish_without_chunks() -> None:
    converter = OpenAIStreamToAnthropic("claude-compatible")
    events = parse_events(b"".join(converter.feed({"id": "msg_keep", "model": "m", "choices": []})))
    assert events[0][1]["message"]["id"] == "msg_keep"
    empty = parse_events(b"".join(OpenAIStreamToAnthropic("m2").finish()))
    assert [name for name, _ in empty] == ["message_start", "ping", "message_delta", "message_stop"]
    assert empty[0][1]["message"]["model"] == "m2"
    assert empty[2][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


def test_openai_stream_text_after_tool_opens_a_new_text_block_and_missing_id_is_generated() -> None:
    chunks = [oai_chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]}),
              oai_chunk({"content": "done"}), oai_chunk({}, "stop")]
    events = parse_events(to_anthropic_bytes(chunks)[0])
    starts = [data for name, data in events if name == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1]
    assert re.fullmatch(r"toolu_[0-9a-f]{24}", starts[0]["content_block"]["id"])
    assert starts[1]["content_block"] == {"type": "text", "text": ""}
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"


def test_sse_bytes_and_error_event() -> None:
    assert sse_bytes({"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert sse_bytes({"a": 1}) == b'event: message\ndata: {"a":1}\n\n'
    assert sse_bytes({"type": "x"}, "y") == b'event: y\ndata: {"type":"x"}\n\n'
    assert error_event("overloaded_error", "Overloaded") == (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n')


async def test_openai_stream_to_anthropic_is_accumulated_by_the_anthropic_sdk(aiohttp_client: Any) -> None:
    _, pieces = to_anthropic_bytes(OPENAI_TOOL_CHUNKS)
    seen: list[dict[str, Any]] = []

    async def messages(request: web.Request) -> web.StreamResponse:
        seen.append(await request.json())
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        for piece in pieces:
            await resp.write(piece)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    client = await aiohttp_client(app)
    sdk = anthropic.AsyncAnthropic(base_url=str(client.make_url("")), api_key="x", max_retries=0)
    async with sdk, sdk.messages.stream(model="fast", max_tokens=64,
                                        messages=[{"role": "user", "content": "Weather in Paris and Tokyo?"}]) as s:
        texts = [text async for text in s.text_stream]
        message = await s.get_final_message()
    assert seen[0]["stream"] is True
    assert seen[0]["model"] == "fast"
    assert "".join(texts) == "Let me check both cities."
    assert re.fullmatch(r"msg_[0-9a-f]{24}", message.id)
    assert message.model == "gpt-4o-mini"
    assert message.role == "assistant"
    assert [block.type for block in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[0].text == "Let me check both cities."
    assert [(b.id, b.name, b.input) for b in message.content[1:]] == [
        ("call_paris", "get_weather", {"location": "Paris"}), ("call_tokyo", "get_weather", {"location": "Tokyo"})]
    assert message.stop_reason == "tool_use"
    assert message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens, message.usage.cache_read_input_tokens,
            message.usage.cache_creation_input_tokens) == (18, 41, 64, 0)
