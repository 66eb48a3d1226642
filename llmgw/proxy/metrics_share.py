"""Metrics across ``--workers``: each worker publishes its snapshot to a file; ``/metrics`` adds them up.

Contract:
- One folder per server run (:func:`run_folder`: under the state folder, named after the parent's pid). The parent
  creates it empty before it starts the workers and removes it when they have all stopped.
- :func:`publish` (a task per worker) writes ``worker-<pid>.json`` every ``interval_s`` and once more when it is
  cancelled, atomically (a temporary file renamed over the old one), from a worker thread.
- :func:`read_others` returns the snapshots of every other worker of the run, the ones that stopped included (a
  worker that restarted keeps its old counts in the sum, so counters never go down).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from .metrics import Metrics

log = logging.getLogger("llmgw.proxy.metrics")

PUBLISH_INTERVAL_S = 1.0


def run_folder(state_folder: Path, parent_pid: int) -> Path:
    """Where the workers of the server run by ``parent_pid`` publish their metrics."""
    return state_folder / "metrics" / str(parent_pid)


def write_snapshot(folder: Path, snapshot: Mapping[str, Any], pid: int | None = None) -> None:
    """Write one worker's snapshot atomically (blocking)."""
    pid = os.getpid() if pid is None else pid
    final = folder / f"worker-{pid}.json"
    temporary = folder / f".worker-{pid}.json.tmp"
    temporary.write_bytes(orjson.dumps(snapshot))
    os.replace(temporary, final)


def read_others(folder: Path, pid: int | None = None) -> list[dict[str, Any]]:
    """The snapshots of every worker of the run but ``pid`` (this process by default); unreadable files are
    skipped (blocking)."""
    pid = os.getpid() if pid is None else pid
    snapshots = []
    for path in sorted(folder.glob("worker-*.json")):
        if path.name == f"worker-{pid}.json":
            continue
        try:
            value = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if isinstance(value, dict):
            snapshots.append(value)
    return snapshots


async def publish(metrics: Metrics, folder: Path, interval_s: float = PUBLISH_INTERVAL_S) -> None:
    """Publish ``metrics`` to ``folder`` every ``interval_s`` until cancelled, then once more."""
    try:
        while True:
            await _write(metrics, folder)
            await asyncio.sleep(interval_s)
    finally:
        with contextlib.suppress(OSError):
            write_snapshot(folder, metrics.snapshot())


async def _write(metrics: Metrics, folder: Path) -> None:
    try:
        await asyncio.to_thread(write_snapshot, folder, metrics.snapshot())
    except OSError as exc:
        log.warning("could not publish this worker's metrics to %s: %s", folder, exc)
