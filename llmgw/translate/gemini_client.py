"""A Gemini ``generateContent`` client's request -> the canonical form (OpenAI Chat Completions), for an alias whose
target speaks another format: the reverse of :mod:`llmgw.translate.gemini_request`. The canonical answers go back
to the client through :mod:`llmgw.translate.gemini_client_stream` (whole and streamed).

Contract (:func:`gemini_request_to_openai`):

- Pure: no I/O, the body untouched. Returns ``(body, dropped)``. Gemini accepts both JSON spellings of a field
  (``systemInstruction`` and ``system_instruction``); so does every reader here (:func:`get`).
- Translated: ``systemInstruction`` (its text parts) -> the first system message; ``contents`` in order, ``user``
  -> user messages (text, ``inlineData`` images, wav/mp3 audio and other files, ``fileData`` image URLs), ``model``
  -> assistant messages (text, each ``functionCall`` a tool call: its ``id``, else ``call_<content>_<part>``; its
  ``thoughtSignature`` as ``extra_content.google.thought_signature``), each ``functionResponse`` -> a tool message
  (the response object as JSON) answering the call with its ``id``, else the oldest unanswered call of that name;
  ``functionDeclarations`` -> function tools (Gemini ``Schema`` -> JSON schema: lower-case types, ``nullable``);
  ``toolConfig.functionCallingConfig`` -> ``tool_choice`` (``ANY`` with names narrows the tools);
  ``generationConfig``: ``temperature``, ``topP``, ``maxOutputTokens``, ``stopSequences``, ``candidateCount``,
  ``seed``, ``presencePenalty``, ``frequencyPenalty``, ``responseMimeType`` with ``responseSchema`` or
  ``responseJsonSchema`` -> ``response_format``.
- Dropped and named in ``dropped`` (hints: the answer's content does not depend on them): ``safetySettings``,
  ``generationConfig.thinkingConfig`` / ``topK`` / ``mediaResolution`` / ``speechConfig`` / ``imageConfig`` / any
  other unknown generation field, thought parts and ``thoughtSignature`` on text parts, function declaration fields
  other than name/description/parameters, ``toolConfig.retrievalConfig``, ``VALIDATED`` calling mode, and every
  top-level field without a canonical equivalent other than those refused below.
- Raises :class:`InvalidRequest` naming the field for what would change the answer and has no canonical form:
  ``cachedContent``, roles other than ``user``/``model``, part types other than the above (``executableCode``,
  ``codeExecutionResult``, non-image ``fileData``, unknown ones), tools other than function declarations
  (``googleSearch``, ``codeExecution``, ``urlContext``...), ``responseModalities`` other than text,
  ``responseLogprobs``, an enum ``responseMimeType``, a ``functionResponse`` answering no earlier call. The format
  keeps that error and raises it only if a target of another format is tried.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import InvalidRequest

# Part fields that say what a part is (the others -- thought, thoughtSignature, videoMetadata... -- qualify it).
_DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
                "codeExecutionResult")
_AUDIO_FORMATS = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/mp3": "mp3",
                  "audio/mpeg": "mp3"}
_GENERATION_MAPPED = {"temperature": "temperature", "topP": "top_p", "seed": "seed",
                      "presencePenalty": "presence_penalty", "frequencyPenalty": "frequency_penalty",
                      "maxOutputTokens": "max_tokens", "candidateCount": "n"}
_GENERATION_HANDLED = frozenset({*_GENERATION_MAPPED, "stopSequences", "responseMimeType", "responseSchema",
                                 "responseJsonSchema", "responseModalities", "responseLogprobs", "logprobs"})
_TOP_LEVEL = frozenset({"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "model"})
_SCHEMA_DROPPED = frozenset({"propertyOrdering", "example"})


# --- reading either spelling ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def snake(name: str) -> str:
    """The proto (snake_case) spelling of a camelCase JSON field name."""
    return re.sub(r"([A-Z])", r"_\1", name).lower()


def key_of(obj: Mapping[str, Any], name: str) -> str | None:
    """Which spelling of field ``name`` (camelCase) ``obj`` uses, or None when it has neither."""
    if name in obj:
        return name
    other = snake(name)
    return other if other in obj else None


def get(obj: Any, name: str) -> Any:
    """Field ``name`` (camelCase) of ``obj`` in either spelling; None when absent or ``obj`` is not an object."""
    if not isinstance(obj, Mapping):
        return None
    key = key_of(obj, name)
    return obj[key] if key is not None else None


def known(obj: Mapping[str, Any], names: frozenset[str]) -> list[str]:
    """The keys of ``obj`` that are none of ``names`` in either spelling (camelCase names given)."""
    spelled = names | {snake(n) for n in names}
    return [k for k in obj if k not in spelled]


def part_kind(part: Mapping[str, Any]) -> str | None:
    """What a part is (``text``, ``inlineData``, ``functionCall``...), or None when it has no data field this
    gateway knows."""
    return next((name for name in _DATA_FIELDS if key_of(part, name) is not None), None)


def _invalid(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: {message}", param=param, code="unsupported_parameter")

def _other_format(param: str, what: str) -> InvalidRequest:
    return _invalid(param, f"{what} has no equivalent for this alias's target, which speaks another format; route"
                           " the alias to a Gemini target or leave it out")


# --- the request ----------------------------------------------------------------------------------------------


class _Calls:
    """The function calls of the conversation so far, to give each response the id of the call it answers."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, str]] = []   # (id, name), oldest first

    def add(self, call_id: str, name: str) -> None:
        self.pending.append((call_id, name))

    def answer(self, call_id: Any, name: Any, where: str) -> str:
        """The id of the call a response answers: the pending call with its ``id``, else the oldest pending call of
        its name (a client numbers calls Gemini sent without ids itself), else its own ``id``."""
        found = next((k for k, (pending, _) in enumerate(self.pending) if call_id and pending == call_id), None)
        if found is None:
            found = next((k for k, (_, pending) in enumerate(self.pending) if pending == name), None)
        if found is not None:
            return self.pending.pop(found)[0]
        if call_id:
            return str(call_id)
        raise _invalid(where, f"answers no earlier functionCall named {name!r}")


