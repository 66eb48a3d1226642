"""The benchmark: no proxy vs a raw aiohttp forwarder vs ``llmgw serve`` vs LiteLLM, side by side, in one run.

``.venv/bin/python bench/run.py`` prints a markdown table and writes it to ``bench/RESULTS.md`` (keeping that
file's hand-written profile section). ``--profile`` instead samples the raw forwarder and ``llmgw serve`` under
load with py-spy and prints where their time goes. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import uvloop
from load import Cell, run_cell

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
RESULTS = BENCH / "RESULTS.md"
PROFILE_HEADING = "## Where llmgw's time goes"
BIN = Path(sys.executable).parent              # .venv/bin: python, llmgw, py-spy
LITELLM_BIN = BENCH / ".litellm-venv" / "bin" / "litellm"
LITELLM_KEY = "sk-bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOAD_BEFORE = os.getloadavg()[0]        # other work on the machine skews every column


@dataclass
class Target:
    """One column of the benchmark: where to send requests, and the server process behind it (if any)."""

    name: str
    url: str
    model: str
    headers: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    rss_mb: float | None = None
    notes: list[str] = field(default_factory=list)
    db: Path | None = None              # llmgw's request log, to see how far it lags behind
    log: Path | None = None             # the process's stdout and stderr
    unique: bool = False                # every request a new prompt (the cache's miss path)
    llmgw: bool = False                 # one of llmgw's configurations (compared with the forwarder)


@dataclass
class Result:
    cell: Cell
    cpu_us_per_req: float | None        # CPU time of the proxy process per request sent (None: no proxy)
    other_cores: float                  # CPU used meanwhile by processes that are not ours, in cores


# --- processes ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float) -> None:
    """Poll ``url`` until it answers 200; fail early (with the log's tail) if the process dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{log.stem} exited with {proc.returncode} before it was ready:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.2)
    sys.exit(f"{log.stem} not ready after {timeout_s:.0f} s ({url}):\n{log.read_text()[-2000:]}")


def log_path(name: str) -> Path:
    return OUT / f"{name}.log"


@contextlib.contextmanager
def launch(name: str, cmd: list[str], ready_url: str, *, env: dict[str, str] | None = None,
           timeout_s: float = 30.0) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``cmd`` (output to bench/out/NAME.log), wait until ``ready_url`` answers, SIGTERM it on exit."""
    log = log_path(name)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **(env or {})})
    try:
        wait_ready(proc, ready_url, log, timeout_s)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def log_rows(db: Path) -> tuple[int, int]:
    """Rows in llmgw's request log, and how many of them have both bodies."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        count, with_bodies = conn.execute(
            "SELECT count(*), sum(request IS NOT NULL AND response IS NOT NULL) FROM requests").fetchone()
    return count, with_bodies or 0


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live process below it (``llmgw serve --workers N``'s workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo += [int(child) for child in (task / "children").read_text().split()]
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) and of its live child processes."""
    total = 0.0
    for each in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def own_cpu_seconds() -> float:
    """CPU time of this process and of the processes it started (upstream, proxies, their workers) that are
    still running."""
    return cpu_seconds(os.getpid())


def machine_cpu_seconds() -> float:
    """CPU time the whole machine spent in processes (user, nice, system) or lost to the hypervisor (steal)."""
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + steal) / CLK_TCK


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its live child processes, added up."""
    total = 0
    for each in process_tree(pid):
        with contextlib.suppress(OSError):
            match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{each}/status").read_text())
            total += int(match.group(1)) if match else 0
    return total / 1024


# --- the targets ----------------------------------------------------------------------------------------------

TargetFactory = Callable[[str, Path], contextlib.AbstractContextManager[Target]]


@contextlib.contextmanager
def no_proxy(upstream: str, tmp: Path) -> Iterator[Target]:
    yield Target("no proxy", f"{upstream}/v1/chat/completions", "bench-model")


@contextlib.contextmanager
def raw_forwarder(upstream: str, tmp: Path) -> Iterator[Target]:
    port = free_port()
    cmd = [str(BIN / "python"), str(BENCH / "forwarder.py"), "--port", str(port), "--upstream", upstream]
    with launch("forwarder", cmd, f"http://127.0.0.1:{port}/health") as proc:
        yield Target("raw aiohttp", f"http://127.0.0.1:{port}/v1/chat/completions", "bench-model", proc=proc,
                     log=log_path("forwarder"))


