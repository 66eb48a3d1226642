"""Content codings of upstream answers: ``gzip`` and ``deflate`` bodies inflated piece by piece as they arrive.

Contract: :func:`inflater_for` gives an :class:`Inflater` for ``gzip``/``x-gzip``/``deflate``, None for no coding
(``identity``), and raises ``ValueError`` for any other (the client asks for these two only). ``deflate`` is taken
as zlib data or, as some servers send it, raw deflate (told apart by the zlib header's check bits).
:meth:`Inflater.inflate` raises ``zlib.error`` for a broken body, and for one network read that inflates past
:data:`MAX_INFLATE_PER_PIECE`: real answers compress about ten to one, a zip bomb a thousand to one.
"""

from __future__ import annotations

import zlib
from typing import Any

MAX_INFLATE_PER_PIECE = 64 * 1024 * 1024


class Inflater:
    """A ``gzip`` or ``deflate`` body inflated piece by piece; ``deflate`` is zlib data, or raw deflate as some
    servers send it (told apart by the zlib header's check bits)."""

    __slots__ = ("_inflate",)

    def __init__(self, gzip: bool) -> None:
        self._inflate: Any = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None

    def inflate(self, data: bytes) -> bytes:
        """``data`` inflated; zlib.error for a broken body, or one read that inflates past
        :data:`MAX_INFLATE_PER_PIECE` (real answers compress ten to one, not a thousand)."""
        if self._inflate is None:
            zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
        out: bytes = self._inflate.decompress(data, MAX_INFLATE_PER_PIECE)
        if self._inflate.unconsumed_tail:
            raise zlib.error(f"one read inflates past {MAX_INFLATE_PER_PIECE} bytes")
        return out

    def flush(self) -> bytes:
        return self._inflate.flush() if self._inflate is not None else b""


def inflater_for(encoding: bytes) -> Inflater | None:
    """The inflater for a ``Content-Encoding``; None for none; ValueError for one the client did not ask for."""
    if encoding in (b"", b"identity"):
        return None
    if encoding in (b"gzip", b"x-gzip", b"deflate"):
        return Inflater(gzip=encoding != b"deflate")
    raise ValueError(encoding.decode("latin-1"))
