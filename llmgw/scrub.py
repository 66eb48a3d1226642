"""Scrubbing secrets out of text that came from elsewhere (an upstream's error message) before it reaches a
client, a log row, an event or a metric.

Contract: a :class:`Scrubber` is built once, at start-up, from every configured secret (provider keys, the admin
key, profile keys, the password of the shared-state URL); calling it on a text replaces each occurrence of one of
them, and anything shaped like an API key or a bearer token (OpenAI/Anthropic ``sk-…``, Google ``AIza…``, AWS
``AKIA…``, GitHub tokens, the token after ``Bearer``), by :data:`MASK`. Secrets shorter than
:data:`MIN_SECRET_LENGTH` characters are left to the shapes (masking every "abc" would garble messages, and a key
that short protects nothing). It never raises and returns non-text values unchanged; :meth:`Scrubber.value` walks
JSON-like values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

MASK = "[secret]"
MIN_SECRET_LENGTH = 8

_SHAPES = (
    r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{16,}"      # OpenAI, Anthropic (sk-ant-…), llmgw (sk-llmgw-…) and look-alikes
    r"|\bAKIA[0-9A-Z]{16}\b"                   # AWS access key ids
    r"|\bAIza[0-9A-Za-z_\-]{30,}"              # Google API keys
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"           # GitHub tokens
    r"|(?<=[Bb]earer )[A-Za-z0-9._~+/=\-]{8,}"  # the token of an Authorization header value
)


def url_password(url: str | None) -> str | None:
    """The password of a URL such as ``redis://user:pass@host/0`` (decoded), or None."""
    if not url:
        return None
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


class Scrubber:
    """Masks the configured secrets and key-shaped strings in text (see the module contract)."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        found: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_LENGTH:
                found.update({secret, unquote(secret)})
        literal = "|".join(re.escape(s) for s in sorted(found, key=len, reverse=True))
        self.secrets = len(found)
        self._pattern = re.compile(f"{literal}|{_SHAPES}" if literal else _SHAPES)

    def __call__(self, text: str) -> str:
        if not text or not isinstance(text, str):
            return text
        return self._pattern.sub(MASK, text)

    def value(self, value: Any) -> Any:
        """A copy of a JSON-like value with every string scrubbed (keys included)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(k) if isinstance(k, str) else k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value