BENCH_KEY = "sk-llmgw-bench-0123456789abcdef"


@dataclass(frozen=True)
class Setup:
    """One llmgw configuration the benchmark measures: a column of its own."""

    name: str
    governed: bool = False      # a virtual key on a team with rpm, tpm and a daily budget (none ever refuses)
    guarded: bool = False       # and a PII redaction rule and the exact cache (every prompt new: the miss path)
    workers: int = 1
    redis: bool = False         # shared state in Redis instead of in-process (one worker) or SQLite (several)


PLAIN = Setup("llmgw")
GOVERNED = Setup("llmgw key+limits", governed=True)
FULL = Setup("llmgw +guard+cache", governed=True, guarded=True)
SCALING = (Setup("key+limits 1w Redis", governed=True, redis=True),
           Setup("key+limits 2w SQLite", governed=True, workers=2),
           Setup("key+limits 2w Redis", governed=True, workers=2, redis=True))


def llmgw_profile(upstream: str, tmp: Path, port: int, setup: Setup = PLAIN, redis_url: str | None = None) -> Path:
    folder = tmp / setup.name.replace(" ", "-").replace("+", "")
    folder.mkdir(exist_ok=True)
    path = folder / "llmgw.toml"
    shared = f'shared = "{redis_url}"\n' if setup.redis else ""
    text = f"""\
[server]
host = "127.0.0.1"
port = {port}
workers = {setup.workers}
log_bodies = true

[state]
url = "sqlite:///{folder / 'llmgw.db'}"
{shared}
[providers.up]
kind = "openai-compatible"
base_url = "{upstream}/v1"

[models.fast]
targets = ["up/bench-model"]

[prices]
"up/bench-model" = {{ input = 0.15, output = 0.60 }}
"""
    if setup.governed:  # limits far above what the machine can serve: every request is checked, none refused
        text += f"""
[teams.bench]
rpm = 10000000
tpm = 10000000000
budget_usd = {{ daily = 1000000.0 }}

[keys.bench]
key = "{BENCH_KEY}"
team = "bench"
"""
    if setup.guarded:
        text += """
[cache]
exact = true

[[guardrails]]
name = "pii"
kind = "pii"
entities = ["email", "phone", "credit_card", "ip"]
action = "redact"
applies_to = "request"
"""
    path.write_text(text)
    return path


def llmgw_target(setup: Setup, redis_url: str | None = None) -> TargetFactory:
    @contextlib.contextmanager
    def start(upstream: str, tmp: Path) -> Iterator[Target]:
        port = free_port()
        profile = llmgw_profile(upstream, tmp, port, setup, redis_url)
        cmd = [str(BIN / "llmgw"), "serve", "--profile", str(profile), "--port", str(port)]
        db = profile.with_name("llmgw.db")
        headers = {"Authorization": f"Bearer {BENCH_KEY}"} if setup.governed else {}
        target = Target(setup.name, f"http://127.0.0.1:{port}/v1/chat/completions", "fast", headers, db=db,
                        log=log_path(setup.name.replace(" ", "-").replace("+", "")), unique=setup.guarded,
                        llmgw=True)
        with launch(target.log.stem, cmd, f"http://127.0.0.1:{port}/health") as proc:
            target.proc = proc
            yield target
        count, with_bodies = log_rows(db)
        target.notes.append(f"request log after SIGTERM: {count} rows ({with_bodies} with request and response "
                            "bodies)")
    return start


