"""OpenAI Responses API requests <-> the canonical form (OpenAI Chat Completions): a Responses request in, the
canonical request out (:func:`responses_request_to_openai`); the usage object both ways. Whole answers:
:mod:`llmgw.translate.responses_answer`; streams: :mod:`llmgw.translate.responses_stream`.

Contracts:
- Pure functions; no I/O. Nothing is fetched: image URLs stay URLs, file ids stay file ids.
- :func:`responses_request_to_openai` returns ``(body, dropped)``: ``dropped`` names the hints that had no canonical
  equivalent and were left out (they do not change what the model must produce). What would change the answer and
  has no canonical form — state kept by OpenAI (``previous_response_id``, ``conversation``, stored ``prompt``
  templates, ``item_reference`` items), client-side built-in tools and their calls (``local_shell``,
  ``computer_use``...), ``background`` runs, log probabilities, item types and roles it does not know — raises
  :class:`InvalidRequest` naming the field. Tools: :mod:`llmgw.translate.responses_tools`. The
  caller defers that error to targets that do not speak the Responses API (one that does gets the request
  untouched).
- Usage is normalised with :func:`usage_from_responses`: ``input_tokens`` counts cached tokens too, as in the API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidRequest
from ..exchange import Usage
from .responses_tools import custom_arguments, tool_choice_to_openai, tools_to_openai

RESPONSES = "responses"
"""The name of the OpenAI Responses client format (what exchanges, replies, events and log rows carry)."""

# Top-level fields the translation carries over, each with its canonical name (or handled below).
_SAME = ("temperature", "top_p", "user", "safety_identifier", "prompt_cache_key", "service_tier")
_HANDLED = frozenset({"model", "input", "instructions", "max_output_tokens", "stream", "tools", "tool_choice",
                      "parallel_tool_calls", "text", "reasoning", "include", *_SAME})
# Fields that only mean something to OpenAI itself: refused when set, for they change what the answer is.
_OPENAI_STATE = {"previous_response_id": "previous responses are kept by OpenAI",
                 "conversation": "conversations are kept by OpenAI",
                 "prompt": "prompt templates are kept by OpenAI",
                 "background": "background responses are run by OpenAI",
                 "top_logprobs": "log probabilities have no translation"}
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
_LOGPROBS = "message.output_text.logprobs"


def only_on_responses(where: str, what: str) -> InvalidRequest:
    """A 400 for something that has no equivalent off the Responses API."""
    return InvalidRequest(f"{where}: {what}; only OpenAI Responses API targets can serve it", param=where,
                          code="unsupported_parameter")


# --- usage ------------------------------------------------------------------------------------------------------


def usage_from_responses(usage: Any) -> Usage:
    """The Responses API's ``usage`` (``input_tokens`` with ``input_tokens_details.cached_tokens`` among them,
    ``output_tokens`` with ``output_tokens_details.reasoning_tokens``) normalised."""
    if not isinstance(usage, dict):
        return Usage()
    inputs = usage.get("input_tokens_details") or {}
    outputs = usage.get("output_tokens_details") or {}
    return Usage(input_tokens=int(usage.get("input_tokens") or 0), output_tokens=int(usage.get("output_tokens") or 0),
                 cached_tokens=int(inputs.get("cached_tokens") or 0),
                 cache_write_tokens=int(inputs.get("cache_write_tokens") or 0),
                 reasoning_tokens=int(outputs.get("reasoning_tokens") or 0))


def usage_to_responses(usage: Usage) -> dict[str, Any]:
    """A normalised usage as the Responses API's ``usage`` object (prompt-cache reads and writes among the input
    tokens, reasoning among the output tokens)."""
    return {"input_tokens": usage.input_tokens,
            "input_tokens_details": {"cached_tokens": usage.cached_tokens,
                                     "cache_write_tokens": usage.cache_write_tokens},
            "output_tokens": usage.output_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.input_tokens + usage.output_tokens}


# --- requests ---------------------------------------------------------------------------------------------------


def responses_request_to_openai(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A Responses API request as a canonical Chat Completions request (see the module contract).

    - ``instructions`` becomes the first system message; ``input`` (a string: one user message; or items) the
      messages: ``message`` items by role (``developer`` as ``system``), ``function_call`` items the assistant's
      ``tool_calls`` (joined to the assistant message before them), ``function_call_output`` items tool messages;
      ``custom_tool_call`` items calls of the custom tool's function (``{"input": ...}``), their outputs tool
      messages. Text, image and file parts become canonical parts.
    - ``max_output_tokens`` becomes ``max_tokens``; ``text.format`` a ``response_format``; ``text.verbosity``
      ``verbosity``; ``reasoning.effort`` ``reasoning_effort``; tools and ``tool_choice`` their canonical forms
      (:func:`~llmgw.translate.responses_tools.tools_to_openai`); ``temperature``, ``top_p``, ``user``,
      ``safety_identifier``, ``prompt_cache_key``, ``service_tier`` keep their names.
    - Dropped and named: ``reasoning`` items (their encrypted content is for OpenAI only), ``reasoning.summary``,
      ``store``, ``include``, ``metadata``, ``truncation``, ``phase``, function-tool fields other than name,
      description, parameters and strict, tools OpenAI runs itself (``web_search``...), custom tools' grammar
      (``format``), and every top-level field the translation does not know.
    """
    dropped: list[str] = []
    for name, why in _OPENAI_STATE.items():
        if body.get(name) not in (None, False):
            raise only_on_responses(name, why)
    include = body.get("include")
    if isinstance(include, list) and _LOGPROBS in include:
        raise only_on_responses("include", f"{_LOGPROBS!r}: log probabilities have no translation")
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    elif isinstance(instructions, list):
        messages.extend(items_to_messages(instructions, "instructions", dropped))
    source = body.get("input")
    if isinstance(source, str):
        messages.append({"role": "user", "content": source})
    elif isinstance(source, list):
        messages.extend(items_to_messages(source, "input", dropped))
    if not messages:
        raise InvalidRequest("input: required (a string or an array of input items) off the Responses API",
                             param="input")
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    for name in _SAME:
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    tools = tools_to_openai(body.get("tools") or [], dropped)
    if tools:
        out["tools"] = tools
        if body.get("parallel_tool_calls") is not None:
            out["parallel_tool_calls"] = body["parallel_tool_calls"]
    if body.get("tool_choice") is not None:
        out["tool_choice"] = tool_choice_to_openai(body["tool_choice"])
    _text(body.get("text"), out, dropped)
    _reasoning(body.get("reasoning"), out, dropped)
    dropped.extend(name for name in body if name not in _HANDLED and name not in _OPENAI_STATE)
    if include:
        dropped.append("include")
    return out, list(dict.fromkeys(dropped))


