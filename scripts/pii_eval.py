#!/usr/bin/env python3
"""Measure the PII detectors: recall and false positives on tests/data/pii, and the scan time of an 8 KB prompt.

Usage: .venv/bin/python scripts/pii_eval.py [--corpus DIR] [--size 8192] [--runs 2000] [--show] [--json]

Recall counts a labelled entity as found only when the detector reports that entity type with exactly the
labelled value; a negative text is a false positive when anything at all is reported in it. Timing is the
default PII rule (all entities, redaction included) on one prompt: wall-clock and thread CPU time percentiles
(CPU time is immune to other processes on a busy machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from llmgw.guardrails.detectors import ENTITIES
from llmgw.guardrails.evaluate import CHECKSUMMED, benchmark, evaluate, prompt_of_size
from llmgw.guardrails.redact import Placeholders
from llmgw.guardrails.rules import default_rules

ROOT = Path(__file__).resolve().parent.parent


def cpu_benchmark(size: int, runs: int) -> dict[str, float]:
    """Like :func:`benchmark`, in thread CPU time."""
    rule = default_rules()[0]
    text = prompt_of_size(size)
    samples = []
    for _ in range(runs):
        start = time.thread_time()
        rule.check(text, Placeholders())
        samples.append((time.thread_time() - start) * 1000.0)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 4), "p99_ms": round(samples[int(len(samples) * 0.99) - 1], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "tests" / "data" / "pii")
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--show", action="store_true", help="print every miss and false positive")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = parser.parse_args()

    report = evaluate(args.corpus)
    wall = benchmark(args.size, args.runs)
    cpu = cpu_benchmark(args.size, args.runs)
    if args.json:
        print(json.dumps({**report.as_dict(), "timing_wall": wall, "timing_cpu": cpu}, indent=2))
        return
    print(f"corpus {args.corpus}")
    print(f"{'entity':<12} {'labels':>6} {'found':>6} {'recall':>7}  target")
    for entity in ENTITIES:
        if report.total[entity]:
            target = 0.98 if entity in CHECKSUMMED else 0.95
            print(f"{entity:<12} {report.total[entity]:>6} {report.found[entity]:>6} {report.recall(entity):>7.3f}"
                  f"  >= {target}")
    print(f"negatives {report.negatives}: {len(report.false_positives)} with a finding, false-positive rate "
          f"{report.false_positive_rate:.4f} (target <= 0.02); extra findings in positives: {len(report.extra)}")
    print(f"scan of a {args.size}-character prompt, {args.runs} runs: wall p50 {wall['p50_ms']:.3f} ms, "
          f"p99 {wall['p99_ms']:.3f} ms; CPU p50 {cpu['p50_ms']:.3f} ms, p99 {cpu['p99_ms']:.3f} ms"
          " (target p99 <= 2 ms)")
    if args.show:
        for miss in report.missed:
            print("MISS", miss)
        for fp in report.false_positives:
            print("FALSE POSITIVE", fp)
        for extra in report.extra:
            print("EXTRA", extra)


if __name__ == "__main__":
    main()
