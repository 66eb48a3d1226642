"""Validating a Gemini ``generateContent`` / ``countTokens`` request: only what the gateway itself needs.

Contract (:func:`validate_generate`): the alias (the ``{model}`` of the path); ``contents`` (a non-empty array of
content objects for generation; optional for a count) whose ``parts`` are objects and whose ``text`` values are
strings (guardrails and the cache read them); ``systemInstruction`` (a content object or a string); the types of
the ``generationConfig`` numbers the gateway reads or translates (``maxOutputTokens`` for budgets); ``tools`` and
their ``functionDeclarations`` as arrays of objects; ``toolConfig`` as an object. Each problem is a 400 naming the
field (``contents[1].parts[0].text``) and changes nothing. Both JSON spellings of a field are read
(``generationConfig`` and ``generation_config``). Everything else -- roles, part types, fields, ranges -- is the
upstream's to judge (a translation refuses what has no equivalent, see :mod:`llmgw.translate.gemini_client`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..translate.gemini_client import get
from .validate import invalid_field, is_int, is_number

_NUMBERS = ("temperature", "topP", "topK", "presencePenalty", "frequencyPenalty")


def validate_generate(body: Mapping[str, Any], alias: str, *, count_only: bool = False) -> None:
    """Check a request (see the module contract); ``count_only``: a ``countTokens`` body, whose request may sit in
    ``generateContentRequest``."""
    if not alias:
        raise invalid_field("model", "required: the model alias, in the path (models/{model}:generateContent)")
    request, prefix = body, ""
    if count_only and get(body, "generateContentRequest") is not None:
        request, prefix = get(body, "generateContentRequest"), "generateContentRequest."
        if not isinstance(request, Mapping):
            raise invalid_field("generateContentRequest", "must be an object (a GenerateContentRequest)")
    contents = get(request, "contents")
    if contents is None and (not count_only or prefix):
        raise invalid_field(f"{prefix}contents", "required: a non-empty array of contents")
    if contents is not None and (not isinstance(contents, list) or (not contents and not count_only)):
        raise invalid_field(f"{prefix}contents", "must be a non-empty array of contents")
    for i, content in enumerate(contents or []):
        _check_content(content, f"{prefix}contents[{i}]")
    system = get(request, "systemInstruction")
    if system is not None and not isinstance(system, str):
        _check_content(system, f"{prefix}systemInstruction")
    _check_generation(get(request, "generationConfig"), f"{prefix}generationConfig")
    tools = get(request, "tools")
    if tools is not None:
        if not isinstance(tools, list) or not all(isinstance(t, Mapping) for t in tools):
            raise invalid_field(f"{prefix}tools", "must be an array of tool objects")
        for i, tool in enumerate(tools):
            declarations = get(tool, "functionDeclarations")
            if declarations is not None and not (isinstance(declarations, list)
                                                 and all(isinstance(d, Mapping) for d in declarations)):
                raise invalid_field(f"{prefix}tools[{i}].functionDeclarations", "must be an array of objects")
    config = get(request, "toolConfig")
    if config is not None and not isinstance(config, Mapping):
        raise invalid_field(f"{prefix}toolConfig", "must be an object")


def _check_content(content: Any, where: str) -> None:
    if not isinstance(content, Mapping):
        raise invalid_field(where, "must be a content object ({\"role\": ..., \"parts\": [...]})")
    role = get(content, "role")
    if role is not None and not isinstance(role, str):
        raise invalid_field(f"{where}.role", "must be a string ('user' or 'model')")
    parts = get(content, "parts")
    if parts is None:
        return
    if not isinstance(parts, list):
        raise invalid_field(f"{where}.parts", "must be an array of parts")
    for j, part in enumerate(parts):
        if not isinstance(part, Mapping):
            raise invalid_field(f"{where}.parts[{j}]", "must be a part object ({\"text\": ...}, ...)")
        text = get(part, "text")
        if text is not None and not isinstance(text, str):
            raise invalid_field(f"{where}.parts[{j}].text", "must be a string")


def _check_generation(config: Any, where: str) -> None:
    if config is None:
        return
    if not isinstance(config, Mapping):
        raise invalid_field(where, "must be an object")
    limit = get(config, "maxOutputTokens")
    if limit is not None and (not is_int(limit) or limit < 1):
        raise invalid_field(f"{where}.maxOutputTokens", "must be a positive integer")
    count = get(config, "candidateCount")
    if count is not None and (not is_int(count) or count < 1):
        raise invalid_field(f"{where}.candidateCount", "must be a positive integer")
    for name in _NUMBERS:
        value = get(config, name)
        if value is not None and not is_number(value):
            raise invalid_field(f"{where}.{name}", "must be a number")
    stops = get(config, "stopSequences")
    if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) for s in stops)):
        raise invalid_field(f"{where}.stopSequences", "must be an array of strings")
