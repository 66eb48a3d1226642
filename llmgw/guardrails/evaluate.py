"""Measuring the PII detectors: recall and false positives on a labelled corpus, and scan latency.

Contract:
- :func:`evaluate` reads ``positives.jsonl`` (``{"text", "entities": [{"entity", "value"}]}``) and
  ``negatives.jsonl`` (``{"text", "note"}``) from a folder. A labelled entity counts as found when the detector
  reports that entity type with exactly that value. A negative text is a false positive when anything at all is
  reported in it. Findings in positive texts that match no label are counted as ``extra``.
- :func:`benchmark` times the default PII rule's full scan (:meth:`Rule.check` with redaction) of an
  ``size``-character prompt with a realistic sprinkling of PII, and returns p50/p99/max in milliseconds.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .detectors import ENTITIES, PiiDetector
from .redact import Placeholders
from .rules import default_rules

CHECKSUMMED = ("credit_card", "iban")


@dataclass
class EvalReport:
    """What :func:`evaluate` measured."""

    found: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)
    negatives: int = 0
    false_positives: list[dict[str, Any]] = field(default_factory=list)
    missed: list[dict[str, Any]] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)

    def recall(self, entity: str) -> float:
        return self.found[entity] / self.total[entity] if self.total[entity] else 1.0

    @property
    def false_positive_rate(self) -> float:
        return len(self.false_positives) / self.negatives if self.negatives else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"recall": {e: round(self.recall(e), 4) for e in ENTITIES if self.total[e]},
                "labels": dict(self.total), "negatives": self.negatives,
                "false_positive_rate": round(self.false_positive_rate, 4),
                "false_positives": len(self.false_positives), "extra_findings": len(self.extra)}


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def evaluate(corpus: Path, detector: PiiDetector | None = None) -> EvalReport:
    """Recall per entity and the false-positive rate of ``detector`` (all entities, US phones by default)."""
    detector = detector or PiiDetector()
    report = EvalReport()
    for row in _rows(corpus / "positives.jsonl"):
        text = row["text"]
        got = {(m.entity, text[m.start:m.end]) for m in detector.find(text)}
        labels = {(e["entity"], e["value"]) for e in row["entities"]}
        for entity, value in labels:
            report.total[entity] += 1
            if (entity, value) in got:
                report.found[entity] += 1
            else:
                report.missed.append({"id": row["id"], "entity": entity, "text": text})
        report.extra += [{"id": row["id"], "entity": e, "value": v} for e, v in got - labels]
    for row in _rows(corpus / "negatives.jsonl"):
        report.negatives += 1
        matches = detector.find(row["text"])
        if matches:
            report.false_positives.append({"id": row["id"], "note": row.get("note"), "text": row["text"],
                                           "entities": [m.entity for m in matches]})
    return report


_FILLER = ("The quarterly report shows revenue grew 12% while costs stayed flat. Please summarise the key points "
           "for the board, keep it under 300 words, and list the risks in order of impact. ")
_SPRINKLE = ("Contact jane.doe@example.com or call (415) 555-2671 about invoice INV-2024-000123. "
             "Card 4111 1111 1111 1111 was charged on 2024-03-15T10:22:31Z from 203.0.113.7. ")


def prompt_of_size(size: int = 8192) -> str:
    """A prompt of ``size`` characters: prose with a line of PII and look-alikes every ~1 KB."""
    parts: list[str] = []
    length = 0
    while length < size:
        piece = _SPRINKLE if len(parts) % 6 == 5 else _FILLER
        parts.append(piece)
        length += len(piece)
    return "".join(parts)[:size]


def benchmark(size: int = 8192, runs: int = 2000) -> dict[str, float]:
    """p50/p99/max milliseconds for the default PII rule to scan and redact one ``size``-character prompt."""
    rule = default_rules()[0]
    text = prompt_of_size(size)
    for _ in range(20):
        rule.check(text, Placeholders())
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        rule.check(text, Placeholders())
        samples.append((time.perf_counter() - start) * 1000.0)
    samples.sort()
    return {"size": float(size), "runs": float(runs), "p50_ms": round(statistics.median(samples), 4),
            "p99_ms": round(samples[int(len(samples) * 0.99) - 1], 4), "max_ms": round(samples[-1], 4)}
