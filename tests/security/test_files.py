"""The request log (prompts, answers, key hashes and their salt) is readable by its owner only: created 0600 in
a 0700 folder, with its -wal/-shm files alike, whoever else uses the machine; an existing one is tightened."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from llmgw.store.keys import KeyStore
from llmgw.store.log import LogWriter, make_private
from llmgw.store.shared_sqlite import SQLiteState

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> object:
    old = os.umask(0o022)   # the usual umask: files 0644, folders 0755 unless the code asks otherwise
    yield
    os.umask(old)


def test_the_log_and_its_folder_are_created_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "state" / "llmgw.db"
    writer = LogWriter(db)
    writer.write({"id": "req_1", "time": 0.0, "client_format": "openai", "endpoint": "chat", "alias": "a",
                  "provider": "", "target": "", "status": 200, "outcome": "ok", "error": None,
                  "error_message": None, "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0,
                  "cache_write_tokens": 0, "reasoning_tokens": 0, "cost_usd": 0.0, "latency_ms": 0.0,
                  "ttft_ms": None, "attempts": [], "cache": "miss", "key": "", "team": "", "tags": [],
                  "stream": False, "dropped_params": [], "request": None, "response": None})
    store = KeyStore(db)
    store.create("search", "ci", None)
    wal = db.with_name("llmgw.db-wal")
    assert wal.exists() and db.with_name("llmgw.db-shm").exists()
    assert mode(db.parent) == 0o700
    assert {p.name: mode(p) for p in db.parent.iterdir()} == {
        "llmgw.db": 0o600, "llmgw.db-wal": 0o600, "llmgw.db-shm": 0o600}
    store.close()
    writer.close()


async def test_the_workers_shared_state_is_owner_only(tmp_path: Path) -> None:
    state = SQLiteState(tmp_path / "fresh" / "shared-state.db")
    await state.spent("llmgw:budget:team:x:day:2026-01-01")
    await state.close()
    assert mode(tmp_path / "fresh") == 0o700 and mode(tmp_path / "fresh" / "shared-state.db") == 0o600


def test_an_existing_world_readable_log_is_tightened_but_a_chosen_folder_is_left(tmp_path: Path) -> None:
    db = tmp_path / "llmgw.db"
    for path in (db, db.with_name("llmgw.db-wal"), db.with_name("llmgw.db-shm")):
        path.write_bytes(b"")
        path.chmod(0o644)
    tmp_path.chmod(0o755)
    make_private(db)
    assert [mode(p) for p in sorted(tmp_path.iterdir())] == [0o600, 0o600, 0o600]
    assert mode(tmp_path) == 0o755   # a folder the user chose (it may be their project) is theirs to set
