"""OpenTelemetry traces of the gateway's requests, sent to a collector over OTLP/HTTP (``[telemetry]``).

Contract:
- Off unless the profile has ``[telemetry] otlp_endpoint``: then nothing of this package is imported by the
  server beyond this module, the app has no tracing middleware, stage or upstream hook, and no ``traceparent`` is
  read, invented or sent.
- On: every proxied request becomes a SERVER span (the client's ``traceparent`` its parent) with one CLIENT span
  per upstream attempt, each attempt's upstream request carrying that attempt's ``traceparent``
  (:mod:`.hooks`, :mod:`.spans`). Spans are built from the exchange once it has been logged, from its recorded
  times, and exported from a thread with a bounded queue (:mod:`.export`): the request path gains only the
  W3C header handling and a few dictionary writes, and a slow or unreachable collector never slows or fails a
  request (spans are dropped and counted instead).
- :mod:`.context` (W3C Trace Context) has no OpenTelemetry dependency; :mod:`.spans`, :mod:`.tracer` use the
  OpenTelemetry SDK and its OTLP/HTTP exporter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..profile import Profile
    from .tracer import Telemetry


def middlewares(profile: Profile) -> list[Any]:
    """The app's tracing middleware (reading the client's ``traceparent``) when telemetry is on, else ``[]``."""
    if not profile.telemetry.enabled:
        return []
    from .hooks import trace_middleware

    return [trace_middleware(profile.telemetry.sample_ratio)]


def open_telemetry(profile: Profile) -> Telemetry | None:
    """The process's :class:`~.tracer.Telemetry` when the profile configures it, else None (nothing imported).
    Blocking (it imports the SDK and starts the export thread): call it off the event loop."""
    if not profile.telemetry.enabled:
        return None
    from .tracer import Telemetry

    return Telemetry(profile)
