"""Masking secrets in request/response bodies before the TUI shows them.

Contract: :func:`redact` returns a new value (the input is never mutated) in which the value of every
credential-named field (``api_key``, ``authorization``, ``password``, ``access_token``, … compared case- and
dash/underscore-insensitively) is replaced by :data:`MASK`, and every substring of a string that looks like a
provider API key or a bearer token is replaced by :data:`MASK`. Other values, ``max_tokens`` included, pass through.
This is a display safeguard on top of whatever the proxy's own guardrails redacted before logging.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "[redacted]"

_SECRET_FIELDS = frozenset({
    "authorization", "proxy_authorization", "api_key", "apikey", "x_api_key", "password", "passwd", "secret",
    "client_secret", "token", "access_token", "refresh_token", "id_token", "session_token", "private_key",
    "credential", "credentials", "cookie", "set_cookie",
})
_SECRET_SUFFIXES = ("_api_key", "_secret", "_password", "_access_token")
_SECRET_TEXT = re.compile(
    r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{16,}"      # OpenAI, Anthropic (sk-ant-…) and look-alike keys
    r"|\bAKIA[0-9A-Z]{16}\b"                   # AWS access key ids
    r"|\bAIza[0-9A-Za-z_\-]{35}"               # Google API keys
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"           # GitHub tokens
    r"|(?<=Bearer )[A-Za-z0-9._~+/=\-]{8,}",   # the token of an Authorization header value
    re.IGNORECASE,
)


def is_secret_field(name: str) -> bool:
    """True for field names whose values are credentials."""
    normal = name.lower().replace("-", "_")
    return normal in _SECRET_FIELDS or normal.endswith(_SECRET_SUFFIXES)


def redact_text(text: str) -> str:
    """``text`` with key- and token-like substrings masked."""
    return _SECRET_TEXT.sub(MASK, text)


def redact(value: Any) -> Any:
    """A copy of the JSON-like ``value`` with secrets masked (see the module docstring)."""
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and is_secret_field(k) and v not in (None, "") else redact(v))
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
