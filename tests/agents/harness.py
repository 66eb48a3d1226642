"""The harness that runs real coding agents, headless, through a real ``llmgw serve`` to fake upstreams.

What lives here is data and small helpers, no fixtures (``conftest.py``) and no tests (``test_agents.py``), so that
the compatibility page (``tests/conformance/matrix.py``) can render its agent-by-upstream table from the very data
the tests are parametrised with:

- :class:`AgentSpec` — one agent: the npm package and the pinned version it installs, the client format it speaks
  to the gateway, how to run it headless (argv, environment, config files written into its temporary HOME), how
  to read its answer, and the tool of its own that the round trip makes it call. :data:`AGENTS` lists them.
- :data:`UPSTREAMS` — the fake upstream kinds every agent is run against (each an alias of the test profile), and
  the per-kind helpers that arm a fake with a tool call and read what a fake received.
- :func:`install` — ``npm install --prefix <cache>/<name>-<version> <package>@<version>``, once per cache (a file
  lock makes parallel workers wait for one install), then ``<binary> --version`` proves it runs.

Adding an agent (Codex CLI, Gemini CLI, …) is one :class:`AgentSpec` in :data:`AGENTS` once llmgw serves the
client format it speaks: the tests and the compatibility page pick it up.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --- the upstreams -----------------------------------------------------------------------------------------------

UPSTREAMS: Mapping[str, str] = {"anthropic": "Anthropic", "openai": "OpenAI", "gemini": "Gemini"}
"""Fake upstream kinds (llmgw.testing's FakeAnthropic, FakeOpenAI, FakeGemini) → the column titles."""
MODELS: Mapping[str, str] = {"anthropic": "claude-sonnet-4-6", "openai": "gpt-4o-mini", "gemini": "gemini-2.0-flash"}
"""The upstream model each kind's alias (``agent-<kind>``) targets."""

CHECKS: Mapping[str, str] = {
    "answer": "a one-shot prompt comes back as the agent's own successful result; the upstream got the agent's "
              "system prompt (and its mid-conversation system messages) in its own place and every tool it offers",
    "tool round trip": "the upstream answers with a call of one of the agent's own tools, the agent runs it, the "
                       "tool's result reaches the upstream in the next request, and the final text comes back",
}
"""What each agent test proves, by name (the compatibility page lists them)."""


def alias(upstream: str) -> str:
    """The test profile's alias that targets ``upstream``'s fake."""
    return f"agent-{upstream}"


def arm_tool_call(fake: Any, upstream: str, name: str, arguments: dict[str, Any]) -> None:
    """Make ``fake`` answer its next request with one call of tool ``name``, then text again."""
    if upstream == "anthropic":
        fake.set_tool_uses([{"name": name, "input": arguments}], times=1)
    elif upstream == "openai":
        fake.set_tool_calls([{"name": name, "arguments": json.dumps(arguments)}], times=1)
    else:
        fake.set_function_calls([{"name": name, "args": arguments}], times=1)


def sent_tool_names(upstream: str, body: dict[str, Any]) -> list[str]:
    """The names of the tools a request offered, in the upstream's wire format."""
    if upstream == "anthropic":
        return [t["name"] for t in body.get("tools") or []]
    if upstream == "openai":
        return [t["function"]["name"] for t in body.get("tools") or []]
    return [d["name"] for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)]
    return []


def sent_system(upstream: str, body: dict[str, Any]) -> str:
    """The system prompt a request carried in its own place (``system``, the leading system messages,
    ``systemInstruction``)."""
    if upstream == "anthropic":
        return "\n".join(_texts(body.get("system")))
    if upstream == "openai":
        leading = []
        for message in body["messages"]:
            if message["role"] not in ("system", "developer"):
                break
            leading.extend(_texts(message["content"]))
        return "\n".join(leading)
    return "\n".join(p.get("text", "") for p in (body.get("systemInstruction") or {}).get("parts") or [])


