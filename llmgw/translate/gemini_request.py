"""Canonical chat requests (OpenAI Chat Completions) as Gemini ``GenerateContentRequest`` bodies: the request half
of :mod:`llmgw.translate.gemini`, whose docstring holds the contract (what is refused, dropped, and how images,
tools and thought signatures travel). Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Collection
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import orjson

from ..errors import InvalidRequest
from ..providers.spec import GEMINI_PARAMS

__all__ = ["SYSTEM_CLOSE", "SYSTEM_OPEN", "openai_to_gemini"]

SYSTEM_OPEN, SYSTEM_CLOSE = "<system>", "</system>"   # around a mid-conversation system message's text

# JSON-schema keywords Gemini's function ``parameters`` (an OpenAPI-subset Schema) rejects as unknown fields.
_SCHEMA_REJECTED = frozenset({
    "$schema", "$id", "$comment", "$anchor", "additionalProperties", "unevaluatedProperties", "patternProperties",
    "propertyNames", "dependentRequired", "dependentSchemas", "strict", "examples", "contentMediaType",
    "contentEncoding", "readOnly", "writeOnly", "deprecated", "if", "then", "else", "not",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "uniqueItems", "contains", "minContains", "maxContains",
})
_AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mp3"}


def _invalid(param: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: {problem}", param=param)


def openai_to_gemini(body: dict[str, Any], *, drop: Collection[str] = ()) -> tuple[dict[str, Any], list[str]]:
    """A canonical chat request as a Gemini ``GenerateContentRequest`` body, and the names of what was dropped.

    ``model``, ``stream`` and ``stream_options`` are never copied (the model is in Gemini's URL, streaming is its
    own method). The system/developer messages before the first turn become ``systemInstruction``; one that comes
    later (a system message in mid-conversation, which applies from that point on) becomes a text part of a
    ``user`` turn at its position, wrapped in ``<system>`` … ``</system>`` so that it reads as an instruction
    rather than as the user's words (Gemini has no system turns). User and tool messages become ``user`` turns,
    assistant messages ``model`` turns; consecutive turns of one role are merged (so parallel tool results become
    one turn of ``functionResponse`` parts). See :mod:`llmgw.translate.gemini` for what raises.
    """
    body, dropped = GEMINI_PARAMS.screen(body, drop)   # the fields ``drop`` lists are gone from here on

    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for i, message in enumerate(body.get("messages") or []):
        where = f"messages[{i}]"
        role = message.get("role")
        if role in ("system", "developer") and not contents:
            system.extend(_text_parts(message.get("content"), where))
        elif role in ("system", "developer"):
            text = "\n".join(p["text"] for p in _text_parts(message.get("content"), where))
            _append(contents, "user", [{"text": f"{SYSTEM_OPEN}\n{text}\n{SYSTEM_CLOSE}"}] if text else [])
        elif role == "user":
            _append(contents, "user", _content_parts(message.get("content"), where))
        elif role == "assistant":
            _append(contents, "model", _assistant_parts(message, where, call_names))
        elif role in ("tool", "function"):
            _append(contents, "user", [_function_response(message, where, call_names)])
        else:
            raise _invalid(f"{where}.role", f"unknown role {role!r}")

    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}

    declarations, names = _declarations(body)
    tool_config = _tool_config(body, names, declarations)
    if declarations:
        out["tools"] = [{"functionDeclarations": declarations}]
        if tool_config is not None:
            out["toolConfig"] = {"functionCallingConfig": tool_config}

    config = _generation_config(body)
    if config:
        out["generationConfig"] = config

    return out, list(dict.fromkeys(dropped))


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    """Add a turn, merging it into the previous one of the same role; empty turns are left out."""
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _text_of(content: Any) -> str:
    """The text of a message content: a string, or its text parts joined with newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content
                         if isinstance(p, dict) and p.get("type") in ("text", None) and isinstance(p.get("text"), str))
    return ""


