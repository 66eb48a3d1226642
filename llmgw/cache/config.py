"""The ``[cache]`` table of a profile, validated.

Contract: :meth:`CacheConfig.from_raw` takes the raw table (``None`` or ``{}``: the cache is off) and returns a
frozen config, or raises ``ValueError`` naming the offending ``cache.<key>``. Keys: ``enabled`` (default true
when the table exists), ``exact`` (true), ``semantic`` (false), ``threshold`` (cosine, 0..1), ``ttl`` (seconds or
a duration such as ``24h``), ``max_mb`` (store size cap), ``model`` (a model2vec folder or hub id; default: the
packaged MiniLM-L6 int8 model), ``allow_download`` (false: hub ids come from the local cache only), ``dir``
(default: ``cache`` beside the request log), ``shared`` (true: with ``[state] shared`` set, entries live in that
Redis and every instance sees them), ``word_threshold`` and ``max_swaps`` (the difference guard).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..durations import parse_duration

DEFAULT_THRESHOLD = 0.85
_KEYS = {"enabled", "exact", "semantic", "threshold", "ttl", "max_mb", "model", "allow_download", "dir",
         "shared", "word_threshold", "max_swaps"}


@dataclass(frozen=True, slots=True)
class CacheConfig:
    enabled: bool = False
    exact: bool = True
    semantic: bool = False
    threshold: float = DEFAULT_THRESHOLD
    ttl_s: float = 86400.0
    max_mb: float = 256.0
    model: str | None = None
    allow_download: bool = False
    dir: str | None = None
    shared: bool = True
    word_threshold: float = 0.6
    max_swaps: int = 1

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any] | None) -> CacheConfig:
        """Validate a raw ``[cache]`` table (see the module contract)."""
        if not raw:
            return cls()
        unknown = set(raw) - _KEYS
        if unknown:
            raise ValueError(f"cache: unknown key(s) {', '.join(sorted(unknown))}")

        def flag(key: str, default: bool) -> bool:
            value = raw.get(key, default)
            if not isinstance(value, bool):
                raise ValueError(f"cache.{key}: must be true or false")
            return value

        def number(key: str, default: float, low: float, high: float) -> float:
            value = raw.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise ValueError(f"cache.{key}: must be a number between {low:g} and {high:g}")
            return float(value)

        ttl = raw.get("ttl", 86400)
        if isinstance(ttl, str):
            ttl = parse_duration(ttl)
        elif isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
            raise ValueError("cache.ttl: must be a positive number of seconds or a duration like 24h")
        for key in ("model", "dir"):
            if key in raw and not (isinstance(raw[key], str) and raw[key]):
                raise ValueError(f"cache.{key}: must be a non-empty string")
        return cls(enabled=flag("enabled", True), exact=flag("exact", True), semantic=flag("semantic", False),
                   threshold=number("threshold", DEFAULT_THRESHOLD, 0.0, 1.0), ttl_s=float(ttl),
                   max_mb=number("max_mb", 256.0, 1.0, 1e6), model=raw.get("model"),
                   allow_download=flag("allow_download", False), dir=raw.get("dir"),
                   shared=flag("shared", True),
                   word_threshold=number("word_threshold", 0.6, 0.0, 1.0),
                   max_swaps=int(number("max_swaps", 1, 0, 10)))