def gemini_request_to_openai(body: Mapping[str, Any], alias: str, *,
                             stream: bool = False) -> tuple[dict[str, Any], list[str]]:
    """A Gemini ``GenerateContentRequest`` for ``alias`` as a canonical chat request (see the module contract)."""
    dropped: list[str] = []
    if get(body, "cachedContent") is not None:
        raise _other_format("cachedContent", "a cached content (part of the prompt stored on Gemini)")
    messages: list[dict[str, Any]] = []
    system = get(body, "systemInstruction")
    if system is not None:
        text = _system_text(system, dropped)
        if text:
            messages.append({"role": "system", "content": text})
    calls = _Calls()
    for i, content in enumerate(get(body, "contents") or []):
        messages.extend(_content(content, f"contents[{i}]", i, calls, dropped))
    out: dict[str, Any] = {"model": alias, "messages": messages}
    tools = get(body, "tools")
    if tools:
        out["tools"] = _tools(tools, dropped)
    config = get(body, "toolConfig")
    if isinstance(config, Mapping):
        _tool_config(config, out, dropped)
    generation = get(body, "generationConfig")
    if isinstance(generation, Mapping):
        _generation(generation, out, dropped)
    if not out.get("tools"):   # no function to call: a tool choice or an empty list would be refused
        out.pop("tools", None)
        out.pop("tool_choice", None)
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    dropped.extend(known(body, _TOP_LEVEL | {"cachedContent"}))
    return out, list(dict.fromkeys(dropped))


def _system_text(system: Any, dropped: list[str]) -> str:
    if isinstance(system, str):
        return system
    texts = []
    for j, part in enumerate(get(system, "parts") or []):
        kind = part_kind(part) if isinstance(part, Mapping) else None
        if kind != "text":
            raise _other_format(f"systemInstruction.parts[{j}]", f"a {kind or 'non-text'} part in the system"
                                                                 " instruction")
        if key_of(part, "thoughtSignature"):
            dropped.append("thoughtSignature")
        texts.append(str(get(part, "text")))
    return "\n".join(texts)


def _content(content: Any, where: str, index: int, calls: _Calls, dropped: list[str]) -> list[dict[str, Any]]:
    """One Gemini content as canonical messages: tool messages first, then the user or assistant message."""
    role = get(content, "role") or "user"
    parts = get(content, "parts") or []
    if role == "model":
        return _model_message(parts, where, index, calls, dropped)
    if role not in ("user", "function"):   # "function": the role older clients give function responses
        raise _other_format(f"{where}.role", f"role {role!r}")
    tool_messages: list[dict[str, Any]] = []
    user_parts: list[dict[str, Any]] = []
    for j, part in enumerate(parts):
        at = f"{where}.parts[{j}]"
        kind = part_kind(part)
        if get(part, "thought") is True:
            dropped.append("thought")
        elif kind == "functionResponse":
            tool_messages.append(_function_response(get(part, "functionResponse"), f"{at}.functionResponse", calls))
        elif kind == "text":
            user_parts.append({"type": "text", "text": str(get(part, "text"))})
        elif kind == "inlineData":
            user_parts.append(_inline(get(part, "inlineData"), f"{at}.inlineData"))
        elif kind == "fileData":
            user_parts.append(_file_data(get(part, "fileData"), f"{at}.fileData"))
        else:
            raise _other_format(at, f"a {_kind_name(part, kind)} part")
    messages = tool_messages
    if user_parts:
        only_text = len(user_parts) == 1 and user_parts[0]["type"] == "text"
        messages.append({"role": "user", "content": user_parts[0]["text"] if only_text else user_parts})
    return messages


