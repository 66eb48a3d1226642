"""The TUI's pure parts: the feed (bounds, pause, filter), redaction, and what a record renders as."""

from __future__ import annotations

from llmgw.tui.feed import Feed, matches
from llmgw.tui.redact import MASK, redact
from llmgw.tui.render import COLUMNS, TimeCell, detail, row_cells

from .support import record, text_of


def test_take_returns_what_arrived_oldest_first_once() -> None:
    feed = Feed()
    feed.receive(record(1))
    feed.receive(record(2))
    assert [e.record["id"] for e in feed.take()] == ["req_1", "req_2"]
    assert feed.take() == []
    assert [e.record["id"] for e in feed.matching()] == ["req_2", "req_1"]


def test_paused_records_are_held_then_released_on_resume() -> None:
    feed = Feed()
    feed.pause()
    feed.receive(record(1))
    feed.receive(record(2))
    assert feed.take() == [] and feed.held_total == 2 and len(feed) == 0
    feed.resume()
    assert [e.record["id"] for e in feed.take()] == ["req_1", "req_2"]
    assert feed.held_total == 0 and not feed.paused


def test_bounds_keep_the_newest_and_drop_old_bodies() -> None:
    feed = Feed(max_rows=3, bodies_kept=1)
    for n in range(1, 6):
        feed.receive(record(n))
    feed.take()
    kept = feed.matching()
    assert [e.record["id"] for e in kept] == ["req_5", "req_4", "req_3"]
    assert kept[0].record["request"] is not None and not kept[0].bodies_dropped
    assert "request" not in kept[1].record and kept[1].bodies_dropped
    feed.pause()
    for n in range(6, 11):
        feed.receive(record(n))
    assert feed.held_total == 5
    feed.resume()
    assert [e.record["id"] for e in feed.take()] == ["req_8", "req_9", "req_10"]


def test_the_callers_record_is_never_changed() -> None:
    feed = Feed(bodies_kept=0)
    original = record(1)
    feed.receive(original)
    feed.take()
    assert original["request"] is not None


def test_filter_matches_every_term_in_the_searched_fields() -> None:
    feed = Feed()
    entry = feed.receive(record(1, alias="smart", target="openai/gpt-4o", team="Search", key="ci-bot", status=429,
                                error="rate_limited", error_message="Too many requests", tags=["nightly"]))
    for query in ("", "smart", "GPT-4O", "search", "ci-bot", "429", "rate_lim", "too many", "nightly",
                  "smart 429", "  openai   search "):
        assert matches(entry, query), query
    for query in ("fast", "500", "smart 500"):
        assert not matches(entry, query), query


def test_redact_masks_credentials_but_not_token_counts() -> None:
    body = {"model": "x", "max_tokens": 5, "api_key": "abc", "headers": {"Authorization": "Bearer abcdefghijkl"},
            "messages": [{"role": "user", "content": "my key is sk-ant-api03-abcdefghijklmnopqrstuv, ok?"}]}
    out = redact(body)
    assert out["max_tokens"] == 5 and out["model"] == "x"
    assert out["api_key"] == MASK and out["headers"]["Authorization"] == MASK
    assert out["messages"][0]["content"] == f"my key is {MASK}, ok?"
    assert body["api_key"] == "abc"  # the input is left alone


def test_row_cells_and_detail() -> None:
    feed = Feed()
    entry = feed.receive(record(1, alias="[bold]odd[/]", status=502, error="upstream_error",
                                error_message="boom", attempts=[
                                    {"n": 1, "target": "a/x", "status": 503, "latency_ms": 10, "error": "overloaded"},
                                    {"n": 2, "target": "b/y", "status": 502, "latency_ms": 20, "error": "bad"}],
                                request={"model": "fast", "api_key": "sk-secret-canary-1234567890abcdef"}))
    cells = row_cells(entry)
    assert isinstance(cells[0], TimeCell) and cells[0].seq == entry.seq
    plain = [c.plain for c in cells]
    assert plain[2] == "[bold]odd[/] → mock/mock-1 +1"
    assert plain[3] == "502 upstream_error" and "red" in str(cells[3].style)
    assert plain[4] == "12/7"
    text = text_of(detail(entry))
    for expected in ("req_1", "boom", "a/x", "overloaded", "b/y", "\"model\": \"fast\"", "answer 1"):
        assert expected in text, expected
    assert "canary" not in text


def test_a_sparse_record_still_renders() -> None:
    entry = Feed().receive({"id": "req_x"})
    assert [c.plain for c in row_cells(entry)][1:] == ["-", "- → -", "-", "0/0", "-", "-", "-", "-", ""]
    assert "not sent" in text_of(detail(entry))


def test_the_gateways_own_time_is_a_column_and_in_the_detail() -> None:
    entry = Feed().receive({"id": "req_o", "latency_ms": 812.0, "overhead_ms": 0.734})
    names = [c.key for c in COLUMNS]
    assert [c.plain for c in row_cells(entry)][names.index("overhead")] == "0.73"
    assert "in llmgw 0.73 ms" in text_of(detail(entry))
