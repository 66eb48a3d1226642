"""Multi-row statements in a few fixed shapes.

A batch of rows goes to a database in multi-row ``INSERT`` statements, one round trip each instead of one per row.
:func:`fixed_parts` cuts the batch into parts whose sizes come from a short list (the largest that fits first), so
that only a handful of statement texts ever exist and the database's statement cache keeps them all prepared.
Where a repeated row changes nothing (an insert that skips a key it holds, a lookup), :func:`padded_parts` instead
pads the last part to the next size by repeating its last item: one statement per part of the largest size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

SQLITE_SIZES = (256, 64, 16, 4, 1)
"""Rows per statement for SQLite: 256 rows of up to 127 parameters stay under its limit of 32,766."""


def fixed_parts(items: Sequence[T], sizes: Sequence[int]) -> Iterator[Sequence[T]]:
    """Consecutive parts of ``items``, each as long as the largest of ``sizes`` (descending, ending with 1) that
    fits what is left."""
    start = 0
    while start < len(items):
        size = next(n for n in sizes if n <= len(items) - start)
        yield items[start:start + size]
        start += size


def padded_parts(items: Sequence[T], sizes: Sequence[int]) -> Iterator[list[T]]:
    """Consecutive parts of ``items`` (at most the largest of ``sizes`` each), each padded to the smallest of
    ``sizes`` that holds it by repeating its last item."""
    largest = max(sizes)
    for start in range(0, len(items), largest):
        part = list(items[start:start + largest])
        size = min(n for n in sizes if n >= len(part))
        if size > len(part):
            part += [part[-1]] * (size - len(part))
        yield part
