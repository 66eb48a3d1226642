"""Google Gemini (``generateContent`` / ``streamGenerateContent`` / ``batchEmbedContents``, REST v1beta) <-> the
canonical form (OpenAI Chat Completions and Embeddings), requests one way, whole answers the other (streams:
:mod:`llmgw.translate.gemini_stream`).

Contracts:

- Pure functions and small state machines: no I/O, nothing fetched. An ``http(s)`` image URL becomes a
  ``fileData`` part naming that URL (with a MIME type guessed from its path); a ``data:`` URL becomes ``inlineData``.
- :func:`openai_to_gemini` returns ``(body, dropped)``. ``dropped`` names the hints that have no Gemini
  equivalent and were left out (they do not change what the model must produce). A parameter that *does* change
  it and cannot be honoured (``n`` > 1, ``logprobs``, ``top_logprobs``, ``logit_bias``, ``audio``, non-text
  ``modalities``, ``prediction``, an unknown ``response_format``), or a number outside the range Gemini accepts
  (never clamped), raises :class:`InvalidRequest` naming it, unless the caller lists it in ``drop`` — then it is
  left out and named in ``dropped`` too. The lists are Gemini's parameter table in the registry
  (:data:`llmgw.providers.spec.GEMINI_PARAMS`). A malformed part of the request raises :class:`InvalidRequest`
  naming its path (``messages[2].tool_calls[0].function.arguments``).
- Usage is normalised by :func:`usage_from_gemini`: ``input_tokens`` counts the whole prompt (cached tokens
  included, as Gemini's ``promptTokenCount`` does), ``output_tokens`` counts thoughts too (Gemini's
  ``candidatesTokenCount`` does not), ``reasoning_tokens`` is the thoughts part.
- Gemini 3 "thought signatures" survive a round trip the way Google's own OpenAI-compatible endpoint carries
  them: a ``functionCall`` part's ``thoughtSignature`` becomes the tool call's
  ``extra_content.google.thought_signature``, and comes back from there when the client sends the call back.

Requests are translated in :mod:`llmgw.translate.gemini_request` (:func:`openai_to_gemini`, importable from here
too); this module holds usage, whole answers and embeddings.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
from typing import Any

import orjson

from ..errors import InvalidRequest
from ..exchange import Usage
from .gemini_request import openai_to_gemini

__all__ = [
    "FINISH_TO_OPENAI",
    "gemini_embeddings_to_openai",
    "gemini_to_openai",
    "openai_embeddings_to_gemini",
    "openai_to_gemini",
    "usage_from_gemini",
]

# Gemini's Candidate.FinishReason -> OpenAI's finish_reason (anything else: "stop").
FINISH_TO_OPENAI: dict[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "MODEL_ARMOR": "content_filter",
}


# --- usage ---------------------------------------------------------------------------------------------------------


def usage_from_gemini(meta: dict[str, Any] | None) -> Usage:
    """Normalise Gemini's ``usageMetadata``.

    ``input_tokens`` = ``promptTokenCount`` (which already includes ``cachedContentTokenCount``) plus
    ``toolUsePromptTokenCount`` (built-in tool results fed back to the model, billed as input; absent for function
    calling); ``cached_tokens`` = ``cachedContentTokenCount``; ``output_tokens`` = ``candidatesTokenCount`` +
    ``thoughtsTokenCount``; ``reasoning_tokens`` = ``thoughtsTokenCount``. Missing counts are 0.
    """
    if not meta:
        return Usage()

    def count(name: str) -> int:
        value = meta.get(name)
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0

    thoughts = count("thoughtsTokenCount")
    return Usage(input_tokens=count("promptTokenCount") + count("toolUsePromptTokenCount"),
                 output_tokens=count("candidatesTokenCount") + thoughts,
                 cached_tokens=count("cachedContentTokenCount"),
                 reasoning_tokens=thoughts)


# --- answers: Gemini in, canonical out -------------------------------------------------------------------------------


def finish_reason(reason: Any, has_calls: bool) -> str:
    """The canonical finish reason for a Gemini ``finishReason``."""
    mapped = FINISH_TO_OPENAI.get(reason, "stop") if isinstance(reason, str) else "stop"
    return "tool_calls" if mapped == "stop" and has_calls else mapped


def _new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def tool_call(call: dict[str, Any], signature: Any) -> dict[str, Any]:
    """One Gemini ``functionCall`` as an OpenAI tool call (a fresh id, the args as compact JSON, the thought
    signature kept)."""
    args = call.get("args")
    out: dict[str, Any] = {"id": _new_call_id(), "type": "function",
                           "function": {"name": str(call.get("name") or ""),
                                        "arguments": orjson.dumps(args if args is not None else {}).decode()}}
    if isinstance(signature, str) and signature:
        out["extra_content"] = {"google": {"thought_signature": signature}}
    return out


def _read_parts(parts: Any) -> tuple[str, list[dict[str, Any]]]:
    """(visible text, tool calls) of a candidate's parts; thought parts are left out."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict) or part.get("thought") is True:
            continue
        if isinstance(part.get("functionCall"), dict):
            calls.append(tool_call(part["functionCall"], part.get("thoughtSignature")))
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
    return "".join(texts), calls


