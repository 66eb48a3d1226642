"""A deadline for a block of a task: ``asyncio.timeout`` at about half its cost.

Contract (:class:`Deadline`): ``with Deadline(when):`` inside a task, where ``when`` is a :func:`time.perf_counter`
time. One timer is set on entering the block (a time already past fires at the first wait). When it fires, the task
is cancelled and the block raises :class:`TimeoutError` instead of that cancellation; a cancellation from
elsewhere passes through as it is, and the timer is cancelled when the block ends. A plain context manager: no
coroutine frames, no state machine, no rescheduling.
"""

from __future__ import annotations

import asyncio
import time


class Deadline:
    """See the module contract."""

    __slots__ = ("_cancelling", "_expired", "_handle", "_task", "_when")

    def __init__(self, when: float) -> None:
        self._when = when

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    def __enter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        self._task, self._expired, self._cancelling = task, False, task.cancelling()
        self._handle = loop.call_at(loop.time() + max(0.0, self._when - time.perf_counter()), self._expire)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._handle.cancel()
        if self._expired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc
