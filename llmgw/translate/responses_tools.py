"""Responses API tools <-> canonical (Chat Completions) function tools, and the map that turns a canonical tool call
back into the output item a Responses client expects.

Contracts (pure, no I/O):
- :func:`tools_to_openai`: ``function`` tools become canonical function tools; the function and custom tools inside
  a ``namespace`` tool are offered flat, by their own names; a ``custom`` tool (free-form input, Codex CLI's
  ``apply_patch``) becomes a function taking one string, ``input``, its grammar written into the description (the
  grammar itself is not enforced: ``format`` is named as dropped). Tools OpenAI runs itself (:data:`HOSTED`:
  ``web_search``, ``file_search``, ...) are offers the model may use or not: they are left out and named as
  dropped. Any other tool type (``local_shell``, ``computer_use``, types newer than this module) raises
  :class:`InvalidRequest` naming it.
- :class:`ToolMap` (read from the client's request) turns a canonical tool call back into a ``function_call`` item
  (with its ``namespace`` when the tool came from one) or a ``custom_tool_call`` item (its ``input`` unwrapped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import InvalidRequest

HOSTED = frozenset({"web_search", "web_search_preview", "web_search_preview_2025_03_11", "web_search_2025_08_26",
                    "file_search", "code_interpreter", "image_generation", "mcp", "tool_search"})
"""Tool types OpenAI runs on its side: an offer a translated target cannot take up (dropped, named)."""
_FUNCTION_FIELDS = frozenset({"type", "name", "description", "parameters", "strict"})


def _refused(where: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"{where}: {what}; only OpenAI Responses API targets can serve it", param=where,
                          code="unsupported_parameter")


def custom_arguments(text: Any) -> str:
    """A custom tool's free-form input as canonical function arguments: ``{"input": text}``."""
    return orjson.dumps({"input": text if isinstance(text, str) else ""}).decode()


def custom_input(arguments: str) -> str:
    """Canonical arguments of a custom tool's function back as its free-form input (the arguments themselves when
    they are not ``{"input": "..."}``)."""
    try:
        value = orjson.loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        return arguments
    return value["input"] if isinstance(value, dict) and isinstance(value.get("input"), str) else arguments


def tools_to_openai(tools: list[Any], dropped: list[str], where: str = "tools") -> list[dict[str, Any]]:
    """Responses tools as canonical function tools (see the module contract)."""
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        at = f"{where}[{i}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "function":
            out.append(_function(tool, dropped))
        elif kind == "custom":
            out.append(_custom(tool, dropped))
        elif kind == "namespace":
            out += tools_to_openai(tool.get("tools") or [], dropped, f"{at}.tools")
        elif kind in HOSTED:
            dropped.append(str(kind))
        else:
            raise _refused(at, f"{kind!r} tools have no translation")
    return out


def _function(tool: dict[str, Any], dropped: list[str]) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.get("name"),
                                "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
    if tool.get("description"):
        function["description"] = tool["description"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    dropped.extend(key for key in tool if key not in _FUNCTION_FIELDS)
    return {"type": "function", "function": function}


def _custom(tool: dict[str, Any], dropped: list[str]) -> dict[str, Any]:
    description = str(tool.get("description") or "")
    fmt = tool.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar":
        description += (f"\n\nWrite `input` in this {fmt.get('syntax') or ''} grammar:\n"
                        f"{fmt.get('definition') or ''}").rstrip()
        dropped.append("format")
    parameters = {"type": "object", "properties": {"input": {"type": "string", "description": "The tool's input."}},
                  "required": ["input"], "additionalProperties": False}
    function = {"name": tool.get("name"), "parameters": parameters}
    if description.strip():
        function["description"] = description.strip()
    return {"type": "function", "function": function}


def tool_choice_to_openai(choice: Any) -> Any:
    """``tool_choice``: the modes as they are, a named function or custom tool as a named function."""
    if isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") in ("function", "custom"):
        return {"type": "function", "function": {"name": choice.get("name")}}
    kind = choice.get("type") if isinstance(choice, dict) else choice
    raise _refused("tool_choice", f"tool_choice {kind!r} has no translation")


@dataclass(frozen=True)
class ToolMap:
    """Which offered tools were custom, and which came from a namespace (see the module contract)."""

    custom: frozenset[str] = frozenset()
    namespaces: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, request: Mapping[str, Any]) -> ToolMap:
        custom: set[str] = set()
        namespaces: dict[str, str] = {}

        def visit(tools: Any, namespace: str | None) -> None:
            for tool in tools if isinstance(tools, list) else []:
                if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                    continue
                if tool.get("type") == "namespace":
                    visit(tool.get("tools"), tool["name"])
                    continue
                if tool.get("type") == "custom":
                    custom.add(tool["name"])
                if namespace is not None:
                    namespaces[tool["name"]] = namespace

        visit(request.get("tools"), None)
        return cls(frozenset(custom), namespaces)

    def is_custom(self, name: Any) -> bool:
        return name in self.custom

    def item(self, item_id: str, call_id: str, name: Any, arguments: str, status: str) -> dict[str, Any]:
        """The output item of one canonical tool call."""
        if self.is_custom(name):
            item: dict[str, Any] = {"id": item_id, "type": "custom_tool_call", "status": status, "call_id": call_id,
                                    "name": name, "input": custom_input(arguments)}
        else:
            item = {"id": item_id, "type": "function_call", "status": status, "arguments": arguments,
                    "call_id": call_id, "name": name}
        if name in self.namespaces:
            item["namespace"] = self.namespaces[name]
        return item
