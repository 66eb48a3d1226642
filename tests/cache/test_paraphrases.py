"""Precision of the semantic match (cosine threshold + difference guard) on the labelled pairs in
tests/data/paraphrases/, with the packaged model (skipped when model2vec or the model is missing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmgw.cache.config import DEFAULT_THRESHOLD
from llmgw.cache.embed import DEFAULT_MODEL, load_model2vec
from llmgw.cache.guard import differs

PAIRS = Path(__file__).resolve().parent.parent / "data" / "paraphrases" / "pairs.jsonl"


def test_default_threshold_and_guard_keep_precision_at_99_percent() -> None:
    pytest.importorskip("model2vec")
    if not DEFAULT_MODEL.is_dir():
        pytest.skip("the packaged model is not built")
    model = load_model2vec()
    pairs = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    a = model.embed([p["a"] for p in pairs])
    b = model.embed([p["b"] for p in pairs])

    def word(x: str, y: str) -> float:
        v = model.embed([x, y])
        return float(v[0] @ v[1])

    tp = fp = fn = 0
    for pair, score in zip(pairs, (a * b).sum(axis=1), strict=True):
        match = score >= DEFAULT_THRESHOLD and differs(pair["a"], pair["b"], partner=word) is None
        tp += match and pair["same"]
        fp += match and not pair["same"]
        fn += (not match) and pair["same"]
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    assert precision >= 0.99, (precision, recall)
    assert recall >= 0.7, recall
