"""`llmgw serve`'s banner as a real process prints it: the version, and a command that works against this very
server, with the key a keyed profile needs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from typing import Any

import pytest

from llmgw import __version__

KEY = "sk-banner-test-key-0001"


def _try_lines(output: list[str], timeout: float = 10.0) -> list[str]:
    """The banner's try-commands (the banner's last lines: waited for)."""
    deadline = time.monotonic() + timeout
    while not any(line.startswith("  try: ") for line in output) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [line.split("try: ", 1)[1].strip() for line in output if line.startswith("  try: ")]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the banner's command uses curl")
@pytest.mark.parametrize("keyed", [False, True], ids=["open", "keyed"])
def test_the_banner_command_works(serve: Any, keyed: bool) -> None:
    profile: dict[str, Any] = {"providers": {"mock": {"kind": "mock"}}, "models": {"fast": {"targets": ["mock/m"]}}}
    env = {"BANNER_TEST_KEY": KEY}
    if keyed:
        profile |= {"teams": {"search": {}}, "keys": {"ci": {"key": "env:BANNER_TEST_KEY", "team": "search"}}}
    server = serve(profile, env=env)
    assert server.output[0].startswith(f"llmgw {__version__} listening on {server.url}")
    (command,) = _try_lines(server.output)
    result = subprocess.run(["bash", "-c", command + " --silent --show-error"], capture_output=True, text=True,
                            timeout=30, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert [m["id"] for m in body["data"]] == ["fast"], body
    if keyed:
        assert "$BANNER_TEST_KEY" in command and KEY not in command
    assert server.stop() == 0