@contextlib.contextmanager
def litellm(upstream: str, tmp: Path) -> Iterator[Target]:
    port = free_port()
    config = tmp / "litellm.yaml"
    config.write_text(f"""\
model_list:
  - model_name: fast
    litellm_params:
      model: openai/bench-model
      api_base: {upstream}/v1
      api_key: sk-upstream
litellm_settings:
  telemetry: false
  set_verbose: false
general_settings:
  master_key: {LITELLM_KEY}
""")
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
    cmd = [str(LITELLM_BIN), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    ready = f"http://127.0.0.1:{port}/health/liveliness"
    with launch("litellm", cmd, ready, env=env, timeout_s=180) as proc:
        yield Target("LiteLLM", f"http://127.0.0.1:{port}/v1/chat/completions", "fast",
                     {"Authorization": f"Bearer {LITELLM_KEY}"}, proc, log=log_path("litellm"))


# --- measuring ------------------------------------------------------------------------------------------------


def measure(target: Target, stream: bool, concurrency: int, args: argparse.Namespace) -> Result:
    pid = target.proc.pid if target.proc else None
    cpu_before = cpu_seconds(pid) if pid else 0.0
    own_before, machine_before, wall_before = own_cpu_seconds(), machine_cpu_seconds(), time.monotonic()
    cell = asyncio.run(run_cell(target.url, stream=stream, concurrency=concurrency, duration_s=args.duration,
                                warmup_s=args.warmup, model=target.model, headers=target.headers,
                                unique=target.unique))
    other = (machine_cpu_seconds() - machine_before) - (own_cpu_seconds() - own_before)
    cpu = (cpu_seconds(pid) - cpu_before) / max(cell.sent, 1) * 1e6 if pid else None
    return Result(cell, cpu, max(other, 0.0) / (time.monotonic() - wall_before))


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A redis-server on a free loopback port, without persistence (scripts/ensure-redis installs it)."""
    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait()


def run_bench(args: argparse.Namespace, upstream: str, tmp: Path) -> str:
    """Every column's server is started first and kept running; then, ``args.rounds`` times, every cell is measured
    with the columns taking turns within it, so that a machine that slows down or speeds up for a minute moves every
    column alike. Each cell reports its median round (by req/s); LiteLLM, tens of times slower than the rest, is
    measured in the first round only."""
    columns: list[tuple[str, TargetFactory]] = [("no proxy", no_proxy), ("raw aiohttp", raw_forwarder)]
    columns += [(s.name, llmgw_target(s)) for s in (PLAIN, GOVERNED, FULL)]
    skipped = []
    if LITELLM_BIN.exists():
        columns.append(("LiteLLM", litellm))
    else:
        skipped.append(f"LiteLLM: not installed ({LITELLM_BIN.relative_to(ROOT)} missing; see bench/README.md)")
    rounds: dict[tuple[str, bool, int], list[Result]] = {}
    with contextlib.ExitStack() as stack:
        if args.scaling:
            redis_url = stack.enter_context(redis_server())
            columns += [(s.name, llmgw_target(s, redis_url)) for s in SCALING]
        only = {name.strip() for name in args.only.split(",") if name.strip()} | {"no proxy", "raw aiohttp"}
        targets = [stack.enter_context(factory(upstream, tmp)) for name, factory in columns
                   if not args.only or name in only]
        scaling = {s.name for s in SCALING}
        for number in range(args.rounds):
            for stream in (False, True):
                for c in args.concurrency:
                    for target in targets:
                        if (target.name in scaling and c != max(args.concurrency)) or \
                                (target.name == "LiteLLM" and number > 0):
                            continue
                        rounds.setdefault((target.name, stream, c), []).append(
                            measure_cell(target, stream, c, args, f"round {number + 1}/{args.rounds}"))
        for target in targets:
            if target.proc is not None:
                target.rss_mb = rss_mb(target.proc.pid)
            if target.db is not None:
                sent = sum(r.cell.sent for (name, _, _), runs in rounds.items() if name == target.name for r in runs)
                target.notes.append(f"{sent} requests sent; when RSS was read, {sent - log_rows(target.db)[0]} "
                                    "log rows were still queued in memory")
    results = {key: sorted(runs, key=lambda r: r.cell.rps)[len(runs) // 2] for key, runs in rounds.items()}
    return report(args, targets, results, skipped, rounds)


def measure_cell(target: Target, stream: bool, c: int, args: argparse.Namespace, label: str = "") -> Result:
    """One cell, printed as it ends; a proxy that died during it ends the run with its log's tail."""
    result = measure(target, stream, c, args)
    if target.proc is not None and target.proc.poll() is not None:
        tail = target.log.read_text()[-2000:] if target.log else ""
        sys.exit(f"{target.name} exited with {target.proc.returncode} during the "
                 f"{'stream' if stream else 'json'} c={c} cell ({result.cell.errors} errors); "
                 f"no results written. Its log ({target.log}) ends:\n{tail}")
    print(f"  {target.name:20} {'stream' if stream else 'json':6} c={c:<3} "
          f"{result.cell.rps:8.0f} req/s  p50 {result.cell.percentile(0.5):6.2f} ms  "
          f"errors {result.cell.errors}  other load {result.other_cores:.0%} of a core  {label}",
          file=sys.stderr, flush=True)
    return result


# --- reporting ------------------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "—" if value is None else format(value, spec)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    litellm_version = "not installed"
    if LITELLM_BIN.exists():
        out = subprocess.run([str(LITELLM_BIN.parent / "pip"), "show", "litellm"], capture_output=True, text=True)
        litellm_version = next((line.split()[1] for line in out.stdout.splitlines() if line.startswith("Version")),
                               "?")
    return (f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu}; Linux {platform.release()}; "
            f"Python {platform.python_version()}; aiohttp {version('aiohttp')}; uvloop {version('uvloop')}; "
            f"LiteLLM {litellm_version}; load average before the run {LOAD_BEFORE:.2f}")


