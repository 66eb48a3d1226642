"""Replaying logged requests against other targets, through the real server and pipeline (``llmgw replay``).

Contracts:
- :func:`select_by_ids` / :func:`select_recent` read the request log and return the chat requests that can be
  replayed (a stored client body, endpoint ``chat``) as :class:`Original` s, with one note per request or group
  of requests left out and why. :func:`select_recent` leaves out earlier replays (tag ``replay``).
- :func:`resolve_targets` turns each ``--against`` into a :class:`ReplayTarget`: an alias of the profile as it is,
  or a ``provider/model`` whose provider the profile has as a synthetic one-target alias named ``provider/model``.
  Anything else raises :class:`ReplayError` naming it.
- :func:`served_profile` is the profile the replays are served with: the user's own, plus the synthetic aliases,
  with the response cache off for every alias (a replay must ask the target, not the cache), and the request log
  at ``db`` when given. Limits, budgets, keys, guardrails and routing are the profile's own.
- :func:`run_replay` serves that profile in-process with the same ``make_app`` as ``llmgw serve`` on a free
  loopback port and sends every (original, target) pair to it over real HTTP, a few at a time, in the original
  client format, ``stream`` forced off, tagged ``replay``: replays are logged like live traffic. A failing target
  gives a :class:`ReplayResult` with its status and ``error``; it never raises for one pair.
- :func:`similarity` is a cheap deterministic text similarity in 0..1 (character trigram cosine).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from ..exchange import Usage
from ..formats import FORMATS
from ..formats.texts import content_text
from ..profile import ModelConfig, Profile, Target
from ..proxy.inprocess import serving
from ..store import log_read

REPLAY_TAG = "replay"
JSON_FIELDS = ("id", "target", "status", "output", "input_tokens", "output_tokens", "cost_usd", "latency_ms",
               "similarity", "error")
_PAGE = 200
_SPACE = re.compile(r"\s+")


class ReplayError(Exception):
    """A replay that cannot start (e.g. an unknown ``--against``); the message is one line for the user."""


@dataclass(frozen=True)
class Original:
    """A logged chat request that can be replayed, with what it got the first time."""

    id: str
    client_format: str            # the client's wire format (llmgw.formats): how it is sent again
    request: dict[str, Any]       # the client's body as logged
    alias: str
    target: str
    status: int
    output: str                   # the answer's text ("" when it failed or no answer was stored)
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: float

    @property
    def prompt(self) -> str:
        """The text of the last user message (what the section of the table is titled with)."""
        messages = self.request.get("messages")
        for message in reversed(messages if isinstance(messages, list) else []):
            if isinstance(message, dict) and message.get("role") == "user":
                return content_text(message.get("content"))
        return ""


@dataclass(frozen=True)
class ReplayTarget:
    """Where to replay: ``name`` as the user gave it, ``alias`` as the replay asks for it. ``synthetic`` is the
    one-target alias made for a ``provider/model`` that is not an alias of the profile."""

    name: str
    alias: str
    synthetic: ModelConfig | None = None


@dataclass(frozen=True)
class ReplayResult:
    """One (original request, target) pair. ``target`` is what answered (``x-llmgw-target``), else the target asked
    for; ``similarity`` is None when either answer is missing; ``error`` is None on success."""

    id: str
    target: str
    status: int
    output: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: float
    similarity: float | None
    error: str | None = None
    against: str = ""             # the --against it answers (not in the JSON contract)
    replay_id: str = ""           # the replay's own request id in the log (not in the JSON contract)

    def as_dict(self) -> dict[str, Any]:
        """The stable JSON object: exactly :data:`JSON_FIELDS`."""
        return {name: getattr(self, name) for name in JSON_FIELDS}


@dataclass(frozen=True)
class Selection:
    """The requests to replay, newest first, and one line per request (or group) left out."""

    originals: list[Original]
    notes: list[str]


# --- texts ------------------------------------------------------------------------------------------------------


def answer_text(body: Any) -> str:
    """The answer's text, in whichever client format it is (each format recognises its own answers); tool calls
    are written as ``name(arguments)`` so that they compare too. "" for an error body or anything unrecognised."""
    for wire in FORMATS.values():
        text = wire.answer_text(body)
        if text is not None:
            return text
    return ""


def answer_usage(body: Any) -> Usage:
    """Token usage of an answer in any client format, normalised as the gateway meters it."""
    for wire in FORMATS.values():
        usage = wire.answer_usage(body)
        if usage is not None:
            return usage
    return Usage()


def error_text(body: Any) -> str:
    """The message of an OpenAI or Anthropic error body (both keep it in ``error.message``); "" if none."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or "")
    return str(error or "")


def _normalise(text: str) -> str:
    return _SPACE.sub(" ", text.lower()).strip()


