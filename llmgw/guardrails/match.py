"""What a detector reports: one entity found in a text (shared by the detectors and the secret finders)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Match:
    """One detected entity: ``text[start:end]`` is the value; ``why`` says what validated it."""

    entity: str
    start: int
    end: int
    why: str
