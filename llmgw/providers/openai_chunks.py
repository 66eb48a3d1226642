"""The Chat Completions chunks of one upstream read as stream events: parsed once, checked, and runs of plain text
taken as one event, so that the per-event work of a stream (an event object, a hop through each stream wrapper,
the recorder, the renderer) is paid once per upstream read instead of once per token.

Contract (:func:`chunk_events`): ``datas`` are the ``data`` payloads of one upstream read, in order (``[DONE]``
already taken out). Each must be a JSON object (else :class:`~llmgw.providers.base.UpstreamFailure` 502), and one
that carries an ``error`` and no ``choices`` is the upstream failing mid-stream (502 with its message). Each
becomes a :class:`~llmgw.exchange.StreamEvent` whose ``raw`` is its own SSE event, except that with ``merge``
consecutive chunks that carry nothing but text for choice 0 (a ``delta`` of ``content`` and perhaps ``role``, or
a ``refusal`` that is null; no finish reason, tool call, refusal, logprobs or usage; the same ``id``) become one
event whose ``data`` is the first chunk with the run's text joined into its ``delta.content`` and whose ``raw`` is
the run's SSE events, unchanged: a client of the same format receives exactly what the upstream sent; a
guardrail or the recorder sees one chunk with the same text. A chunk right after a run that only finishes its
choice (an empty delta, no logprobs or usage, its other fields those of the run's first chunk) joins the run's event,
whose ``data`` then carries its ``finish_reason``. The provider merges only for clients of this format:
a translated stream keeps one event per upstream chunk. Every event but the read's last has ``flush`` False. The
second value says whether a chunk of the read carried a finish reason.

Text chunks are most of a stream, and a server writes them all alike: the same bytes before the text and after
it. :class:`TextTemplate` learns those bytes from a text chunk that was parsed and checked, and reads the later
chunks that have them, and between them exactly one JSON string body, by decoding that string alone: such a chunk
is the same object with another text, so it is not parsed whole again. A shape is learnt only where it cannot be
misread: the chunk has one ``"content"`` key, the delta's, and no backslash outside its text (so every quote
around the text is a real one and no key is spelt with escapes).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ..exchange import StreamEvent, Usage
from ..sse import encode_data
from .base import UpstreamFailure, loads_object

_TEXT_DELTA = frozenset({"role", "content"})
_FINISH_CHOICE = frozenset({"index", "delta", "finish_reason", "logprobs"})
_FIRST_DELTA = frozenset({"role", "content", "refusal"})   # OpenAI's first chunk says "refusal": null
_CONTENT_STRING = re.compile(rb'"content"[ \t\n\r]*:[ \t\n\r]*"((?:[^"\\]|\\.)*)"')


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
    if not isinstance(delta, dict):
        return None
    if not delta.keys() <= _TEXT_DELTA and (delta.get("refusal") is not None or not delta.keys() <= _FIRST_DELTA):
        return None
    content = delta.get("content", "")
    return content if isinstance(content, str) else None


def has_finish(chunk: dict[str, Any]) -> bool:
    """Whether a choice of ``chunk`` carries a finish reason."""
    choices = chunk.get("choices")
    if not choices:
        return False
    if len(choices) == 1:   # the common case, without a generator
        choice = choices[0]
        return isinstance(choice, dict) and bool(choice.get("finish_reason"))
    return any(isinstance(c, dict) and c.get("finish_reason") for c in choices)


def run_finish(chunk: dict[str, Any], first: dict[str, Any]) -> str | None:
    """The finish reason of a chunk that may end the run ``first`` began (see the module contract), else None."""
    choices = chunk.get("choices")
    if not isinstance(choices, list) or len(choices) != 1 or chunk.get("usage"):
        return None
    choice = choices[0]
    if not isinstance(choice, dict) or not choice.keys() <= _FINISH_CHOICE or choice.get("index", 0) != 0 \
            or choice.get("delta") or choice.get("logprobs") is not None:
        return None
    reason = choice.get("finish_reason")
    if not isinstance(reason, str) or not reason or {**chunk, "choices": None} != {**first, "choices": None}:
        return None
    return reason


def stream_error(chunk: dict[str, Any]) -> UpstreamFailure:
    """An ``{"error": …}`` chunk as the upstream failing mid-stream."""
    error = chunk.get("error")
    message = error.get("message", "stream error") if isinstance(error, dict) else str(error)
    return UpstreamFailure(502, f"upstream stream error: {message}", body=chunk)


class TextTemplate:
    """What one stream's text chunks look like around their text (see the module contract); learnt from each text
    chunk that had to be parsed, so the newest shape wins."""

    __slots__ = ("_prefix", "_prefix_len", "_suffix", "_suffix_len", "chunk")

    def __init__(self) -> None:
        self._prefix = self._suffix = b""
        self._prefix_len = self._suffix_len = 0
        self.chunk: dict[str, Any] | None = None
        """The parsed chunk of the learnt shape (its text is the one it was learnt from); None: nothing learnt."""

    def read(self, datas: list[bytes], start: int) -> tuple[list[str], int]:
        """The texts of the payloads from ``datas[start]`` on that have the learnt shape, and the index of the
        first one that has not (``start`` itself when none has, or nothing is learnt)."""
        texts: list[str] = []
        if self.chunk is None:
            return texts, start
        prefix, suffix, append, loads = self._prefix, self._suffix, texts.append, orjson.loads
        # the text with its quotes: the prefix ends with the opening one, the suffix starts with the closing one
        size, tail = self._prefix_len, -self._suffix_len
        begin, end = size - 1, 1 + tail
        for data in datas[start:] if start else datas:
            # slices compared, not startswith/endswith: those parse an argument tuple per call (a third dearer)
            if data[:size] != prefix or data[tail:] != suffix:
                break
            try:   # one JSON string and nothing else (a payload too short for both ends is no string at all)
                append(loads(data[begin:end]))
            except orjson.JSONDecodeError:
                break
        return texts, start + len(texts)

    def learn(self, data: bytes, chunk: dict[str, Any], text: str) -> None:
        """Learn the shape of ``data``, a payload parsed to ``chunk``, a text chunk whose text is ``text``: the
        bytes around its one ``content`` string (see the module contract for when a shape is not learnt)."""
        found = _CONTENT_STRING.search(data)
        if found is None or _CONTENT_STRING.search(data, found.end()) is not None:
            return
        prefix, suffix = data[:found.start(1)], data[found.end(1):]
        if prefix.find(b"\\") != -1 or suffix.find(b"\\") != -1 or "content" not in chunk["choices"][0]["delta"]:
            return
        try:
            if orjson.loads(b'"' + found.group(1) + b'"') != text:
                return
        except orjson.JSONDecodeError:
            return
        self._prefix, self._suffix, self.chunk = prefix, suffix, chunk
        self._prefix_len, self._suffix_len = len(prefix), len(suffix)


def chunk_events(datas: list[bytes], *, merge: bool,
                 template: TextTemplate | None = None) -> tuple[list[StreamEvent], bool]:
    """See the module contract: ``(events, finished)`` for one upstream read's payloads (at least one). With
    ``merge``, ``template`` (kept by the caller for the whole stream) spares parsing text chunks of a known
    shape."""
    if not merge:
        template = None
    events: list[StreamEvent] = []
    finished = False
    start = -1                          # where the current run of text began, -1: no run
    first: dict[str, Any] = {}          # the run's first chunk (or the learnt one of its shape)
    first_parsed = False
    texts: list[str] = []
    at, end = 0, len(datas)
    while at < end:
        if template is not None and template.chunk is not None:
            known, upto = template.read(datas, at)
            if known:
                chunk = template.chunk
                if start >= 0 and (chunk is first or chunk.get("id") == first.get("id")):
                    texts += known
                else:
                    if start >= 0:
                        events.append(_run(first, first_parsed, datas[start:at], texts))
                    start, first, first_parsed, texts = at, chunk, False, known
                at = upto
                continue
        data = datas[at]
        chunk = loads_object(data)
        text = run_text(chunk) if merge else None
        if text is not None:
            if template is not None and text:   # the opening chunk (a role, no text) rarely looks like the rest
                template.learn(data, chunk, text)
            if start >= 0 and chunk.get("id") == first.get("id"):
                texts.append(text)
            else:
                if start >= 0:
                    events.append(_run(first, first_parsed, datas[start:at], texts))
                start, first, first_parsed, texts = at, chunk, True, [text]
            at += 1
            continue
        if start >= 0:
            reason = run_finish(chunk, first)
            if reason is not None:
                events.append(_run(first, first_parsed, datas[start:at + 1], texts, reason))
                finished, start = True, -1
                at += 1
                continue
            events.append(_run(first, first_parsed, datas[start:at], texts))
            start = -1
        if "error" in chunk and "choices" not in chunk:
            raise stream_error(chunk)
        finished = finished or has_finish(chunk)
        usage = chunk.get("usage")
        events.append(StreamEvent(chunk, encode_data(data), Usage.from_openai(usage) if usage else None,
                                  flush=False))
        at += 1
    if start >= 0:
        events.append(_run(first, first_parsed, datas[start:], texts))
    events[-1].flush = True     # the last event of this read: write then
    return events, finished


def _run(first: dict[str, Any], parsed: bool, run: list[bytes], texts: list[str],
         finish: str | None = None) -> StreamEvent:
    """One event for a run of text chunks, ``run`` their payloads (and the finishing chunk's, with ``finish``) and
    ``texts`` their texts; ``first`` is the first chunk when ``parsed``, else the learnt chunk of its shape (see
    the module contract)."""
    if len(run) == 1:
        raw = encode_data(run[0])
        if parsed:
            return StreamEvent(first, raw, flush=False)
    else:
        if b"".join(run).find(b"\n") != -1:   # a payload of several lines: one data line per line (memchr)
            raw = b"".join(encode_data(d) for d in run)
        else:
            raw = b"data: " + b"\n\ndata: ".join(run) + b"\n\n"
    choice = {**first["choices"][0]}
    choice["delta"] = {**choice["delta"], "content": "".join(texts)}
    if finish is not None:
        choice["finish_reason"] = finish
    return StreamEvent({**first, "choices": [choice]}, raw, flush=False)