def llmgw_version() -> str:
    """The commit being measured, and whether llmgw/ differs from it."""
    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    dirty = " + uncommitted changes in llmgw/" if git("status", "--porcelain", "--", "llmgw") else ""
    return f"commit {git('rev-parse', '--short', 'HEAD') or '?'}{dirty}"


def report(args: argparse.Namespace, targets: list[Target], results: dict[tuple[str, bool, int], Result],
           skipped: list[str], rounds: dict[tuple[str, bool, int], list[Result]] | None = None) -> str:
    rounds = rounds or {key: [r] for key, r in results.items()}
    spread = {key: (min(r.cell.rps for r in runs), max(r.cell.rps for r in runs)) for key, runs in rounds.items()
              if len(runs) > 1}
    lines = [
        "# llmgw benchmark results", "",
        f"- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"- machine: {machine()}",
        f"- llmgw: {llmgw_version()}",
        f"- load: closed loop, {args.warmup:g} s warm-up + {args.duration:g} s measured per cell, "
        f"{getattr(args, 'rounds', 1)} rounds with the columns taking turns in each cell, each cell's median round "
        "shown (LiteLLM: the first round only); one small chat "
        "request (the mock upstream answers in 0 ms: ~0.7 kB of JSON, or 16 SSE events + `[DONE]`, ~4.5 kB, in one "
        "write); load generator, mock upstream and proxy are separate processes sharing the same cores",
        "- command: `.venv/bin/python bench/run.py`", "",
        "| mode | c | target | req/s | rounds' req/s | p50 ms | p99 ms | added p50 ms | proxy CPU µs/req | errors |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = [t.name for t in targets]
    for stream in (False, True):
        for c in args.concurrency:
            base = results["no proxy", stream, c].cell.percentile(0.5)
            for name in names:
                r = results.get((name, stream, c))
                if r is None:
                    continue
                p50 = r.cell.percentile(0.5)
                added = None if name == "no proxy" else p50 - base
                low, high = spread.get((name, stream, c), (None, None))
                span = "—" if low is None else f"{low:.0f} to {high:.0f}"
                lines.append(f"| {'stream' if stream else 'json'} | {c} | {name} | {r.cell.rps:.0f} | {span} | "
                             f"{p50:.2f} | "
                             f"{r.cell.percentile(0.99):.2f} | {_fmt(added, '+.2f')} | "
                             f"{_fmt(r.cpu_us_per_req, '.0f')} | {r.cell.errors} |")
    lines += ["", "## Against the targets", "",
              "Share of the raw forwarder's req/s at the highest concurrency (the median of the rounds' shares), "
              "and p50 added over the forwarder's "
              "own at concurrency 1 (targets: ≥ 70% with a key, limits, a budget and the log; ≥ 55% with "
              "guardrails and the cache as well; added p50 within 0.2 ms of the forwarder's; RSS ≤ 100 MB):", "",
              "| configuration | json share | stream share | json +p50 over forwarder | "
              "stream +p50 over forwarder | RSS MB |",
              "|---|---:|---:|---:|---:|---:|"]
    top, low = max(args.concurrency), min(args.concurrency)
    goals = {PLAIN.name: 70, GOVERNED.name: 70, FULL.name: 55}

    def cell(name: str, stream: bool, c: int) -> Cell | None:
        r = results.get((name, stream, c))
        return r.cell if r else None

    for t in targets:
        if not t.llmgw:
            continue
        shares, extra = [], []
        for stream in (False, True):
            pairs = zip(rounds.get((t.name, stream, top), []), rounds.get(("raw aiohttp", stream, top), []),
                        strict=False)   # each round's share: the two were measured minutes apart at most
            each = sorted(mine.cell.rps / raw.cell.rps * 100 for mine, raw in pairs if raw.cell.rps)
            share = each[len(each) // 2] if each else None
            goal = goals.get(t.name)
            verdict = "" if share is None or goal is None else (" ✓" if share >= goal else " ✗")
            shares.append(f"{_fmt(share, '.0f')}%{verdict}")
            mine, raw = cell(t.name, stream, low), cell("raw aiohttp", stream, low)
            over = mine.percentile(0.5) - raw.percentile(0.5) if mine and raw and low != top else None
            extra.append(_fmt(over, "+.2f") + ("" if over is None else (" ✓" if over <= 0.2 else " ✗")))
        lines.append(f"| {t.name} | {shares[0]} | {shares[1]} | {extra[0]} | {extra[1]} | "
                     f"{_fmt(t.rss_mb, '.0f')} |")
    lines.append("")
    for t in targets:
        if t.rss_mb is not None and not t.llmgw:
            lines.append(f"- RSS of {t.name} after the run: **{t.rss_mb:.0f} MB**")
        lines += [f"- {t.name}: {note}" for note in t.notes]
    lines += [f"- skipped: {s}" for s in skipped]
    busy = [(key, r.other_cores) for key, r in results.items()]
    (name, stream, c), worst = max(busy, key=lambda item: item[1])
    lines.append(f"- other processes on the machine used {sum(b for _, b in busy) / len(busy):.0%} of a core on "
                 f"average during the cells, at most {worst:.0%} ({name} {'stream' if stream else 'json'} c={c})"
                 f"{'' if worst < 0.2 else ': cells above 20% are skewed, run again on a quiet machine'}")
    errors = [(key, r.cell) for key, r in results.items() if r.cell.errors]
    lines += ["", "## Errors", ""]
    if not errors:
        lines.append("None: every request in every cell answered 200 with a complete body.")
    for (name, stream, c), cell in errors:
        lines.append(f"- {name} {'stream' if stream else 'json'} c={c}: {cell.errors} errors; first: "
                     f"`{cell.first_error}`")
    return "\n".join(lines) + "\n"


def write_results(table: str) -> None:
    """Write RESULTS.md, keeping its hand-written profile section (from PROFILE_HEADING on) if there is one."""
    kept = ""
    if RESULTS.exists():
        old = RESULTS.read_text()
        at = old.find(PROFILE_HEADING)
        kept = "\n" + old[at:] if at >= 0 else ""
    RESULTS.write_text(table + kept)


# --- profiling ------------------------------------------------------------------------------------------------


def _frame(frame: str) -> str:
    """``func (path/to/aiohttp/web_protocol.py:123)`` -> ``aiohttp/web_protocol.py:func``."""
    match = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not match:
        return frame
    func, path = match.groups()
    parts = Path(path).parts
    for anchor in ("llmgw", "aiohttp", "asyncio", "uvloop", "yarl", "multidict", "sqlite3", "bench"):
        if anchor in parts:
            path = "/".join(parts[len(parts) - parts[::-1].index(anchor) - 1:])
            break
    else:
        path = parts[-1] if parts else path
    return f"{path}:{func}"


def summarize(raw: Path, rate: int, requests: int, top: int) -> str:
    """Per thread, then per function of the busiest thread: py-spy's collapsed ``--threads`` stacks as
    microseconds of activity per request (samples / rate / requests) and as a share of that thread's samples."""
    threads: dict[str, Counter[str]] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        thread, *frames = stack.split(";")
        if not frames or not count.isdigit():
            continue
        n = int(count)
        name = thread.partition(": ")[2] or thread
        stats = threads.setdefault(name, Counter())
        stats["(all)"] += n
        names = [_frame(f) for f in frames]
        stats["self " + names[-1]] += n
        stats["package " + names[-1].split("/")[0].split(":")[0]] += n
        for frame in set(names):
            stats["incl " + frame] += n

    def us(samples: int) -> str:
        return f"{samples / rate / requests * 1e6:6.0f} µs/req"

    out = [f"{requests} requests while sampling at {rate} Hz; activity per thread:"]
    out += [f"  {us(s['(all)'])}  {name}" for name, s in threads.items()]
    main_name, main = max(threads.items(), key=lambda item: item[1]["(all)"])
    total = main["(all)"]
    for title, prefix, keep in (("self time by package", "package ", ""),
                                ("self time by function", "self ", ""),
                                ("inclusive time, llmgw/ and aiohttp/ functions", "incl ", ("llmgw/", "aiohttp/"))):
        rows = [(k.removeprefix(prefix), n) for k, n in main.most_common() if k.startswith(prefix)
                and k.removeprefix(prefix).startswith(keep)]
        out += ["", f"{main_name}, {title} (top {top}):"]
        out += [f"  {us(n)}  {n / total:6.1%}  {name}" for name, n in rows[:top]]
    return "\n".join(out)


def run_profile(args: argparse.Namespace, upstream: str, tmp: Path) -> None:
    """Sample the raw forwarder and ``llmgw serve`` with py-spy (all threads, not blocking them) at the highest
    concurrency; prints a summary per target and mode and leaves the stacks and flame graphs in bench/out/."""
    spy = BIN / "py-spy"
    if not spy.exists():
        sys.exit(f"{spy} not found: .venv/bin/pip install py-spy")
    rate, c = 250, max(args.concurrency)
    only = args.only.split(",") if args.only else ["raw aiohttp", PLAIN.name, GOVERNED.name, FULL.name]
    factories = [raw_forwarder] if "raw aiohttp" in only else []
    factories += [llmgw_target(s) for s in (PLAIN, GOVERNED, FULL) if s.name in only]
    for factory in factories:
        with factory(upstream, tmp) as target:
            assert target.proc is not None
            slug = re.sub(r"[^a-z0-9]+", "-", target.name.lower()).strip("-")
            for stream in (False, True):
                mode = "stream" if stream else "json"
                for fmt, ext in (("raw", "txt"), ("flamegraph", "svg")):
                    path = OUT / f"profile-{slug}-{mode}.{ext}"
                    spy_cmd = [str(spy), "record", "--pid", str(target.proc.pid), "--rate", str(rate), "--threads",
                               "--nonblocking", "--duration", str(round(args.warmup + args.duration)),
                               "--format", fmt, "--output", str(path)]
                    spy_proc = subprocess.Popen(spy_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    r = measure(target, stream, c, args)
                    spy_proc.wait()
                    print(f"## {target.name} {mode} c={c}: {r.cell.rps:.0f} req/s, p50 {r.cell.percentile(0.5):.2f} ms,"
                          f" {r.cpu_us_per_req:.0f} µs CPU/req, {r.cell.errors} errors -> {path.relative_to(ROOT)}")
                    if fmt == "raw":
                        print(summarize(path, rate, r.cell.sent, args.top), "\n", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per cell (default 3)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per cell (default 1)")
    parser.add_argument("--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 16, 64],
                        help="comma-separated closed-loop concurrencies (default 1,16,64)")
    parser.add_argument("--profile", action="store_true", help="py-spy the forwarder and llmgw instead")
    parser.add_argument("--top", type=int, default=25, help="--profile: functions to list")
    parser.add_argument("--no-write", action="store_true", help="print the table but leave RESULTS.md alone")
    parser.add_argument("--scaling", action="store_true",
                        help="also key+limits with shared state in Redis, and --workers 2 with SQLite and Redis "
                             "(highest concurrency only)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="times every cell is measured, the columns taking turns; the median is shown (default 5)")
    parser.add_argument("--only", default="",
                        help="comma-separated column names to run (no proxy and raw aiohttp always run)")
    args = parser.parse_args()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llmgw-bench-") as tmp_dir:
        port = free_port()
        upstream = f"http://127.0.0.1:{port}"
        cmd = [str(BIN / "python"), "-m", "llmgw.testing", "--port", str(port)]
        with launch("upstream", cmd, f"{upstream}/v1/models"):
            if args.profile:
                run_profile(args, upstream, Path(tmp_dir))
                return
            table = run_bench(args, upstream, Path(tmp_dir))
    print(table)
    if not args.no_write:
        write_results(table)
        print(f"written to {RESULTS.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