def mid_conversation_system(upstream: str, body: dict[str, Any]) -> list[str]:
    """The texts of the system messages that came after the first turn, as the upstream got them."""
    if upstream in ("anthropic", "openai"):
        out: list[str] = []
        started = upstream == "anthropic"   # Anthropic's own system prompt is not a message
        for message in body["messages"]:
            started = started or message["role"] not in ("system", "developer")
            if started and message["role"] == "system":
                out.append("\n".join(_texts(message.get("content"))))
        return out
    return [p["text"] for c in body["contents"] if c["role"] == "user" for p in c["parts"]
            if isinstance(p.get("text"), str) and p["text"].startswith("<system>")]


def tool_results(upstream: str, body: dict[str, Any]) -> list[str]:
    """The tool results a request carried (as JSON text for Gemini's structured ``functionResponse``)."""
    if upstream == "anthropic":
        return ["\n".join(_texts(b.get("content"))) for m in body["messages"] if isinstance(m.get("content"), list)
                for b in m["content"] if b.get("type") == "tool_result"]
    if upstream == "openai":
        return ["\n".join(_texts(m.get("content"))) for m in body["messages"] if m["role"] == "tool"]
    return [json.dumps(p["functionResponse"]) for c in body["contents"] for p in c["parts"] if "functionResponse" in p]


# --- the agents --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """How to start one headless run: the command line, the environment (the whole of it), and the files to
    write under the agent's temporary HOME first (relative path → text)."""

    argv: list[str]
    env: dict[str, str]
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What the agent said: whether it reports success, and its final text."""

    ok: bool
    text: str


@dataclass(frozen=True)
class AgentSpec:
    """One coding agent (see the module docstring). ``run(binary, prompt, url, alias, key, home)`` builds the
    :class:`Run`; ``parse(stdout)`` reads its :class:`Outcome`; ``tool``/``tool_input(workdir, file)`` is the call
    the round trip makes it run (reading ``file``, whose text must come back to the upstream)."""

    name: str
    title: str
    package: str
    version: str
    binary: str
    client_format: str
    speaks: str
    """The API it speaks to the gateway, as the compatibility page names it."""
    run: Callable[[Path, str, str, str, str, Path], Run]
    parse: Callable[[str], Outcome]
    tool: str
    tool_input: Callable[[Path, Path], dict[str, Any]]
    offers: frozenset[str]
    """Tools every one of its requests must offer the upstream."""
    system_marker: str
    """A text its system prompt always contains."""
    mid_system_marker: str | None = None
    """A text one of its mid-conversation system messages contains, when it sends such messages."""
    upstreams: tuple[str, ...] = tuple(UPSTREAMS)
    repair: tuple[str, ...] = ()
    """A command run in the package's folder when the installed binary does not start (a postinstall step that
    npm skipped); empty: none."""
    settings: str = ""
    """The settings that point it at llmgw, as the compatibility page and the README show them."""


def _base_env(home: Path) -> dict[str, str]:
    """A clean environment: nothing of the developer's (no real keys, no proxies), a temporary HOME."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
            "TERM": "dumb", "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local" / "share"), "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
            "NO_COLOR": "1", "CI": "true"}


