"""Runs of plain-text Chat Completions chunks taken as one event: the per-event work of a stream (an event object,
a hop through each stream wrapper, the recorder, the renderer) paid once per upstream read instead of once per
token.

Contract (:func:`merge_text_runs`): consecutive chunks of one upstream read that carry nothing but text for
choice 0 (a ``delta`` of ``content`` and perhaps ``role``; no finish reason, tool call, refusal, logprobs or usage;
the same ``id``) become one :class:`~llmgw.exchange.StreamEvent` whose ``data`` is the first chunk with the run's
text joined into its ``delta.content``, and whose ``raw`` is the run's own SSE bytes, unchanged: a client of the
same format receives exactly what the upstream sent; a guardrail or the recorder sees one chunk with the same
text. Any other chunk is passed on alone, in order. The provider merges only for clients of this format: a
translated stream keeps one event per upstream chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..exchange import StreamEvent

_TEXT_DELTA = frozenset({"role", "content"})


def run_text(chunk: dict[str, Any]) -> str | None:
    """The text of a chunk that may join a run (see the module contract), else None."""
    choices = chunk.get("choices")
    if not choices or len(choices) != 1 or chunk.get("usage"):
        return None
    choice = choices[0]
    if not isinstance(choice, dict) or choice.get("index", 0) != 0 or choice.get("finish_reason") \
            or choice.get("logprobs") is not None:
        return None
    delta = choice.get("delta")
    if not isinstance(delta, dict) or not delta.keys() <= _TEXT_DELTA:
        return None
    content = delta.get("content", "")
    return content if isinstance(content, str) else None


def merge_text_runs(events: list[StreamEvent]) -> Iterator[StreamEvent]:
    """``events`` (one upstream read, in order) with runs of text chunks merged (see the module contract)."""
    run: list[tuple[StreamEvent, str]] = []
    for event in events:
        text = run_text(event.data) if event.raw is not None else None
        if text is not None and (not run or event.data.get("id") == run[0][0].data.get("id")):
            run.append((event, text))
            continue
        if run:
            yield _merged(run)
            run = []
        if text is not None:
            run.append((event, text))
        else:
            yield event
    if run:
        yield _merged(run)


def _merged(run: list[tuple[StreamEvent, str]]) -> StreamEvent:
    if len(run) == 1:
        return run[0][0]
    first = run[0][0].data
    choice = first["choices"][0]
    delta = {**choice["delta"], "content": "".join(text for _, text in run)}
    data = {**first, "choices": [{**choice, "delta": delta}]}
    return StreamEvent(data, b"".join(event.raw or b"" for event, _ in run), format=run[0][0].format)
