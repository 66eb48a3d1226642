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
        self.restored: set[str] = set()          # placeholders put back into this request's answer

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
        return PLACEHOLDER.sub(lambda m: self._put_back(mapping, m.group()), text)

    def _put_back(self, mapping: Mapping[str, str], token: str) -> str:
        value = mapping.get(token)
        if value is None:
            return token
        self.restored.add(token)
        return value

    def restore_map(self, *, json: bool = False) -> dict[str, str]:
        """Placeholder -> value (JSON-escaped with ``json``)."""
        if not json:
            return dict(self.restorable)
        return {token: json_escaped(value) for token, value in self.restorable.items()}

    def mask(self, text: str) -> str:
        """``text`` with the restorable values put back into their placeholders (for the log), longest first:
        every one while there are few, else those restored into this request's answer. Linear in the text: one
        pass of a prefix-tree pattern when there are many."""
        tokens = self.restorable if len(self.restorable) <= 32 else self.restored
        values = {self.restorable[t]: t for t in tokens if t in self.restorable}
        if not values or not text:
            return text
        if len(values) <= 32:
            for value in sorted(values, key=len, reverse=True):
                if value in text:
                    text = text.replace(value, values[value])
            return text
        pattern = re.compile(_tree_pattern(sorted(values)))
        return pattern.sub(lambda m: values[m.group()], text)

    def restorer(self, *, json: bool = False) -> Restorer:
        """An incremental restorer over this table's restorable placeholders (noting what it restores)."""
        return Restorer(self.restore_map(json=json), self.restored)


def _tree_pattern(values: list[str]) -> str:
    """A regular expression matching any of ``values`` (sorted, distinct), longest first, as a prefix tree: one
    branch per distinct next character, so matching costs no more per position than the longest value."""
    if values == [""]:
        return ""
    prefix = values[0]
    for value in values[1:]:
        while not value.startswith(prefix):
            prefix = prefix[:-1]
    rest = [v[len(prefix):] for v in values]
    optional = rest[0] == ""
    rest = [r for r in rest if r]
    groups: dict[str, list[str]] = {}
    for r in rest:
        groups.setdefault(r[0], []).append(r)
    branches = "|".join(_tree_pattern(group) for group in groups.values())
    body = f"(?:{branches})" + ("?" if optional else "") if rest else ""
    return re.escape(prefix) + body


class Restorer:
    """Restores placeholders in a text arriving in chunks (see the module contract)."""

    def __init__(self, mapping: Mapping[str, str], restored: set[str] | None = None) -> None:
        self._map = dict(mapping)
        self._restored = restored if restored is not None else set()
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
        return PLACEHOLDER.sub(self._replace, text)

    def _replace(self, m: re.Match[str]) -> str:
        value = self._map.get(m.group())
        if value is None:
            return m.group()
        self._restored.add(m.group())
        return value

    def flush(self) -> str:
        """The end of the stream: whatever was held back, as it was."""
        out, self._pending = self._pending, ""
        return out
