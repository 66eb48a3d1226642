"""Placeholders for redacted values, and putting the values back — whole texts and streams.

Contract:
- One :class:`Placeholders` table per request: the same (label, value) always gets the same placeholder
  (``<EMAIL_1>``, ``<EMAIL_2>``, ``<PHONE_1>`` …, numbered per label in order of first appearance); numbers whose
  placeholder already occurs literally in the request (:meth:`Placeholders.reserve`) are skipped, so a restore
  never rewrites text the client wrote itself.
- Only values redacted by a rule with ``restore = true`` are restorable; only this table's placeholders are
  restored, and only into this request's answer.
- :class:`Restorer` restores a stream of text chunks: it holds back a tail that could still become one of the
  table's placeholders (a ``<…`` prefix), so a placeholder split across chunks at any offset is restored whole.
  Concatenating everything ``feed`` and ``flush`` return equals restoring the concatenated input at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import orjson

PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")


def json_escaped(value: str) -> str:
    """``value`` as it must appear inside a JSON string literal (without the quotes)."""
    return orjson.dumps(value).decode()[1:-1]


class Placeholders:
    """The placeholder table of one request (see the module contract)."""

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}
        self._reserved: set[str] = set()
        self.issued: set[str] = set()
        self.restorable: dict[str, str] = {}     # placeholder -> original value

    def reserve(self, text: str) -> None:
        """Note placeholder-like tokens already present in ``text`` so that none is issued again."""
        if "<" in text:
            self._reserved.update(PLACEHOLDER.findall(text))

    def token(self, label: str, value: str, *, restorable: bool) -> str:
        """The placeholder for ``value`` under ``label``, issuing a new one on first sight."""
        key = (label, value)
        token = self._by_value.get(key)
        if token is None:
            n = self._counts.get(label, 0)
            while True:
                n += 1
                token = f"<{label}_{n}>"
                if token not in self._reserved:
                    break
            self._counts[label] = n
            self._by_value[key] = token
            self.issued.add(token)
        if restorable:
            self.restorable[token] = value
        return token

    def __bool__(self) -> bool:
        return bool(self.issued)

    def restore(self, text: str, *, json: bool = False) -> str:
        """``text`` with this table's restorable placeholders replaced by their values (JSON-escaped with
        ``json``, for text inside a JSON document such as tool-call arguments)."""
        if not self.restorable or "<" not in text:
            return text
        mapping = self.restore_map(json=json)
        return PLACEHOLDER.sub(lambda m: mapping.get(m.group(), m.group()), text)

    def restore_map(self, *, json: bool = False) -> dict[str, str]:
        """Placeholder -> value (JSON-escaped with ``json``)."""
        if not json:
            return dict(self.restorable)
        return {token: json_escaped(value) for token, value in self.restorable.items()}

    def mask(self, text: str) -> str:
        """``text`` with every restorable value put back into its placeholder (for the log), longest first."""
        for token, value in sorted(self.restorable.items(), key=lambda kv: -len(kv[1])):
            if value in text:
                text = text.replace(value, token)
        return text

    def restorer(self, *, json: bool = False) -> Restorer:
        """An incremental restorer over this table's restorable placeholders."""
        return Restorer(self.restore_map(json=json))


class Restorer:
    """Restores placeholders in a text arriving in chunks (see the module contract)."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._map = dict(mapping)
        self._prefixes = {token[:i] for token in self._map for i in range(1, len(token))}
        self._longest = max((len(t) for t in self._map), default=0)
        self._pending = ""

    @property
    def pending(self) -> str:
        """The text held back, waiting to see whether it completes a placeholder."""
        return self._pending

    def feed(self, chunk: str) -> str:
        """Restore what can be decided now; keep a possible placeholder start for the next chunk."""
        if not self._map:
            return chunk
        text = self._pending + chunk
        self._pending = ""
        cut = text.rfind("<", max(0, len(text) - self._longest + 1))
        if cut != -1 and text[cut:] in self._prefixes:
            text, self._pending = text[:cut], text[cut:]
        if "<" not in text:
            return text
        return PLACEHOLDER.sub(lambda m: self._map.get(m.group(), m.group()), text)

    def flush(self) -> str:
        """The end of the stream: whatever was held back, as it was."""
        out, self._pending = self._pending, ""
        return out
