"""llmgw serve with the request log in SQLite vs in PostgreSQL: requests per second at one concurrency (json).

``.venv/bin/python bench/log_backends.py`` starts the fake upstream, a throwaway PostgreSQL server (Debian's
binaries, as the tests do; or ``--pg-url`` with ``$PGPASSWORD`` for one you have), and for each backend, in turn
and ``--rounds`` times, ``llmgw serve`` on a plain profile, measured with the closed-loop load generator of
``bench/load.py``. After each run it checks that every request sent has its row in the log. It prints a markdown
table; ``--write`` puts it at the end of ``bench/RESULTS.md`` under "## PostgreSQL log vs SQLite log".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import uvloop
from load import run_cell

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "RESULTS.md"
HEADING = "## PostgreSQL log vs SQLite log"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def launch(cmd: list[str], ready: str, log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    """Run ``cmd`` until the block ends (SIGTERM), once ``ready`` answers 200."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                sys.exit(f"{cmd[:3]} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(ready, timeout=2) as resp:
                if resp.status == 200:
                    break
            if time.monotonic() > deadline:
                sys.exit(f"{cmd[:3]} not ready:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[tuple[str, str]]:
    """``(url, password)`` of an empty database: ``--pg-url``'s, or one on a throwaway server."""
    if url:
        yield url, os.environ.get("PGPASSWORD", "")
        return
    sys.path.insert(0, str(ROOT))
    from tests.postgres.conftest import make_server

    server = make_server()
    try:
        with server.admin() as conn:
            conn.execute("CREATE DATABASE bench")
        yield server.url("bench"), server.password
    finally:
        server.destroy()


def profile(folder: Path, upstream: str, state: str) -> Path:
    path = folder / "llmgw.toml"
    path.write_text(f"""\
[server]
log_bodies = true

[state]
{state}

[providers.up]
kind = "openai-compatible"
base_url = "{upstream}/v1"

[models.fast]
targets = ["up/bench-model"]

[prices]
"up/bench-model" = {{ input = 0.15, output = 0.60 }}
""")
    return path


def rows_sqlite(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0])


def rows_postgres(url: str, password: str) -> int:
    with psycopg.connect(url, password=password or None) as conn:
        count = conn.execute("SELECT COUNT(*) FROM requests").fetchone()
        conn.execute("TRUNCATE requests")
    return int(count[0]) if count else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3, help="runs per backend, alternating (default 3)")
    parser.add_argument("--pg-url", default=None, help="an empty PostgreSQL database (password: $PGPASSWORD)")
    parser.add_argument("--write", action="store_true", help=f"put the table under {HEADING!r} in RESULTS.md")
    args = parser.parse_args()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    load_before = os.getloadavg()[0]
    results: dict[str, list[float]] = {"SQLite": [], "PostgreSQL": []}
    lost: dict[str, int] = {"SQLite": 0, "PostgreSQL": 0}
    with tempfile.TemporaryDirectory(prefix="llmgw-logbench-") as tmp_dir, postgres(args.pg_url) as (url, pw):
        tmp = Path(tmp_dir)
        port = free_port()
        upstream = f"http://127.0.0.1:{port}"
        with launch([str(BIN / "python"), "-m", "llmgw.testing", "--port", str(port)], f"{upstream}/v1/models",
                    tmp / "upstream.log"):
            for round_ in range(args.rounds):
                for name in ("SQLite", "PostgreSQL"):
                    folder = tmp / f"{name}-{round_}"
                    folder.mkdir()
                    db = folder / "llmgw.db"
                    state = (f'url = "sqlite:///{db}"' if name == "SQLite" else
                             f'url = "{url}"\npassword = "env:BENCH_PG_PASSWORD"\ndir = "{folder}"')
                    serve_port = free_port()
                    cmd = [str(BIN / "llmgw"), "serve", "--profile", str(profile(folder, upstream, state)),
                           "--port", str(serve_port)]
                    with launch(cmd, f"http://127.0.0.1:{serve_port}/health", folder / "serve.log",
                                env={"BENCH_PG_PASSWORD": pw}):
                        cell = asyncio.run(run_cell(f"http://127.0.0.1:{serve_port}/v1/chat/completions",
                                                    stream=False, concurrency=args.concurrency,
                                                    duration_s=args.duration, warmup_s=args.warmup, model="fast"))
                    logged = rows_sqlite(db) if name == "SQLite" else rows_postgres(url, pw)
                    lost[name] += cell.sent - logged
                    results[name].append(cell.rps)
                    print(f"{name:10} round {round_ + 1}: {cell.rps:8,.0f} req/s, {cell.errors} errors,"
                          f" {cell.sent} sent, {logged} logged", file=sys.stderr)
    lite, pg = statistics.median(results["SQLite"]), statistics.median(results["PostgreSQL"])
    table = "\n".join([
        HEADING,
        "",
        f"`bench/log_backends.py`: `llmgw serve` (plain profile, one worker, bodies logged) at c={args.concurrency},"
        f" json, {args.duration:g} s per run after {args.warmup:g} s warm-up, {args.rounds} alternating runs per"
        " backend (median). PostgreSQL 15 runs on the same machine (a throwaway server, fsync off as in the tests).",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load_before:.2f} before the run.",
        "",
        "| request log | req/s (median) | runs | rows missing after SIGTERM |",
        "| --- | ---: | --- | ---: |",
        f"| SQLite | {lite:,.0f} | {', '.join(f'{r:,.0f}' for r in results['SQLite'])} | {lost['SQLite']} |",
        f"| PostgreSQL | {pg:,.0f} | {', '.join(f'{r:,.0f}' for r in results['PostgreSQL'])} |"
        f" {lost['PostgreSQL']} |",
        "",
        f"PostgreSQL / SQLite: {100 * pg / lite:.1f}% (target: within 10%).",
        "",
    ])
    print(table)
    if args.write:
        text = RESULTS.read_text(encoding="utf-8")
        if HEADING in text:   # replace the section (up to the next heading, if any)
            start = text.index(HEADING)
            after = text.find("\n## ", start + len(HEADING))
            rest = text[after + 1:] if after != -1 else ""
            text = text[:start].rstrip("\n") + "\n" + ("\n" + rest if rest else "")
        RESULTS.write_text(text.rstrip("\n") + "\n\n" + table, encoding="utf-8")
        print(f"written to {RESULTS.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
