"""Closed-loop load generator: ``concurrency`` workers, each sending its next request as soon as the last ends.

A cell runs ``warmup_s`` unmeasured, then ``duration_s`` measured. A request counts in the cell when it *starts*
inside the measured window; throughput is those requests over the time from the window's start to the last one's
end. An error is any non-200 answer, a transport failure, or (for streams) a body that does not end with
``data: [DONE]``; errors count in ``errors`` and are never part of the latencies.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

PROMPT = "Reply with a short greeting of about ten words for the benchmark please."


def chat_body(model: str, stream: bool, number: int | None = None) -> bytes:
    """The request body; with ``number``, a prompt of the same size that no earlier request had (a cache miss)."""
    prompt = PROMPT if number is None else f"{PROMPT[:-12]} #{number:010d}"
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


@dataclass
class Cell:
    """What one (target, mode, concurrency) cell measured."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    sent: int = 0               # every request, warm-up included
    elapsed_s: float = 0.0
    first_error: str | None = None

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        if len(self.latencies_ms) == 1:
            return self.latencies_ms[0]
        return statistics.quantiles(self.latencies_ms, n=1000, method="inclusive")[round(q * 1000) - 1]

    def error(self, what: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = what


async def _one(session: aiohttp.ClientSession, url: str, body: bytes, stream: bool) -> str | None:
    """Send one request and read its whole answer; None when it succeeded, else what went wrong."""
    try:
        async with session.post(url, data=body) as resp:
            data = await resp.read()
            if resp.status != 200:
                return f"HTTP {resp.status}: {data[:200]!r}"
            if stream and not data.rstrip().endswith(b"data: [DONE]"):
                return f"stream did not end with [DONE]: ...{data[-200:]!r}"
            if not stream and b'"choices"' not in data:
                return f"answer without choices: {data[:200]!r}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def run_cell(url: str, *, stream: bool, concurrency: int, duration_s: float, warmup_s: float,
                   model: str, headers: dict[str, str] | None = None, unique: bool = False) -> Cell:
    """Drive ``url`` with ``concurrency`` closed-loop workers; see the module docstring. ``unique``: every request
    has a prompt no other request had (the cache's miss path)."""
    cell = Cell()
    body = chat_body(model, stream)
    numbers = itertools.count()
    offset = random.randrange(1_000_000_000)  # a new range each cell: no earlier cell's prompt comes again
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, headers=all_headers, timeout=timeout) as session:
        window = time.perf_counter() + warmup_s
        stop = window + duration_s
        last_end = window

        async def worker() -> None:
            nonlocal last_end
            while (started := time.perf_counter()) < stop:
                data = chat_body(model, stream, next(numbers) + offset) if unique else body
                problem = await _one(session, url, data, stream)
                ended = time.perf_counter()
                cell.sent += 1
                if started < window:
                    continue
                last_end = max(last_end, ended)
                if problem is None:
                    cell.latencies_ms.append((ended - started) * 1000.0)
                else:
                    cell.error(problem)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cell.elapsed_s = last_end - window
    return cell
