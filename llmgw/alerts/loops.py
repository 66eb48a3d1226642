"""Loop detection: one key sending the same last user message over and over within a short window.

Contract:
- :func:`prompt_digest` reads a logged request body (the JSON bytes as they came, or a JSON value) of any client
  format: the last ``user`` message of ``messages`` (OpenAI, Anthropic), ``contents`` (Gemini) or ``input``
  (Responses API; a plain string input is the message). Its text parts are joined and normalised — lower case,
  runs of whitespace made one space, runs of digits made ``#`` — so that requests differing only in a counter,
  a timestamp or spacing count as the same; a message without text is taken as its JSON. The result is a short
  BLAKE2b digest, or None (no body — ``log_bodies = false`` — no user message, or a body over ``max_bytes``).
- :class:`LoopDetector` remembers, per (key, digest), the times of the last ``count`` requests; :meth:`observe`
  says True when ``count`` of them fall within ``window_s``. It tracks at most ``max_tracked`` pairs (the least
  recently seen go first) and :meth:`prune` forgets pairs idle for longer than the window.
- Both are plain computation, meant to run on batches off the request path.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict, deque
from collections.abc import Mapping
from typing import Any

import orjson

MAX_BODY_BYTES = 1024 * 1024
_SPACE = re.compile(r"\s+")
_DIGITS = re.compile(r"\d+")


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)]
        return "\n".join(parts) if parts else None
    return None


def last_user_message(body: Mapping[str, Any]) -> tuple[str | None, Any]:
    """``(its text or None, the message itself)`` for the last user message of ``body``; ``(None, None)`` if none."""
    for field in ("messages", "contents", "input"):
        items = body.get(field)
        if isinstance(items, str) and field == "input":
            return items, items
        if not isinstance(items, list):
            continue
        for item in reversed(items):
            if not isinstance(item, Mapping):
                continue
            role = item.get("role")
            if role == "user" or (field == "contents" and role is None):
                return _text(item.get("content", item.get("parts"))), item
    return None, None


def normalise(text: str) -> str:
    return _DIGITS.sub("#", _SPACE.sub(" ", text.strip().lower()))


def prompt_digest(request: Any, max_bytes: int = MAX_BODY_BYTES) -> str | None:
    """The digest of a request's last user message (see the module contract)."""
    if isinstance(request, bytes | bytearray | memoryview | str):
        if len(request) > max_bytes:
            return None
        try:
            request = orjson.loads(request)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(request, Mapping):
        return None
    text, message = last_user_message(request)
    if message is None:
        return None
    material = normalise(text) if text is not None else orjson.dumps(message, option=orjson.OPT_SORT_KEYS).decode()
    return hashlib.blake2b(material.encode(), digest_size=8).hexdigest()


class LoopDetector:
    """Repeated prompts per key (see the module contract)."""

    def __init__(self, count: int, window_s: float, *, max_tracked: int = 50_000) -> None:
        self.count = count
        self.window_s = window_s
        self.max_tracked = max_tracked
        self._seen: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def observe(self, key: str, digest: str, moment: float) -> bool:
        """Note one request; True when this key has sent this prompt ``count`` times within the window."""
        pair = (key, digest)
        times = self._seen.get(pair)
        if times is None:
            times = self._seen[pair] = deque(maxlen=self.count)
            if len(self._seen) > self.max_tracked:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(pair)
        times.append(moment)
        return len(times) == self.count and max(times) - min(times) <= self.window_s

    def prune(self, now: float) -> None:
        """Forget the pairs last seen longer than a window ago."""
        while self._seen:
            times = next(iter(self._seen.values()))
            if times and times[-1] >= now - self.window_s:
                break
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)
