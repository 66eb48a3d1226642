"""The tail application driven by Textual's pilot and fed by a :class:`FixtureSource`."""

from __future__ import annotations

import time

from llmgw.tui.app import TailApp, make_app
from llmgw.tui.source import FixtureSource, Status

from .support import record, shown_ids, text_of, until

SIZE = (160, 48)


def fixture(*records: dict, connected: bool = True) -> tuple[FixtureSource, TailApp]:
    initial = [Status("connected", "connected to fixture")] if connected else []
    source = FixtureSource([*initial, *records])
    return source, make_app(source, flush_s=0.05)


async def test_rows_appear_newest_first_within_a_second() -> None:
    source, app = fixture(record(1), record(2))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.table.row_count == 2, what="the first rows")
        assert shown_ids(app) == ["req_2", "req_1"]
        pushed = time.monotonic()
        source.push(record(3, alias="smart", target="openai/gpt-4o"))
        await until(pilot, lambda: app.table.row_count == 3, timeout=1.0, what="a row within a second")
        assert time.monotonic() - pushed < 1.0
        assert shown_ids(app) == ["req_3", "req_2", "req_1"]
        assert app.table.get_row_at(0)[2].plain == "smart → openai/gpt-4o"
        assert "3 shown" in app.counts_text and "3 received" in app.counts_text


async def test_a_burst_is_shown_in_batches() -> None:
    source, app = fixture()
    async with app.run_test(size=SIZE) as pilot:
        source.push(*(record(n) for n in range(1, 2001)))
        await until(pilot, lambda: app.table.row_count == 2000, timeout=20, what="2000 rows")
        assert shown_ids(app)[:2] == ["req_2000", "req_1999"]


async def test_the_table_keeps_at_most_max_rows_newest_first() -> None:
    source = FixtureSource([record(n) for n in range(1, 13)])
    app = make_app(source, flush_s=0.05, max_rows=10, trim_to=5)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.feed.received == 12 and not app.table.filling and app.table.row_count > 0)
        assert shown_ids(app) == [f"req_{n}" for n in range(12, 2, -1)]
        source.push(record(13))
        await until(pilot, lambda: shown_ids(app)[:1] == ["req_13"])
        assert shown_ids(app) == [f"req_{n}" for n in range(13, 8, -1)]


async def test_filter_hides_and_clearing_restores() -> None:
    source, app = fixture(record(1, alias="fast"), record(2, alias="smart", team="research"),
                          record(3, alias="fast", status=429, error="rate_limited"),
                          record(4, alias="fast", key="ops-bot"))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.table.row_count == 4)
        await pilot.press("slash")
        assert app.focused is app.query_one("#filter")
        await pilot.press(*"smart")
        await until(pilot, lambda: shown_ids(app) == ["req_2"], what="only the smart row")
        assert not app.feed.paused  # typing "p" in the filter is text, not the pause key
        source.push(record(5, alias="smart"), record(6, alias="fast"))  # the filter applies to new rows too
        await until(pilot, lambda: shown_ids(app) == ["req_5", "req_2"], what="the new smart row only")
        for query, expected in (("research", ["req_2"]), ("429", ["req_3"]), ("rate_lim", ["req_3"]),
                                ("ops-bot", ["req_4"])):
            app.query_one("#filter").value = query
            await until(pilot, lambda expected=expected: shown_ids(app) == expected, what=query)
        await pilot.press("end", "ctrl+u")  # delete it all: back to everything
        await until(pilot, lambda: app.table.row_count == 6, what="every row back")
        assert shown_ids(app) == ["req_6", "req_5", "req_4", "req_3", "req_2", "req_1"]
        await pilot.press("escape")
        assert app.focused is app.table


