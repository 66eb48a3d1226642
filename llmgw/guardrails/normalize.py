"""The normalised view every rule reads: obfuscation folded away, each position mapped back to the original.

Contract:
- :func:`normalize` returns a :class:`View` of a text: ``view.text`` is what the detectors scan and
  ``view.span(start, end)`` turns a span of it into the span of the original text that produced it, so redaction
  replaces what was really sent. A span that starts or ends inside a folded piece (``[at]``, a run of separators)
  widens to take the whole piece.
- What is folded, character by character: compatibility forms (NFKC/NFKD: fullwidth at signs and digits,
  ligatures, superscripts, no-break and other spaces), accents (combining marks are dropped: an accented ``e``
  reads ``e``), zero-width and other format characters (dropped), decimal digits of every script (an Arabic-Indic
  four reads ``4``), dashes, slashes and dots of other scripts, and Latin look-alikes from Cyrillic and Greek
  (Cyrillic ``\\u0435`` reads ``e``). Then, on the result: JSON ``\\uXXXX`` escapes, ``[at]``/``(at)``/
  ``[dot]``/``(dot)``, and separators inside a number — between digits or a closing and an opening parenthesis
  (doubled or mixed separators, ``_``, ``/``, a line break): one ``-``, ``.`` or space. :func:`collapse_spaces`
  reads runs of whitespace as one (the denylist uses it).
- Case is not folded (rules match case-insensitively where they want to). ASCII text without anything to fold
  costs a few regular-expression passes and no copy; long non-ASCII text is folded with one table lookup per
  character (numpy); the work is linear in the text's length.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

# Latin look-alikes in other scripts (the confusables a reader cannot tell apart), and punctuation variants NFKD
# leaves alone.
_LOOKALIKES: dict[int, str] = {**str.maketrans(
    # Cyrillic, Greek and Latin look-alikes; dashes, slashes, dots, at signs and line breaks of other scripts
    "\u0410\u0412\u0415\u0405\u0406\u0408\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0423\u04ae"
    "\u051a\u051c\u04ba\u04c0\u0500\u0430\u0432\u0435\u0455\u0456\u0458\u043a\u043c\u043d\u043e\u0440"
    "\u0441\u0442\u0445\u0443\u04af\u051b\u051d\u04bb\u04cf\u0501\u0261\u0451\u0457\u0391\u0392\u0395"
    "\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7\u03bf\u03bd\u03c1\u03b9\u03ba"
    "\u03b1\u03c4\u03c5\u03f2\u03f3\u0131\u0237\u2113\u00f8\u00d8\u0111\u0110\u0142\u0141\u2010\u2011"
    "\u2012\u2013\u2014\u2015\u2212\u2043\ufe58\ufe63\u2044\u2215\u29f8\u3002\uff61\u00b7\u2022\u2219"
    "\ufe6b\u2028\u2029\u0085",
    "ABESIJKMHOPCTXYY"
    "QWhIdabesijkmhop"
    "ctxyyqwhldgeiABE"
    "ZHIKMNOPTYXovpik"
    "atucjijloOdDlL--"
    "--------///....."
    "@\n\n\n"),
    ord("\u00df"): "ss"}
# Invisible characters Unicode files as letters or symbols (Hangul fillers, the braille blank).
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_DROPPED = frozenset({"Cf", "Mn", "Me", "Cc"})


def _fold(ch: str) -> str:
    if ch in _INVISIBLE or unicodedata.category(ch) in _DROPPED:
        return "\n" if ch == "\u0085" else ""
    mapped = ch.translate(_LOOKALIKES)
    if mapped != ch:
        return mapped
    digit = unicodedata.decimal(ch, None)
    if digit is not None:
        return str(digit)
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if unicodedata.category(c) not in _DROPPED)
    if base.isascii():
        return base
    composed = unicodedata.normalize("NFKC", ch)
    if composed != ch:
        return "".join(c.translate(_LOOKALIKES) for c in composed)
    return ch


@lru_cache(maxsize=4096)
def fold_char(ch: str) -> str:
    """What one non-ASCII character reads as in the view ("" when it is dropped). Pure; cached."""
    return _fold(ch)


_ODD = 0xFFFFFFFF


@lru_cache(maxsize=1)
def _bmp_table() -> Any:
    """Code point -> folded code point for every BMP character that folds to exactly one character; ``_ODD`` for
    those that fold to none or several (built once, on the first long non-ASCII text)."""
    import numpy as np

    table = np.arange(0x10000, dtype=np.uint32)
    for cp in range(0x80, 0x10000):
        if 0xD800 <= cp < 0xE000:
            continue
        folded = _fold(chr(cp))
        table[cp] = ord(folded) if len(folded) == 1 else _ODD
    return table


_SEP_CHARS = frozenset(" \t\r\n-_./")
_SEP_HINT = re.compile(r"[_/\n](?=[ \t\-_./]{0,3}[\d(])|[ \t\-_./]{2}(?=[ \t\r\n\-_./]{0,3}[\d(])")
# Where a separator fold can begin in ASCII text: a fold needs a digit or ")" just before its run of separators.
_SEP_GATE = re.compile(r"[0-9)][ \t\r\n\-_./]")
_BRACKETED = re.compile(r"[\[({<] ?(?i:(?P<at>at|@)|dot|\.) ?[\])}>]")
_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})")
_SHORT = 512     # below this many characters, non-ASCII text is folded character by character


@dataclass(slots=True)
class View:
    """A normalised text and the way back to the original (see the module contract); never changed once made (not
    frozen only because a frozen dataclass costs four times as much to make, once per text scanned).

    ``_segments`` lists, by position, the pieces whose length changed: ``(view_start, view_end, orig_start,
    orig_end)``. Everything between them is copied one to one."""

    text: str
    _segments: Sequence[tuple[int, int, int, int]] = field(default=(), repr=False)
    _starts: Sequence[int] = field(default=(), repr=False)
    _parent: View | None = field(default=None, repr=False)

    @property
    def identity(self) -> bool:
        """Whether every position maps to itself (nothing changed length)."""
        return not self._segments and (self._parent is None or self._parent.identity)

    def _start(self, pos: int) -> int:
        i = bisect_right(self._starts, pos) - 1
        if i < 0:
            return pos
        _, ve, os_, oe = self._segments[i]
        return os_ if pos < ve else oe + (pos - ve)

    def _end(self, pos: int) -> int:
        i = bisect_left(self._starts, pos) - 1
        if i < 0:
            return pos
        _, ve, _, oe = self._segments[i]
        return oe if pos <= ve else oe + (pos - ve)

    def start(self, pos: int) -> int:
        """The original position of the view's position ``pos`` (as the start of a span)."""
        out = self._start(pos) if self._segments else pos
        return self._parent.start(out) if self._parent is not None else out

    def end(self, pos: int) -> int:
        """The original position of the view's position ``pos`` (as the exclusive end of a span)."""
        out = self._end(pos) if self._segments else pos
        return self._parent.end(out) if self._parent is not None else out

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of the view's span ``[start, end)``."""
        return self.start(start), self.end(end)


