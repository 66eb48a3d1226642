"""Unit tests of the cache package: keys, guard, store/index, embedders, config."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import diskcache
import numpy as np
import pytest

from llmgw.cache.config import CacheConfig
from llmgw.cache.difference import differs
from llmgw.cache.embed import EmbedderError, HashEmbedder, LazyEmbedder, resolve_model_path
from llmgw.cache.index import VectorIndex
from llmgw.cache.keys import request_keys
from llmgw.cache.store import CacheEntry, CacheStore
from llmgw.exchange import Exchange


def chat(text: str, *, history: list[dict] | None = None, key: str = "", team: str = "", alias: str = "gpt",
         **params: object) -> Exchange:
    ex = Exchange("openai", "chat", alias=alias, key_id=key, team=team)
    ex.body = {"model": alias, "messages": [*(history or []), {"role": "user", "content": text}], **params}
    return ex


def test_keys_equal_for_equal_requests_and_ignore_stream() -> None:
    a, b = request_keys(chat("hi")), request_keys(chat("hi", stream=True, stream_options={"include_usage": True}))
    assert a == b and a is not None and a.text == "hi"


@pytest.mark.parametrize("other", [
    chat("hi", key="k2"), chat("hi", team="t"), chat("hi", alias="claude"), chat("hi", temperature=0.5),
    chat("hi", top_p=0.5), chat("hi", max_tokens=5), chat("hi", stop=["x"]), chat("hi", seed=1),
    chat("hi", tools=[{"type": "function", "function": {"name": "f"}}]), chat("hi", tool_choice="none"),
    chat("hi", response_format={"type": "json_object"}),
    chat("hi", history=[{"role": "system", "content": "be terse"}]),
])
def test_partition_covers_tenant_alias_and_parameters(other: Exchange) -> None:
    base = request_keys(chat("hi", key="k1"))
    keys = request_keys(other)
    assert base is not None and keys is not None and keys.partition != base.partition


def test_non_text_last_turn_is_exact_only_and_n_gt_1_not_cached() -> None:
    ex = chat("x")
    ex.body["messages"][-1]["content"] = [{"type": "image_url", "image_url": {"url": "data:,"}}]
    keys = request_keys(ex)
    assert keys is not None and keys.text is None
    assert request_keys(chat("x", n=2)) is None


@pytest.mark.parametrize(("a", "b"), [
    ("What is the capital of France?", "What is the capital of Germany?"),
    ("Is 17 prime?", "Is 19 prime?"),
    ("Should I use eval?", "Should I not use eval?"),
    ("Convert 5 miles to kilometers", "Convert 5 kilometers to miles"),
    ("reset my password for the admin console", "delete my account for the admin console"),
    ("Email the report to Alice", "Email the report to Bob"),
    ("Set a timer for ten minutes", "Set a timer for 12 minutes"),
    ("How do I turn on dark mode?", "How do I turn off dark mode?"),
    ("How do I scale up my cluster?", "How do I scale down my cluster?"),
    ("Should I buy or rent a house?", "Should I sell or rent a house?"),
    ("How do I lock my account?", "How do I unlock my account?"),
    ("What are the advantages of remote work?", "What are the disadvantages of remote work?"),
    ("What's the weather in London today?", "What's the weather in London tomorrow?"),
    ("Which trains leave on Monday?", "Which trains leave on Friday?"),
])
def test_guard_refuses_near_misses(a: str, b: str) -> None:
    assert differs(a, b) is not None and differs(b, a) is not None


@pytest.mark.parametrize(("a", "b"), [
    ("How do I reset my password?", "How can I reset my password?"),
    ("What is the capital of France?", "what's the capital of france"),
    ("Explain Python decorators", "Can you explain decorators in Python please?"),
    ("What is the GDP of Germany?", "What's Germany's GDP?"),
])
def test_guard_accepts_rephrasings(a: str, b: str) -> None:
    assert differs(a, b) is None


def test_hash_embedder_is_deterministic_and_unit_length() -> None:
    emb = HashEmbedder(64)
    v = emb.embed(["Hello world", "hello world", ""])
    assert v.shape == (3, 64) and v.dtype == np.float32
    assert np.allclose(v[0], v[1]) and abs(np.linalg.norm(v[0]) - 1) < 1e-6 and not v[2].any()


def test_lazy_embedder_loads_once() -> None:
    calls = []

    def make() -> HashEmbedder:
        calls.append(1)
        return HashEmbedder(8)

    lazy = LazyEmbedder(make, "x")
    assert not lazy.loaded
    lazy.embed(["a"])
    lazy.embed(["b"])
    assert calls == [1] and lazy.loaded


def test_missing_model_fails_at_once_naming_it(tmp_path: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(EmbedderError, match="nobody/no-such-model"):
        resolve_model_path("nobody/no-such-model")
    with pytest.raises(EmbedderError, match="not a folder"):
        resolve_model_path(str(tmp_path / "missing"))
    assert time.perf_counter() - started < 5


def test_index_search_remove_and_expiry() -> None:
    index = VectorIndex()
    emb = HashEmbedder(32)
    vectors = emb.embed(["alpha beta", "gamma delta", "alpha beta gamma"])
    now = time.time()
    index.add("p", "k1", vectors[0], now + 60)
    index.add("p", "k2", vectors[1], now + 60)
    index.add("p", "k3", vectors[2], now - 1)
    index.add("q", "k4", vectors[0], now + 60)
    assert [k for k, _ in index.search("p", vectors[0], 0.5)] == ["k1"]
    index.remove("k1")
    assert index.search("p", vectors[0], 0.5) == [] and len(index) == 3
    assert index.prune() == 1 and len(index) == 2


def entry(key: str, partition: str = "p", text: str | None = None, ttl: float = 60.0) -> CacheEntry:
    now = time.time()
    return CacheEntry(key, partition, text, {"choices": [{"message": {"content": key}}]}, {}, 0.01, now, now + ttl)


def test_store_round_trip_ttl_and_rebuild(tmp_path: Path) -> None:
    emb = HashEmbedder(32)
    store = CacheStore(tmp_path, embedder=emb.name)
    e = entry("k1", text="alpha beta")
    e.vector, e.embedder = emb.embed(["alpha beta"])[0].tobytes(), emb.name
    store.put(e)
    store.put(entry("k2", ttl=0.01))
    time.sleep(0.02)
    assert store.get("k1") is not None and store.get("k2") is None
    store.close()
    reopened = CacheStore(tmp_path, embedder=emb.name)
    assert reopened.ready.wait(5)
    assert len(reopened.index or []) == 1
    [(found, score)] = reopened.nearest("p", emb.embed(["alpha beta"])[0], 0.9)
    assert found.key == "k1" and score > 0.99
    other = CacheStore(tmp_path, embedder="another-model")   # vectors of another model are never compared
    assert other.ready.wait(5) and len(other.index or []) == 0
    reopened.close()
    other.close()


def test_config_validation() -> None:
    assert not CacheConfig.from_raw(None).enabled
    config = CacheConfig.from_raw({"semantic": True, "ttl": "2h", "threshold": 0.9})
    assert config.enabled and config.exact and config.semantic and config.ttl_s == 7200
    for bad in ({"threshold": 2}, {"ttl": -1}, {"exact": "yes"}, {"bogus": 1}):
        with pytest.raises(ValueError, match="cache"):
            CacheConfig.from_raw(bad)


def test_a_folder_without_model_files_is_refused_naming_them(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EmbedderError, match=r"model\.safetensors, tokenizer\.json missing"):
        resolve_model_path(str(tmp_path))
    assert resolve_model_path(None).name == "minilm-l6-int8"   # the packaged model has every file


@pytest.mark.parametrize("model", ["/no/such/folder", "nobody/no-such-model", "EMPTY"])
def test_check_reports_a_semantic_cache_model_that_cannot_be_found(tmp_path: Path, model: str) -> None:
    from typer.testing import CliRunner

    from llmgw.cli.main import app as cli

    if model == "EMPTY":
        model = str(tmp_path / "empty")
        Path(model).mkdir()
    profile = tmp_path / "p.toml"
    profile.write_text(f'[providers.mock]\nkind = "mock"\n[models.fast]\ntargets = ["mock/m"]\n'
                       f'[cache]\nsemantic = true\nmodel = "{model}"\n')
    result = CliRunner().invoke(cli, ["check", "--profile", str(profile)])
    assert result.exit_code == 1
    assert "cache.model: [cache] model" in result.output and model.split("/")[-1] in result.output
    profile.write_text(profile.read_text().replace("semantic = true", "semantic = false"))
    assert CliRunner().invoke(cli, ["check", "--profile", str(profile)]).exit_code == 0


def test_two_processes_on_one_disk_store_index_each_others_entries(tmp_path: Path) -> None:
    emb = HashEmbedder(32)
    one, two = CacheStore(tmp_path, embedder=emb.name), CacheStore(tmp_path, embedder=emb.name)
    try:
        assert one.ready.wait(5) and two.ready.wait(5)
        e = entry("k1", text="alpha beta gamma")
        e.vector, e.embedder = emb.embed(["alpha beta gamma"])[0].tobytes(), emb.name
        one.put(e)
        query = emb.embed(["alpha beta gamma"])[0]
        deadline = time.monotonic() + 5
        while not two.nearest("p", query, 0.9) and time.monotonic() < deadline:
            time.sleep(0.02)
        [(found, _)] = two.nearest("p", query, 0.9)
        assert found.key == "k1" and found.answer["choices"][0]["message"]["content"] == "k1"
    finally:
        one.close()
        two.close()


def test_a_pickled_store_from_before_the_journal_is_never_loaded(tmp_path: Path) -> None:
    """Older versions pickled whole entries (vectors included); reading them would mean unpickling, so they are
    left to expire: no exact hit, no index rows, and the store keeps working."""
    emb = HashEmbedder(32)
    e = entry("old", text="delta epsilon")
    e.vector, e.embedder = emb.embed(["delta epsilon"])[0].tobytes(), emb.name
    with diskcache.Cache(str(tmp_path)) as disk:     # written by a version without the journal
        disk.set("old", e.as_dict(), expire=60)
    store = CacheStore(tmp_path, embedder=emb.name)
    try:
        assert store.ready.wait(5)
        assert store.get("old") is None
        assert store.nearest("p", emb.embed(["delta epsilon"])[0], 0.9) == []
        fresh = entry("new", text="delta epsilon")
        fresh.vector, fresh.embedder = e.vector, e.embedder
        store.put(fresh)
        assert store.get("new") is not None
    finally:
        store.close()


@pytest.mark.parametrize(("a", "b", "reason"), [
    ("Should I buy or rent a house?", "Should I sell or rent a house?", "opposite words"),
    ("How do I lock my account?", "How do I unlock my account?", "opposite words"),
    ("How do I enable two-factor authentication?", "How do I disable two-factor authentication?", "opposite words"),
    ("How do I upload a file?", "How do I download a file?", "opposite words"),
    ("What's the weather in London today?", "What's the weather in London tomorrow?", "time word"),
    ("Which trains leave on Monday?", "Which trains leave on Friday?", "names differ"),   # capitalised: names
    ("remind me to call mom tomorrow morning", "remind me to call mom tomorrow evening", "time word"),
    ("How do I turn on dark mode?", "How do I turn off dark mode?", "direction differs"),
    ("How do I log in to my account?", "How do I log out of my account?", "direction differs"),
    ("How much does shipping to Canada cost?", "How much does shipping from Canada cost?", "direction differs"),
    ("Is Python faster than Java?", "Is Java faster than Python?", "order of names differs"),
    ("What is the distance from Paris to Rome?", "What is the distance from Rome to Paris?", "order of names"),
    ("How do I move files from server A to server B?", "How do I move files from server B to server A?",
     "order of names"),
    ("When was Python created?", "Where was Python created?", "question words differ"),
    ("When did the Berlin Wall fall?", "Why did the Berlin Wall fall?", "question words differ"),
    ("How do I delete all my emails?", "How do I delete some of my emails?", "direction differs 'all'/'some'"),
    ("How do I sign up?", "How do I sign in?", "direction differs"),
])
def test_opposites_and_time_words_are_never_swapped(a: str, b: str, reason: str) -> None:
    def alike(_x: str, _y: str) -> float:   # a model that rates every two words alike: only the rules refuse
        return 1.0

    for x, y in ((a, b), (b, a)):
        why = differs(x, y, partner=alike)
        assert why is not None and why.startswith(reason), why


def test_a_plain_word_swap_is_still_tolerated() -> None:
    assert differs("How do I turn on dark mode?", "How can I switch on dark mode?", partner=lambda x, y: 0.9) is None
    assert differs("How do I add a user to a group in Linux?", "How can I add a user to a group on Linux?") is None


def test_disk_entries_are_json_and_a_planted_pickle_is_never_loaded(tmp_path: Path) -> None:
    """Whoever can write the cache folder must not be able to make the server run code: entries are JSON bytes,
    and a pickled row (as diskcache's default serialiser would write it) reads as missing, unpickled."""
    store = CacheStore(tmp_path / "cache")
    entry = CacheEntry("k1", "p", "hello", {"choices": []}, {"prompt_tokens": 1}, 0.5, time.time(),
                       time.time() + 60)
    store.put(entry)
    assert store.get("k1") is not None and store.get("k1").cost_usd == 0.5
    db = sqlite3.connect(tmp_path / "cache" / "cache.db")
    modes = {mode for (mode,) in db.execute("SELECT mode FROM Cache")}
    db.close()
    assert modes and 4 not in modes   # diskcache's MODE_PICKLE
    store.close()

    witness = tmp_path / "pwned"
    planter = diskcache.Cache(str(tmp_path / "cache"))   # the default serialiser: pickles
    planter.set("k2", _Exploit(str(witness)))
    planter.close()
    store = CacheStore(tmp_path / "cache")
    assert store.get("k2") is None
    assert not witness.exists()
    store.close()


class _Exploit:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (_touch, (self.path,))


def _touch(path: str) -> None:
    Path(path).write_text("code ran")
