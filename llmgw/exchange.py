"""The one object that carries a request through its life, and the small value types it holds.

An :class:`Exchange` is created by the server from an HTTP request, passed through every pipeline stage, answered
by a provider adapter, rendered in the client's format, and finally turned into one request-log row
(:meth:`Exchange.log_row`). Stages communicate only through it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import GatewayError
from .profile import ModelConfig, Target

if TYPE_CHECKING:
    from .providers.base import UpstreamFailure

MAX_SANE_TOKENS = 100_000_000
"""More tokens than any one request can use (no model reads or writes a hundred million): a count above it is
nonsense from an upstream, like a negative one."""

CANONICAL = "openai"
"""The name of the canonical wire format (OpenAI Chat Completions): the form requests and answers take inside the
gateway whenever they are not passed through in the client's own format."""


def new_request_id() -> str:
    """A unique, time-ordered request id: ``req_`` + the time in milliseconds (12 hex digits) + 12 random hex
    digits. Ids sort by arrival, so the log's primary-key index grows at its end instead of at random places.
    The random part comes from the process's ``random`` generator (seeded from the OS in every process): ids must
    be unique, not secret, and this costs no system call."""
    return f"req_{int(time.time() * 1000):012x}{random.getrandbits(48):012x}"


@dataclass(slots=True)
class Usage:
    """Token usage normalised once, at the adapter edge.

    ``input_tokens`` counts every prompt token, cached ones included; ``cached_tokens`` is the part read from
    the provider's prompt cache, ``cache_write_tokens`` the part written to it, and ``cache_write_1h_tokens`` the
    part of those written with a 1-hour lifetime (Anthropic; priced apart). ``reasoning_tokens`` is the part of
    ``output_tokens`` spent on hidden reasoning, where reported.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> Usage:
        """Read OpenAI's ``usage`` object (``prompt_tokens``, ``completion_tokens`` and their details)."""
        if not usage:
            return cls()
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(prompt_details.get("cached_tokens") or 0),
            reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
        )

    def clamp(self) -> list[str]:
        """Make every count sane in place and say what was not: a count that is not a whole number, is negative or
        is above :data:`MAX_SANE_TOKENS` becomes 0 (unknown: the meter estimates it); the cached and cache-written
        parts are cut to ``input_tokens`` and the reasoning part to ``output_tokens``. Returns one line per fix
        (empty when the usage was sane)."""
        i, o, c, w, r, h = (self.input_tokens, self.output_tokens, self.cached_tokens, self.cache_write_tokens,
                            self.reasoning_tokens, self.cache_write_1h_tokens)
        if type(i) is type(o) is type(c) is type(w) is type(r) is type(h) is int and c >= 0 and w >= 0 \
                and c + w <= i <= MAX_SANE_TOKENS and 0 <= h <= w and 0 <= r <= o <= MAX_SANE_TOKENS:
            return []   # the usual case: every count whole, in range and consistent
        return self.clamp_each()

    def clamp_each(self) -> list[str]:
        """:meth:`clamp` without its quick check for the usual case: count by count."""
        problems: list[str] = []
        for name in ("input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens",
                     "cache_write_1h_tokens"):
            value = getattr(self, name)
            if type(value) is int and 0 <= value <= MAX_SANE_TOKENS:   # the usual case: nothing to fix
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    (isinstance(value, float) and not (math.isfinite(value) and value.is_integer())):
                problems.append(f"{name}={value!r} is not a whole number")
                setattr(self, name, 0)
            elif not 0 <= value <= MAX_SANE_TOKENS:
                problems.append(f"{name}={value!r} is out of range")
                setattr(self, name, 0)
            else:
                setattr(self, name, int(value))
        if self.cached_tokens + self.cache_write_tokens > self.input_tokens:
            problems.append(f"cached_tokens={self.cached_tokens} and cache_write_tokens={self.cache_write_tokens}"
                            f" exceed input_tokens={self.input_tokens}")
            self.cached_tokens = min(self.cached_tokens, self.input_tokens)
            self.cache_write_tokens = min(self.cache_write_tokens, self.input_tokens - self.cached_tokens)
        if self.cache_write_1h_tokens > self.cache_write_tokens:
            problems.append(f"cache_write_1h_tokens={self.cache_write_1h_tokens} exceed"
                            f" cache_write_tokens={self.cache_write_tokens}")
            self.cache_write_1h_tokens = self.cache_write_tokens
        if self.reasoning_tokens > self.output_tokens:
            problems.append(f"reasoning_tokens={self.reasoning_tokens} exceed output_tokens={self.output_tokens}")
            self.reasoning_tokens = self.output_tokens
        return problems

    def to_openai(self) -> dict[str, Any]:
        """Render as OpenAI's ``usage`` object."""
        out: dict[str, Any] = {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        }
        if self.cached_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.reasoning_tokens:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return out


