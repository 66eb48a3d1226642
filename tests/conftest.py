"""Suite-wide: the canary provider key, and the check that it leaked nowhere.

Tests that configure an upstream's secret key use :data:`CANARY` (through the environment, as a profile would).
When the session ends, every file the tests left under pytest's temporary folders — request logs, key stores,
profiles, JUnit files, captured output — is searched for it; a single occurrence fails the run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CANARY = "sk-canary-provider-key-3f9a1c7e5b"


def _leaks(root: Path) -> list[Path]:
    needle = CANARY.encode()
    found = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and needle in path.read_bytes():
                found.append(path)
        except OSError:
            continue
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    try:
        root = factory.getbasetemp()
    except (OSError, ValueError):
        return
    leaks = _leaks(root)
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"the canary provider key leaked into {len(leaks)} file(s): "
                                + ", ".join(str(p) for p in leaks[:5]), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
