"""Anthropic Messages <-> the canonical form (OpenAI Chat Completions), both ways: requests and whole answers
(streams: :mod:`llmgw.translate.anthropic_stream`).

Contracts:
- Pure functions and small state machines; no I/O. Nothing is fetched: image URLs stay URLs.
- A request translation returns ``(body, dropped)``: ``dropped`` names the hints that had no equivalent and were
  left out (they do not change what the model must produce). A parameter that *does* change it and cannot be
  honoured, or a number outside the range Anthropic accepts (``temperature`` above 1: never clamped), raises
  :class:`InvalidRequest` naming it — unless the caller lists it in ``drop``, in which case it is dropped and named
  too. Which parameters those are is Anthropic's parameter table in the registry
  (:data:`llmgw.providers.spec.ANTHROPIC_PARAMS`).
- Usage is normalised with :func:`usage_from_anthropic`: ``input_tokens`` counts cache reads and writes too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection
from typing import Any

import orjson

from ..errors import InvalidRequest
from ..exchange import Usage
from ..providers.spec import ANTHROPIC_PARAMS

DEFAULT_MAX_TOKENS = 4096

STOP_TO_OPENAI = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                  "pause_turn": "stop", "refusal": "content_filter", "model_context_window_exceeded": "length"}
FINISH_TO_ANTHROPIC = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                       "function_call": "tool_use", "content_filter": "refusal"}


def _unsupported(param: str, target: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: not supported by {target} targets; remove it or list it in the provider's"
                          " drop_params", param=param, code="unsupported_parameter")


def _json_args(text: str, param: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        raise InvalidRequest(f"{param}: tool-call arguments are not valid JSON", param=param) from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{param}: tool-call arguments must be a JSON object", param=param)
    return value


# --- usage ------------------------------------------------------------------------------------------------------


def usage_from_anthropic(usage: dict[str, Any] | None) -> Usage:
    """Normalise Anthropic's usage: its ``input_tokens`` excludes cache reads and writes; ours includes them.
    ``cache_creation.ephemeral_1h_input_tokens`` is the 1-hour part of the cache writes."""
    if not usage:
        return Usage()
    read = int(usage.get("cache_read_input_tokens") or 0)
    write = int(usage.get("cache_creation_input_tokens") or 0)
    split = usage.get("cache_creation")
    write_1h = int(split.get("ephemeral_1h_input_tokens") or 0) if isinstance(split, dict) else 0
    return Usage(input_tokens=int(usage.get("input_tokens") or 0) + read + write,
                 output_tokens=int(usage.get("output_tokens") or 0), cached_tokens=read, cache_write_tokens=write,
                 cache_write_1h_tokens=write_1h)


def usage_to_anthropic(usage: Usage) -> dict[str, Any]:
    return {"input_tokens": max(0, usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens),
            "output_tokens": usage.output_tokens,
            "cache_creation_input_tokens": usage.cache_write_tokens,
            "cache_read_input_tokens": usage.cached_tokens}


# --- client side: an Anthropic request in, canonical out ---------------------------------------------------------

# Top-level fields the translation carries over (everything else is a hint without an equivalent: dropped, named).
def openai_request_to_anthropic(body: dict[str, Any], *, drop: Collection[str] = ()) -> tuple[dict[str, Any],
                                                                                            list[str]]:
    """A canonical request as an Anthropic Messages request (``model`` is set by the caller)."""
    body, dropped = ANTHROPIC_PARAMS.screen(body, drop)
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for i, message in enumerate(body.get("messages") or []):
        where = f"messages[{i}]"
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text_of(message.get("content")))
            continue
        if role == "tool":
            block = {"type": "tool_result", "tool_use_id": message.get("tool_call_id"),
                     "content": _text_of(message.get("content"))}
            _append(messages, "user", [block])
            continue
        if role == "function":
            raise _unsupported(f"{where}.role", "Anthropic ('function' messages are deprecated; use tools)")
        blocks = _content_to_anthropic(message.get("content"), where)
        if role == "assistant":
            for j, call in enumerate(message.get("tool_calls") or []):
                function = call.get("function") or {}
                names[call.get("id")] = function.get("name")
                blocks.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"),
                               "input": _json_args(function.get("arguments") or "",
                                                   f"{where}.tool_calls[{j}].function.arguments")})
        _append(messages, "assistant" if role == "assistant" else "user", blocks)
    out: dict[str, Any] = {"messages": messages,
                           "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens")
                           or DEFAULT_MAX_TOKENS}
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    if body.get("temperature") is not None:
        out["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("stream"):
        out["stream"] = True
    if body.get("tools"):
        out["tools"] = [_tool_to_anthropic(t, f"tools[{i}]") for i, t in enumerate(body["tools"])]
    choice = _tool_choice_to_anthropic(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None:
        out["tool_choice"] = choice
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    return out, dropped


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Anthropic wants user/assistant turns to alternate: merge a turn into the previous one of the same role."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _content_to_anthropic(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if url.startswith("data:"):
                header, _, data = url.partition(",")
                media_type = header[5:].split(";")[0]
                blocks.append({"type": "image", "source": {"type": "base64", "media_type": media_type,
                                                           "data": data}})
            else:
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
        else:
            raise _unsupported(f"{where}.content[{j}] ({kind})", "Anthropic")
    return blocks


def _tool_to_anthropic(tool: dict[str, Any], where: str) -> dict[str, Any]:
    if tool.get("type") != "function":
        raise _unsupported(f"{where}.type", "Anthropic")
    function = tool.get("function") or {}
    out = {"name": function.get("name"),
           "input_schema": function.get("parameters") or {"type": "object", "properties": {}}}
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _tool_choice_to_anthropic(choice: Any, parallel: Any) -> dict[str, Any] | None:
    out: dict[str, Any] | None
    if choice is None:
        out = None
    elif isinstance(choice, str):
        out = {"type": {"auto": "auto", "required": "any", "none": "none"}.get(choice, "auto")}
    else:
        out = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    if parallel is False and (out or {}).get("type") != "none":
        out = {**(out or {"type": "auto"}), "disable_parallel_tool_use": True}
    return out


# --- answers --------------------------------------------------------------------------------------------------


def anthropic_response_to_openai(resp: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
    """An Anthropic message as a canonical ``chat.completion``, and its normalised usage."""
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in resp.get("content") or []:
        if block.get("type") == "text":
            text.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append({"id": block.get("id"), "type": "function",
                          "function": {"name": block.get("name"),
                                       "arguments": orjson.dumps(block.get("input") or {}).decode()}})
    usage = usage_from_anthropic(resp.get("usage"))
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None,
                               "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": resp.get("id") or "chatcmpl-" + uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": resp.get("model"),
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": STOP_TO_OPENAI.get(resp.get("stop_reason") or "end_turn", "stop")}],
        "usage": usage.to_openai(),
    }, usage


def openai_response_to_anthropic(resp: dict[str, Any], usage: Usage) -> dict[str, Any]:
    """A canonical ``chat.completion`` as an Anthropic message."""
    choice = (resp.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": _text_of(message["content"])})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {"_raw_arguments": function.get("arguments")}
        content.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments})
    return {
        "id": message_id(resp.get("id")),
        "type": "message",
        "role": "assistant",
        "model": resp.get("model"),
        "content": content,
        "stop_reason": FINISH_TO_ANTHROPIC.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": usage_to_anthropic(usage),
    }


def message_id(source: Any) -> str:
    """``source`` when it is an Anthropic message id, else a new one."""
    if isinstance(source, str) and source.startswith("msg_"):
        return source
    return "msg_" + uuid.uuid4().hex[:24]
