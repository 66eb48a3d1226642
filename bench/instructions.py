"""Instructions per request: a steady measure for comparing two versions of the request path on a noisy machine.

``.venv/bin/python bench/instructions.py [--setup llmgw|key+limits|+guard+cache|forwarder] [--mode json|stream]
[--requests N]`` starts the mock upstream and the proxy (``llmgw serve`` with the benchmark's profile for that
configuration, or the raw forwarder) under callgrind with instrumentation off, warms it up, switches
instrumentation on (``callgrind_control -i on``) for N sequential requests on one kept-alive connection, and
prints the proxy's instructions per request, every thread included. The count repeats to about 1% between runs,
where requests per second on a shared 2-core VM move by 30%; it is a count, not a time (system calls and cache
misses are not in it, and valgrind runs orjson's vector code the slow way), so use it to compare versions with the
same ``--requests``, and ``run.py`` for the table. Needs ``valgrind`` (Debian: ``apt-get install valgrind``). To
measure another version of llmgw, put its source first on ``PYTHONPATH``. With ``KEEP_CALLGRIND=1`` the callgrind
output is kept and its path printed (``callgrind_annotate`` it to see the instructions by C function).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from load import chat_body
from run import BENCH_KEY, BIN, FULL, GOVERNED, PLAIN, free_port, llmgw_profile

SETUPS = {"llmgw": PLAIN, "key+limits": GOVERNED, "+guard+cache": FULL, "forwarder": PLAIN}


def post(connection: http.client.HTTPConnection, body: bytes, headers: dict[str, str]) -> None:
    """One request on a kept-alive connection, as clients of a gateway send them (no connection set-up counted)."""
    connection.request("POST", "/v1/chat/completions", body=body,
                       headers={"Content-Type": "application/json", **headers})
    answer = connection.getresponse()
    answer.read()
    if answer.status != 200:
        sys.exit(f"the proxy answered {answer.status}")


def wait_ready(url: str, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    sys.exit(f"{url} did not answer within {timeout_s:.0f}s")


def total_instructions(out: Path) -> int:
    report = subprocess.run(["callgrind_annotate", str(out)], capture_output=True, text=True, check=True).stdout
    for line in report.splitlines():
        if "PROGRAM TOTALS" in line:
            return int(line.split()[0].replace(",", ""))
    sys.exit(f"no totals in {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", choices=list(SETUPS), default="key+limits")
    parser.add_argument("--mode", choices=["json", "stream"], default="json")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: install valgrind")
    setup, stream = SETUPS[args.setup], args.mode == "stream"
    tmp = Path(tempfile.mkdtemp(prefix="llmgw-instructions-"))
    upstream_port, port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    if args.setup == "forwarder":
        proxy_cmd = [str(BIN / "python"), str(Path(__file__).with_name("forwarder.py")), "--port", str(port),
                     "--upstream", upstream]
    else:
        profile = llmgw_profile(upstream, tmp, port, setup)
        proxy_cmd = [str(BIN / "python"), str(BIN / "llmgw"), "serve", "--profile", str(profile), "--port", str(port)]
    out = tmp / "callgrind.out"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    mock = subprocess.Popen([str(BIN / "python"), "-m", "llmgw.testing", "--port", str(upstream_port)], **quiet)
    proxy = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                              *proxy_cmd], env=dict(os.environ), **quiet)
    headers = {"Authorization": f"Bearer {BENCH_KEY}"} if setup.governed else {}
    try:
        wait_ready(f"http://127.0.0.1:{port}/health")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for number in range(20):
            post(connection, chat_body("fast", stream, number), headers)
        time.sleep(1.0)
        subprocess.run(["callgrind_control", "-i", "on", str(proxy.pid)], check=True, **quiet)
        for number in range(args.requests):
            post(connection, chat_body("fast", stream, 1000 + number), headers)
        connection.close()
        time.sleep(1.5)   # the log's and the cache's writer threads finish their batches
        subprocess.run(["callgrind_control", "-i", "off", str(proxy.pid)], check=True, **quiet)
    finally:
        proxy.terminate()
        proxy.wait(60)
        mock.terminate()
        mock.wait(10)
    per_request = total_instructions(out) / args.requests
    print(f"{args.setup} {args.mode}: {per_request / 1000:,.0f} k instructions per request ({args.requests} requests)")
    if not os.environ.get("KEEP_CALLGRIND"):
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(out)


if __name__ == "__main__":
    main()
