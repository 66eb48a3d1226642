"""``make_exchange()``: a well-formed :class:`~llmgw.exchange.Exchange` for stage tests, parsed by its format.

Contract: the body is completed with the fields its format requires (``model``, ``messages``, Anthropic's
``max_tokens``) unless given, parsed by the client format exactly as the server parses it (so an invalid body
raises the same :class:`~llmgw.errors.InvalidRequest`), and the exchange gets the alias's ``ModelConfig`` and,
when ``key`` is given, the key's id, team and record — as the auth stage would have set them.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..exchange import CANONICAL, Exchange
from ..formats import named
from ..profile import ModelConfig, Target
from ..store.keys import KeyRecord

DEFAULT_MODEL = ModelConfig("fast", (Target("mock", "mock-model"),))


def make_exchange(body: dict[str, Any] | None = None, *, client_format: str = CANONICAL, endpoint: str = "chat",
                  model: ModelConfig | None = DEFAULT_MODEL, key: KeyRecord | None = None,
                  credential: str | None = None, max_tokens: int | None = 256) -> Exchange:
    """An exchange as the stages after auth see it (see the module contract)."""
    wire = named(client_format)
    full: dict[str, Any] = {"model": model.alias if model is not None else "fast"}
    if endpoint == "embeddings":
        full["input"] = "hello"
    else:
        full["messages"] = [{"role": "user", "content": "hello"}]
        if endpoint == "chat" and max_tokens is not None:
            full["max_tokens"] = max_tokens
    full.update(body or {})
    ex = Exchange(client_format, endpoint)
    ex.raw_body = orjson.dumps(full)
    ex.credential = credential
    wire.parse(ex, full)
    ex.model = model
    if key is not None:
        ex.key_id, ex.team, ex.principal = key.id, key.team, key
    return ex