def _trigrams(text: str) -> Counter[str]:
    if len(text) < 3:
        return Counter([text]) if text else Counter()
    return Counter(text[i:i + 3] for i in range(len(text) - 2))


def similarity(a: str, b: str) -> float:
    """Cosine similarity of the character-trigram counts of ``a`` and ``b``, after lower-casing and collapsing
    whitespace; in 0..1, rounded to 3 places.

    It measures surface overlap (shared wording), not meaning: identical texts score 1.0, texts sharing no three
    consecutive characters 0.0, a paraphrase somewhere between. Deterministic and dependency-free; two empty
    texts score 1.0 and one empty text 0.0. An embedding model (the semantic cache's) may replace it later.
    """
    left, right = _trigrams(_normalise(a)), _trigrams(_normalise(b))
    if not left or not right:
        return 1.0 if not left and not right else 0.0
    dot = sum(count * right[gram] for gram, count in left.items())
    norm = math.sqrt(sum(c * c for c in left.values())) * math.sqrt(sum(c * c for c in right.values()))
    return round(min(1.0, dot / norm), 3)


def shorten(text: str, width: int = 80) -> str:
    """``text`` on one line (whitespace collapsed), cut to at most ``width`` characters ending in an ellipsis."""
    flat = _SPACE.sub(" ", text).strip()
    return flat if len(flat) <= width else flat[: max(0, width - 1)].rstrip() + "…"


# --- selecting --------------------------------------------------------------------------------------------------


def _original(record: dict[str, Any]) -> Original:
    return Original(
        id=record["id"], client_format=record["client_format"], request=record["request"], alias=record["alias"],
        target=record["target"], status=record["status"], output=answer_text(record["response"]),
        input_tokens=record["input_tokens"], output_tokens=record["output_tokens"], cost_usd=record["cost_usd"],
        latency_ms=record["latency_ms"])


def _why_not(record: dict[str, Any]) -> str | None:
    """Why a logged request cannot be replayed, or None if it can."""
    if record["endpoint"] != "chat":
        return f"{record['endpoint']} request; only chat requests are replayed"
    if record["client_format"] not in FORMATS:
        return f"client format {record['client_format']!r} cannot be replayed"
    if not isinstance(record["request"], dict):
        return "no stored request body (server.log_bodies = false)"
    return None


def select_by_ids(db: sqlite3.Connection, ids: Sequence[str]) -> Selection:
    """The requests named by ``ids`` (full ids or unique prefixes), in the order given, each at most once."""
    originals: list[Original] = []
    notes: list[str] = []
    for request_id in dict.fromkeys(ids):
        row = log_read.find(db, request_id)
        if row is None:
            notes.append(f"{request_id}: no logged request with this id (or the prefix is ambiguous)")
            continue
        record = log_read.record_from_row(row, bodies=True)
        why = _why_not(record)
        if why is not None:
            notes.append(f"{record['id']}: skipped, {why}")
        elif all(o.id != record["id"] for o in originals):
            originals.append(_original(record))
    return Selection(originals, notes)


def _newest_rows(db: sqlite3.Connection, since: float | None, model: str | None) -> Iterator[sqlite3.Row]:
    """Every matching row, newest first, read a page at a time (``query`` pages by time: each page ends before the
    oldest row of the last one)."""
    until: float | None = None
    while True:
        rows = log_read.query(db, since=since, until=until, model=model, limit=_PAGE)
        yield from rows
        if len(rows) < _PAGE:
            return
        until = rows[-1]["time"]


def select_recent(db: sqlite3.Connection, *, since: float | None = None, model: str | None = None,
                  limit: int = 20) -> Selection:
    """The ``limit`` newest replayable chat requests since ``since`` whose alias or target is ``model``. Earlier
    replays and non-chat requests are passed over silently; requests logged without bodies are counted in a note."""
    originals: list[Original] = []
    bodiless = 0
    for row in _newest_rows(db, since, model):
        if len(originals) >= limit:
            break
        if row["endpoint"] != "chat" or REPLAY_TAG in orjson.loads(row["tags"]):
            continue
        record = log_read.record_from_row(row, bodies=True)
        if _why_not(record) is None:
            originals.append(_original(record))
        else:
            bodiless += 1
    notes = [f"skipped {bodiless} request(s) logged without a body (server.log_bodies = false)"] if bodiless else []
    return Selection(originals, notes)


# --- targets and the served profile -----------------------------------------------------------------------------


def resolve_target(profile: Profile, name: str) -> ReplayTarget:
    """An alias of ``profile`` as it is; a ``provider/model`` of a known provider as a synthetic alias of that
    name (response cache off); anything else raises :class:`ReplayError` naming ``name``."""
    if name in profile.models:
        return ReplayTarget(name, name)
    provider, _, model = name.partition("/")
    if provider in profile.providers and model:
        config = ModelConfig(alias=name, targets=(Target(provider, model),), cache=False)
        return ReplayTarget(name, name, config)
    aliases = ", ".join(profile.models) or "none"
    providers = ", ".join(profile.providers) or "none"
    raise ReplayError(f"--against {name!r} is neither an alias of {profile.source} (aliases: {aliases}) nor"
                      f" provider/model with a known provider (providers: {providers})")