def _kind_name(part: Any, kind: str | None) -> str:
    names = list(part) if isinstance(part, Mapping) else []
    return kind or ("/".join(repr(n) for n in names) if names else "empty")


def _model_message(parts: list[Any], where: str, index: int, calls: _Calls,
                   dropped: list[str]) -> list[dict[str, Any]]:
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for j, part in enumerate(parts):
        at = f"{where}.parts[{j}]"
        kind = part_kind(part)
        if get(part, "thought") is True:
            dropped.append("thought")
        elif kind == "text":
            if key_of(part, "thoughtSignature"):
                dropped.append("thoughtSignature")
            texts.append(str(get(part, "text")))
        elif kind == "functionCall":
            tool_calls.append(_function_call(part, f"{at}.functionCall", f"call_{index}_{j}", calls))
        else:
            raise _other_format(at, f"a {_kind_name(part, kind)} part in a model turn")
    if not texts and not tool_calls:
        return []
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return [message]


def _function_call(part: Mapping[str, Any], where: str, fallback_id: str, calls: _Calls) -> dict[str, Any]:
    call = get(part, "functionCall")
    name = get(call, "name")
    if not isinstance(name, str) or not name:
        raise _invalid(f"{where}.name", "required")
    args = get(call, "args")
    call_id = str(get(call, "id") or fallback_id)
    calls.add(call_id, name)
    out: dict[str, Any] = {"id": call_id, "type": "function",
                           "function": {"name": name, "arguments": orjson.dumps(args or {}).decode()}}
    signature = get(part, "thoughtSignature")
    if isinstance(signature, str) and signature:
        out["extra_content"] = {"google": {"thought_signature": signature}}
    return out


def _function_response(response: Any, where: str, calls: _Calls) -> dict[str, Any]:
    name = get(response, "name")
    if not isinstance(name, str) or not name:
        raise _invalid(f"{where}.name", "required")
    if get(response, "parts"):
        raise _other_format(f"{where}.parts", "a function response with media parts")
    call_id = calls.answer(get(response, "id"), name, where)
    value = get(response, "response")
    return {"role": "tool", "tool_call_id": call_id, "content": orjson.dumps(value if value is not None else {})
            .decode()}


def _inline(data: Any, where: str) -> dict[str, Any]:
    mime = str(get(data, "mimeType") or "")
    payload = get(data, "data")
    if not isinstance(payload, str):
        raise _invalid(f"{where}.data", "must be base64 text")
    if mime.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{payload}"}}
    if mime in _AUDIO_FORMATS:
        return {"type": "input_audio", "input_audio": {"data": payload, "format": _AUDIO_FORMATS[mime]}}
    if not mime:
        raise _invalid(f"{where}.mimeType", "required")
    extension = mime.rpartition("/")[2] or "bin"
    return {"type": "file", "file": {"filename": f"file.{extension}", "file_data": f"data:{mime};base64,{payload}"}}


def _file_data(data: Any, where: str) -> dict[str, Any]:
    mime = str(get(data, "mimeType") or "")
    uri = get(data, "fileUri")
    if mime.startswith("image/") and isinstance(uri, str) and uri.startswith(("http://", "https://")):
        return {"type": "image_url", "image_url": {"url": uri}}
    raise _other_format(where, "a file reference other than an image URL (files uploaded to Gemini stay there)")


# --- tools ----------------------------------------------------------------------------------------------------


