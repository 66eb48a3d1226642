"""Cache keys: what partitions the cache, and what makes two requests the same request.

Contract:
- :func:`request_keys` returns a :class:`RequestKeys` for a chat exchange, or ``None`` when it must not be cached
  (no messages, ``n`` > 1).
- ``partition`` hashes everything that can change the answer except the last user turn: the tenant (team, else
  key id; ``""`` on an open proxy), the alias, the client format, every request parameter (system prompt, earlier
  turns, tools, tool_choice, temperature, top_p, max_tokens, stop, response_format, seed, user...) except the
  stream flags, and any hints a translation dropped. Two requests share a partition only if all of that is equal.
- ``exact`` additionally hashes the last message as sent (any role, any content parts).
- ``text`` is the last user turn's text, for semantic lookup, or ``None`` when the last message is not a plain
  text user message (tool results, images, audio): such requests are cached exactly only.
Keys are hex SHA-256 digests of canonical JSON (sorted keys), so equal requests give equal keys in any process.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from ..exchange import Exchange
from ..formats import named

# Parameters that change how an answer is delivered, not what it says.
DELIVERY_PARAMS = frozenset({"stream", "stream_options", "model", "messages"})


@dataclass(slots=True, unsafe_hash=True)   # made per request, never changed: not frozen (4x dearer to make)
class RequestKeys:
    """The keys of one request: its partition, its exact key, and the last user turn's text (or None)."""

    partition: str
    exact: str
    text: str | None


def tenant_of(ex: Exchange) -> str:
    """Who may share answers: a team, else one key, else everyone (an open proxy)."""
    if ex.team:
        return "team:" + ex.team
    if ex.key_id:
        return "key:" + ex.key_id
    return ""


def _digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def user_text(message: Any) -> str | None:
    """The text of a user message whose content is a string or text parts only; ``None`` otherwise."""
    if not isinstance(message, dict) or message.get("role") != "user":
        return None
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                return None
            texts.append(part["text"])
        return "\n".join(texts)
    return None


def request_keys(ex: Exchange) -> RequestKeys | None:
    """The cache keys of ``ex`` (see the module contract); ``None`` when it is not cacheable."""
    body = ex.body
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    n = body.get("n")
    if n is not None and n != 1:
        return None
    params = {k: v for k, v in body.items() if k not in DELIVERY_PARAMS}
    extra = named(ex.client_format).cache_params(ex)
    context = {
        "tenant": tenant_of(ex),
        "alias": ex.alias,
        "format": ex.client_format,
        "params": params,
        "client_extra": extra,
        "dropped": sorted(ex.translation_dropped),
        "history": messages[:-1],
    }
    partition = _digest(context)
    exact = _digest([partition, messages[-1]])
    return RequestKeys(partition, exact, user_text(messages[-1]))
