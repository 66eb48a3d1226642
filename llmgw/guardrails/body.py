"""Scanning a whole body through its format's walk, with adjacent text parts read as one text.

Contract:
- A *walk* is a format's ``request_texts``/``answer_texts`` bound to one body: ``walk(fn)`` calls ``fn(text, where)``
  for every text, in document order, and puts back what ``fn`` returns. :func:`scan_body` walks twice: once to
  collect every text, once to put the verdicts back (a walk visits the same texts in the same order while nothing
  changed; a text that differs on the second visit is judged alone).
- Texts form one group when they are visited one after the other and their key paths differ only in the last
  index: ``<container>[<i>].text`` (or ``.refusal``) with the same container — the text parts of one message,
  the text blocks of ``system``. A group is judged by :meth:`~llmgw.guardrails.engine.Scan.texts`; every other
  text alone.
- ``before`` (optional) sees each text first and may rewrite it (restoring placeholders into an answer);
  ``on_text`` (optional) sees each original text (reserving the placeholders a client wrote itself).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..formats.texts import TextFn
from .engine import Scan

Walk = Callable[[TextFn], None]
_PART = re.compile(r"(.+)\[\d+\]\.(?:text|refusal)")


def collect(walk: Walk) -> list[tuple[str, str]]:
    """Every ``(text, where)`` the walk visits, nothing changed."""
    items: list[tuple[str, str]] = []

    def note(text: str, where: str) -> str:
        items.append((text, where))
        return text

    walk(note)
    return items


def groups(items: list[tuple[str, str]]) -> list[list[int]]:
    """Indices of ``items`` by group (see the module contract), in order."""
    if len(items) < 2:
        return [[0]] if items else []
    out: list[list[int]] = []
    last: str | None = None
    for i, (_, where) in enumerate(items):
        m = _PART.fullmatch(where)
        container = m.group(1) if m else None
        if container is not None and container == last and out:
            out[-1].append(i)
        else:
            out.append([i])
        last = container
    return out


def scan_body(walk: Walk, scan: Scan, *, before: Callable[[str], str] | None = None,
              on_text: Callable[[str], None] | None = None) -> bool:
    """Judge every text of a body with ``scan`` and put the verdicts back in place; True when a text changed."""
    items = collect(walk)
    if on_text is not None:
        for text, _ in items:
            on_text(text)
    if len(items) == 1:   # one text (a one-message request, most answers): a group of its own
        text, where = items[0]
        out = [scan.text(before(text) if before is not None else text, where)]
        if out[0] == text:
            return False
    else:
        prepared = items if before is None else [(before(text), where) for text, where in items]
        out = [text for text, _ in prepared]
        originals = out[:] if before is None else [text for text, _ in items]
        for group in groups(prepared):
            if scan.blocked is not None:
                break
            judged = scan.texts([prepared[i] for i in group])
            for i, text in zip(group, judged, strict=True):
                out[i] = text
        if out == originals:
            return False
    position = iter(range(len(items)))

    def put(text: str, where: str) -> str:
        i = next(position, None)
        if i is None or items[i] != (text, where):
            prepared_text = before(text) if before is not None else text
            return scan.text(prepared_text, where)
        return out[i]

    walk(put)
    return True