def resolve_targets(profile: Profile, names: Sequence[str]) -> list[ReplayTarget]:
    """:func:`resolve_target` for each name, duplicates dropped, order kept."""
    return [resolve_target(profile, name) for name in dict.fromkeys(names)]


def served_profile(profile: Profile, targets: Sequence[ReplayTarget], db: Path | None = None) -> Profile:
    """The profile the replays go through: see the module docstring."""
    models = {alias: dataclasses.replace(model, cache=False) for alias, model in profile.models.items()}
    models.update({t.alias: t.synthetic for t in targets if t.synthetic is not None})
    state = profile.state if db is None else dataclasses.replace(profile.state, url=f"sqlite:///{db}")
    return dataclasses.replace(profile, models=models, state=state)


# --- sending ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayRequest:
    """One HTTP request to the served gateway."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]


def replay_request(original: Original, target: ReplayTarget, key: str | None) -> ReplayRequest:
    """The replay of ``original`` at ``target``: the client's body sent to the alias unstreamed, in its own client
    format (:meth:`~llmgw.formats.base.WireFormat.replay_call`), tagged ``replay``, with ``key`` (if any) as a
    bearer token."""
    wire = FORMATS[original.client_format]
    path, body = wire.replay_call(original.request, target.alias)
    headers = {"x-llmgw-tags": REPLAY_TAG, **wire.replay_headers}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return ReplayRequest(path, body, headers)


def _failed(original: Original, target: ReplayTarget, answered: str, status: int, error: str, latency_ms: float,
            replay_id: str = "") -> ReplayResult:
    """A replay that got no answer: no output, tokens, cost or similarity."""
    return ReplayResult(original.id, answered, status, "", 0, 0, 0.0, round(latency_ms, 1), None, error,
                        target.name, replay_id)


def _result(original: Original, target: ReplayTarget, status: int, payload: Any, headers: Mapping[str, str],
            latency_ms: float) -> ReplayResult:
    """What the gateway answered, read from its body (text, usage) and ``x-llmgw-*`` headers (target, cost)."""
    answered = headers.get("x-llmgw-target") or target.name
    replay_id = headers.get("x-llmgw-request-id") or ""
    if status != 200:
        return _failed(original, target, answered, status, error_text(payload) or f"HTTP {status}", latency_ms,
                       replay_id)
    output = answer_text(payload)
    usage = answer_usage(payload)
    try:
        cost = float(headers.get("x-llmgw-cost-usd") or 0.0)
    except ValueError:
        cost = 0.0
    score = similarity(original.output, output) if original.output else None
    return ReplayResult(original.id, answered, status, output, usage.input_tokens, usage.output_tokens, cost,
                        round(latency_ms, 1), score, None, target.name, replay_id)


async def replay_one(session: aiohttp.ClientSession, base_url: str, original: Original, target: ReplayTarget,
                     key: str | None) -> ReplayResult:
    """Send one replay and describe what came back; a transport failure is a result with status 0."""
    request = replay_request(original, target, key)
    started = time.perf_counter()
    try:
        async with session.post(base_url + request.path, json=request.body, headers=request.headers) as resp:
            try:
                payload = await resp.json(content_type=None)
            except ValueError:
                payload = None
            latency = (time.perf_counter() - started) * 1000.0
            return _result(original, target, resp.status, payload, resp.headers, latency)
    except (aiohttp.ClientError, TimeoutError) as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return _failed(original, target, target.name, 0, error, (time.perf_counter() - started) * 1000.0)


async def run_replay(profile: Profile, originals: Sequence[Original], targets: Sequence[ReplayTarget], *,
                     key: str | None = None, concurrency: int = 4,
                     on_result: Callable[[ReplayResult], None] | None = None) -> list[ReplayResult]:
    """Replay every original at every target through ``profile`` served in-process (pass it through
    :func:`served_profile` first), at most ``concurrency`` at a time. Results come back in (original, target)
    order; ``on_result`` is called as each one arrives."""
    gate = asyncio.Semaphore(max(1, concurrency))
    timeout = aiohttp.ClientTimeout(total=profile.server.timeout_s + 5)

    async def one(session: aiohttp.ClientSession, base_url: str, original: Original,
                  target: ReplayTarget) -> ReplayResult:
        async with gate:
            result = await replay_one(session, base_url, original, target, key)
        if on_result is not None:
            on_result(result)
        return result

    async with serving(profile) as base_url, aiohttp.ClientSession(timeout=timeout) as session:
        return list(await asyncio.gather(*(one(session, base_url, o, t) for o in originals for t in targets)))
