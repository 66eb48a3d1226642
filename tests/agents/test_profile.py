"""``profiles/agents.toml``, the ready profile for coding agents: ``llmgw check`` accepts it, and the aliases the
README tells each agent to use are in it (no npm needed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from .harness import AGENTS

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "profiles" / "agents.toml"


def test_llmgw_check_accepts_the_agents_profile(tmp_path: Path) -> None:
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-x", "OPENAI_API_KEY": "sk-x", "GEMINI_API_KEY": "g-x"}
    done = subprocess.run([sys.executable, "-m", "llmgw", "check", "--profile", str(PROFILE)], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok" in done.stdout


def test_the_aliases_the_readme_gives_the_agents_are_in_the_profile() -> None:
    aliases = set(tomllib.loads(PROFILE.read_text(encoding="utf-8"))["models"])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Coding agents", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"ANTHROPIC_(?:MODEL|DEFAULT_HAIKU_MODEL)=(\S+)", section))
    named |= set(re.findall(r'^model = "([^"]+)"', section, re.MULTILINE))
    named |= set(re.findall(r"gemini -m (\S+)", section))
    assert named and named <= aliases, named - aliases


def test_the_settings_the_readme_gives_each_agent_are_those_its_tests_use() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Coding agents", 1)[1].split("\n## ", 1)[0]
    bare = "\n".join(re.sub(r"\s+#.*$", "", line) for line in section.splitlines())   # comments aside
    for agent in AGENTS:
        for settings in agent.readme:
            assert settings.strip() in bare, f"{agent.title}: README.md does not show\n{settings}"
