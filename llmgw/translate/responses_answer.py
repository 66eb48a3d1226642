"""Whole answers between the canonical form (an OpenAI ``chat.completion``) and the Responses API's ``response``
object, both ways, and the pieces a Responses stream is built of (ids, the response shell, output items).

Contracts:
- Pure functions; no I/O.
- :func:`openai_response_to_responses` writes a canonical answer as a ``response``: its text (and refusal) as one
  ``message`` item, each tool call as a ``function_call`` item (``call_id`` the canonical call id; a custom tool's
  as a ``custom_tool_call``, a namespaced tool's with its ``namespace``: :class:`ToolMap`), the status
  from the finish reason (``length`` → ``incomplete`` with ``max_output_tokens``, ``content_filter`` →
  ``incomplete`` with ``content_filter``), the usage normalised, and the request's settings echoed as the API does.
- :func:`responses_response_to_openai` reads a ``response`` as a canonical answer (what the cache stores). Output
  items that have no canonical form (hosted tool calls, items newer than this module) leave it without choices,
  so such an answer is never cached; ``reasoning`` items are left out; a ``custom_tool_call`` is a call of the
  custom tool's function.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ..exchange import Usage
from .responses import usage_from_responses, usage_to_responses
from .responses_tools import ToolMap, custom_arguments

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
"""Canonical finish reasons that make a response ``incomplete``, with the reason the API gives."""
_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}
_ECHOED = ("instructions", "max_output_tokens", "max_tool_calls", "previous_response_id", "reasoning",
           "safety_identifier", "prompt_cache_key", "service_tier", "temperature", "top_p", "truncation", "user")
_DEFAULTS: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0, "truncation": "disabled"}


def new_id(prefix: str) -> str:
    """A fresh id in the API's style: ``resp_…``, ``msg_…``, ``fc_…``."""
    return f"{prefix}_{uuid.uuid4().hex}"


def response_shell(request: dict[str, Any], response_id: str, model: Any, status: str) -> dict[str, Any]:
    """A ``response`` object without output or usage: its id, status and the request's settings echoed."""
    shell: dict[str, Any] = {
        "id": response_id, "object": "response", "created_at": int(time.time()), "status": status,
        "background": False, "error": None, "incomplete_details": None, "model": model, "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True), "store": request.get("store", True),
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice") or "auto", "tools": request.get("tools") or [],
        "metadata": request.get("metadata") or {}, "usage": None,
    }
    for name in _ECHOED:
        shell[name] = request.get(name, _DEFAULTS.get(name))
    return shell


def finish_status(finish: str | None) -> tuple[str, dict[str, Any] | None]:
    """A canonical finish reason as a response's ``status`` and ``incomplete_details``."""
    reason = INCOMPLETE.get(finish or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def text_part(text: str) -> dict[str, Any]:
    """An ``output_text`` content part."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, parts: list[dict[str, Any]], status: str) -> dict[str, Any]:
    """An assistant ``message`` output item."""
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": parts}


def openai_response_to_responses(resp: dict[str, Any], usage: Usage, request: dict[str, Any]) -> dict[str, Any]:
    """A canonical ``chat.completion`` as a ``response`` object (see the module contract)."""
    choice = (resp.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    status, details = finish_status(choice.get("finish_reason"))
    output: list[dict[str, Any]] = []
    content = message.get("content")
    text = content if isinstance(content, str) else "".join(
        p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "text")
    parts = [text_part(text)] if text else []
    if message.get("refusal"):
        parts.append({"type": "refusal", "refusal": message["refusal"]})
    if parts:
        output.append(message_item(new_id("msg"), parts, status))
    tools = ToolMap.of(request)
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append(tools.item(new_id("fc"), call.get("id") or new_id("call"), function.get("name"),
                                 function.get("arguments") or "{}", "completed"))
    out = response_shell(request, new_id("resp"), resp.get("model") or request.get("model"), status)
    out.update(incomplete_details=details, output=output, usage=usage_to_responses(usage))
    if isinstance(resp.get("created"), int):
        out["created_at"] = resp["created"]
    return out


def responses_response_to_openai(resp: dict[str, Any]) -> dict[str, Any]:
    """A ``response`` object as a canonical ``chat.completion`` (see the module contract)."""
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[dict[str, Any]] = []
    representable = True
    for item in resp.get("output") or []:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") == "output_text":
                    texts.append(str(part.get("text") or ""))
                elif isinstance(part, dict) and part.get("type") == "refusal":
                    refusals.append(str(part.get("refusal") or ""))
        elif kind in ("function_call", "custom_tool_call"):
            arguments = (item.get("arguments") or "{}") if kind == "function_call" else \
                custom_arguments(item.get("input"))
            calls.append({"id": item.get("call_id"), "type": "function",
                          "function": {"name": item.get("name"), "arguments": arguments}})
        elif kind != "reasoning":
            representable = False
    reason = (resp.get("incomplete_details") or {}).get("reason")
    finish = "tool_calls" if calls else _FINISH.get(reason or "", "stop")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None,
                               "refusal": "".join(refusals) or None}
    if calls:
        message["tool_calls"] = calls
    choices = [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}] if representable else []
    return {"id": resp.get("id") or new_id("chatcmpl"), "object": "chat.completion",
            "created": int(resp.get("created_at") or time.time()), "model": resp.get("model"), "choices": choices,
            "usage": usage_from_responses(resp.get("usage")).to_openai()}


def finish_of(resp: dict[str, Any]) -> str:
    """The canonical finish reason of a finished ``response``: ``tool_calls`` when it called a tool (a hosted one
    too), ``length`` / ``content_filter`` when incomplete for that reason, else ``stop``."""
    for item in resp.get("output") or []:
        if isinstance(item, dict) and item.get("type") not in ("message", "reasoning"):
            return "tool_calls"
    reason = (resp.get("incomplete_details") or {}).get("reason")
    return _FINISH.get(reason or "", "stop")
