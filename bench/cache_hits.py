"""Cache hits end to end: ``llmgw serve`` with a store of N entries in one partition, one client at a time.

    .venv/bin/python bench/cache_hits.py [--sizes 1000,100000] [--rounds 5]

For each size: starts ``llmgw serve`` (mock provider, exact and semantic cache on, packaged model), stores one
answer through it to learn the partition, fills the store with N entries (the first sentences of the labelled
pairs in ``tests/data/paraphrases/pairs.jsonl``, the rest filler prompts from a 28-word vocabulary, all embedded
with the packaged model), restarts the server (which rebuilds its index from the store), then sends, one at a
time: the stored prompt again (exact hits), the second sentences of the labelled pairs (semantic hits for
paraphrases; near-misses must not be answered with their pair's answer), and new prompts (misses, each stored).
Each stored answer says which prompt it was stored for, so a hit on a filler is told apart from a hit on the
pair. Prints p50/p99 latency as the client sees it and the hit counts. Not run in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

from llmgw.cache.embed import DEFAULT_MODEL, load_model2vec
from llmgw.cache.store import CacheEntry, CacheStore

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ROOT / "tests" / "data" / "paraphrases" / "pairs.jsonl"   # the set the threshold was chosen on
WORDS = tuple(str.split("reset password account admin console python list sort reverse capital france germany"
                        " order refund invoice billing address email phone dark mode git branch merge docker"
                        " install numpy pandas"))
SEED_PROMPT = "Reply with a short greeting for the cache benchmark."
SENTINEL = "zebra sentinel prompt for the cache benchmark"   # stored under the key the index reads last


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def profile(tmp: Path, port: int) -> Path:
    path = tmp / "llmgw.toml"
    path.write_text(f"""\
[server]
host = "127.0.0.1"
port = {port}

[state]
url = "sqlite:///{tmp / 'llmgw.db'}"

[providers.mock]
kind = "mock"

[models.fast]
targets = ["mock/mock-fast"]

[cache]
exact = true
semantic = true
max_mb = 4096
""")
    return path


def serve(config: Path, port: int, log: Path) -> tuple[subprocess.Popen[bytes], float]:
    """Start ``llmgw serve``; returns the process and the seconds until /health answered."""
    started = time.perf_counter()
    out = log.open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "llmgw", "serve", "--profile", str(config)],
                            stdout=out, stderr=subprocess.STDOUT, cwd=config.parent)
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"llmgw serve exited; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
                if b" 200 " in sock.recv(64):
                    return proc, time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


def fill(directory: Path, size: int, pairs: list[dict]) -> list[str]:
    """Fill the store with ``size`` entries in the seed's partition; returns the stored texts."""
    store = CacheStore(directory, max_mb=4096)
    [seed] = [e for e in (CacheEntry.from_dict(store.disk.get(k)) for k in store.disk.iterkeys()) if e]
    embedder = load_model2vec()
    name = f"model2vec:{DEFAULT_MODEL.name}"
    firsts = list(dict.fromkeys(p["a"] for p in pairs))
    rng = random.Random(7)
    fillers = [f"how do I {' '.join(rng.choices(WORDS, k=6))}" for _ in range(max(0, size - len(firsts)))]
    texts = [*firsts, *fillers, SENTINEL]
    now = time.time()
    with store.disk.transact():
        for start in range(0, len(texts), 4096):
            batch = texts[start:start + 4096]
            for text, vector in zip(batch, embedder.embed(batch), strict=True):
                key = "~sentinel" if text == SENTINEL else f"bench-{len(text)}-{abs(hash(text))}-{start}"
                answer = orjson.loads(orjson.dumps(seed.answer))
                answer["choices"][0]["message"]["content"] = text
                entry = CacheEntry(key, seed.partition, text, answer, seed.usage, seed.cost_usd, now,
                                   now + 86400, name, vector.tobytes())
                store.put(entry)    # the entry, and its journal record
    store.close()
    return texts