def _claude_run(binary: Path, prompt: str, url: str, alias: str, key: str, home: Path) -> Run:
    env = {
        **_base_env(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": key,
        # every model Claude Code may pick is the alias under test
        "ANTHROPIC_MODEL": alias, "ANTHROPIC_SMALL_FAST_MODEL": alias, "ANTHROPIC_DEFAULT_HAIKU_MODEL": alias,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": alias, "ANTHROPIC_DEFAULT_OPUS_MODEL": alias,
        # nothing but the gateway: no telemetry, updates, error reports, surveys or side model calls
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1", "DISABLE_BUG_COMMAND": "1", "DISABLE_NON_ESSENTIAL_MODEL_CALLS": "1",
        "DISABLE_COST_WARNINGS": "1", "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
        "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
    }
    return Run([str(binary), "-p", prompt, "--output-format", "json", "--model", alias], env)


def _claude_parse(stdout: str) -> Outcome:
    """``--output-format json``: one result object, ``{"type": "result", "subtype": "success", "is_error",
    "result", ...}``."""
    data = json.loads(stdout)
    return Outcome(data.get("subtype") == "success" and data.get("is_error") is False, str(data.get("result")))


CLAUDE_CODE = AgentSpec(
    name="claude-code",
    title="Claude Code",
    package="@anthropic-ai/claude-code",
    version="2.1.332",
    binary="claude",
    client_format="anthropic",
    speaks="Anthropic Messages (`/v1/messages`)",
    run=_claude_run,
    parse=_claude_parse,
    tool="Read",
    tool_input=lambda workdir, file: {"file_path": str(file)},
    offers=frozenset({"Bash", "Read", "Edit", "Write"}),
    system_marker="Claude",
    mid_system_marker="# Environment",   # its environment, sent as a system-role message after the prompt
    repair=("node", "install.cjs"),
    settings="`ANTHROPIC_BASE_URL`, `ANTHROPIC_API_KEY` (a virtual key), `ANTHROPIC_MODEL` (an alias)",
)

AGENTS: tuple[AgentSpec, ...] = (CLAUDE_CODE,)
"""Every agent the harness runs (the tests are parametrised with these, and so is the compatibility page)."""


# --- installing --------------------------------------------------------------------------------------------------


class InstallError(RuntimeError):
    """npm could not install the agent, or the installed agent does not start."""


def cache_root() -> Path:
    """Where agents are installed and kept between runs: ``$LLMGW_AGENTS_CACHE``, else
    ``$XDG_CACHE_HOME/llmgw-test-agents`` (``~/.cache/llmgw-test-agents``)."""
    explicit = os.environ.get("LLMGW_AGENTS_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "llmgw-test-agents"


def _version_runs(binary: Path, spec: AgentSpec) -> bool:
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "DISABLE_AUTOUPDATER": "1"}, check=False)
    except OSError:
        return False
    return done.returncode == 0 and spec.version in done.stdout


def install(spec: AgentSpec, root: Path | None = None) -> Path:
    """The agent's binary, installed from the npm registry into ``<root>/<name>-<version>`` unless it already is.

    Safe to call from parallel test workers (they wait on one file lock). Raises :class:`InstallError` with npm's
    output when npm fails or the installed binary does not answer ``--version`` with the pinned version."""
    npm = shutil.which("npm")
    if npm is None:
        raise InstallError("npm is not on PATH")
    root = root or cache_root()
    prefix = root / f"{spec.name}-{spec.version}"
    binary = prefix / "node_modules" / ".bin" / spec.binary
    prefix.mkdir(parents=True, exist_ok=True)
    with (prefix / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists() and _version_runs(binary, spec):
            return binary
        done = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-save", "--no-audit", "--no-fund",
                               "--loglevel=error", f"{spec.package}@{spec.version}"],
                              capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise InstallError(f"npm install {spec.package}@{spec.version} failed:\n{done.stdout}{done.stderr}")
        if not _version_runs(binary, spec) and spec.repair:
            subprocess.run(list(spec.repair), cwd=prefix / "node_modules" / spec.package, capture_output=True,
                           timeout=300, check=False)
        if not _version_runs(binary, spec):
            raise InstallError(f"{binary} --version does not report {spec.version} after npm install")
    return binary


# --- running -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    """A finished headless run: its exit code, what it printed, and its :class:`Outcome` (None when the output
    could not be read)."""

    returncode: int
    stdout: str
    stderr: str
    outcome: Outcome | None

    def explain(self) -> str:
        """Everything needed to see why a run failed."""
        return f"exit {self.returncode}\n--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"


async def run_agent(spec: AgentSpec, binary: Path, prompt: str, *, url: str, alias: str, key: str, home: Path,
                    workdir: Path, timeout: float = 180.0) -> Finished:
    """Run ``spec``'s agent once, headless, in ``workdir`` with HOME ``home``, pointed at the gateway ``url``.

    Asynchronous, so the fake upstreams in the caller's event loop keep answering while it runs; killed after
    ``timeout`` seconds (the run then reports exit code -9)."""
    run = spec.run(binary, prompt, url, alias, key, home)
    for relative, text in run.files.items():
        path = home / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(*run.argv, cwd=workdir, env=run.env, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    try:
        outcome: Outcome | None = spec.parse(stdout)
    except (ValueError, KeyError, TypeError):
        outcome = None
    return Finished(proc.returncode if proc.returncode is not None else -9, stdout, stderr, outcome)
