"""Texts a rule set has already found clean: a conversation's system prompt, tools and earlier turns come back
with every turn, and are not scanned again.

Contract (:class:`CleanTexts`, one per rule set: the guardrail stage's request rules):
- A text is known by a 128-bit BLAKE2b digest of its UTF-8 bytes (lone surrogates kept), never by the text itself:
  the memory holds no prompt, and no two texts share a key by chance or by design.
- :meth:`CleanTexts.add` is called only for a text in which every rule's detectors found nothing. Such a verdict
  depends on the text alone (rules hold no per-request state), so it holds for any later request: a text the
  memory knows is clean, however the request around it changed. A text with any finding (redacted, flagged,
  blocked, or dropped only because it lay inside the request's own placeholders) is never added.
- Texts shorter than ``min_chars`` are not remembered (scanning them costs about as much as looking them up).
- About ``max_texts`` are kept (a few more while threads add at once); past that, the least recently seen go
  first, in constant time however full it is. Safe to use from the event loop and worker threads at once, without
  a lock: each step is one operation of an ``OrderedDict`` (in C, under the GIL).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

MAX_TEXTS = 50_000      # ~150 bytes each (digest and ordered entry): about 8 MB at most
MIN_CHARS = 64


class CleanTexts:
    """See the module contract."""

    __slots__ = ("_keys", "hits", "max_texts", "min_chars")

    def __init__(self, *, max_texts: int = MAX_TEXTS, min_chars: int = MIN_CHARS) -> None:
        self.max_texts = max_texts
        self.min_chars = min_chars
        # Order is recency: a hit moves its key to the end, the first is the least recently seen. An OrderedDict,
        # not a dict: dropping a dict's first key leaves a hole that every later look for the first key walks
        # past, until the dict is rebuilt (tens of microseconds per addition in a full memory).
        self._keys: OrderedDict[bytes, bool] = OrderedDict()
        self.hits = 0

    def key(self, text: str) -> bytes | None:
        """The key of ``text``, or None when it is too short to remember."""
        if len(text) < self.min_chars:
            return None
        return _blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def known(self, key: bytes) -> bool:
        """Whether the text under ``key`` was found clean (and mark it recently seen)."""
        if key not in self._keys:
            return False
        try:
            self._keys.move_to_end(key)
        except KeyError:   # dropped by another thread just now
            return False
        self.hits += 1
        return True

    def add(self, key: bytes) -> None:
        """Remember the text under ``key`` as clean, dropping the least recently seen past ``max_texts``."""
        keys = self._keys
        keys[key] = True
        if len(keys) > self.max_texts:
            try:
                keys.popitem(last=False)
            except KeyError:   # another thread emptied it meanwhile
                return

    def __len__(self) -> int:
        return len(self._keys)


_blake2b = hashlib.blake2b