def _text_parts(content: Any, where: str) -> list[dict[str, Any]]:
    """Text-only content (system, developer, assistant) as Gemini text parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise _invalid(f"{where}.content", "must be a string or an array of content parts")
    parts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            if part["text"]:
                parts.append({"text": part["text"]})
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append({"text": part["refusal"]})
        else:
            raise _invalid(f"{where}.content[{j}]", "only text parts are allowed in this message")
    return parts


def _content_parts(content: Any, where: str) -> list[dict[str, Any]]:
    """A user message's content (text, images, audio, files) as Gemini parts."""
    if isinstance(content, str) or content is None:
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise _invalid(f"{where}.content", "must be a string or an array of content parts")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        if not isinstance(part, dict):
            raise _invalid(at, "must be an object")
        kind = part.get("type")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise _invalid(f"{at}.text", "must be a string")
            if part["text"]:
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append(_media_part(url, f"{at}.image_url.url", "image/jpeg"))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            mime = _AUDIO_MIME.get(str(audio.get("format")))
            if mime is None:
                raise _invalid(f"{at}.input_audio.format", "must be 'wav' or 'mp3'")
            if not isinstance(audio.get("data"), str):
                raise _invalid(f"{at}.input_audio.data", "must be base64 text")
            parts.append({"inlineData": {"mimeType": mime, "data": audio["data"]}})
        elif kind == "file":
            file = part.get("file") or {}
            data = file.get("file_data")
            if not isinstance(data, str) or not data:
                raise _invalid(f"{at}.file", "needs file_data (uploaded file ids are not supported by Gemini targets)")
            guessed = mimetypes.guess_type(str(file.get("filename") or ""))[0] or "application/pdf"
            if data.startswith("data:"):
                parts.append(_media_part(data, f"{at}.file.file_data", guessed))
            else:
                parts.append({"inlineData": {"mimeType": guessed, "data": data}})
        else:
            raise _invalid(f"{at}.type", f"content part type {kind!r} is not supported by Gemini targets")
    return parts


def _media_part(url: Any, where: str, default_mime: str) -> dict[str, Any]:
    """A ``data:`` URL as ``inlineData``; an ``http(s)`` URL as ``fileData`` (never fetched)."""
    if not isinstance(url, str) or not url:
        raise _invalid(where, "must be a URL string")
    if url.startswith("data:"):
        header, sep, payload = url[5:].partition(",")
        if not sep:
            raise _invalid(where, "is not a valid data: URL")
        fields = header.split(";")
        mime = fields[0] or default_mime
        data = payload if "base64" in fields[1:] else base64.b64encode(unquote_to_bytes(payload)).decode()
        return {"inlineData": {"mimeType": mime, "data": data}}
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise _invalid(where, "must be an http(s) or data: URL")
    mime = mimetypes.guess_type(urlsplit(url).path)[0] or default_mime
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _assistant_parts(message: dict[str, Any], where: str, call_names: dict[str, str]) -> list[dict[str, Any]]:
    """An assistant message as ``model`` parts: its text, then one ``functionCall`` part per tool call."""
    parts = _text_parts(message.get("content"), where)
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise _invalid(f"{where}.tool_calls", "must be an array")
    found: list[tuple[str, dict[str, Any], Any]] = []   # (path of the function object, call, function)
    for j, call in enumerate(calls):
        found.append((f"{where}.tool_calls[{j}].function", call if isinstance(call, dict) else {},
                      call.get("function") if isinstance(call, dict) else None))
    legacy = message.get("function_call")
    if legacy is not None and not calls:
        found.append((f"{where}.function_call", {}, legacy))
    for at, call, function in found:
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise _invalid(f"{at}.name", "required")
        arguments = function.get("arguments")
        if arguments is None or arguments == "":
            args: Any = {}
        elif isinstance(arguments, str):
            try:
                args = orjson.loads(arguments)
            except orjson.JSONDecodeError:
                raise _invalid(f"{at}.arguments", "tool-call arguments are not valid JSON") from None
        else:
            args = arguments
        if not isinstance(args, dict):
            raise _invalid(f"{at}.arguments", "tool-call arguments must be a JSON object")
        if call.get("id"):
            call_names[str(call["id"])] = function["name"]
        part: dict[str, Any] = {"functionCall": {"name": function["name"], "args": args}}
        signature = ((call.get("extra_content") or {}).get("google") or {}).get("thought_signature")
        if isinstance(signature, str) and signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _function_response(message: dict[str, Any], where: str, call_names: dict[str, str]) -> dict[str, Any]:
    """A tool (or legacy function) message as a ``functionResponse`` part."""
    if message.get("role") == "function":
        name = message.get("name")
        if not isinstance(name, str) or not name:
            raise _invalid(f"{where}.name", "required")
    else:
        call_id = message.get("tool_call_id")
        name = call_names.get(str(call_id)) if call_id is not None else None
        if name is None:
            raise _invalid(f"{where}.tool_call_id", "does not match the id of a tool call in an earlier assistant"
                                                     " message")
    text = _text_of(message.get("content"))
    response: Any = None
    if text.lstrip().startswith("{"):
        try:
            response = orjson.loads(text)
        except orjson.JSONDecodeError:
            response = None
    if not isinstance(response, dict):
        response = {"content": text}
    return {"functionResponse": {"name": name, "response": response}}


