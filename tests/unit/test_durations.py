"""Durations and points in time as users type them (SPEC §1: `30m`, `24h`, `7d`, or an ISO date)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from llmgw.durations import parse_duration, parse_point

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


@pytest.mark.parametrize(("text", "seconds"), [
    ("30m", 1800.0),
    ("24h", 86400.0),
    ("7d", 604800.0),
    ("2w", 1209600.0),
    ("45s", 45.0),
    ("1.5h", 5400.0),
    (" 30m ", 1800.0),
    ("0m", 0.0),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "ago"), [("30m", 1800), ("24h", 86400), ("7d", 7 * 86400)])
def test_relative_point_is_that_long_ago(text: str, ago: int) -> None:
    assert parse_point(text, now=NOW) == NOW - ago


def test_relative_point_defaults_to_the_current_time() -> None:
    before = time.time()
    point = parse_point("1h")
    after = time.time()
    assert before - 3600 <= point <= after - 3600


def test_iso_date_is_midnight_utc() -> None:
    assert parse_point("2026-01-31", now=NOW) == datetime(2026, 1, 31, tzinfo=UTC).timestamp()
    assert parse_point("2026-01-31") == 1769817600.0


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run with a local zone far from UTC, so "naive means UTC" cannot pass by accident on a UTC machine."""
    if not hasattr(time, "tzset"):
        pytest.fail("time.tzset is needed to change the local zone")
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_iso_date_ignores_the_local_zone(far_from_utc: None) -> None:
    assert time.localtime(1769817600.0).tm_hour != 0, "the local zone must differ from UTC for this test"
    assert parse_point("2026-01-31") == 1769817600.0
    assert parse_point("2026-01-31T12:30:00") == datetime(2026, 1, 31, 12, 30, tzinfo=UTC).timestamp()


def test_iso_datetime_without_zone_is_utc() -> None:
    assert parse_point("2026-01-31T12:30:00") == datetime(2026, 1, 31, 12, 30, tzinfo=UTC).timestamp()
    assert parse_point("2026-01-31 12:30") == datetime(2026, 1, 31, 12, 30, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("text", "utc"), [
    ("2026-01-31T12:30:00+02:00", datetime(2026, 1, 31, 10, 30, tzinfo=UTC)),
    ("2026-01-31T12:30:00-05:00", datetime(2026, 1, 31, 17, 30, tzinfo=UTC)),
    ("2026-01-31T12:30:00Z", datetime(2026, 1, 31, 12, 30, tzinfo=UTC)),
    ("2026-01-31T12:30:00+00:00", datetime(2026, 1, 31, 12, 30, tzinfo=UTC)),
])
def test_iso_with_offset_honours_the_offset(text: str, utc: datetime) -> None:
    assert parse_point(text, now=NOW) == utc.timestamp()


@pytest.mark.parametrize("text", ["", "abc", "30x", "-5m", "m", "7 days", "30mm", "1e3s", "2026-13-01",
                                  "2026-02-30", "yesterday"])
def test_bad_point_raises_a_clear_value_error(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_point(text, now=NOW)
    message = str(info.value)
    assert repr(text) in message, "the message must quote what the user typed"
    assert "30m" in message and "ISO date" in message, "the message must name the accepted forms"
    assert info.value.__cause__ is None and info.value.__suppress_context__, "no chained internal error"


@pytest.mark.parametrize("text", ["", "abc", "2026-01-31", "5", "h", "-1h", "1 day"])
def test_bad_duration_raises_a_clear_value_error(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    message = str(info.value)
    assert repr(text) in message
    assert "30m" in message and "24h" in message and "7d" in message
