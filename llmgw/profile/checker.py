"""The :class:`Checker` every section reader records its problems on, and how problems name TOML types."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .schema import Secret


class Checker:
    """Collects problems while reading a raw TOML mapping."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def table(self, raw: Any, path: str) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.problems.append(f"{path}: expected a table, got {type_name(raw)}")
            return {}
        return raw

    def unknown(self, raw: Mapping[str, Any], path: str, allowed: set[str]) -> None:
        for key in raw:
            if key not in allowed:
                prefix = f"{path}." if path else ""
                self.problems.append(f"{prefix}{key}: unknown key (allowed: {', '.join(sorted(allowed))})")

    def get(self, raw: Mapping[str, Any], key: str, path: str, kind: type | tuple[type, ...], default: Any) -> Any:
        if key not in raw:
            return default
        value = raw[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            want = " or ".join(KIND_NAMES.get(k, k.__name__) for k in kinds)
            self.problems.append(f"{path}.{key}: expected {want}, got {type_name(value)}")
            return default
        return value

    def secret(self, raw: Mapping[str, Any], key: str, path: str) -> Secret | None:
        value = self.get(raw, key, path, str, None)
        return Secret(value) if value else None

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            self.problems.append(message)


KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "an array",
               dict: "a table"}


def type_name(value: Any) -> str:
    """How a problem names the TOML type of ``value`` ("a string", "a table"…)."""
    return KIND_NAMES.get(type(value), type(value).__name__)


NUMBER = (int, float)   # what a TOML number reads as
