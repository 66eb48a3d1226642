"""Server-sent events, decoded byte-exactly.

Contract: feeding a stream to :class:`SSEDecoder` in pieces split at any byte offset (inside a line terminator,
inside a multi-byte UTF-8 character) yields exactly the same messages as feeding it whole. Lines end with
``\\r\\n``, ``\\n`` or ``\\r`` (the SSE grammar); ``data`` lines of one event are joined with ``\\n``; comment lines
(``:``) are counted in ``comments`` but produce no message. Data stays bytes: decoding is the reader's business.

Memory is bounded: a line, or an event's data, longer than ``max_line_bytes`` (:data:`MAX_LINE_BYTES` by default)
raises :class:`SSELineTooLong` as soon as it is seen, having buffered at most that much plus the piece that crossed
it; a line arriving in many pieces is buffered in linear time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")
MAX_LINE_BYTES = 16 * 1024 * 1024


class SSEError(ValueError):
    """A stream that is not acceptable server-sent events."""


class SSELineTooLong(SSEError):
    """A line (or one event's data) longer than the decoder's ``max_line_bytes``."""


@dataclass(slots=True, frozen=True)
class SSEMessage:
    """One dispatched event: its ``event`` name (``None`` when absent) and its ``data`` bytes."""

    event: str | None
    data: bytes


class SSEDecoder:
    """Incremental SSE decoder: ``feed(bytes) -> list[SSEMessage]``, then ``close()`` for a final event."""

    __slots__ = ("_buf", "_data", "_event", "_parts", "_size", "comments", "max_line_bytes")

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._buf = b""
        self._parts: list[bytes] = []   # pieces of an unterminated line after _buf, joined when it ends
        self._data: list[bytes] = []
        self._size = 0                  # bytes in _data
        self._event: str | None = None
        self.comments = 0
        self.max_line_bytes = max_line_bytes

    @property
    def buffered(self) -> int:
        """Bytes held for an unfinished line and event."""
        return len(self._buf) + sum(len(p) for p in self._parts) + self._size

    def feed(self, chunk: bytes) -> list[SSEMessage]:
        if (self._buf or self._parts) and chunk.find(b"\n") == -1 and chunk.find(b"\r") == -1:
            self._parts.append(chunk)   # still inside one line: keep the piece, join once the line ends
            self._check(len(self._buf) + sum(len(p) for p in self._parts))
            return []
        if self._parts:
            buf = b"".join([self._buf, *self._parts, chunk])
            self._parts = []
        else:
            buf = self._buf + chunk if self._buf else chunk
        out: list[SSEMessage] = []
        if buf.find(b"\r") == -1:  # the common case: LF only, split in C
            *lines, self._buf = buf.split(b"\n")
            for line in lines:
                self._line(line, out)
            self._check(len(self._buf))
            return out
        pos = 0
        end = len(buf)
        while pos < end:
            match = _LINE_END.search(buf, pos)
            if match is None:
                break
            if match.group() == b"\r" and match.end() == end:
                break  # a "\r" at the very end may be the first half of "\r\n": wait for the next byte
            self._line(buf[pos:match.start()], out)
            pos = match.end()
        self._buf = buf[pos:]
        self._check(len(self._buf))
        return out

    def feed_data(self, chunk: bytes) -> list[bytes]:
        """The ``data`` of the messages :meth:`feed` would give, for a reader that ignores event names. A piece made
        only of whole one-line ``data: …`` events (the usual shape of an upstream read) is split in one pass, in C;
        anything else goes through :meth:`feed`, so the result is always the same as its."""
        if self._buf or self._parts or self._data or len(chunk) > self.max_line_bytes or chunk.find(b"\r") != -1 \
                or chunk[:6] != b"data: " or chunk[-2:] != b"\n\n":
            return [message.data for message in self.feed(chunk)]
        datas = chunk[6:-2].split(b"\n\ndata: ")
        if b"".join(datas).find(b"\n") != -1:   # another field, a comment, a blank line, a data line of several
            return [message.data for message in self.feed(chunk)]
        return datas

    def _check(self, pending: int) -> None:
        if pending > self.max_line_bytes or self._size > self.max_line_bytes:
            self._buf, self._parts, self._data, self._size = b"", [], [], 0
            raise SSELineTooLong(f"an upstream event line is longer than {self.max_line_bytes} bytes")

    def close(self) -> list[SSEMessage]:
        """End of stream: a final event without its blank line is dispatched, as browsers do not; we do."""
        out: list[SSEMessage] = []
        if self._parts:
            self._buf, self._parts = b"".join([self._buf, *self._parts]), []
        if self._buf:
            self._line(self._buf.rstrip(b"\r"), out)
            self._buf = b""
        self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[SSEMessage]) -> None:
        if line[:6] == b"data: ":  # the common case first
            self._data.append(line[6:])
            self._size += len(line)
            return
        if not line:
            if self._data:
                out.append(SSEMessage(self._event, b"\n".join(self._data)))
            self._data = []
            self._size = 0
            self._event = None
            return
        if line[0] == 0x3A:  # ":" comment / keep-alive
            self.comments += 1
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
            self._size += len(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")


def encode_data(data: bytes, event: str | None = None) -> bytes:
    """One SSE event: an ``event`` line when ``event`` is given, then ``data`` (one ``data`` line per line of it, so
    that :class:`SSEDecoder` gives back exactly ``data``; JSON from orjson is one line)."""
    if data.find(b"\n") != -1:   # not `b"\n" in data`, which makes and drops a TypeError (an int needle is tried first)
        data = data.replace(b"\n", b"\ndata: ")
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
