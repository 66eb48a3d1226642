"""The README's quick start, run as written: every command and snippet of the section, in order, against the demo
(`llmgw serve` as a real process on a free port, which is what `make demo` starts), each snippet's output compared
with what the reader is told it prints.

The test reads the section itself, so a command added to the quick start must be one it knows how to run (it fails
otherwise): `make demo`, `make test`, `export NAME=VALUE`, `llmgw ...` / `.venv/bin/llmgw ...` (in code blocks and
in backticks in the prose) and the proxy's URL in backticks.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import ServeProcess, stop_all

ROOT = Path(__file__).resolve().parents[2]
DEMO_URL = "http://127.0.0.1:4000"


@dataclass
class Step:
    """One thing the quick start asks the reader to do: ``kind`` is "sh" (a command), "python" (a snippet, with
    ``expect`` the output the README says it prints) or "url" (an address to open)."""

    kind: str
    text: str
    expect: str | None = None


def quick_start() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Quick start")
    return text[start:text.index("\n## ", start + 1)]


_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)
_PROSE_COMMAND = re.compile(r"`((?:\.venv/bin/)?llmgw [^`]+|http://127\.0\.0\.1:4000/[^`]*)`")


def steps(section: str) -> list[Step]:
    """The section's commands, snippets and URLs in reading order; a ```text block is the output of the snippet
    before it."""
    found: list[Step] = []
    position = 0
    for fence in _FENCE.finditer(section):
        found += _prose_steps(section[position:fence.start()])
        language, body = fence.group(1), fence.group(2)
        if language == "sh":
            for line in body.splitlines():
                command = line.split("#", 1)[0].strip()
                if command:
                    found.append(Step("sh", command))
        elif language == "python":
            found.append(Step("python", body))
        elif language == "text":
            assert found and found[-1].kind == "python", "a ```text block must follow the snippet it shows"
            found[-1].expect = body
        else:
            raise AssertionError(f"the quick start has a ```{language} block this test cannot check")
        position = fence.end()
    return found + _prose_steps(section[position:])


def _prose_steps(prose: str) -> list[Step]:
    return [Step("url" if m.group(1).startswith("http") else "sh", m.group(1))
            for m in _PROSE_COMMAND.finditer(prose)]


def start_llmgw(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 30.0) -> ServeProcess:
    """`llmgw serve ARGS --port 0` (the quick start's port may be taken): running, once its banner is out."""
    proc = subprocess.Popen([sys.executable, "-m", "llmgw", *args, "--port", "0"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("  try: "):  # the banner's last part: the server is listening
                ready.set()
        ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    if not ready.wait(timeout) or not any("listening on " in line for line in lines):
        proc.kill()
        proc.wait()
        raise AssertionError("llmgw serve did not start:\n" + "".join(lines))
    url = next(line for line in lines if "listening on " in line).split("listening on ", 1)[1].split()[0]
    return ServeProcess(proc, url, Path(), lines, reader)


class Reader:
    """Someone following the quick start in a fresh home folder: runs each step and checks what it shows."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if k not in ("LLMGW_PROFILE", "LLMGW_ADMIN_KEY")}
        self.env.update(HOME=str(home), PYTHONUNBUFFERED="1", COLUMNS="200")
        self.demo: ServeProcess | None = None
        self.servers: list[ServeProcess] = []
        self.aliases_used: set[str] = set()

    def run(self, step: Step) -> None:
        if step.kind == "python":
            self.snippet(step)
        elif step.kind == "url":
            self.open_url(step.text)
        else:
            self.command(step.text)

    # --- commands ---

    def command(self, line: str) -> None:
        words = shlex.split(line)
        if words == ["make", "demo"]:
            self.make_demo()
        elif words == ["make", "test"]:
            self.make_test()
        elif words[0] == "export":
            name, _, value = words[1].partition("=")
            self.env[name] = value
        elif words[0] in ("llmgw", ".venv/bin/llmgw"):
            self.llmgw(words[1:])
        else:
            raise AssertionError(f"the quick start asks for {line!r}, which this test does not know how to run")

    def make_demo(self) -> None:
        """`make demo` installs, then runs `llmgw serve` with no profile: the built-in demo."""
        recipe = _make_recipe("demo")
        assert recipe[-1] == "$(BIN)/llmgw serve", recipe
        self.demo = start_llmgw(["serve"], self.env, self.home)
        self.servers.append(self.demo)
        banner = "".join(self.demo.output)
        assert "profile: <built-in demo>" in banner
        for alias in ("fast", "smart", "embed"):
            assert f"model {alias} -> " in banner

    def make_test(self) -> None:
        """`make test` runs this very suite: check what it runs rather than run it again from inside."""
        recipe = _make_recipe("test")
        assert any("pytest" in line for line in recipe) and any("ruff check" in line for line in recipe), recipe

    def llmgw(self, args: list[str]) -> None:
        if args[0] == "serve":
            server = start_llmgw(args, self.env, self.home)
            self.servers.append(server)
            assert "llmgw " in server.output[0] and "listening on" in server.output[0]
            assert server.stop() == 0, "".join(server.output)
            return
        result = subprocess.run([sys.executable, "-m", "llmgw", *args], cwd=self.home, env=self.env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"llmgw {' '.join(args)}:\n{result.stdout}{result.stderr}"
        assert "Traceback" not in result.stderr
        check = getattr(self, "after_" + "_".join(a for a in args[:2] if not a.startswith("-")), None)
        if check is not None:
            check(result.stdout, result.stderr)

    def after_logs_list(self, out: str, err: str) -> None:
        """'shows what went through': a row per request the snippets made, every alias they used."""
        assert re.search(r"\d+ requests? \(newest first\)", out), out
        for alias in self.aliases_used:
            assert f"{alias} → " in out, f"{alias} missing from logs list:\n{out}"

    def after_profile_init(self, out: str, err: str) -> None:
        assert "wrote llmgw.toml" in out and (self.home / "llmgw.toml").is_file()
        assert "mock" not in (self.home / "llmgw.toml").read_text(), "no mock unless asked for"

    def after_check(self, out: str, err: str) -> None:
        assert ": ok — " in out and err == "", out + err

    def after_profile_show(self, out: str, err: str) -> None:
        assert "[providers.openai]" in out and 'api_key = "env:OPENAI_API_KEY"' in out
        assert "timeout_s = 600" in out, "the defaults are filled in"

    # --- snippets and URLs ---

    def snippet(self, step: Step) -> None:
        assert self.demo is not None, "a snippet before `make demo`"
        code = step.text.replace(DEMO_URL, self.demo.url)
        self.aliases_used |= set(re.findall(r'model="([\w-]+)"', code))
        result = subprocess.run([sys.executable, "-c", code], cwd=self.home, env=self.env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, f"the snippet failed:\n{code}\n{result.stderr}"
        assert step.expect is not None, f"the README does not say what this snippet prints:\n{code}"
        assert result.stdout == step.expect, f"the snippet printed\n{result.stdout!r}\nnot\n{step.expect!r}"

    def open_url(self, url: str) -> None:
        assert self.demo is not None
        with urllib.request.urlopen(url.replace(DEMO_URL, self.demo.url), timeout=10) as response:
            body = json.loads(response.read())
        assert body["name"] == "llmgw" and "POST /v1/chat/completions" in body["endpoints"]


def _make_recipe(target: str) -> list[str]:
    """The recipe lines of a Makefile target."""
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[Reader]:
    home = tmp_path / "home"
    home.mkdir()
    person = Reader(home)
    yield person
    stop_all(person.servers)


def test_the_quick_start_works_as_written(reader: Reader) -> None:
    plan = steps(quick_start())
    kinds = [s.kind for s in plan]
    assert kinds.count("python") >= 2 and "make demo" in [s.text for s in plan], plan
    started = time.monotonic()
    for step in plan:
        reader.run(step)
    assert reader.aliases_used >= {"fast", "smart", "embed"}
    assert time.monotonic() - started < 240
    assert reader.demo is not None and reader.demo.stop() == 0, "the demo stops cleanly"


def test_every_snippet_says_what_it_prints() -> None:
    snippets = [s for s in steps(quick_start()) if s.kind == "python"]
    assert snippets and all(s.expect for s in snippets)