def _text(text: Any, out: dict[str, Any], dropped: list[str]) -> None:
    """``text``: its ``format`` as a ``response_format``, its ``verbosity``; other settings are hints."""
    if not isinstance(text, dict):
        return
    fmt = text.get("format")
    if isinstance(fmt, dict):
        kind = fmt.get("type")
        if kind == "json_schema":
            schema = {"name": fmt.get("name") or "output", "schema": fmt.get("schema") or {}}
            schema.update({k: fmt[k] for k in ("strict", "description") if fmt.get(k) is not None})
            out["response_format"] = {"type": "json_schema", "json_schema": schema}
        elif kind == "json_object":
            out["response_format"] = {"type": "json_object"}
        elif kind != "text":
            raise only_on_responses("text.format", f"format type {kind!r} has no translation")
    if text.get("verbosity") is not None:
        out["verbosity"] = text["verbosity"]
    dropped.extend(f"text.{k}" for k in text if k not in ("format", "verbosity"))


def _reasoning(reasoning: Any, out: dict[str, Any], dropped: list[str]) -> None:
    """``reasoning.effort`` as ``reasoning_effort``; a summary request is a hint."""
    if not isinstance(reasoning, dict):
        return
    if reasoning.get("effort") is not None:
        out["reasoning_effort"] = reasoning["effort"]
    dropped.extend(f"reasoning.{k}" for k, v in reasoning.items() if k != "effort" and v is not None)


# --- input items -------------------------------------------------------------------------------------------------


def item_kind(item: dict[str, Any]) -> str | None:
    """An input item's type; a typeless item with a ``role`` is a message (the API's "easy" input message)."""
    kind = item.get("type")
    if kind is None and "role" in item:
        return "message"
    return kind if isinstance(kind, str) else None


