"""The PII detectors against the labelled corpus in tests/data/pii: the recall and false-positive targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmgw.guardrails.detectors import ENTITIES
from llmgw.guardrails.evaluate import CHECKSUMMED, EvalReport, evaluate

CORPUS = Path(__file__).resolve().parent.parent / "data" / "pii"


@pytest.fixture(scope="module")
def report() -> EvalReport:
    return evaluate(CORPUS)


def test_corpus_size(report: EvalReport) -> None:
    assert sum(report.total.values()) >= 300 and report.negatives >= 300
    assert all(report.total[e] >= 40 for e in ENTITIES)


@pytest.mark.parametrize("entity", ENTITIES)
def test_recall(report: EvalReport, entity: str) -> None:
    target = 0.98 if entity in CHECKSUMMED else 0.95
    missed = [m["text"] for m in report.missed if m["entity"] == entity]
    assert report.recall(entity) >= target, missed


def test_false_positives(report: EvalReport) -> None:
    assert report.false_positive_rate <= 0.02, report.false_positives
    assert len(report.extra) <= 0.02 * sum(report.total.values()), report.extra