async def test_enter_opens_details_with_attempts_and_bodies_and_escape_closes() -> None:
    attempts = [{"n": 1, "target": "openai/gpt-4o", "status": 429, "latency_ms": 12.0, "error": "rate_limited"},
                {"n": 2, "target": "anthropic/claude", "status": 200, "latency_ms": 300.0, "error": None}]
    _source, app = fixture(record(1), record(2, alias="smart", target="anthropic/claude", attempts=attempts,
                                            request={"model": "smart", "api_key": "sk-canary-0123456789abcdefXYZ",
                                                     "messages": [{"role": "user", "content": "why is the sky"}]},
                                            response={"choices": [{"message": {"content": "Rayleigh"}}]}))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.table.row_count == 2)
        assert not app.detail.is_open
        await pilot.press("enter")
        await until(pilot, lambda: app.detail.is_open, what="the detail pane")
        assert app.detail.entry is not None and app.detail.entry.record["id"] == "req_2"
        text = text_of(app.query_one("#detail-body").content)
        for expected in ("req_2", "attempts", "openai/gpt-4o", "rate_limited", "anthropic/claude",
                         "why is the sky", "Rayleigh", '"model": "smart"'):
            assert expected in text, expected
        assert "canary" not in text
        await pilot.press("escape")
        assert not app.detail.is_open
        await pilot.press("down", "enter")
        await until(pilot, lambda: app.detail.is_open and app.detail.entry.record["id"] == "req_1")
        await pilot.press("escape")


async def test_a_click_on_a_row_opens_it() -> None:
    _source, app = fixture(record(1), record(2), record(3))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.table.row_count == 3)
        await pilot.click("#requests", offset=(5, 3))  # header, then req_3, req_2: the third line is req_1
        await until(pilot, lambda: app.detail.is_open, what="the detail pane after a click")
        assert app.detail.entry is not None and app.detail.entry.record["id"] == "req_1"


async def test_pause_holds_rows_and_resume_shows_them() -> None:
    source, app = fixture(record(1))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.table.row_count == 1)
        await pilot.press("p")
        assert app.feed.paused and "paused — 0 new" in app.counts_text
        source.push(record(2), record(3))
        await until(pilot, lambda: "paused — 2 new" in app.counts_text, what="the paused indicator")
        await pilot.pause(0.2)
        assert shown_ids(app) == ["req_1"]
        await pilot.press("p")
        await until(pilot, lambda: shown_ids(app) == ["req_3", "req_2", "req_1"], what="the held rows")
        assert "paused" not in app.counts_text


async def test_disconnected_status_is_shown_and_cleared_on_reconnect() -> None:
    source, app = fixture(connected=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "connecting to fixture" in app.connection_text
        source.push(Status("disconnected", "cannot reach the proxy at http://127.0.0.1:9 — retrying in 1s"))
        await until(pilot, lambda: "cannot reach the proxy at http://127.0.0.1:9" in app.connection_text)
        source.push(Status("connected", "connected to http://127.0.0.1:9"), record(1))
        await until(pilot, lambda: "connected to http://127.0.0.1:9" in app.connection_text)
        assert "cannot reach" not in app.connection_text
        await until(pilot, lambda: app.table.row_count == 1)


async def test_clear_forgets_everything() -> None:
    source, app = fixture(record(1), record(2))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.table.row_count == 2)
        await pilot.press("enter")
        await pilot.press("c")
        assert app.table.row_count == 0 and len(app.feed) == 0 and not app.detail.is_open
        source.push(record(3))
        await until(pilot, lambda: shown_ids(app) == ["req_3"])


async def test_the_end_of_the_source_is_shown_and_q_quits() -> None:
    source, app = fixture(record(1))
    async with app.run_test(size=SIZE) as pilot:
        source.close()
        await until(pilot, lambda: "the source has ended" in app.connection_text)
        assert app.table.row_count == 1
        await pilot.press("q")
    assert app.return_code == 0


async def test_a_rebuild_fills_in_chunks_and_stays_in_order() -> None:
    source, app = fixture(*(record(n, alias="even" if n % 2 == 0 else "odd") for n in range(1, 21)))
    app.table.chunk, app.table.chunk_interval_s = 3, 0.05
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.table.row_count == 20 and not app.table.filling)
        app.query_text = "even"
        app.apply_filter()
        assert app.table.filling and app.table.row_count == 3 and app.table.planned_rows == 10
        source.push(record(21, alias="even"), record(22, alias="odd"))  # arrives while the rebuild fills in
        await until(pilot, lambda: not app.table.filling and app.table.row_count == 11, what="the rebuild")
        assert shown_ids(app) == ["req_21", *(f"req_{n}" for n in range(20, 0, -2))]
