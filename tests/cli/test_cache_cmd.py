"""`llmgw cache stats` and `llmgw cache clear` through Typer's CliRunner."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typer.testing import CliRunner

from llmgw.cache.embed import HashEmbedder
from llmgw.cache.store import CacheEntry, CacheStore
from llmgw.cli.main import app

EMB = HashEmbedder(32)


def profile(tmp_path: Path, cache: bool = True) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(f'[state]\nurl = "sqlite:///{tmp_path / "llmgw.db"}"\n[providers.mock]\nkind = "mock"\n'
                    '[models.fast]\ntargets = ["mock/m"]\n' + ("[cache]\nsemantic = true\n" if cache else ""))
    return path


def fill(tmp_path: Path, count: int) -> None:
    store = CacheStore(tmp_path / "cache", embedder=EMB.name)
    now = time.time()
    for i in range(count):
        text = f"question number {i}"
        vector = EMB.embed([text])[0].tobytes() if i % 2 == 0 else None
        store.put(CacheEntry(f"k{i}", "p", text, {"choices": []}, {}, 0.001, now, now + 60,
                             EMB.name if vector else None, vector))
    store.close()


def test_stats_counts_answers_and_vectors(tmp_path: Path) -> None:
    fill(tmp_path, 5)
    result = CliRunner().invoke(app, ["cache", "stats", "--profile", str(profile(tmp_path)), "--format", "json"])
    assert result.exit_code == 0, result.output
    numbers = json.loads(result.stdout)
    assert (numbers["entries"], numbers["semantic"]) == (5, 3) and numbers["bytes"] > 0
    table = CliRunner().invoke(app, ["cache", "stats", "--profile", str(profile(tmp_path))])
    assert "5 answers (3 with a prompt vector)" in table.stdout


def test_clear_asks_first_then_empties_the_store(tmp_path: Path) -> None:
    fill(tmp_path, 4)
    path = str(profile(tmp_path))
    refused = CliRunner().invoke(app, ["cache", "clear", "--profile", path], input="n\n")
    assert refused.exit_code == 1
    assert json.loads(CliRunner().invoke(app, ["cache", "stats", "-p", path, "--format", "json"]).stdout)[
        "entries"] == 4
    done = CliRunner().invoke(app, ["cache", "clear", "--profile", path, "--yes"])
    assert done.exit_code == 0 and "removed 4 cached answers" in done.stdout
    numbers = json.loads(CliRunner().invoke(app, ["cache", "stats", "-p", path, "--format", "json"]).stdout)
    assert (numbers["entries"], numbers["semantic"]) == (0, 0)
    reopened = CacheStore(tmp_path / "cache", embedder=EMB.name)   # nothing left for a server to index either
    assert reopened.ready.wait(5) and reopened.index is not None and len(reopened.index) == 0
    reopened.close()


def test_a_profile_without_a_cache_is_one_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["cache", "stats", "--profile", str(profile(tmp_path, cache=False))])
    assert result.exit_code == 1 and "has no [cache] table" in result.output
    bad = CliRunner().invoke(app, ["cache", "stats", "--profile", str(profile(tmp_path)), "--format", "xml"])
    assert bad.exit_code == 1 and "--format" in bad.output
