"""W3C Trace Context (``traceparent``/``tracestate``) and one request's trace: pure, no OpenTelemetry import.

Contract:
- :func:`parse_traceparent` accepts only a well-formed header (version ``00`` exactly 55 characters; a later version
  at least that, its first four fields read; version ``ff``, all-zero ids, upper-case or non-hex digits refused) and
  returns None for anything else: a bad header starts a new trace, it never fails a request.
- :func:`clean_tracestate` keeps a client's ``tracestate`` only when it is short (at most 512 characters) and
  printable ASCII; it is passed on unchanged, never parsed or added to.
- :class:`RequestTrace` is one request's trace: its trace id, the client's span (the parent, when it sent one), the
  server span's id, whether it is sampled (the client's flag when it continues a trace, else ``sample_ratio`` of
  the trace ids), and the span id of each upstream attempt, chosen when the attempt's HTTP request goes out
  (:meth:`RequestTrace.attempt_traceparent`) so the upstream's spans hang below the attempt's span.
- Ids come from the process's ``random`` generator (as OpenTelemetry's own id generator does): unique, not secret.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

_HEX = re.compile(r"[0-9a-f]+")
MAX_TRACESTATE = 512


@dataclass(frozen=True, slots=True)
class Parent:
    """The caller's span, from its ``traceparent``."""

    trace_id: int
    span_id: int
    sampled: bool


def parse_traceparent(value: str | None) -> Parent | None:
    """The span a ``traceparent`` header names, or None when it is absent or malformed (see the module contract)."""
    if not value:
        return None
    value = value.strip()
    if len(value) < 55 or value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    version, trace_hex, span_hex, flags = value[:2], value[3:35], value[36:52], value[53:55]
    if version == "ff" or (version == "00" and len(value) != 55) or (len(value) > 55 and value[55] != "-"):
        return None
    if not all(_HEX.fullmatch(part) for part in (version, trace_hex, span_hex, flags)):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return Parent(trace_id, span_id, bool(int(flags, 16) & 1))


def format_traceparent(trace_id: int, span_id: int, sampled: bool) -> str:
    """A version-00 ``traceparent`` header naming ``span_id`` of ``trace_id``."""
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"


def clean_tracestate(value: str | None) -> str:
    """The client's ``tracestate`` when it may be passed on as it is, else ``""``."""
    if not value or len(value) > MAX_TRACESTATE or not value.isascii() or not value.isprintable():
        return ""
    return value


def new_span_id() -> int:
    """A random, non-zero 64-bit span id."""
    return random.getrandbits(64) or 1


def new_trace_id() -> int:
    """A random, non-zero 128-bit trace id."""
    return random.getrandbits(128) or 1


def sampled_by_ratio(trace_id: int, ratio: float) -> bool:
    """OpenTelemetry's ``TraceIdRatioBased`` decision: the trace id's low 64 bits below ``ratio`` of their range,
    so every process sampling at the same ratio agrees on a trace."""
    if ratio >= 1.0:
        return True
    return (trace_id & 0xFFFF_FFFF_FFFF_FFFF) < int(ratio * (1 << 64))


@dataclass(slots=True)
class RequestTrace:
    """One request's trace (see the module contract). ``exchange`` is bound when the request reaches the pipeline;
    ``settled`` is set once its answer is done, after which no upstream request belongs to an attempt."""

    trace_id: int
    span_id: int
    sampled: bool
    parent: Parent | None = None
    tracestate: str = ""
    exchange: Any = None            # the llmgw.exchange.Exchange, once bound
    settled: bool = False
    attempt_spans: dict[int, int] = field(default_factory=dict)   # attempt number → its span id

    @classmethod
    def incoming(cls, traceparent: str | None, tracestate: str | None, sample_ratio: float) -> RequestTrace:
        """The trace of a request that came with these headers: the client's trace continued when its
        ``traceparent`` is well-formed, else a new one sampled at ``sample_ratio``."""
        parent = parse_traceparent(traceparent)
        if parent is not None:
            return cls(parent.trace_id, new_span_id(), parent.sampled, parent, clean_tracestate(tracestate))
        trace_id = new_trace_id()
        return cls(trace_id, new_span_id(), sampled_by_ratio(trace_id, sample_ratio))

    def attempt_traceparent(self, number: int) -> str:
        """The ``traceparent`` for attempt ``number``'s upstream request: its span (chosen on first use)."""
        span_id = self.attempt_spans.get(number)
        if span_id is None:
            span_id = self.attempt_spans[number] = new_span_id()
        return format_traceparent(self.trace_id, span_id, self.sampled)
