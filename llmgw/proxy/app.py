"""The HTTP server: ``make_app(profile)`` builds the aiohttp application and the pipeline its handlers use.

Contract:
- All state lives in the application under typed :class:`web.AppKey` s, created in ``cleanup_ctx`` and released
  there: the upstream ``ClientSession``, the log writer, the shared counters, and the serving
  :class:`~.generation.Generation` (the profile, the stages built from it and their pipeline) held by the
  :class:`~.reload.ProfileReloader` under ``SERVING``, which a profile reload replaces in one assignment.
- Each request takes the serving generation once, when it arrives (a middleware puts it under
  ``REQUEST_GENERATION`` and counts it in flight), and keeps it to its end, whatever reloads happen meanwhile.
  ``PIPELINE``, ``AUTH``, ``ROUTER`` and ``CACHE`` are the first generation's (what the app started with).
- Every client format's routes (:data:`llmgw.formats.FORMATS`) are served by :func:`.handlers.format_handler`, so
  every proxied request, accepted or refused, goes through the whole pipeline and leaves one log row.
- A bad request gets a precise 4xx in the client's format and never reaches a provider; an unexpected exception
  gets a generic 500 (details only in the server's own log) and never kills the worker.
- Shutdown (cleanup) closes the upstream session and flushes the log writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Collection
from pathlib import Path

import orjson
from aiohttp import web

from .. import __version__
from ..alerts import AlertEngine
from ..cache.embed import Embedder
from ..errors import GatewayError
from ..formats import FORMATS, canonical
from ..profile import Profile
from ..providers.http_client import UpstreamClient
from ..stages.auth import AuthStage, presented_key
from ..stages.cache import CacheStage
from ..stages.route import Router
from ..store.log import LogWriter
from ..store.log_backend import LogSource, latest_events, open_writer
from ..telemetry import middlewares as tracing_middlewares
from ..telemetry import open_telemetry
from .events import EventHub, events_handler
from .generation import Generation, Shared, build_generation, build_providers
from .governance import open_shared_state, refresh_keys
from .handlers import Handler, format_handler
from .landing import landing, unknown_path
from .metrics import Metrics, metrics_handler, refresh_spend_anomalies
from .metrics_share import publish, read_others
from .pipeline import Pipeline
from .reload import ProfileReloader, ProfileSource

log = logging.getLogger("llmgw.proxy.app")

PROFILE = web.AppKey("profile", Profile)
PIPELINE = web.AppKey("pipeline", Pipeline)
ROUTER = web.AppKey("router", Router)
WRITER = web.AppKey("writer", LogWriter)
SESSION = web.AppKey("session", UpstreamClient)
AUTH = web.AppKey("auth", AuthStage)
METRICS = web.AppKey("metrics", Metrics)
EVENTS = web.AppKey("events", EventHub)
FAIL_TARGETS = web.AppKey("fail_targets", frozenset)
EMBEDDER = web.AppKey("embedder", list)  # [Embedder] to override the semantic cache's model, or []
CACHE = web.AppKey("cache", CacheStage)
SOURCE = web.AppKey("source", list)      # [ProfileSource] the profile is re-read from, or []
SERVING = web.AppKey("serving", ProfileReloader)
ALERTS = web.AppKey("alerts", AlertEngine)   # set when the profile has [[alerts]]
REQUEST_GENERATION = web.RequestKey("generation", Generation)

__all__ = ["CACHE", "PROFILE", "ROUTER", "SERVING", "build_providers", "make_app"]


def make_app(profile: Profile, *, fail_targets: Collection[str] = (), embedder: Embedder | None = None,
             metrics_folder: Path | None = None, source: ProfileSource | None = None) -> web.Application:
    """The gateway application for ``profile``. Nothing is opened until the app starts. ``fail_targets``
    (``provider/model`` names) are made to fail without being called, as ``llmgw smoke --fail`` asks;
    ``embedder`` replaces the semantic cache's model (tests use a small deterministic one); ``metrics_folder``
    (one of several workers) is where the workers publish their metrics for each other's ``/metrics``;
    ``source`` is where a reload re-reads the profile (default: the file ``profile`` was loaded from)."""
    max_bytes = int(profile.server.max_body_mb * 1024 * 1024)
    # An open proxy (no keys) serves loopback names and same-site callers only: a web page is not a client.
    guard = [] if profile.governed else [_browser_guard]
    # handler_cancellation: a client that hangs up cancels its handler, and with it the upstream request.
    app = web.Application(client_max_size=max_bytes,
                          middlewares=[_generation, *tracing_middlewares(profile), *guard, _error_middleware],
                          handler_args={"handler_cancellation": True})
    app[PROFILE] = profile
    source = source if source is not None else ProfileSource.of(profile)
    app[SOURCE] = [source] if source is not None else []
    app[FAIL_TARGETS] = frozenset(fail_targets)
    app[EMBEDDER] = [embedder] if embedder is not None else []
    app.cleanup_ctx.append(_resources)
    for wire in FORMATS.values():
        for route in wire.routes:
            app.router.add_post(route.path, format_handler(wire, route, _held, max_bytes))
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/models", _models)
    app[METRICS] = Metrics(aliases=profile.models.keys())
    app[EVENTS] = EventHub()
    admin_key = _admin_key(profile)
    metrics_key = admin_key if profile.server.metrics_auth else None
    if metrics_folder is not None:
        folder = metrics_folder
        app.cleanup_ctx.append(lambda app: _publish_metrics(app, folder))
        app.router.add_get("/metrics", metrics_handler(app[METRICS], lambda: asyncio.to_thread(read_others, folder),
                                                       admin_key=metrics_key))
    else:
        app.router.add_get("/metrics", metrics_handler(app[METRICS], admin_key=metrics_key))
    source = LogSource.of(profile.state)
    app.router.add_get("/admin/events", events_handler(
        app[EVENTS], admin_key,
        history=lambda size, bodies: asyncio.to_thread(latest_events, source, size, bodies=bodies)))
    app.on_shutdown.append(_close_events)
    app.router.add_get("/", landing)
    app.router.add_get("/health", _health)
    app.router.add_get("/ready", _ready)
    return app


def _admin_key(profile: Profile) -> str | None:
    """The key guarding /admin/*: the profile's; none for an open proxy; an unguessable one (so: always 401)
    when keys or teams are configured without an admin key."""
    if profile.server.admin_key is not None:
        return profile.server.admin_key.resolve()
    return secrets.token_urlsafe(32) if profile.governed else None


def _held(request: web.Request) -> Generation:
    """The generation ``request`` took when it arrived."""
    return request[REQUEST_GENERATION]


@web.middleware
async def _generation(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request the serving generation, held (and counted in flight) until its answer is written."""
    generation = request.app[SERVING].current
    request[REQUEST_GENERATION] = generation
    generation.inflight.enter()
    try:
        return await handler(request)
    finally:
        generation.inflight.leave()


@web.middleware
async def _browser_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The open proxy's guard against web pages (:mod:`.browser_guard`), with the request's ``allowed_hosts``."""
    guard = request[REQUEST_GENERATION].browser
    return await (guard(request, handler) if guard is not None else handler(request))


async def _publish_metrics(app: web.Application, folder: Path) -> AsyncIterator[None]:
    task = asyncio.create_task(publish(app[METRICS], folder))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close_events(app: web.Application) -> None:
    app[EVENTS].close()  # open event streams must not hold up a graceful shutdown


async def _resources(app: web.Application) -> AsyncIterator[None]:
    profile = app[PROFILE]
    telemetry = await asyncio.to_thread(open_telemetry, profile) if profile.telemetry.enabled else None
    writer = await asyncio.to_thread(open_writer, profile.state)   # SQLite, or PostgreSQL with its spool
    app[METRICS].log_writer = writer   # llmgw_log_backlog
    # Upstream requests go through the gateway's own pooled client (llmgw/providers/http_client.py); it keeps no
    # cookies, so nothing one team's answer set rides along on another team's requests.
    session = UpstreamClient(on_request=telemetry.request_hook() if telemetry is not None else None)
    state = None
    try:
        state = await open_shared_state(profile)
        # Alerts are evaluated off the request path: the engine only queues each row (llmgw/alerts/engine.py).
        alerts = AlertEngine(profile, publish=app[EVENTS].publish_alert) if profile.alerts else None
        watch = [alerts.observe] if alerts is not None and alerts.wants_rows else []
        shared = Shared(session, writer, state, [app[METRICS].observe, app[EVENTS].publish, *watch],
                        fail_targets=app[FAIL_TARGETS], embedder=next(iter(app[EMBEDDER]), None),
                        # The trace stage, when on, comes first: its response phase runs last, once the meter logged.
                        leading=(telemetry.stage,) if telemetry is not None else ())
        first = await build_generation(1, profile, shared)
        serving = ProfileReloader(first, shared, app[METRICS], next(iter(app[SOURCE]), None))
        app[SERVING] = serving
        app[SESSION] = session
        app[WRITER] = writer
        app[AUTH] = first.auth
        app[ROUTER] = first.router
        app[CACHE] = first.cache
        app[PIPELINE] = first.pipeline
        if alerts is not None:
            app[ALERTS] = alerts
            await alerts.start()
        refresher = asyncio.create_task(refresh_keys(lambda: serving.current.reloader)) if profile.governed else None
        anomalies = asyncio.create_task(refresh_spend_anomalies(app[METRICS], LogSource.of(profile.state)))
        yield
        if alerts is not None:
            await alerts.stop()   # the last rows' alerts, and deliveries in flight
        anomalies.cancel()
        if refresher is not None:
            refresher.cancel()
        await serving.close()
    finally:
        if state is not None:
            await state.close()
        await session.close()
        await asyncio.to_thread(writer.close)
        if telemetry is not None:
            await asyncio.to_thread(telemetry.close)


async def _models(request: web.Request) -> web.Response:
    """The aliases, in a shape both SDKs read: OpenAI's model list and Anthropic's (``type``, ``display_name``,
    ``created_at``, ``has_more``, ``first_id``, ``last_id``)."""
    generation = request[REQUEST_GENERATION]
    profile, auth = generation.profile, generation.auth
    aliases = list(profile.models)
    if auth.keys is not None:
        try:
            record = await auth.identify_fresh(presented_key(request.headers.get("Authorization"),
                                                             request.headers.get("x-api-key")))
        except GatewayError as error:
            return canonical().render_error(error)
        aliases = [a for a in aliases if auth.allowed(record, a)]
    data = [{"id": alias, "object": "model", "created": 0, "owned_by": "llmgw", "type": "model",
             "display_name": alias, "created_at": "1970-01-01T00:00:00Z",
             "targets": [t.name for t in profile.models[alias].targets]} for alias in aliases]
    ids = [d["id"] for d in data]
    return web.json_response({"object": "list", "data": data, "has_more": False,
                              "first_id": ids[0] if ids else None, "last_id": ids[-1] if ids else None},
                             dumps=lambda o: orjson.dumps(o).decode())


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


async def _ready(request: web.Request) -> web.Response:
    writer = request.app.get(WRITER)
    store_dir = request.app[PROFILE].state.db_path.parent
    problems = []
    if writer is None:
        problems.append("request log is not open")
    if not os.access(store_dir, os.W_OK):
        problems.append(f"state directory {store_dir} is not writable")
    if problems:
        return web.json_response({"status": "not ready", "problems": problems}, status=503)
    return web.json_response({"status": "ready", "models": len(request[REQUEST_GENERATION].profile.models)})


@web.middleware
async def _error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown paths answer in the format the path suggests, with a hint (:func:`.landing.unknown_path`); other
    HTTP errors and unexpected exceptions in OpenAI's error format, never with a traceback."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status in (404, 405):
            return unknown_path(request, exc)
        return canonical().render_error(GatewayError(exc.reason or "error", status=exc.status, code="http_error"))
    except Exception:
        log.exception("unexpected error handling %s %s", request.method, request.path)
        return canonical().render_error(GatewayError("internal error in the gateway; see its log"))
