"""What the fakes answer, the same way for every provider: deterministic text, token counts and vectors.

Contracts shared by :mod:`.fake_openai`, :mod:`.fake_anthropic` and :mod:`.fake_gemini` (each provider's module
only says where in its wire format a message's text is):

* The default answer is ``"Echo: "`` plus the text of the last user message (:func:`last_user_text`).
* An answer is sent as words: :func:`split_words` pieces, each word with the whitespace before it; a word is one
  completion token (:func:`count_words`). :func:`cut_answer` applies stop sequences, then a word limit.
* A prompt costs ``ceil(len(text) / 4)`` tokens per text (:func:`text_tokens`) plus 3 per message
  (:func:`message_tokens`).
* Embeddings are unit vectors drawn from a hash of the text (:func:`embedding`), the same for the same text and
  dimensions in every process.
* Tool-call arguments stream as :func:`json_fragments` of their compact JSON.

All functions are pure; nothing here holds state.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, Final, NamedTuple

__all__ = [
    "MESSAGE_TOKENS",
    "Cut",
    "blake2b_bytes",
    "content_text",
    "count_words",
    "cut_answer",
    "embedding",
    "json_fragments",
    "last_user_text",
    "message_tokens",
    "part_texts",
    "shake_bytes",
    "split_words",
    "text_tokens",
]

MESSAGE_TOKENS: Final = 3  # what each message adds to a prompt's token count, besides its text
_WORD_RE: Final = re.compile(r"\s*\S+")
_FRAGMENT_RE: Final = re.compile(r"\w+|\s+|[^\w\s]+")


# -- words ----------------------------------------------------------------------------------------------------


def split_words(text: str) -> list[str]:
    """Split ``text`` into stream pieces: each word with the whitespace before it; ``"".join`` gives ``text``
    back (trailing whitespace rides on the last piece; a text of whitespace only is one piece with no word)."""
    pieces = _WORD_RE.findall(text)
    rest = len(text) - sum(map(len, pieces))
    if rest:
        if pieces:
            pieces[-1] += text[-rest:]
        else:
            pieces = [text]
    return pieces


def count_words(pieces: Iterable[str]) -> int:
    """The completion tokens of ``pieces`` (from :func:`split_words`): the pieces that hold a word."""
    return sum(1 for p in pieces if p.strip())


def json_fragments(text: str) -> list[str]:
    """``text`` (a JSON string) in stream fragments: runs of word characters, of whitespace, of anything else."""
    return _FRAGMENT_RE.findall(text)


class Cut(NamedTuple):
    """An answer text after stop sequences and a word limit (:func:`cut_answer`)."""

    pieces: list[str]  # the words sent, as split_words gives them
    stop: str | None  # the stop sequence the text was cut at; None when none was, or when the limit cut too
    capped: bool  # the word limit cut the text

    @property
    def words(self) -> int:
        return count_words(self.pieces)


def cut_answer(text: str, *, stops: Iterable[str] = (), limit: int | None = None,
               first_completed: bool = False) -> Cut:
    """Cut ``text`` before a stop sequence, then to ``limit`` words.

    Empty stop sequences are ignored. The text is cut where the chosen stop sequence starts: the one that starts
    first, or with ``first_completed`` the one whose end comes first (then the one that starts first) -- the one a
    model writing word by word would complete first. Then, when the text has more than ``limit`` words, only the
    first ``limit`` pieces are kept and ``capped`` is set (``stop`` is then None).
    """
    stop: str | None = None
    hits = [(i + len(s) if first_completed else 0, i, s) for s in stops if s and (i := text.find(s)) >= 0]
    if hits:
        _, cut, stop = min(hits, key=lambda hit: (hit[0], hit[1]))
        text = text[:cut]
    pieces = split_words(text)
    if limit is not None and count_words(pieces) > limit:
        return Cut(pieces[:limit], None, True)
    return Cut(pieces, stop, False)


# -- message text and tokens ------------------------------------------------------------------------------------


def part_texts(parts: Iterable[Any], *, kind: str | None = "text") -> list[str]:
    """The string ``text`` of each part (a dict) in ``parts`` whose ``type`` is ``kind``; any part with a string
    ``text`` when ``kind`` is None (Gemini's parts have no type)."""
    return [
        p["text"]
        for p in parts
        if isinstance(p, dict) and (kind is None or p.get("type") == kind) and isinstance(p.get("text"), str)
    ]


def content_text(content: Any) -> str:
    """A content's text: the string itself, or its ``text`` parts joined by single spaces; ``""`` otherwise."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part_texts(content))
    return ""


def last_user_text(messages: list[Any], text_of: Callable[[dict[str, Any]], str], *,
                   default_role: str | None = None) -> str:
    """``text_of`` the last message (a dict) whose ``role`` is ``"user"`` (a message without a role has
    ``default_role``); ``""`` when there is none. The default answer is ``"Echo: "`` plus this text."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role", default_role) == "user":
            return text_of(message)
    return ""


def text_tokens(text: str | bytes) -> int:
    """The tokens a text costs: ``ceil(len(text) / 4)``."""
    return math.ceil(len(text) / 4)


def message_tokens(texts: Iterable[str]) -> int:
    """The tokens of a prompt whose messages have these texts: :func:`text_tokens` plus
    :data:`MESSAGE_TOKENS` per message."""
    return sum(text_tokens(t) + MESSAGE_TOKENS for t in texts)


# -- embeddings ------------------------------------------------------------------------------------------------


def shake_bytes(data: bytes, size: int) -> bytes:
    """``size`` bytes of SHAKE-256 of ``data``."""
    return hashlib.shake_256(data).digest(size)


def blake2b_bytes(data: bytes, size: int) -> bytes:
    """At least ``size`` bytes: BLAKE2b-512 of ``data``, extended by hashing what came before."""
    raw = hashlib.blake2b(data, digest_size=64).digest()
    while len(raw) < size:
        raw += hashlib.blake2b(raw, digest_size=64).digest()
    return raw


def embedding(text: str, dimensions: int, *, draw: Callable[[bytes, int], bytes] = shake_bytes) -> list[float]:
    """A deterministic unit vector for ``text``: ``2 * dimensions`` bytes from ``draw`` (the fake's hash, so that
    its vectors never change), each little-endian pair mapped to [-1, 1], then normalised (an all-zero vector
    stays zero)."""
    raw = draw(text.encode(), 2 * dimensions)
    values = [(int.from_bytes(raw[i : i + 2], "little") / 32767.5) - 1.0 for i in range(0, 2 * dimensions, 2)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]