@dataclass(slots=True)
class Attempt:
    """One try of one target: ``status`` is the upstream's HTTP status, or 0 when no answer came. ``ended`` is the
    ``perf_counter()`` time it was recorded, at its end (it began ``latency_ms`` before; traces place it so)."""

    number: int
    target: str
    status: int
    latency_ms: float
    error: str | None = None
    ended: float = field(default_factory=time.perf_counter)

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.number, "target": self.target, "status": self.status,
                "latency_ms": round(self.latency_ms, 3), "error": self.error}


@dataclass(slots=True)
class UpstreamReply:
    """A whole (non-streamed) answer.

    ``body`` is in the wire format named ``format``: the canonical form unless an adapter passed a same-format
    answer through untouched (an Anthropic client on an Anthropic upstream gets Anthropic's own answer).
    ``raw`` is the upstream's own bytes of ``body`` when they can be forwarded as they are. ``usage`` is
    normalised by the adapter.
    """

    body: dict[str, Any]
    raw: bytes | None = None
    usage: Usage | None = None
    format: str = CANONICAL


@dataclass(slots=True)
class StreamEvent:
    """One streamed event.

    ``data`` is the event in the wire format named ``format`` (canonical: a ``chat.completion.chunk``); ``raw`` is
    the complete SSE event (``data: …\n\n``, with its ``event:`` line where the format has one) when it can be
    written to a client of that format unchanged. ``usage`` is the answer's usage so far, set by the adapter on
    the events that report it. ``flush`` is False on all but the last event decoded from one upstream read.
    """

    data: dict[str, Any]
    raw: bytes | None = None
    usage: Usage | None = None
    format: str = CANONICAL
    flush: bool = True      # False: more events from the same upstream read follow; write them together


