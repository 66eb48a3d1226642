"""W3C Trace Context: what a traceparent header may be, and the sampling decision."""

from __future__ import annotations

import pytest

from llmgw.telemetry.context import (
    RequestTrace,
    clean_tracestate,
    format_traceparent,
    parse_traceparent,
    sampled_by_ratio,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def test_a_well_formed_traceparent_is_read() -> None:
    parent = parse_traceparent(f"00-{TRACE}-{SPAN}-01")
    assert parent is not None
    assert (parent.trace_id, parent.span_id, parent.sampled) == (int(TRACE, 16), int(SPAN, 16), True)
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-00").sampled is False  # type: ignore[union-attr]
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-03").sampled is True   # type: ignore[union-attr]
    # A later version: its first four fields, whatever follows a dash.
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-01-future-stuff") is not None
    assert format_traceparent(int(TRACE, 16), int(SPAN, 16), True) == f"00-{TRACE}-{SPAN}-01"


@pytest.mark.parametrize("value", [
    None, "", "garbage", f"00-{TRACE}-{SPAN}", f"00-{TRACE}-{SPAN}-01-extra", f"ff-{TRACE}-{SPAN}-01",
    f"00-{'0' * 32}-{SPAN}-01", f"00-{TRACE}-{'0' * 16}-01", f"00-{TRACE.upper()}-{SPAN}-01",
    f"00-{TRACE[:-1]}g-{SPAN}-01", f"00_{TRACE}_{SPAN}_01", f"01-{TRACE}-{SPAN}-01x",
    f"00-{TRACE}-{SPAN}-0z",
])
def test_a_malformed_traceparent_starts_a_new_trace(value: str | None) -> None:
    assert parse_traceparent(value) is None
    trace = RequestTrace.incoming(value, "vendor=1", 1.0)
    assert trace.parent is None and trace.sampled and trace.tracestate == ""   # no parent: its state is not kept
    assert trace.trace_id != int(TRACE, 16)


def test_tracestate_is_kept_only_when_short_and_printable() -> None:
    assert clean_tracestate("a=1,b=2") == "a=1,b=2"
    assert clean_tracestate("a=" + "x" * 600) == ""
    assert clean_tracestate("a=1\x00") == ""
    assert clean_tracestate("a=é") == ""


def test_each_attempt_has_its_own_span_and_keeps_it() -> None:
    trace = RequestTrace.incoming(f"00-{TRACE}-{SPAN}-01", None, 1.0)
    first = trace.attempt_traceparent(1)
    assert first == trace.attempt_traceparent(1)
    second = trace.attempt_traceparent(2)
    assert first != second and first.startswith(f"00-{TRACE}-") and second.endswith("-01")
    assert set(trace.attempt_spans) == {1, 2}
    assert trace.span_id not in trace.attempt_spans.values()


def test_sampling_by_ratio_follows_the_trace_id() -> None:
    assert sampled_by_ratio(123, 1.0)
    assert not sampled_by_ratio(1, 0.0)
    low, high = 1, (1 << 64) - 1
    assert sampled_by_ratio(low, 0.5) and not sampled_by_ratio(high, 0.5)
    decided = [RequestTrace.incoming(None, None, 0.25).sampled for _ in range(4000)]
    assert 700 < sum(decided) < 1300
