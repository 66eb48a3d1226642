"""Anthropic Messages requests in, the canonical form (OpenAI Chat Completions) out: what an Anthropic client's
request becomes for a target of another format (the other direction, answers and usage: :mod:`.anthropic`).

Contract (:func:`anthropic_request_to_openai`): returns ``(body, dropped)``. What has an equivalent is translated
(``system`` messages at any position become system messages at the same place; text documents and search results
become text; ``output_config.format`` becomes ``response_format``); hints without one are left out and named in
``dropped``; what would change the answer and cannot be carried (server tools, ``mcp_servers``, Anthropic-only
block types, unknown roles) raises :class:`InvalidRequest` naming the field. Pure; no I/O.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import orjson

from ..errors import InvalidRequest
from .anthropic import DEFAULT_MAX_TOKENS

_TRANSLATED = frozenset({"model", "messages", "system", "max_tokens", "temperature", "top_p", "stream",
                         "stop_sequences", "tools", "tool_choice", "metadata", "output_config", "output_format",
                         "mcp_servers"})
# Tool fields a function definition carries; any other (cache_control, defer_loading, strict, ...) is a hint.
_TOOL_FIELDS = frozenset({"type", "name", "description", "input_schema"})
# Block types that are hints without an equivalent in a prompt: left out and named.
_HINT_BLOCKS = MappingProxyType({"thinking": "thinking", "redacted_thinking": "thinking", "fallback": "fallback",
                                 "tool_reference": "tool_reference"})


def _only_on_anthropic(where: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"{where}: {what} exist only on Anthropic targets", param=where,
                          code="unsupported_parameter")


def _block_text(blocks: Any) -> str:
    if isinstance(blocks, str):
        return blocks
    if isinstance(blocks, list):
        return "\n".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        return {"type": "image_url", "image_url": {"url": url}}
    if source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": source.get("url")}}
    raise InvalidRequest(f"{where}.source: image source type {source.get('type')!r} cannot be translated",
                         param=f"{where}.source")


def _document_part(block: dict[str, Any], where: str, dropped: list[str]) -> dict[str, Any]:
    """A ``document`` block as a canonical part: a text document (``text`` or ``content`` source) as a text part
    headed by its title, a base64 one (a PDF) as a ``file`` part; a URL or an uploaded file id cannot travel."""
    source = block.get("source") or {}
    kind = source.get("type")
    if block.get("citations") is not None:
        dropped.append("citations")
    title = block.get("title")
    if kind in ("text", "content"):
        text = str(source.get("data") or "") if kind == "text" else _block_text(source.get("content"))
        heading = [f"Document: {title}"] if title else []
        if block.get("context"):
            heading.append(str(block["context"]))
        return {"type": "text", "text": "\n\n".join([*heading, text])}
    if kind == "base64":
        data = f"data:{source.get('media_type') or 'application/pdf'};base64,{source.get('data')}"
        return {"type": "file", "file": {"filename": str(title or "document.pdf"), "file_data": data}}
    raise InvalidRequest(f"{where}.source: document source type {kind!r} exists only on Anthropic targets",
                         param=f"{where}.source", code="unsupported_parameter")


def _search_result_text(block: dict[str, Any], dropped: list[str]) -> str:
    """A ``search_result`` block as the text a model reads: its title and source, then its text blocks."""
    if block.get("citations") is not None:
        dropped.append("citations")
    head = f"Search result: {block.get('title', '')} ({block.get('source', '')})"
    return f"{head}\n{_block_text(block.get('content'))}"


def anthropic_request_to_openai(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """An Anthropic Messages request as a canonical Chat Completions request.

    - ``system`` (top level) becomes the first system message; a ``system``-role message keeps its position as a
      system message (one with ``clear_at: "next_user_message"`` is left out once a later user message exists,
      as the Messages API stops showing it then).
    - Text documents and search results become text parts, base64 documents ``file`` parts, ``output_config``'s
      JSON-schema ``format`` a ``response_format``.
    - Hints are dropped and named in ``dropped``: thinking blocks and ``thinking``, ``cache_control``, citations
      settings, ``fallback`` blocks, tool fields other than name/description/input_schema, ``output_config``'s
      other settings, and every top-level field without a canonical equivalent (known or not).
    - Raises :class:`InvalidRequest` naming the field for what would change the answer and has no canonical form:
      roles other than user/assistant/system, block types that exist only on Anthropic (server tool blocks,
      ``container_upload``, tool additions/removals, unknown types), server tools, MCP servers, ``max_tokens`` of
      0 (a prompt-cache pre-warm). The caller defers that error to targets that are not Anthropic (an Anthropic
      target gets the request untouched).
    """
    dropped: list[str] = []
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        if isinstance(system, list) and any(isinstance(b, dict) and "cache_control" in b for b in system):
            dropped.append("cache_control")
        messages.append({"role": "system", "content": _block_text(system)})
    source = body.get("messages") or []
    last_user = max((i for i, m in enumerate(source) if isinstance(m, dict) and m.get("role") == "user"), default=-1)
    for i, message in enumerate(source):
        messages.extend(_message_to_openai(message, f"messages[{i}]", dropped, later_user=i < last_user))
    if body.get("max_tokens") == 0:
        raise InvalidRequest("max_tokens: 0 (pre-warming the prompt cache) exists only on Anthropic targets",
                             param="max_tokens", code="unsupported_parameter")
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages,
                           "max_tokens": body.get("max_tokens", DEFAULT_MAX_TOKENS)}
    for name in ("temperature", "top_p", "stream"):
        if name in body:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    if body.get("stream"):
        out["stream_options"] = {"include_usage": True}
    if body.get("tools"):
        out["tools"] = [_tool_to_openai(t, f"tools[{i}]", dropped) for i, t in enumerate(body["tools"])]
    if body.get("mcp_servers"):
        raise _only_on_anthropic("mcp_servers", "MCP servers")
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        elif kind in ("auto", "any", "none"):
            out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
        else:
            raise InvalidRequest(f"tool_choice: type {kind!r} exists only on Anthropic targets", param="tool_choice",
                                 code="unsupported_parameter")
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False
    user_id = (body.get("metadata") or {}).get("user_id")
    if user_id:
        out["user"] = user_id
    hinted = {"mcp_servers", "output_config"} if _output_config(body, out) else {"mcp_servers"}
    dropped.extend(name for name in body if name not in _TRANSLATED or name in hinted)
    return out, list(dict.fromkeys(dropped))


def _output_config(body: dict[str, Any], out: dict[str, Any]) -> bool:
    """``output_config`` (and the older top-level ``output_format``): a JSON-schema ``format`` becomes a
    ``response_format``; every other setting (``effort``, ...) is a hint. True when there was such a hint."""
    config = body.get("output_config")
    config = config if isinstance(config, dict) else {}
    fmt = config.get("format") if "format" in config else body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        out["response_format"] = {"type": "json_schema",
                                  "json_schema": {"name": "output", "schema": fmt.get("schema") or {}}}
    elif fmt is not None:
        raise InvalidRequest(f"output_config.format: type {fmt.get('type') if isinstance(fmt, dict) else fmt!r}"
                             " exists only on Anthropic targets", param="output_config.format",
                             code="unsupported_parameter")
    return any(k != "format" for k in config) or ("output_config" in body and not config)


def _tool_to_openai(tool: dict[str, Any], where: str, dropped: list[str]) -> dict[str, Any]:
    if tool.get("type") not in (None, "custom") or "input_schema" not in tool:
        raise InvalidRequest(f"{where}: server tool {tool.get('type') or tool.get('name')!r} exists only on"
                             " Anthropic targets", param=where, code="unsupported_parameter")
    function = {"name": tool.get("name"), "parameters": tool.get("input_schema") or {"type": "object"}}
    if tool.get("description"):
        function["description"] = tool["description"]
    dropped.extend(key for key in tool if key not in _TOOL_FIELDS)
    return {"type": "function", "function": function}


def _system_message(message: dict[str, Any], where: str, dropped: list[str], *,
                    later_user: bool) -> list[dict[str, Any]]:
    """A ``system``-role message as a system message at the same position (see anthropic_request_to_openai)."""
    if "output_config" in message:
        dropped.append("output_config")
    if message.get("clear_at") == "next_user_message" and later_user:
        return []
    content = message.get("content")
    if content is None:
        return []
    if isinstance(content, list):
        for j, block in enumerate(content):
            if "cache_control" in block:
                dropped.append("cache_control")
            if block.get("type") != "text":
                raise _only_on_anthropic(f"{where}.content[{j}]", f"{block.get('type')!r} blocks in system messages")
    return [{"role": "system", "content": _block_text(content)}]


def _message_to_openai(message: dict[str, Any], where: str, dropped: list[str], *,
                       later_user: bool = False) -> list[dict[str, Any]]:
    role = message.get("role")
    if role == "system":
        return _system_message(message, where, dropped, later_user=later_user)
    if role not in ("user", "assistant"):
        raise _only_on_anthropic(f"{where}.role", f"messages of role {role!r}")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    tool_results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    for j, block in enumerate(content or []):
        kind = block.get("type")
        at = f"{where}.content[{j}]"
        if "cache_control" in block:
            dropped.append("cache_control")
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append(_image_part(block, at))
        elif kind == "document":
            parts.append(_document_part(block, at, dropped))
        elif kind == "search_result":
            parts.append({"type": "text", "text": _search_result_text(block, dropped)})
        elif kind == "compaction" and isinstance(block.get("content"), str):
            parts.append({"type": "text", "text": block["content"]})   # the summary of the turns it replaced
        elif kind == "tool_use":
            tool_calls.append({"id": block.get("id"), "type": "function",
                               "function": {"name": block.get("name"),
                                            "arguments": orjson.dumps(block.get("input") or {}).decode()}})
        elif kind == "tool_result":
            tool_results.append(_tool_result(block, at, parts, dropped))
        elif kind in _HINT_BLOCKS or kind == "compaction":
            dropped.append(_HINT_BLOCKS.get(kind, "compaction"))
        else:
            raise _only_on_anthropic(at, f"{kind!r} blocks")
    if role == "assistant":
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        out: dict[str, Any] = {"role": "assistant", "content": text or None}
        if tool_calls:
            out["tool_calls"] = tool_calls
        return [out]
    result = list(tool_results)
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        result.append({"role": role, "content": "\n".join(p["text"] for p in parts) if only_text else parts})
    return result


def _tool_result(block: dict[str, Any], where: str, parts: list[dict[str, Any]],
                 dropped: list[str]) -> dict[str, Any]:
    """A ``tool_result`` block as a tool message. Tool messages hold text only: its text, search-result and text
    document blocks are its text; its images and other documents follow in the user turn (``parts``)."""
    result = block.get("content")
    texts: list[str] = []
    if isinstance(result, str):
        texts.append(result)
    elif isinstance(result, list):
        for k, item in enumerate(result):
            if not isinstance(item, dict):
                continue
            kind, at = item.get("type"), f"{where}.content[{k}]"
            if kind == "text":
                texts.append(item.get("text", ""))
            elif kind == "image":
                parts.append(_image_part(item, at))
            elif kind == "search_result":
                texts.append(_search_result_text(item, dropped))
            elif kind == "document":
                part = _document_part(item, at, dropped)
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    parts.append(part)
            elif kind in _HINT_BLOCKS:
                dropped.append(_HINT_BLOCKS[kind])
            else:
                raise _only_on_anthropic(at, f"{kind!r} blocks")
    text = "\n".join(texts)
    if block.get("is_error"):
        text = f"[tool error] {text}"
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}


# --- provider side: canonical out to an Anthropic upstream ------------------------------------------------------
