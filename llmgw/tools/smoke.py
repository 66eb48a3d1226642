"""Smoke tests of routing: one small request through every alias, through the real server and pipeline.

Contract (:func:`run_smoke`):
- The profile is served in-process on a free loopback port by the same ``make_app`` as ``llmgw serve``, with its
  request log in a temporary folder (smoke traffic never mixes with the real log) and requests tagged ``smoke``.
- ``offline`` swaps every provider for the built-in mock under the same name, so routing is exactly the profile's
  and nothing leaves the machine or costs money.
- ``fail_targets`` (``provider/model``) are made to fail without being called, to prove that fallbacks take over.
- An alias passes when it answered 200 from a target that was not made to fail.
- Each result says who answered (``target``, empty when nobody did) and who failed before (``failed``: every
  attempt that did not answer, in order, from the request's row in the smoke log), so a failed alias never
  reads as answered.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from ..profile import Profile, ProviderConfig, StateConfig
from ..providers.spec import OFFLINE_KIND
from ..proxy.inprocess import serving

PROMPT = "llmgw smoke test: reply with OK."


@dataclass
class SmokeResult:
    """One alias's probe: ``target`` answered it (``""`` when nobody did); ``failed`` lists the targets whose
    attempts did not answer, in the order they were tried."""

    alias: str
    ok: bool
    status: int
    target: str
    attempts: int
    latency_ms: float
    message: str
    fallback: bool  # a target that was made to fail was passed over
    failed: list[str] = field(default_factory=list)
    request_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def offline_profile(profile: Profile, state_dir: Path) -> Profile:
    """The same routing with every provider replaced by the mock, and the log in ``state_dir``."""
    mocks = {name: ProviderConfig(name=name, kind=OFFLINE_KIND) for name in profile.providers}
    return dataclasses.replace(profile, providers=mocks, state=StateConfig(url=f"sqlite:///{state_dir}/smoke.db"))


def _is_embedding_alias(profile: Profile, alias: str) -> bool:
    return any("embed" in t.model.lower() for t in profile.models[alias].targets)


async def _probe(session: aiohttp.ClientSession, url: str, profile: Profile, alias: str,
                 fail_targets: Collection[str]) -> SmokeResult:
    embeddings = _is_embedding_alias(profile, alias)
    path, body = ("/v1/embeddings", {"model": alias, "input": PROMPT}) if embeddings else (
        "/v1/chat/completions", {"model": alias, "max_tokens": 16, "messages": [{"role": "user", "content": PROMPT}]})
    started = time.perf_counter()
    async with session.post(url + path, json=body, headers={"x-llmgw-tags": "smoke"}) as resp:
        payload = await resp.json(content_type=None)
        latency = (time.perf_counter() - started) * 1000.0
        target = resp.headers.get("x-llmgw-target", "")
        attempts = int(resp.headers.get("x-llmgw-attempts", "0") or 0)
        request_id = resp.headers.get("x-llmgw-request-id", "")
    failed_over = any(t.name in fail_targets for t in profile.models[alias].targets)
    if resp.status != 200:
        message = (payload.get("error") or {}).get("message", "") if isinstance(payload, dict) else str(payload)
        return SmokeResult(alias, False, resp.status, "", attempts, latency, message, failed_over,
                           request_id=request_id)
    if target in fail_targets:
        return SmokeResult(alias, False, resp.status, target, attempts, latency,
                           f"{target} answered although it was made to fail", failed_over, request_id=request_id)
    return SmokeResult(alias, True, resp.status, target, attempts, latency,
                       f"answered by {target}" + (" after fallback" if attempts > 1 else ""), failed_over,
                       request_id=request_id)


def failed_attempts(db_path: Path, request_ids: Collection[str]) -> dict[str, list[str]]:
    """For each request id, the targets of its attempts that did not answer, in order (from the request log)."""
    if not db_path.exists() or not request_ids:
        return {}
    out: dict[str, list[str]] = {}
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        marks = ", ".join("?" * len(request_ids))
        for request_id, attempts in db.execute(f"SELECT id, attempts_json FROM requests WHERE id IN ({marks})",
                                               list(request_ids)):
            out[request_id] = [str(a.get("target") or "?") for a in orjson.loads(attempts or "[]")
                               if isinstance(a, dict) and (a.get("error") or not 200 <= (a.get("status") or 0) < 300)]
    return out


async def run_smoke(profile: Profile, *, offline: bool = False,
                    fail_targets: Collection[str] = ()) -> list[SmokeResult]:
    """Probe every alias of ``profile``; see the module docstring."""
    with tempfile.TemporaryDirectory(prefix="llmgw-smoke-") as tmp:
        state = Path(tmp)
        served = offline_profile(profile, state) if offline else dataclasses.replace(
            profile, state=StateConfig(url=f"sqlite:///{state}/smoke.db"))
        async with serving(served, fail_targets=fail_targets) as url, aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=profile.server.timeout_s + 5)) as session:
            results = [await _probe(session, url, served, alias, fail_targets) for alias in served.models]
        # the server has stopped: its log is flushed
        failed = failed_attempts(served.state.db_path, [r.request_id for r in results if r.request_id])
    for result in results:
        result.failed = failed.get(result.request_id, [])
    return results


def junit_xml(results: list[SmokeResult], suite: str = "llmgw smoke") -> str:
    """JUnit XML as CI systems read it: one test case per alias."""
    failures = sum(not r.ok for r in results)
    root = ET.Element("testsuite", name=suite, tests=str(len(results)), failures=str(failures), errors="0",
                      time=f"{sum(r.latency_ms for r in results) / 1000:.3f}")
    for r in results:
        case = ET.SubElement(root, "testcase", classname="llmgw.smoke", name=r.alias,
                             time=f"{r.latency_ms / 1000:.3f}")
        if not r.ok:
            failure = ET.SubElement(case, "failure", message=r.message, type=f"HTTP {r.status}")
            failure.text = (f"alias {r.alias}: status {r.status}, answered by {r.target or 'nobody'}, failed:"
                            f" {', '.join(r.failed) or '-'}, attempts {r.attempts}")
        out = ET.SubElement(case, "system-out")
        out.text = f"target={r.target} attempts={r.attempts} status={r.status} fallback={r.fallback}"
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