async def ask(session: aiohttp.ClientSession, url: str, text: str, *, store: bool = True) -> tuple[float, str, str]:
    """Latency (ms), the x-llmgw-cache header, and the answer's text."""
    body = orjson.dumps({"model": "fast", "messages": [{"role": "user", "content": text}]})
    headers = {"content-type": "application/json", **({} if store else {"x-llmgw-cache": "no-store"})}
    started = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as resp:
        raw = await resp.read()
        elapsed = (time.perf_counter() - started) * 1000
        assert resp.status == 200, resp.status
        return elapsed, resp.headers.get("x-llmgw-cache", ""), orjson.loads(raw)["choices"][0]["message"]["content"]


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def index_ready(port: int, timeout_s: float = 300.0) -> float:
    """Seconds until the server's semantic index holds the sentinel (the entry it reads last)."""
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        while time.perf_counter() - started < timeout_s:
            if (await ask(session, url, SENTINEL, store=False))[1] == "semantic":
                return time.perf_counter() - started
            await asyncio.sleep(0.1)
    raise SystemExit("the semantic index was not ready in time")


async def measure(port: int, pairs: list[dict], rounds: int) -> None:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    async with aiohttp.ClientSession() as session:
        for _ in range(50):
            await ask(session, url, SEED_PROMPT)
        await ask(session, url, "warm up the embedding model")   # loads the model (lazily, on first use)
        exact = [ms for ms, kind, _ in [await ask(session, url, SEED_PROMPT) for _ in range(500)] if kind == "hit"]
        semantic: list[float] = []
        hits = {True: 0, False: 0}
        others: list[str] = []
        for round_ in range(rounds):
            for pair in pairs:
                ms, kind, answer = await ask(session, url, pair["b"])
                if kind == "semantic":
                    semantic.append(ms)
                    if round_ == 0 and answer == pair["a"]:
                        hits[pair["same"]] += 1
                    elif round_ == 0:
                        others.append(f"{pair['b']!r} answered as {answer!r}")
        misses = [ms for ms, kind, _ in [await ask(session, url, f"new prompt {i} {time.time()}") for i in range(300)]
                  if kind == "miss"]
    same = sum(p["same"] for p in pairs)
    print(f"  exact hits     p50 {pct(exact, 50):.2f} ms  p99 {pct(exact, 99):.2f} ms  ({len(exact)} hits)")
    print(f"  semantic hits  p50 {pct(semantic, 50):.2f} ms  p99 {pct(semantic, 99):.2f} ms  ({len(semantic)} hits;"
          f" paraphrases answered as their pair {hits[True]}/{same}, near-misses {hits[False]}/{len(pairs) - same})")
    for line in others:
        print(f"    hit on another entry: {line}")
    print(f"  misses         p50 {pct(misses, 50):.2f} ms  p99 {pct(misses, 99):.2f} ms  (mock upstream, stored)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pairs = [orjson.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    os.environ.setdefault("PYTHONHASHSEED", "0")
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            port = free_port()
            config = profile(tmp, port)
            proc, _ = serve(config, port, tmp / "serve.log")
            asyncio.run(ask_once(port))
            stop(proc)
            filled = time.perf_counter()
            texts = fill(tmp / "cache", size, pairs)
            filled = time.perf_counter() - filled
            proc, ready_s = serve(config, port, tmp / "serve.log")
            try:
                indexed_s = asyncio.run(index_ready(port))
                print(f"{len(texts) + 1} entries (filled in {filled:.0f} s; server answering in {ready_s:.1f} s,"
                      f" semantic index rebuilt from the store {indexed_s:.1f} s later)")
                asyncio.run(measure(port, pairs, args.rounds))
            finally:
                stop(proc)


async def ask_once(port: int) -> None:
    async with aiohttp.ClientSession() as session:
        await ask(session, f"http://127.0.0.1:{port}/v1/chat/completions", SEED_PROMPT)


if __name__ == "__main__":
    main()