class _Builder:
    """Collects the pieces of a view whose length changed."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.segments: list[tuple[int, int, int, int]] = []
        self.starts: list[int] = []
        self.delta = 0          # view position - original position, after what was added so far
        self.copied = 0         # original position up to which pieces cover the text

    def add(self, text: str, orig_start: int, orig_end: int, replacement: str) -> None:
        if orig_start > self.copied:
            self.pieces.append(text[self.copied:orig_start])
        self.pieces.append(replacement)
        self.copied = orig_end
        if len(replacement) == orig_end - orig_start:
            return
        view_start = orig_start + self.delta
        view_end = view_start + len(replacement)
        self.delta += len(replacement) - (orig_end - orig_start)
        last = self.segments[-1] if self.segments else None
        if last is not None and last[1] == view_start and last[3] == orig_start:   # adjacent: one piece
            self.segments[-1] = (last[0], view_end, last[2], orig_end)
        else:
            self.segments.append((view_start, view_end, orig_start, orig_end))
            self.starts.append(view_start)

    def view(self, text: str, parent: View | None) -> View:
        if not self.pieces:
            return parent if parent is not None and text == parent.text else View(text, _parent=parent)
        self.pieces.append(text[self.copied:])
        return View("".join(self.pieces), self.segments, self.starts, parent)


def _fold_chars(text: str) -> View:
    """Fold every non-ASCII character (see the module contract)."""
    builder = _Builder()
    if len(text) < _SHORT:
        for i, ch in enumerate(text):
            if ord(ch) > 0x7F:
                folded = fold_char(ch)
                if folded != ch:
                    builder.add(text, i, i + 1, folded)
        return builder.view(text, None)
    import numpy as np

    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    mapped = codes.copy()
    bmp = codes < 0x10000
    mapped[bmp] = _bmp_table()[codes[bmp]]
    mapped[~bmp] = _ODD
    odd = np.flatnonzero(mapped == _ODD)
    if not len(odd):
        folded_text = mapped.tobytes().decode("utf-32-le", "surrogatepass")
        return View(folded_text) if folded_text != text else View(text)
    if any(fold_char(chr(cp)) for cp in np.unique(codes[odd]).tolist()):
        return _fold_odd(text, mapped, odd.tolist())
    # Only dropped characters (zero-width, marks): the view is the rest; one segment per run of them.
    kept = mapped[mapped != _ODD].tobytes().decode("utf-32-le", "surrogatepass")
    breaks = np.flatnonzero(np.diff(odd) != 1) + 1
    run_starts = np.concatenate(([0], breaks))
    run_ends = np.concatenate((breaks, [len(odd)]))
    orig_starts = odd[run_starts]
    orig_ends = odd[run_ends - 1] + 1
    view_starts = orig_starts - run_starts
    starts = view_starts.tolist()
    segments = list(zip(starts, starts, orig_starts.tolist(), orig_ends.tolist(), strict=True))
    return View(kept, segments, starts)


def _fold_odd(text: str, mapped: Any, odd: list[int]) -> View:
    """Long text with characters that fold to several: numpy folded the runs between them one to one."""
    builder = _Builder()
    prev = 0
    for i in [*odd, len(text)]:
        if prev < i:
            run = mapped[prev:i].tobytes().decode("utf-32-le", "surrogatepass")
            if run != text[prev:i]:
                builder.add(text, prev, i, run)
        if i < len(text):
            ch = text[i]
            folded = fold_char(ch)
            if folded != ch:
                builder.add(text, i, i + 1, folded)
        prev = i + 1
    return builder.view(text, None)


def _separator(run: str) -> str | None:
    """What a run of separators between two digits folds to (``None``: leave it)."""
    breaks = run.count("\n")
    if breaks > 1 or len(run) > (5 if breaks else 3):
        return None
    marks = run.translate(_SPACES)
    if not marks:
        return " " if run != " " else None
    if marks.strip(".") == "":
        return "." if run == marks and run != "." else None   # "1..2" reads "1.2"; "1. 2" (a list) stays
    return "-" if run != "-" else None


_SPACES = str.maketrans("", "", " \t\r\n")


def _in_token(text: str, start: int, end: int) -> bool:
    """Whether the separator ``text[start:end]`` joins digits that belong to a word (``ab12_34cd``, a key)."""
    left = start - 1
    while left >= 0 and text[left].isdigit():
        left -= 1
    right = end
    while right < len(text) and text[right].isdigit():
        right += 1
    return (left >= 0 and text[left].isalpha()) or (right < len(text) and text[right].isalpha())


def _folds(text: str) -> list[tuple[int, int, str]]:
    """The multi-character folds of ``text``: (start, end, replacement), by position, not overlapping."""
    found: list[tuple[int, int, str]] = []
    if "\\u" in text:
        for m in _ESCAPE.finditer(text):
            ch = chr(int(m.group(1), 16))
            if not 0xD800 <= ord(ch) <= 0xDFFF:
                found.append((m.start(), m.end(), ch if ch.isascii() else fold_char(ch)))
    if "[" in text or "(" in text or "{" in text or "<" in text:
        for m in _BRACKETED.finditer(text):
            start, end = m.span()
            if start and text[start - 1] == " ":
                start -= 1
            if end < len(text) and text[end] == " ":
                end += 1
            found.append((start, end, "@" if m.group("at") else "."))
    last = 0
    if text.isascii():   # no hint before the first digit (or ")") followed by a separator can become a fold
        gate = _SEP_GATE.search(text)
        last = len(text) if gate is None else gate.start()
    for m in _SEP_HINT.finditer(text, last):
        if m.start() < last:
            continue
        start, end = m.span()
        while start > 0 and text[start - 1] in _SEP_CHARS and end - start < 6:
            start -= 1
        while end < len(text) and text[end] in _SEP_CHARS and end - start < 6:
            end += 1
        last = end
        if start > 0 and end < len(text) and (text[start - 1].isdigit() or text[start - 1] == ")") \
                and (text[end].isdigit() or text[end] == "(") and not _in_token(text, start, end):
            replacement = _separator(text[start:end])
            if replacement is not None:
                found.append((start, end, replacement))
    if len(found) > 1:
        found.sort()
        kept = [found[0]]
        for item in found[1:]:
            if item[0] >= kept[-1][1]:
                kept.append(item)
        found = kept
    return found


def normalize(text: str) -> View:
    """The normalised view of ``text`` (see the module contract)."""
    view = View(text) if text.isascii() else _fold_chars(text)
    folds = _folds(view.text)
    if not folds:
        return view
    builder = _Builder()
    for start, end, replacement in folds:
        builder.add(view.text, start, end, replacement)
    return builder.view(view.text, view)


_SPACE_RUN = re.compile(r"\s{2,}")


def collapse_spaces(text: str) -> View:
    """``text`` with every run of whitespace read as one space (one newline where the run had one)."""
    builder = _Builder()
    for m in _SPACE_RUN.finditer(text):
        builder.add(text, m.start(), m.end(), "\n" if "\n" in m.group() else " ")
    return builder.view(text, None)