def items_to_messages(items: list[Any], where: str, dropped: list[str]) -> list[dict[str, Any]]:
    """Input items as canonical messages (see :func:`responses_request_to_openai`)."""
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{at}: must be an object", param=at)
        kind = item_kind(item)
        handler = _ITEMS.get(kind or "")
        if handler is not None:
            handler(item, at, messages, dropped)
        elif kind == "reasoning":
            dropped.append("reasoning")
        elif kind == "item_reference":
            raise only_on_responses(at, "item references point at items kept by OpenAI")
        else:
            raise only_on_responses(f"{at}.type", f"{kind!r} items have no translation")
    return messages


def _message(item: dict[str, Any], where: str, messages: list[dict[str, Any]], dropped: list[str]) -> None:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise only_on_responses(f"{where}.role", f"messages of role {role!r} have no translation")
    if "phase" in item:
        dropped.append("phase")
    content = item.get("content")
    if role == "assistant":
        text, refusal = _assistant_content(content, f"{where}.content")
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if refusal:
            message["refusal"] = refusal
        messages.append(message)
        return
    role = "system" if role == "developer" else role
    if isinstance(content, str) or content is None:
        messages.append({"role": role, "content": content or ""})
        return
    parts = [_part(part, f"{where}.content[{j}]") for j, part in enumerate(content)]
    if role == "system" or all(p["type"] == "text" for p in parts):
        if role == "system" and any(p["type"] != "text" for p in parts):
            raise only_on_responses(f"{where}.content", "system messages hold text only off the Responses API")
        messages.append({"role": role, "content": "\n".join(p["text"] for p in parts)})
    else:
        messages.append({"role": role, "content": parts})


def _assistant_content(content: Any, where: str) -> tuple[str, str]:
    """An assistant message's text and refusal."""
    if isinstance(content, str):
        return content, ""
    texts: list[str] = []
    refusals: list[str] = []
    for j, part in enumerate(content or []):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS:
            texts.append(str(part.get("text") or ""))
        elif kind == "refusal":
            refusals.append(str(part.get("refusal") or ""))
        else:
            raise only_on_responses(f"{where}[{j}]", f"{kind!r} parts of assistant messages have no translation")
    return "".join(texts), "".join(refusals)


def _part(part: Any, where: str) -> dict[str, Any]:
    """One content part of a user or system message as a canonical part."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in _TEXT_PARTS:
        return {"type": "text", "text": str(part.get("text") or "")}
    if kind == "input_image" and part.get("image_url"):
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file" and (part.get("file_data") or part.get("file_id")):
        file = {k: part[k] for k in ("file_data", "file_id", "filename") if part.get(k)}
        return {"type": "file", "file": file}
    raise only_on_responses(where, f"{kind!r} parts of this shape have no translation")


def _function_call(item: dict[str, Any], where: str, messages: list[dict[str, Any]], dropped: list[str]) -> None:
    """A call the model made: joined to the assistant message just before it, else a new assistant message."""
    call = {"id": item.get("call_id"), "type": "function",
            "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"}}
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _custom_call(item: dict[str, Any], where: str, messages: list[dict[str, Any]], dropped: list[str]) -> None:
    """A custom tool's call: a call of its function (see :mod:`llmgw.translate.responses_tools`)."""
    _function_call({**item, "arguments": custom_arguments(item.get("input"))}, where, messages, dropped)


def _function_output(item: dict[str, Any], where: str, messages: list[dict[str, Any]], dropped: list[str]) -> None:
    output = item.get("output")
    if isinstance(output, list):
        parts = [_part(part, f"{where}.output[{j}]") for j, part in enumerate(output)]
        if any(p["type"] != "text" for p in parts):
            raise only_on_responses(f"{where}.output", "tool results hold text only off the Responses API")
        output = "\n".join(p["text"] for p in parts)
    messages.append({"role": "tool", "tool_call_id": item.get("call_id"),
                     "content": output if isinstance(output, str) else ""})


_ITEMS: dict[str, Callable[[dict[str, Any], str, list[dict[str, Any]], list[str]], None]] = {
    "message": _message,
    "function_call": _function_call,
    "function_call_output": _function_output,
    "custom_tool_call": _custom_call,
    "custom_tool_call_output": _function_output,
}
