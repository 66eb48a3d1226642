"""Semantic cache lookup cost at 1k / 10k / 100k entries in one partition (not run in tests).

    .venv/bin/python bench/cache_bench.py [--hash]

Measures, per lookup: embedding the prompt, the index search (whole scan, and filtered by the difference guard's
term rule as the stage does), and the whole ``CacheStage._lookup`` path including the diskcache read of the best
candidate. The prompts are drawn from a vocabulary of 28 words, so a partition is far denser than a real one
(worst case for the term filter). Uses the packaged model unless ``--hash`` (or the model is missing).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time

import numpy as np

from llmgw.cache.config import CacheConfig
from llmgw.cache.difference import index_terms, term_rule
from llmgw.cache.embed import DEFAULT_MODEL, HashEmbedder, load_model2vec
from llmgw.cache.keys import RequestKeys
from llmgw.cache.store import CacheEntry, CacheStore
from llmgw.stages.cache import CacheStage

WORDS = tuple(str.split("reset password account admin console python list sort reverse capital france germany"
                        " order refund invoice billing address email phone dark mode git branch merge docker"
                        " install numpy pandas"))


def prompts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [f"how do I {' '.join(rng.choices(WORDS, k=6))}" for _ in range(n)]


def per_call_us(fn, repeat: int = 200) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hash", action="store_true", help="use the hash embedder instead of the model")
    args = parser.parse_args()
    started = time.perf_counter()
    embedder = HashEmbedder() if args.hash or not DEFAULT_MODEL.is_dir() else load_model2vec()
    print(f"embedder {embedder.name}: loaded in {(time.perf_counter() - started) * 1000:.0f} ms")
    query = "how do I reset my password for the admin console"
    print(f"embed one prompt: {per_call_us(lambda: embedder.embed([query]), 1000):.0f} us")
    for size in (1_000, 10_000, 100_000):
        with tempfile.TemporaryDirectory() as folder:
            store = CacheStore(folder, max_mb=2048, embedder=embedder.name)
            texts = prompts(size)
            vectors = np.concatenate([embedder.embed(texts[i:i + 4096]) for i in range(0, size, 4096)])
            now = time.time()
            assert store.index is not None
            for i, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
                if i < 200:   # a few real entries on disk; the rest only in the index
                    entry = CacheEntry(f"k{i}", "p", text, {"choices": []}, {}, 0.0, now, now + 3600,
                                       embedder.name, vector.tobytes())
                    store.put(entry)
                else:
                    store.index.add("p", f"k{i}", vector, now + 3600, index_terms(text))
            q = embedder.embed([query])[0]
            index = store.index
            rule = term_rule(query)
            whole = per_call_us(lambda index=index, q=q: index.search("p", q, 0.85))
            search = per_call_us(lambda index=index, q=q, rule=rule: index.search("p", q, 0.85, rule=rule))
            stage = CacheStage(CacheConfig(enabled=True, semantic=True), store, embedder)
            keys = RequestKeys("p", "none", query)
            lookup = per_call_us(lambda stage=stage, keys=keys: stage._lookup(keys))
            memory = store.index._parts["p"].vectors.nbytes / 1e6
            print(f"{size:>7} entries: search whole {whole:6.0f} us, filtered {search:6.0f} us ({index.scans}),"
                  f" full lookup {lookup:6.0f} us, index {memory:.0f} MB")
            store.close()


if __name__ == "__main__":
    main()
