"""Work that must run to its end even when the request it serves is cancelled (the client hung up).

Contract (:func:`to_the_end`): the awaitable runs in a task of its own that the caller waits for. A cancellation of
the caller does not reach the task: the caller waits for the task to end, hands its result to ``when_cancelled``
(when the task succeeded and one is given), and then raises the cancellation on. Used where stopping half-way would
leave shared state wrong: a budget reservation made but not recorded, a settle or a log row cut short.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def to_the_end(work: Coroutine[Any, Any, T], when_cancelled: Callable[[T], None] | None = None) -> T:
    """``await work``, completed whatever happens to the caller (see the module contract)."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            result = await task
            if when_cancelled is not None:
                when_cancelled(result)
        raise
