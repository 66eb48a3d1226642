"""Small checks every client format's validation is made of. Each raises :class:`InvalidRequest` naming the
field (``param``) and changes nothing."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest

MAX_DEPTH = 64


def invalid_field(param: str, message: str) -> InvalidRequest:
    """A 400 for one field: ``"<param>: <message>"``."""
    return InvalidRequest(f"{param}: {message}", param=param, code="invalid_value")


def is_int(value: Any) -> bool:
    """An integer that is not a boolean."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or a float that is not a boolean."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` levels (iterative; stops at the first offending branch)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise InvalidRequest(f"request body is nested deeper than {limit} levels", code="nesting_too_deep")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))


def check_model(body: Any) -> None:
    """``model``: a required non-empty string (the alias to call)."""
    model = body.get("model")
    if model is None:
        raise invalid_field("model", "required (the model alias to call)")
    if not isinstance(model, str) or not model:
        raise invalid_field("model", "must be a non-empty string")
