"""Precision of the semantic match (cosine threshold + difference guard) on the labelled pairs in
tests/data/paraphrases/, with the packaged model (part of the package: a missing model fails this test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmgw.cache.config import DEFAULT_THRESHOLD
from llmgw.cache.difference import differs
from llmgw.cache.embed import DEFAULT_MODEL, load_model2vec

DATA = Path(__file__).resolve().parent.parent / "data" / "paraphrases"


@pytest.mark.parametrize(("name", "min_recall"), [("pairs.jsonl", 0.75), ("pairs-more.jsonl", 0.6)])
def test_default_threshold_and_guard_keep_precision_at_99_percent(name: str, min_recall: float) -> None:
    assert DEFAULT_MODEL.is_dir(), "the packaged embedding model is missing"
    model = load_model2vec()
    pairs = [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]
    a = model.embed([p["a"] for p in pairs])
    b = model.embed([p["b"] for p in pairs])

    def word(x: str, y: str) -> float:
        v = model.embed([x, y])
        return float(v[0] @ v[1])

    tp = fp = fn = 0
    false_hits = []
    for pair, score in zip(pairs, (a * b).sum(axis=1), strict=True):
        match = score >= DEFAULT_THRESHOLD and differs(pair["a"], pair["b"], partner=word) is None
        tp += match and pair["same"]
        fp += match and not pair["same"]
        fn += (not match) and pair["same"]
        if match and not pair["same"]:
            false_hits.append(pair)
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    assert precision >= 0.99, (precision, false_hits)
    assert recall >= min_recall, recall
