"""The gateway's error tree. Every error knows its HTTP status, type, code and message; each client format
renders it in its own error body (:meth:`llmgw.formats.base.WireFormat.error_body`).

::

    GatewayError                  500  api_error          something unexpected; never shows internals
    ├── InvalidRequest            400  invalid_request_error  malformed JSON, wrong types, missing fields
    ├── AuthenticationError       401  authentication_error   missing, unknown, revoked or expired key
    ├── PermissionDenied          403  permission_error       model not allowed, blocked by a guardrail
    ├── ModelNotFound             404  not_found_error        unknown model alias (also: alias not allowed)
    ├── PayloadTooLarge           413  request_too_large      body over [server] max_body_mb
    ├── RateLimited               429  rate_limit_error       rate limit or budget exhausted (Retry-After)
    ├── UpstreamError             502  upstream_error         every target failed; carries the last status
    └── UpstreamTimeout           504  timeout_error          upstream took longer than the deadline

Error messages never contain secrets: they are built from the client's own input and the profile's names only.

:class:`ProfileError` (a profile that cannot be used) lives here too, outside that tree, so that the profile and
the sections it parses with their own modules (``[[guardrails]]``) can raise it without importing one another.
"""

from __future__ import annotations

import math
from typing import Any

# The gateway's error tree (ProfileError is not part of it).
__all__ = [
    "AuthenticationError",
    "GatewayError",
    "InvalidRequest",
    "ModelNotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "UpstreamError",
    "UpstreamTimeout",
]

class GatewayError(Exception):
    """Base of every error the gateway answers with; ``status``, ``type`` and ``code`` shape the wire body."""

    status: int = 500
    type: str = "api_error"
    code: str | None = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.param = param
        self.retry_after = retry_after

    def as_dict(self) -> dict[str, Any]:
        """The error as the gateway records it: ``{"message", "type", "param", "code"}``."""
        return {"message": self.message, "type": self.type, "param": self.param, "code": self.code}

    def headers(self) -> dict[str, str]:
        """Extra response headers (``Retry-After`` for 429)."""
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class AuthenticationError(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class ModelNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(GatewayError):
    """Every target failed. ``upstream_status`` is the last status an upstream answered with, if any."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"

    def __init__(self, message: str, *, upstream_status: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.upstream_status = upstream_status


class UpstreamTimeout(GatewayError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"


class ProfileError(Exception):
    """A profile that cannot be used. ``problems`` holds one ``"key.path: message"`` line per problem."""

    def __init__(self, problems: list[str], source: str = "profile") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))
