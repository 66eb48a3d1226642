"""The running telemetry of one server process: the span queue and exporter, and what the app hooks in.

Contract (:class:`Telemetry`, made by :func:`llmgw.telemetry.open_telemetry` only when ``[telemetry]`` is
configured):
- ``stage`` goes first in the pipeline and ``request_hook()`` on the upstream client (:mod:`.hooks`; the
  middleware that reads the client's ``traceparent`` is :func:`llmgw.telemetry.middlewares`, added when the app
  is made); a finished, sampled exchange's spans are built (:mod:`.spans`) in the pipeline's last
  phase and queued without blocking (:class:`.export.SpanQueue`); an unsampled one costs no span.
- Export headers are resolved once, here (a secret that does not resolve is a start-up error naming
  ``telemetry.headers.NAME``, never its value).
- ``close()`` (blocking: call it off the loop) flushes within a few seconds and stops the export thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from .. import __version__
from ..errors import ProfileError
from ..exchange import Exchange
from ..profile import Profile, SecretError
from .context import RequestTrace
from .export import SpanQueue
from .hooks import TraceStage, add_trace_headers
from .spans import exchange_spans, upstreams

log = logging.getLogger("llmgw.telemetry")

EXPORT_TIMEOUT_S = 5.0      # one export request, retries included
CLOSE_TIMEOUT_S = 5.0       # flushing at shutdown
_OTLP_LOGGER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector: ``endpoint`` + ``/v1/traces`` unless it ends with it already."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


class _Quiet(logging.Filter):
    """Keeps the OTLP exporter's per-batch failure lines out of the log: the queue reports an outage once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.CRITICAL


class Telemetry:
    """See the module contract."""

    def __init__(self, profile: Profile, *, exporter: Any = None, delay_s: float = 1.0,
                 max_queue: int = 2048) -> None:
        config = profile.telemetry
        assert config.otlp_endpoint is not None
        self.url = traces_url(config.otlp_endpoint)
        headers = {}
        for name, secret in config.headers.items():
            try:
                headers[name] = secret.resolve()
            except SecretError as exc:
                raise ProfileError([f"telemetry.headers.{name}: {exc}"], profile.source) from None
        self.resource = Resource.create({"service.name": config.service_name, "service.version": __version__})
        self.scope = InstrumentationScope("llmgw", __version__)
        self.providers = upstreams(profile.providers)
        self.sample_ratio = config.sample_ratio
        self.guarded = bool(profile.guardrails)
        self._quiet = _Quiet()
        logging.getLogger(_OTLP_LOGGER).addFilter(self._quiet)
        if exporter is None:
            exporter = OTLPSpanExporter(endpoint=self.url, headers=headers, timeout=EXPORT_TIMEOUT_S)
        self.queue = SpanQueue(exporter, where=self.url, delay_s=delay_s, max_queue=max_queue)
        self.stage = TraceStage(self.emit)

    def request_hook(self) -> Callable[[dict[str, str]], None]:
        """The upstream client's hook that adds each attempt's trace context (see :mod:`.hooks`)."""
        return add_trace_headers

    def emit(self, ex: Exchange, trace: RequestTrace, ended: float) -> None:
        """Build and queue ``ex``'s spans when its trace is sampled. Never raises into the pipeline."""
        if not trace.sampled:
            return
        try:
            spans = exchange_spans(ex, trace, ended, resource=self.resource, scope=self.scope,
                                   providers=self.providers, guarded=self.guarded)
        except Exception:
            log.exception("telemetry: could not build the spans of %s", ex.id)
            return
        self.queue.submit(spans)

    def close(self) -> None:
        """Flush and stop (blocking; see the module contract)."""
        try:
            self.queue.close(CLOSE_TIMEOUT_S)
        finally:
            logging.getLogger(_OTLP_LOGGER).removeFilter(self._quiet)
        if self.queue.dropped or self.queue.failed:
            log.warning("telemetry: %d span(s) dropped (queue full or left at shutdown), %d not taken by the"
                        " collector at %s", self.queue.dropped, self.queue.failed, self.url)