def schema_to_json(schema: Any) -> Any:
    """A Gemini ``Schema`` (OpenAPI subset: upper-case types, ``nullable``) as a JSON schema: types lower-cased,
    ``nullable`` folded into the type, ``propertyOrdering`` and ``example`` left out. Property names are never
    touched; anything else passes as it is."""
    if isinstance(schema, list):
        return [schema_to_json(s) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_DROPPED or key == "nullable":
            continue
        if key == "properties" and isinstance(value, Mapping):
            out[key] = {name: schema_to_json(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf", "oneOf", "allOf"):
            out[key] = schema_to_json(value)
        elif key == "type" and isinstance(value, str):
            out[key] = value.lower()
        else:
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _tools(tools: Any, dropped: list[str]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            raise _invalid(f"tools[{i}]", "must be an object")
        others = known(tool, frozenset({"functionDeclarations"}))
        if others:
            raise _other_format(f"tools[{i}].{others[0]}", f"the Gemini tool {others[0]!r}")
        for j, declaration in enumerate(get(tool, "functionDeclarations") or []):
            out.append(_declaration(declaration, f"tools[{i}].functionDeclarations[{j}]", dropped))
    return out


def _declaration(declaration: Any, where: str, dropped: list[str]) -> dict[str, Any]:
    name = get(declaration, "name")
    if not isinstance(name, str) or not name:
        raise _invalid(f"{where}.name", "required")
    function: dict[str, Any] = {"name": name}
    description = get(declaration, "description")
    if description:
        function["description"] = str(description)
    json_schema = get(declaration, "parametersJsonSchema")
    parameters = get(declaration, "parameters")
    if isinstance(json_schema, Mapping):
        function["parameters"] = dict(json_schema)
    elif isinstance(parameters, Mapping):
        function["parameters"] = schema_to_json(parameters)
    else:
        function["parameters"] = {"type": "object", "properties": {}}
    hints = known(declaration, frozenset({"name", "description", "parameters", "parametersJsonSchema"}))
    dropped.extend(f"functionDeclarations.{h}" for h in hints)
    return {"type": "function", "function": function}


def _tool_config(config: Mapping[str, Any], out: dict[str, Any], dropped: list[str]) -> None:
    calling = get(config, "functionCallingConfig")
    dropped.extend(f"toolConfig.{k}" for k in known(config, frozenset({"functionCallingConfig"})))
    if not isinstance(calling, Mapping):
        return
    mode = str(get(calling, "mode") or "AUTO").upper()
    names = [n for n in get(calling, "allowedFunctionNames") or [] if isinstance(n, str)]
    if mode == "NONE":
        out["tool_choice"] = "none"
    elif mode == "ANY":
        if names:
            tools = out.get("tools") or []
            out["tools"] = [t for t in tools if t["function"]["name"] in names]
            if not out["tools"]:
                raise _invalid("toolConfig.functionCallingConfig.allowedFunctionNames",
                               "names no declared function")
        if len(names) == 1:
            out["tool_choice"] = {"type": "function", "function": {"name": names[0]}}
        else:
            out["tool_choice"] = "required"
    elif mode in ("AUTO", "MODE_UNSPECIFIED", "VALIDATED"):
        out["tool_choice"] = "auto"
        if mode == "VALIDATED":
            dropped.append("toolConfig.functionCallingConfig.mode")
    else:
        raise _other_format("toolConfig.functionCallingConfig.mode", f"mode {mode!r}")


def _generation(config: Mapping[str, Any], out: dict[str, Any], dropped: list[str]) -> None:
    for name, target in _GENERATION_MAPPED.items():
        value = get(config, name)
        if value is not None:
            out[target] = value
    stops = get(config, "stopSequences")
    if stops:
        out["stop"] = list(stops)
    modalities = get(config, "responseModalities")
    if modalities and any(str(m).upper() != "TEXT" for m in modalities):
        raise _other_format("generationConfig.responseModalities", "an answer in modalities other than text")
    if get(config, "responseLogprobs") or get(config, "logprobs") is not None:
        raise _other_format("generationConfig.responseLogprobs", "log probabilities in Gemini's shape")
    response_format = _response_format(config)
    if response_format is not None:
        out["response_format"] = response_format
    dropped.extend(f"generationConfig.{k}" for k in known(config, _GENERATION_HANDLED))


def _response_format(config: Mapping[str, Any]) -> dict[str, Any] | None:
    mime = get(config, "responseMimeType")
    json_schema = get(config, "responseJsonSchema")
    schema = get(config, "responseSchema")
    if mime in (None, "", "text/plain") and json_schema is None and schema is None:
        return None
    if mime not in (None, "", "application/json"):
        raise _other_format("generationConfig.responseMimeType", f"responseMimeType {mime!r}")
    if isinstance(json_schema, Mapping):
        chosen = dict(json_schema)
    elif isinstance(schema, Mapping):
        chosen = schema_to_json(schema)
    else:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": chosen}}