def _clean_schema(schema: Any) -> Any:
    """A JSON schema without the keywords Gemini's ``Schema`` rejects; ``const`` becomes a one-value ``enum`` and a
    ``["T", "null"]`` type becomes ``T`` + ``nullable``. Property *names* are never touched."""
    if isinstance(schema, list):
        return [_clean_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_REJECTED:
            continue
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: _clean_schema(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf", "oneOf", "allOf", "prefixItems"):
            out[key] = _clean_schema(value)
        elif key == "const":
            if "enum" not in schema:
                out["enum"] = [value]
        elif key == "type" and isinstance(value, list):
            kinds = [k for k in value if k != "null"]
            out["type"] = kinds[0] if len(kinds) == 1 else kinds
            if "null" in value:
                out["nullable"] = True
        else:
            out[key] = value
    return out


def _declaration(function: dict[str, Any], where: str) -> dict[str, Any]:
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise _invalid(f"{where}.name", "required")
    out: dict[str, Any] = {"name": name}
    if function.get("description"):
        out["description"] = str(function["description"])
    parameters = function.get("parameters")
    if isinstance(parameters, dict):
        cleaned = _clean_schema(parameters)
        # Gemini rejects an OBJECT schema with no properties: a function without parameters declares none.
        if not (cleaned.get("type") in (None, "object", "OBJECT") and not cleaned.get("properties")
                and not cleaned.get("anyOf")):
            out["parameters"] = cleaned
    elif parameters is not None:
        raise _invalid(f"{where}.parameters", "must be a JSON schema object")
    return out


def _declarations(body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """``tools`` (or the legacy ``functions``) as Gemini function declarations, and their names."""
    declarations = []
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise _invalid(f"tools[{i}].type", f"tool type {kind!r} is not supported by Gemini targets")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise _invalid(f"tools[{i}].function", "required")
        declarations.append(_declaration(function, f"tools[{i}].function"))
    for i, function in enumerate(body.get("functions") or []):
        if not isinstance(function, dict):
            raise _invalid(f"functions[{i}]", "must be an object")
        declarations.append(_declaration(function, f"functions[{i}]"))
    return declarations, [d["name"] for d in declarations]


def _tool_config(body: dict[str, Any], names: list[str],
                 declarations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``tool_choice`` (or the legacy ``function_call``) as a ``functionCallingConfig``; None when absent.

    ``allowed_tools`` in ``auto`` mode narrows ``declarations`` in place (Gemini restricts names only in ANY mode).
    """
    where = "tool_choice"
    choice = body.get("tool_choice")
    if choice is None and body.get("function_call") is not None:
        where, choice = "function_call", body["function_call"]
    if choice is None:
        return None
    if choice == "auto":
        return {"mode": "AUTO"}
    if choice == "none":
        return {"mode": "NONE"}
    if choice == "required":
        return {"mode": "ANY"}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if choice.get("type") == "function" else choice.get("name")
        if isinstance(name, str) and name:
            if name not in names:
                raise _invalid(where, f"names function {name!r}, which is not among the tools")
            return {"mode": "ANY", "allowedFunctionNames": [name]}
        if choice.get("type") == "allowed_tools":
            allowed = choice.get("allowed_tools") or {}
            wanted = [((t.get("function") or {}).get("name") if isinstance(t, dict) else None)
                      for t in allowed.get("tools") or []]
            wanted = [w for w in wanted if w in names]
            if allowed.get("mode") == "required":
                return {"mode": "ANY", "allowedFunctionNames": wanted}
            declarations[:] = [d for d in declarations if d["name"] in wanted]
            return {"mode": "AUTO"}
    raise _invalid(where, "must be 'auto', 'none', 'required' or name a function")


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    """The ``generationConfig``; an unknown ``response_format`` is refused (``drop`` removed a listed one)."""
    config: dict[str, Any] = {}
    for source, target in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("seed", "seed"),
                           ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")):
        if body.get(source) is not None:
            config[target] = body[source]
    limit = body.get("max_completion_tokens")
    if limit is None:
        limit = body.get("max_tokens")
    if limit is not None:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if isinstance(stop, str) and stop:
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and any(stop):
        config["stopSequences"] = [s for s in stop if s]
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind == "json_object":
            config["responseMimeType"] = "application/json"
        elif kind == "json_schema":
            config["responseMimeType"] = "application/json"
            schema = (response_format.get("json_schema") or {}).get("schema")
            if isinstance(schema, dict):
                config["responseJsonSchema"] = {k: v for k, v in schema.items() if k != "$schema"}
        elif kind not in (None, "text"):
            raise GEMINI_PARAMS.unsupported("response_format")
    elif response_format is not None:
        raise GEMINI_PARAMS.unsupported("response_format")
    return config
