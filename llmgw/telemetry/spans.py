"""Turning a finished exchange into OpenTelemetry spans, with the GenAI semantic conventions' attributes.

Contract (:func:`exchange_spans`):
- One SERVER span for the request, named ``{gen_ai.operation.name} {gen_ai.request.model}`` (``chat fast``; just
  the operation when no alias was read), the client's span as its parent when it sent a ``traceparent``; from the
  exchange's arrival to its end (its logged latency).
- One CLIENT span per upstream attempt, child of the server span, named ``{operation} {target model}``, placed by
  the attempt's recorded end and latency, with the span id its ``traceparent`` carried upstream (a new one when no
  HTTP request went out, e.g. a target made to fail).
- Attributes follow the GenAI conventions (``gen_ai.operation.name``, ``gen_ai.request.model`` = the alias asked
  for on the server span and the upstream model on an attempt, ``gen_ai.response.model``, ``gen_ai.provider.name``,
  ``gen_ai.usage.*``, ``gen_ai.response.finish_reasons``), HTTP's (``http.response.status_code``, ``error.type``,
  ``server.address``/``server.port`` on attempts) and llmgw's own (``llmgw.request_id``, ``llmgw.alias``,
  ``llmgw.team``, ``llmgw.key`` — the key's id, never the key —, ``llmgw.cache``, ``llmgw.guard.outcome``,
  ``llmgw.cost_usd``, ``llmgw.attempts``, ``llmgw.target``, …). No body, prompt, answer, error message from a
  client's request or secret is ever an attribute.
- Status: ERROR on the server span for a 5xx answer and on an attempt that failed (its description: the error
  code, or the attempt's already-scrubbed error); UNSET otherwise (a 4xx is the client's problem, per the HTTP
  conventions; ``error.type`` still says it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from ..exchange import Attempt, Exchange
from ..profile import ProviderConfig
from ..providers.spec import spec_for
from .context import RequestTrace, new_span_id

OPERATIONS: Mapping[str, str] = {"chat": "chat", "embeddings": "embeddings", "count_tokens": "count_tokens"}

# gen_ai.provider.name's well-known values, by llmgw provider kind; an OpenAI-compatible upstream by its host.
_KIND_NAMES: Mapping[str, str] = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}
_HOST_NAMES: tuple[tuple[str, str], ...] = (
    ("openai.azure.com", "azure.ai.openai"), ("groq.com", "groq"), ("deepseek.com", "deepseek"),
    ("mistral.ai", "mistral_ai"), ("x.ai", "x_ai"), ("perplexity.ai", "perplexity"), ("cohere", "cohere"),
    ("bedrock", "aws.bedrock"), ("aiplatform.googleapis.com", "gcp.vertex_ai"),
)
_SEVERITY = {"flag": 1, "redact": 2, "block": 3}
MAX_DESCRIPTION = 200


@dataclass(frozen=True, slots=True)
class Upstream:
    """What the spans say about one configured provider."""

    provider_name: str          # gen_ai.provider.name
    address: str | None         # server.address
    port: int | None            # server.port


def upstreams(providers: Mapping[str, ProviderConfig]) -> dict[str, Upstream]:
    """The :class:`Upstream` of each configured provider, by its name in the profile."""
    found = {}
    for name, config in providers.items():
        base_url = config.base_url or spec_for(config.kind).base_url or ""
        try:
            parts = urlsplit(base_url)
            host, port = parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        except ValueError:
            host, port = None, None
        provider_name = _KIND_NAMES.get(config.kind) or next(
            (value for marker, value in _HOST_NAMES if host and marker in host), config.kind)
        found[name] = Upstream(provider_name, host, port if host else None)
    return found


def _ns(ex: Exchange, perf: float) -> int:
    """A ``perf_counter()`` time of ``ex`` as Unix nanoseconds (anchored on its arrival)."""
    return int((ex.time + (perf - ex.started)) * 1e9)


def guard_outcome(ex: Exchange, guarded: bool) -> str | None:
    """What the guardrails did: the strongest action among the findings (``block``, ``redact``, ``flag``);
    ``pass`` when rules are configured (``guarded``), found nothing and the request went past them (to a target or
    the cache); None otherwise (no rules, or refused before they ran)."""
    actions = [str(f.get("action")) for f in ex.findings if isinstance(f, dict)]
    if actions:
        return max(actions, key=lambda a: _SEVERITY.get(a, 0))
    return "pass" if guarded and (ex.target is not None or ex.cache != "miss") else None


def _usage(attributes: dict[str, Any], ex: Exchange) -> None:
    usage = ex.usage
    attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
    attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
    if usage.cached_tokens:
        attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cached_tokens
    if usage.cache_write_tokens:
        attributes["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
    if usage.reasoning_tokens:
        attributes["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens


def _attempt_error(attempt: Attempt) -> str:
    error = attempt.error or ""
    if attempt.status:
        return str(attempt.status)
    if error == "client disconnected":
        return "client_disconnect"
    if "timed out" in error or "deadline" in error or "first token" in error:
        return "timeout"
    return "connection"


def _description(text: str | None) -> str | None:
    return text[:MAX_DESCRIPTION] if text else None


def exchange_spans(ex: Exchange, trace: RequestTrace, ended: float, *, resource: Resource,
                   scope: InstrumentationScope, providers: Mapping[str, Upstream],
                   guarded: bool = False) -> list[ReadableSpan]:
    """The server span of ``ex`` and one client span per attempt (see the module contract). ``ended`` is the
    ``perf_counter()`` time the request ended, used when the exchange has no logged latency; ``guarded``: the
    profile has guardrail rules."""
    flags = TraceFlags(TraceFlags.SAMPLED if trace.sampled else TraceFlags.DEFAULT)
    state = TraceState.from_header([trace.tracestate]) if trace.tracestate else TraceState()
    server = SpanContext(trace.trace_id, trace.span_id, False, flags, state)
    parent = None
    if trace.parent is not None:
        parent = SpanContext(trace.parent.trace_id, trace.parent.span_id, True, flags, state)
    operation = OPERATIONS.get(ex.endpoint, ex.endpoint)
    start = _ns(ex, ex.started)
    end = start + int(ex.latency_ms * 1e6) if ex.latency_ms > 0 else _ns(ex, ended)
    target = ex.target
    upstream = providers.get(target.provider) if target is not None else None

    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "http.response.status_code": ex.status,
        "llmgw.request_id": ex.id,
        "llmgw.client_format": ex.client_format,
        "llmgw.cache": ex.cache,
        "llmgw.cost_usd": ex.cost_usd,
        "llmgw.attempts": len(ex.attempts),
    }
    if ex.alias:
        attributes["gen_ai.request.model"] = ex.alias
        attributes["llmgw.alias"] = ex.alias
    if ex.stream:
        attributes["gen_ai.request.stream"] = True
    if ex.team:
        attributes["llmgw.team"] = ex.team
    if ex.key_id:
        attributes["llmgw.key"] = ex.key_id
    if ex.tags:
        attributes["llmgw.tags"] = list(ex.tags)
    if target is not None:
        attributes["gen_ai.response.model"] = target.model
        attributes["llmgw.target"] = target.name
        if upstream is not None:
            attributes["gen_ai.provider.name"] = upstream.provider_name
    answered = ex.error is None and (target is not None or ex.cache != "miss")
    if answered or ex.usage.input_tokens or ex.usage.output_tokens:
        _usage(attributes, ex)
    if ex.usage_estimated:
        attributes["llmgw.usage_estimated"] = True
    if ex.finish_reason:
        attributes["gen_ai.response.finish_reasons"] = [ex.finish_reason]
    outcome = guard_outcome(ex, guarded)
    if outcome is not None:
        attributes["llmgw.guard.outcome"] = outcome
    if ex.latency_ms > 0:
        attributes["llmgw.overhead_ms"] = round(max(0.0, ex.latency_ms - ex.upstream_ms), 3)
    status = Status(StatusCode.UNSET)
    if ex.error is not None:
        attributes["error.type"] = ex.error.code
        if ex.status >= 500:
            status = Status(StatusCode.ERROR, ex.error.code)
    elif ex.outcome == "client_disconnect":
        attributes["error.type"] = "client_disconnect"
    name = f"{operation} {ex.alias}" if ex.alias else operation
    spans = [ReadableSpan(name, server, parent, resource, attributes, kind=SpanKind.SERVER, status=status,
                          start_time=start, end_time=max(end, start), instrumentation_scope=scope)]

    last = ex.attempts[-1] if ex.attempts else None
    for attempt in ex.attempts:
        provider, _, model = attempt.target.partition("/")
        upstream = providers.get(provider)
        a_attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": model,
            "llmgw.target": attempt.target,
            "llmgw.attempt": attempt.number,
        }
        if upstream is not None:
            a_attributes["gen_ai.provider.name"] = upstream.provider_name
            if upstream.address:
                a_attributes["server.address"] = upstream.address
                if upstream.port:
                    a_attributes["server.port"] = upstream.port
        if attempt.status:
            a_attributes["http.response.status_code"] = attempt.status
        a_status = Status(StatusCode.UNSET)
        if attempt.status != 200:
            a_attributes["error.type"] = _attempt_error(attempt)
            if attempt.error != "client disconnected":
                a_status = Status(StatusCode.ERROR, _description(attempt.error))
        elif attempt is last and target is not None and attempt.target == target.name:
            a_attributes["gen_ai.response.model"] = model
            _usage(a_attributes, ex)
            if ex.finish_reason:
                a_attributes["gen_ai.response.finish_reasons"] = [ex.finish_reason]
        span_id = trace.attempt_spans.get(attempt.number) or new_span_id()
        a_end = _ns(ex, attempt.ended)
        a_start = a_end - int(attempt.latency_ms * 1e6)
        spans.append(ReadableSpan(f"{operation} {model}", SpanContext(trace.trace_id, span_id, False, flags, state),
                                  server, resource, a_attributes, kind=SpanKind.CLIENT, status=a_status,
                                  start_time=a_start, end_time=a_end, instrumentation_scope=scope))
    return spans
