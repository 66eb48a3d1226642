"""The deadline of streams and upstream attempts (llmgw.deadline.Deadline) behaves as asyncio.timeout: it turns
its own cancellation into TimeoutError, and lets every other cancellation through untouched."""

from __future__ import annotations

import asyncio
import time

import pytest

from llmgw.deadline import Deadline


async def test_the_deadline_raises_timeout_error_when_it_passes() -> None:
    started = time.perf_counter()
    with pytest.raises(TimeoutError), Deadline(time.perf_counter() + 0.05):
        await asyncio.sleep(5)
    assert time.perf_counter() - started < 1.0
    assert asyncio.current_task().cancelling() == 0     # type: ignore[union-attr]
    await asyncio.sleep(0)                               # no cancellation left pending


async def test_a_block_that_ends_in_time_is_left_alone() -> None:
    with Deadline(time.perf_counter() + 0.2):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)                             # the timer was cancelled with the block


async def test_a_cancellation_from_outside_is_not_a_timeout() -> None:
    entered = asyncio.Event()

    async def streaming() -> None:
        with Deadline(time.perf_counter() + 5):
            entered.set()
            await asyncio.sleep(5)

    task = asyncio.create_task(streaming())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_deadline_already_past_times_out_at_the_first_wait() -> None:
    with pytest.raises(TimeoutError), Deadline(time.perf_counter() - 1.0):
        await asyncio.sleep(1)
