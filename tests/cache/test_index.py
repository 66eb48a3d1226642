"""The vector index's term filter: it never skips an entry the difference guard could accept."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import pytest

from llmgw.cache.config import CacheConfig
from llmgw.cache.difference import TermRule, differs, index_terms, term_rule
from llmgw.cache.embed import HashEmbedder
from llmgw.cache.index import VectorIndex, signature
from llmgw.cache.keys import RequestKeys
from llmgw.cache.store import CacheEntry, CacheStore
from llmgw.stages.cache import CacheStage

PAIRS = Path(__file__).resolve().parent.parent / "data" / "paraphrases" / "pairs.jsonl"
VOCAB = ('reset', 'password', 'account', 'admin', 'console', 'python', 'list', 'sort', 'reverse', 'order',
         'refund', 'invoice', 'billing', 'address', 'email', 'phone', 'dark', 'mode', 'branch', 'merge', 'docker',
         'install', 'the', 'a', 'my', 'for', 'how', 'do', 'I', 'can', 'you', 'please', 'not', 'never', 'Alice',
         'Bob', 'NASA', '3', '42', 'ten', 'file.txt', '"quoted words"')


def satisfies(rule: TermRule, terms: frozenset[str]) -> bool:
    return rule.mandatory <= terms and len(rule.optional & terms) >= rule.need


def random_text(rng: random.Random) -> str:
    return " ".join(rng.choices(VOCAB, k=rng.randint(2, 8))) + rng.choice(["", "?", "."])


def everything_alike(_a: str, _b: str) -> float:
    return 1.0


@pytest.mark.parametrize("max_swaps", [0, 1, 2])
def test_every_pair_the_guard_accepts_satisfies_the_term_rule(max_swaps: int) -> None:
    rng = random.Random(max_swaps)
    pairs = [(p["a"], p["b"]) for p in map(json.loads, PAIRS.read_text().splitlines()) if p]
    pairs += [(b, a) for a, b in pairs]
    accepted = 0
    for _ in range(20000):   # mutate texts a little so that many pairs come close to the guard's edge
        a = random_text(rng)
        words = a.split()
        for _ in range(rng.randint(0, 2)):
            words[rng.randrange(len(words))] = rng.choice(VOCAB)
        pairs.append((a, " ".join(words)))
    for a, b in pairs:
        if differs(a, b, partner=everything_alike, max_swaps=max_swaps) is None:
            accepted += 1
            assert satisfies(term_rule(a, max_swaps), index_terms(b)), (a, b)
    assert accepted > 1000   # the property was tested on many accepted pairs, not vacuously


def test_filtered_search_returns_what_a_whole_scan_returns_among_acceptable_rows() -> None:
    rng = random.Random(5)
    emb = HashEmbedder(64)
    texts = [random_text(rng) for _ in range(3000)]
    vectors = emb.embed(texts)
    filtered, whole = VectorIndex(dense_max=0, candidate_max=10**6), VectorIndex(dense_max=10**6)
    now = time.time()
    for i, (text, vec) in enumerate(zip(texts, vectors, strict=True)):
        for index in (filtered, whole):
            index.add("p", f"k{i}", vec, now + 60, index_terms(text))
    narrowed = selective = 0
    for query in texts[:300]:
        rule = term_rule(query)
        selective += bool(rule.mandatory or rule.need)   # a rule that asks nothing: the partition is scanned whole
        q = emb.embed([query])[0]
        got = filtered.search("p", q, 0.3, limit=3000, rule=rule)
        expected = [(k, s) for k, s in whole.search("p", q, 0.3, limit=3000)
                    if satisfies(rule, index_terms(texts[int(k[1:])]))]
        got_scores = dict(got)
        assert {k for k, _ in expected} <= set(got_scores)
        assert all(abs(got_scores[k] - s) < 1e-6 for k, s in expected)
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
        narrowed += len(filtered._parts["p"].maybe(rule)) < len(texts) // 4
    assert filtered.scans["filtered"] == selective > 250 and whole.scans["filtered"] == 0
    assert narrowed > 200   # the filter does narrow the search


def test_rows_without_terms_always_pass_and_small_partitions_are_scanned_whole() -> None:
    assert (signature(None) == np.uint64(2**64 - 1)).all()
    emb = HashEmbedder(32)
    index = VectorIndex(dense_max=0)
    index.add("p", "no-terms", emb.embed(["alpha beta"])[0], time.time() + 60)
    rule = term_rule("alpha beta gamma delta")
    assert [k for k, _ in index.search("p", emb.embed(["alpha beta"])[0], 0.5, rule=rule)] == ["no-terms"]
    small = VectorIndex()
    small.add("p", "k", emb.embed(["alpha beta"])[0], time.time() + 60, index_terms("alpha beta"))
    small.search("p", emb.embed(["alpha beta"])[0], 0.5, rule=rule)
    assert small.scans == {"whole": 1, "filtered": 0}


def test_stage_finds_a_paraphrase_among_thousands_of_near_misses(tmp_path: Path) -> None:
    emb = HashEmbedder()
    store = CacheStore(tmp_path, embedder=emb.name)
    assert store.ready.wait(5) and store.index is not None
    store.index.dense_max = 100
    now = time.time()
    rng = random.Random(1)
    fillers = [f"how do I {' '.join(rng.choices(VOCAB[:20], k=5))}" for _ in range(3000)]
    for i, (text, vec) in enumerate(zip(fillers, emb.embed(fillers), strict=True)):
        store.index.add("p", f"f{i}", vec, now + 60, index_terms(text))
    original = "How do I reset my password for the admin console?"
    store.put(CacheEntry("orig", "p", original, {"choices": []}, {}, 0.01, now, now + 60, emb.name,
                         emb.embed([original])[0].tobytes()))
    cache = CacheStage(CacheConfig(enabled=True, semantic=True, threshold=0.8), store, emb)
    entry, kind = cache._lookup(RequestKeys("p", "not-stored", "how do I reset the password for my admin console"))
    assert kind == "semantic" and entry is not None and entry.key == "orig"
    entry, kind = cache._lookup(RequestKeys("p", "not-stored", "How do I reset my password for the admin portal?"))
    assert kind == "miss"
    assert store.index.scans["filtered"] == 2
    store.close()