@dataclass(slots=True)
class Exchange:
    """Everything known about one request, from arrival to its log row. Stages keep their per-request state here
    and nowhere else: ``reservation`` (limits), ``guard`` (guardrails), ``cache_lookup`` (cache)."""

    client_format: str                     # the name of the client's wire format (llmgw.formats)
    endpoint: str                          # "chat" | "embeddings" | "count_tokens"
    id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.perf_counter)
    time: float = field(default_factory=time.time)
    deadline: float = float("inf")         # perf_counter() time by which the whole request must be answered
    body: dict[str, Any] = field(default_factory=dict)        # canonical (OpenAI Chat Completions) request
    client_body: dict[str, Any] = field(default_factory=dict) # the request as the client sent it
    raw_body: bytes = b""
    raw_keys: int | None = None            # object keys in raw_body as it was parsed (None: not counted)
    alias: str = ""
    stream: bool = False
    include_usage: bool = False            # the client asked for a usage chunk in its stream
    key_id: str = ""
    team: str = ""
    credential: str | None = field(default=None, repr=False)  # the key the client presented; never logged
    principal: Any = None                  # the key record the credential resolved to (llmgw.store.keys)
    tags: tuple[str, ...] = ()
    cache_control: str = ""                # x-llmgw-cache / Cache-Control request headers: no-cache, no-store
    model: ModelConfig | None = None
    target: Target | None = None
    attempts: list[Attempt] = field(default_factory=list)
    reply: UpstreamReply | None = None
    first_event: StreamEvent | None = None         # a stream's first event, held back until routing is done
    events: AsyncIterator[StreamEvent] | None = None  # the rest of the stream
    # Set by the stage that opened the stream (the router): a mid-stream failure of ``events`` with its upstream
    # text scrubbed, before anything records it; None: nothing to scrub (a stream from the cache).
    scrub_stream_failure: Callable[[UpstreamFailure], UpstreamFailure] | None = None
    error: GatewayError | None = None
    status: int = 200
    outcome: str = ""                      # "" while running; "ok", "error", "client_disconnect"
    usage: Usage = field(default_factory=Usage)
    usage_estimated: bool = False          # some of ``usage`` was estimated (no usage, or nonsense, reported)
    cost_usd: float = 0.0
    cost_breakdown: dict[str, float] = field(default_factory=dict)  # cost_usd by token type (input, output, …)
    unpriced: bool = False                 # the target's model has no price: cost_usd is 0 because it is unknown
    saved_usd: float = 0.0                 # what a cache hit would have cost (the cached answer's own cost)
    cache: str = "miss"
    ttft_ms: float | None = None
    latency_ms: float = 0.0
    upstream_ms: float = 0.0               # time spent waiting on upstreams (attempts, backoff, stream events)
    streamed_text: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    delivered: bool = False                # the client has had the whole answer (written whole, or its stream's end)
    dropped_params: list[str] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)  # guardrail findings (never the raw values)
    translation_dropped: list[str] = field(default_factory=list)  # hints lost if the target speaks another format
    translation_error: GatewayError | None = None  # raised for targets that need the (untranslatable) canonical form
    forward_headers: dict[str, str] = field(default_factory=dict)  # client headers kept for same-format upstreams
    route_params: dict[str, str] = field(default_factory=dict)     # the route's path parameters (e.g. the model)
    log_bodies: bool = True
    priced: bool = False                   # cost_usd is final (computed once, by the meter)
    reservation: Any = None                # the limits stage's hold on rate windows and budgets
    guard: Any = None                      # the guardrail stage's state (placeholders, response scan)
    cache_lookup: Any = None               # the cache stage's keys and directives for this request
    story: list[dict[str, Any]] = field(default_factory=list)  # the decisions taken, in order (see note())

    def note(self, stage: str, event: str, **facts: Any) -> None:
        """Record one decision a stage took (``llmgw why`` tells the story): ``stage`` names the stage
        (``auth``, ``limits``, ``guardrails``, ``cache``, ``route``, ``meter``, …), ``event`` what happened
        (``allowed``, ``refused``, ``hit``, ``fallback``, …), ``facts`` JSON-ready details. Never a secret or
        a raw guarded value."""
        microseconds = int((time.perf_counter() - self.started) * 1_000_000.0 + 0.5)   # cheaper than round(x, 3)
        self.story.append({"stage": stage, "event": event, "ms": microseconds / 1000, **facts})

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

    def overhead_ms(self) -> float:
        """Time spent in the gateway itself so far: everything but waiting on upstreams."""
        return max(0.0, self.elapsed_ms() - self.upstream_ms)

    def mark_first_token(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = self.elapsed_ms()

    def client_gone(self) -> None:
        """The client hung up: record it, and the output tokens it actually received when the upstream had not
        reported as many yet (estimated from the streamed text). A client that already had the whole answer
        (``delivered``) did not cut it short: only the estimate applies."""
        if not self.delivered:
            self.outcome = "client_disconnect"
            self.status = 499
        self.estimate_partial_usage()

    def streamed_tokens(self) -> int:
        """The output streamed so far, estimated at about four characters a token."""
        return -(-sum(len(t) for t in self.streamed_text) // 4)

    def estimate_partial_usage(self) -> None:
        """A stream cut short has not reported its final usage: the output is at least what was streamed (about
        four characters a token); an estimate that exceeds the reported count replaces it (``usage_estimated``)."""
        streamed = self.streamed_tokens() if self.streamed_text else 0
        if streamed > self.usage.output_tokens:
            self.usage.output_tokens = streamed
            self.usage_estimated = True

    def estimated_input_tokens(self) -> int:
        """A local estimate of the prompt's tokens: the client's body at about four bytes a token (what budgets and
        tpm reserve, and what is billed when the upstream reports no usage)."""
        size = len(self.raw_body) if self.raw_body else len(repr(self.client_body or self.body))
        return max(1, size // 4)

    def fail(self, error: GatewayError) -> None:
        """Record the error the client will get."""
        self.error = error
        self.status = error.status

    def response_body_for_log(self) -> dict[str, Any] | bytes | None:
        """What the upstream answered, for the log: the reply (its own bytes when kept), or the stream
        reassembled."""
        if self.reply is not None:
            return self.reply.raw if self.reply.raw is not None else self.reply.body
        if self.stream and (self.streamed_text or self.finish_reason):
            return {"object": "chat.completion", "streamed": True,
                    "choices": [{"index": 0, "finish_reason": self.finish_reason,
                                 "message": {"role": "assistant", "content": "".join(self.streamed_text)}}],
                    "usage": self.usage.to_openai()}
        if self.error is not None:
            return {"error": self.error.as_dict()}
        return None

    def log_row(self) -> dict[str, Any]:
        """The request-log row for this exchange (see :mod:`llmgw.store.log` for the columns). Bodies are JSON
        values or, where the exchange kept them, the JSON bytes as they came (serialised later, off the loop)."""
        target = self.target
        return {
            "id": self.id,
            "time": self.time,
            "client_format": self.client_format,
            "endpoint": self.endpoint,
            "alias": self.alias,
            "provider": target.provider if target else "",
            "target": target.name if target else "",
            "status": self.status,
            "outcome": self.outcome or ("ok" if self.error is None else "error"),
            "error": self.error.code if self.error is not None else None,
            "error_message": self.error.message if self.error is not None else None,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cached_tokens": self.usage.cached_tokens,
            "cache_write_tokens": self.usage.cache_write_tokens,
            "reasoning_tokens": self.usage.reasoning_tokens,
            "cost_usd": self.cost_usd,
            "cost_breakdown": self.cost_breakdown,
            "unpriced": self.unpriced,
            "story": self.story,
            "saved_usd": self.saved_usd,
            "usage_estimated": self.usage_estimated,
            "latency_ms": round(self.latency_ms, 3),
            "overhead_ms": round(max(0.0, self.latency_ms - self.upstream_ms), 3),
            "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 3),
            "attempts": [a.as_dict() for a in self.attempts],
            "cache": self.cache,
            "key": self.key_id,
            "team": self.team,
            "tags": list(self.tags),
            "stream": self.stream,
            "dropped_params": list(self.dropped_params),
            "findings": list(self.findings),
            "request": (self.raw_body or self.client_body or self.body or None) if self.log_bodies else None,
            "response": self.response_body_for_log() if self.log_bodies else None,
        }
