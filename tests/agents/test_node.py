"""The Node.js an agent needs when the one on PATH is too old (Gemini CLI needs Node.js >= 20; Debian bookworm's apt
has 18): ``scripts/ensure-node`` and the harness install the same ``node-<os>-<cpu>`` package from the npm registry
into the same folder, and the agent runs with it first on its PATH. An older Node.js is played by a ``node`` that
reports v18 and hands everything else to the real one (so that npm still runs)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import GEMINI_CLI, NODE_VERSION, NodeUnavailable, agent_path, cache_root, node_dir, node_major

ROOT = Path(__file__).resolve().parents[2]
ENSURE_NODE = ROOT / "scripts" / "ensure-node"


def old_node(folder: Path, real: str) -> Path:
    """A folder whose ``node`` says it is v18.19.0 and runs ``real`` for anything but ``--version``."""
    folder.mkdir()
    node = folder / "node"
    node.write_text(f'#!/bin/sh\n[ "$1" = "--version" ] && {{ echo v18.19.0; exit 0; }}\nexec "{real}" "$@"\n',
                    encoding="utf-8")
    node.chmod(0o755)
    return folder


@pytest.fixture(autouse=True)
def fresh_lookups() -> Iterator[None]:
    """node_dir() remembers its answers per process: forget them around each test (PATH changes here)."""
    node_dir.cache_clear()
    yield
    node_dir.cache_clear()


def test_ensure_node_installs_the_node_version_the_harness_looks_for() -> None:
    [version] = re.findall(r"^NODE_VERSION=(\S+)", ENSURE_NODE.read_text(encoding="utf-8"), re.MULTILINE)
    assert version == NODE_VERSION


def test_without_npm_an_old_node_is_a_reason_to_skip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which("node")
    if real is None:
        pytest.skip("node is not on PATH")
    monkeypatch.setenv("PATH", str(old_node(tmp_path / "bin", real)))   # no npm there
    with pytest.raises(NodeUnavailable, match=r"needs Node.js >= 20; Node.js 18 is on PATH, and npm is not on PATH"):
        node_dir.__wrapped__(20, tmp_path / "cache")


@pytest.mark.e2e
def test_an_old_node_is_passed_over_for_one_from_the_npm_registry(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    real, npm = shutil.which("node"), shutil.which("npm")
    if real is None or npm is None:
        pytest.skip("needs node and npm (make test installs them: scripts/ensure-node)")
    path = f"{old_node(tmp_path / 'bin', real)}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run([str(ENSURE_NODE)], capture_output=True, text=True, timeout=900, check=False,
                          env={**os.environ, "PATH": path, "LLMGW_AGENTS_CACHE": str(cache_root())})
    assert done.returncode == 0, done.stderr
    monkeypatch.setenv("PATH", path)
    try:
        folder = node_dir.__wrapped__(20)
    except NodeUnavailable as error:   # the registry cannot be reached: what the agent tests then say
        pytest.skip(f"{error}\n{done.stderr}")
    assert folder == cache_root() / f"node-{NODE_VERSION}" / "node_modules" / ".bin"
    assert f"Node.js v{NODE_VERSION} for the agent tests: {folder / 'node'}" in done.stderr
    assert node_major(folder / "node") == int(NODE_VERSION.split(".")[0])
    assert agent_path(GEMINI_CLI).split(os.pathsep)[0] == str(folder)
