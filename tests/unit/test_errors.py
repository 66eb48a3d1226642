"""The gateway's error tree: statuses, OpenAI and Anthropic wire bodies, Retry-After (SPEC §3)."""

from __future__ import annotations

import json

import pytest

import llmgw.errors as errors
from llmgw.errors import (
    AuthenticationError,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from llmgw.formats import named

# class, HTTP status, OpenAI error type, OpenAI code, Anthropic error type
TABLE = [
    (GatewayError, 500, "api_error", "internal_error", "api_error"),
    (InvalidRequest, 400, "invalid_request_error", "invalid_request", "invalid_request_error"),
    (AuthenticationError, 401, "authentication_error", "invalid_api_key", "authentication_error"),
    (PermissionDenied, 403, "permission_error", "permission_denied", "permission_error"),
    (ModelNotFound, 404, "invalid_request_error", "model_not_found", "not_found_error"),
    (PayloadTooLarge, 413, "invalid_request_error", "request_too_large", "request_too_large"),
    (RateLimited, 429, "rate_limit_error", "rate_limit_exceeded", "rate_limit_error"),
    (UpstreamError, 502, "upstream_error", "upstream_error", "api_error"),
    (UpstreamTimeout, 504, "timeout_error", "upstream_timeout", None),  # Anthropic type checked separately
]
IDS = [row[0].__name__ for row in TABLE]


@pytest.mark.parametrize(("cls", "status", "oa_type", "code", "an_type"), TABLE, ids=IDS)
def test_status_and_openai_body(cls: type[GatewayError], status: int, oa_type: str, code: str,
                                an_type: str | None) -> None:
    error = cls("something went wrong", param="messages")
    assert error.status == status
    assert isinstance(error, GatewayError) and isinstance(error, Exception)
    assert str(error) == error.message == "something went wrong"
    body = named("openai").error_body(error)
    assert body == {"error": {"message": "something went wrong", "type": oa_type, "param": "messages",
                              "code": code}}
    assert json.loads(json.dumps(body)) == body


@pytest.mark.parametrize(("cls", "status", "oa_type", "code", "an_type"), TABLE, ids=IDS)
def test_anthropic_body(cls: type[GatewayError], status: int, oa_type: str, code: str, an_type: str | None) -> None:
    body = named("anthropic").error_body(cls("nope"))
    assert set(body) == {"type", "error"}
    assert body["type"] == "error"
    assert set(body["error"]) == {"type", "message"}
    assert body["error"]["message"] == "nope"
    if an_type is not None:
        assert body["error"]["type"] == an_type
    assert json.loads(json.dumps(body)) == body


def test_timeout_anthropic_type_is_a_documented_one() -> None:
    # Anthropic documents api_error for unexpected 5xx; newer docs list timeout_error for 504.
    assert named("anthropic").error_body(UpstreamTimeout("slow"))["error"]["type"] in {"api_error", "timeout_error"}


def test_param_defaults_to_none_and_openai_body_always_has_four_keys() -> None:
    body = named("openai").error_body(InvalidRequest("bad"))
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] is None


def test_code_and_status_overrides() -> None:
    error = InvalidRequest("tools are not supported by this target", code="unsupported_parameter", param="tools")
    assert named("openai").error_body(error)["error"]["code"] == "unsupported_parameter"
    assert named("openai").error_body(error)["error"]["param"] == "tools"
    assert InvalidRequest.code == "invalid_request", "an override must not change the class default"
    overloaded = GatewayError("busy", status=529)
    assert overloaded.status == 529
    assert named("anthropic").error_body(overloaded)["error"]["type"] == "overloaded_error"
    assert named("anthropic").error_body(GatewayError("x", status=503))["error"]["type"] == "overloaded_error"
    assert GatewayError.status == 500


@pytest.mark.parametrize(("status", "an_type"), [(400, "invalid_request_error"), (401, "authentication_error"),
                                                 (404, "not_found_error"), (500, "api_error"),
                                                 (529, "overloaded_error")])
def test_anthropic_type_follows_the_status(status: int, an_type: str) -> None:
    assert named("anthropic").error_body(GatewayError("x", status=status))["error"]["type"] == an_type


def test_upstream_error_carries_the_last_upstream_status() -> None:
    error = UpstreamError("every target failed", upstream_status=503, retry_after=2)
    assert error.upstream_status == 503
    assert error.status == 502
    assert error.headers() == {"Retry-After": "2"}
    assert UpstreamError("every target failed").upstream_status is None


@pytest.mark.parametrize(("retry_after", "header"), [
    (0, "1"),
    (0.2, "1"),
    (1, "1"),
    (1.0, "1"),
    (1.2, "2"),
    (1.5, "2"),
    (2.9, "3"),
    (30, "30"),
    (59.01, "60"),
    (2.0004, "3"),  # rounding UP: a client that waits 2 s would retry 0.4 ms too early
])
def test_retry_after_header_rounds_up_to_whole_seconds(retry_after: float, header: str) -> None:
    assert RateLimited("slow down", retry_after=retry_after).headers() == {"Retry-After": header}


def test_no_retry_after_no_headers() -> None:
    assert RateLimited("slow down").headers() == {}
    assert InvalidRequest("bad").headers() == {}


def test_dunder_all_is_pinned() -> None:
    assert errors.__all__ == [
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
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, GatewayError)


def test_every_class_in_the_tree_has_a_distinct_status() -> None:
    statuses = [getattr(errors, name).status for name in errors.__all__]
    assert len(set(statuses)) == len(statuses)