def gemini_to_openai(resp: dict[str, Any], model: str) -> dict[str, Any]:
    """A Gemini ``GenerateContentResponse`` as a canonical ``chat.completion`` for ``model``.

    One choice from the first candidate: its non-thought text parts joined as ``content`` (``None`` when the answer
    is only tool calls), each ``functionCall`` a tool call with a fresh ``call_<hex>`` id. ``finish_reason`` follows
    :data:`FINISH_TO_OPENAI` (``"tool_calls"`` for a STOP with calls). No candidates and a
    ``promptFeedback.blockReason``: ``content_filter`` with empty content. The id is ``chatcmpl-`` + ``responseId``
    (generated when absent).
    """
    candidates = resp.get("candidates")
    candidate = candidates[0] if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict) \
        else {}
    text, calls = _read_parts((candidate.get("content") or {}).get("parts"))
    if not candidate and (resp.get("promptFeedback") or {}).get("blockReason"):
        finish = "content_filter"
    else:
        finish = finish_reason(candidate.get("finishReason"), bool(calls))
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    response_id = resp.get("responseId")
    return {
        "id": "chatcmpl-" + (str(response_id) if response_id else uuid.uuid4().hex),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage_from_gemini(resp.get("usageMetadata")).to_openai(),
    }


# --- embeddings ----------------------------------------------------------------------------------------------------


def openai_embeddings_to_gemini(body: dict[str, Any], model: str) -> tuple[dict[str, Any], list[str]]:
    """A canonical embeddings request as a ``batchEmbedContents`` body for ``model``, and the dropped hints.

    Each input string becomes one request (``model`` as ``models/<model>``, ``outputDimensionality`` from
    ``dimensions``). Token-id inputs raise :class:`InvalidRequest` naming ``input`` (Gemini embeds text only);
    ``encoding_format`` is honoured by :func:`gemini_embeddings_to_openai`; ``user`` is dropped.
    """
    value = body.get("input")
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        texts = list(value)
    else:
        raise InvalidRequest("input: Gemini targets embed text only (a string or an array of strings)",
                             param="input", code="unsupported_parameter")
    name = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
    requests = []
    for text in texts:
        request: dict[str, Any] = {"model": name, "content": {"parts": [{"text": text}]}}
        if body.get("dimensions") is not None:
            request["outputDimensionality"] = body["dimensions"]
        requests.append(request)
    dropped = ["user"] if body.get("user") is not None else []
    return {"requests": requests}, dropped


def gemini_embeddings_to_openai(resp: dict[str, Any], model: str,
                                encoding_format: str | None = None) -> tuple[dict[str, Any], Usage]:
    """A ``batchEmbedContentsResponse`` as OpenAI's embeddings list, and its usage.

    ``encoding_format="base64"`` packs each vector as little-endian float32, as OpenAI does. Usage comes from a
    ``usageMetadata.promptTokenCount`` when the response has one, else it is 0 (Gemini often reports none).
    """
    data = []
    for index, embedding in enumerate(resp.get("embeddings") or []):
        values = (embedding or {}).get("values") or []
        vector: Any = values
        if encoding_format == "base64":
            vector = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    usage = usage_from_gemini(resp.get("usageMetadata"))
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens}}, usage
