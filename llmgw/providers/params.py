"""What a provider kind does with each canonical request parameter, and the one place ``drop_params`` is applied.

Contract:
- A :class:`ParamTable` names the canonical (OpenAI Chat Completions) parameters a provider kind *refuses* (they
  change what the model must produce and it cannot honour them), the ones it *drops* (hints without an
  equivalent: left out and reported as dropped) and the *ranges* its numbers must lie in. Every other parameter is
  accepted: sent as it is, or translated.
- :meth:`ParamTable.screen` applies the table to a request: a refused parameter that is set, or a number outside
  its range, raises :class:`InvalidRequest` naming the field (``param``) — never clamped — unless the provider's
  ``drop_params`` lists it, in which case it is left out and reported. A refused parameter counts as set unless its
  value is ``None``, ``False``, ``0`` or its neutral value (``n`` of 1, a ``response_format`` of type ``text``,
  ``modalities`` of text only).
- :func:`without` is how ``drop_params`` is applied everywhere (pass-through bodies and translated ones): the body
  without the listed fields, and the names of those it had.
- Pure functions, no I/O; this module imports nothing heavy (the registry and the CLI read it).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from ..errors import InvalidRequest

Disposition = Literal["accept", "drop", "refuse"]

# A refused parameter with one of these values asks for nothing the target cannot do.
_NEUTRAL: Mapping[str, Callable[[Any], bool]] = MappingProxyType({
    "n": lambda v: not (isinstance(v, int) and v > 1),
    "response_format": lambda v: isinstance(v, dict) and v.get("type") == "text",
    "modalities": lambda v: isinstance(v, list) and all(m == "text" for m in v),
})


def is_set(name: str, value: Any) -> bool:
    """Whether ``value`` of the refused parameter ``name`` asks for something (see the module contract)."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
        return False
    neutral = _NEUTRAL.get(name)
    return not (neutral is not None and neutral(value))


def without(body: Mapping[str, Any], names: Collection[str]) -> tuple[dict[str, Any], list[str]]:
    """``body`` without the fields ``names`` lists (the same dict when it has none of them, else a copy), and the
    names of the fields it had with a value (in ``names`` order)."""
    present = [name for name in names if name in body]
    if not present:
        return body if isinstance(body, dict) else dict(body), []
    kept = {k: v for k, v in body.items() if k not in present}
    return kept, [name for name in present if body[name] is not None]


@dataclass(frozen=True, slots=True)
class ParamTable:
    """One provider kind's parameter table (see the module contract). ``target`` names the kind in messages."""

    target: str
    refuses: tuple[str, ...] = ()
    drops: tuple[str, ...] = ()
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def disposition(self, name: str) -> Disposition:
        """What this kind does with the canonical parameter ``name``."""
        if name in self.refuses:
            return "refuse"
        if name in self.drops:
            return "drop"
        return "accept"

    def unsupported(self, name: str) -> InvalidRequest:
        """The 400 for a parameter this kind cannot honour."""
        return InvalidRequest(f"{name}: not supported by {self.target} targets; remove it or list it in the"
                              " provider's drop_params", param=name, code="unsupported_parameter")

    def out_of_range(self, name: str, value: float) -> InvalidRequest:
        """The 400 for a number outside what this kind accepts (it is never clamped)."""
        low, high = self.ranges[name]
        return InvalidRequest(f"{name}: {value:g} is out of range for {self.target} targets, which accept {low:g}"
                              f" to {high:g}; send a value in that range or list {name} in the provider's"
                              " drop_params", param=name, code="unsupported_value")

    def screen(self, body: Mapping[str, Any], drop_params: Collection[str] = ()) -> tuple[dict[str, Any], list[str]]:
        """``body`` ready to translate for this kind, and the names of what was dropped.

        Refused parameters that are set and numbers out of range raise, unless ``drop_params`` lists them; every
        field ``drop_params`` lists is left out. ``dropped`` names, in this order and once each: the refused and
        out-of-range parameters that were listed, the other listed fields the body had, the hints it had.
        """
        dropped: list[str] = []
        for name in self.refuses:
            if is_set(name, body.get(name)):
                if name not in drop_params:
                    raise self.unsupported(name)
                dropped.append(name)
        for name, (low, high) in self.ranges.items():
            value = body.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool) and not low <= value <= high:
                if name not in drop_params:
                    raise self.out_of_range(name, value)
                dropped.append(name)
        kept, listed = without(body, drop_params)
        dropped += listed
        dropped += [name for name in self.drops if kept.get(name) is not None]
        return kept, list(dict.fromkeys(dropped))


# Every parameter is accepted and sent as it is (the upstream speaks the canonical form).
PASS_THROUGH = ParamTable("OpenAI-format")
