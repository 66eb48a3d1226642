"""The HTTP server: ``make_app(profile)`` builds the aiohttp application and the pipeline its handlers use.

Contract:
- All state lives in the application under typed :class:`web.AppKey` s, created in ``cleanup_ctx`` and released
  there: the upstream ``ClientSession``, the providers, the log writer, the stages and the pipeline.
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
import random
import secrets
from collections.abc import AsyncIterator, Collection
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from .. import __version__
from ..cache.embed import Embedder
from ..errors import GatewayError
from ..formats import FORMATS, canonical
from ..pricing import PriceTable
from ..profile import Profile
from ..providers.base import Provider, ProviderContext, adapter_for
from ..stages.auth import AuthStage, presented_key
from ..stages.cache import CacheStage
from ..stages.guardrails import GuardrailStage
from ..stages.limits import LimitsStage
from ..stages.meter import MeterStage
from ..stages.route import Router
from ..store.log import LogWriter
from ..store.log_backend import LogSource, latest_events, open_writer
from ..telemetry import middlewares as tracing_middlewares
from ..telemetry import open_telemetry
from .browser_guard import browser_guard
from .events import EventHub, events_handler
from .governance import KeyReloader, open_keys, open_shared_state, refresh_keys, scrubber
from .handlers import Handler, format_handler
from .landing import landing, unknown_path
from .metrics import Metrics, metrics_handler, refresh_spend_anomalies
from .metrics_share import publish, read_others
from .pipeline import Pipeline

log = logging.getLogger("llmgw.proxy.app")

PROFILE = web.AppKey("profile", Profile)
PIPELINE = web.AppKey("pipeline", Pipeline)
ROUTER = web.AppKey("router", Router)
WRITER = web.AppKey("writer", LogWriter)
SESSION = web.AppKey("session", aiohttp.ClientSession)
AUTH = web.AppKey("auth", AuthStage)
METRICS = web.AppKey("metrics", Metrics)
EVENTS = web.AppKey("events", EventHub)
FAIL_TARGETS = web.AppKey("fail_targets", frozenset)
EMBEDDER = web.AppKey("embedder", list)  # [Embedder] to override the semantic cache's model, or []
CACHE = web.AppKey("cache", CacheStage)


def build_providers(profile: Profile, session: aiohttp.ClientSession,
                    rng: random.Random) -> dict[str, Provider]:
    """One adapter per ``[providers.*]`` entry, keys resolved now (``llmgw check`` reports missing ones)."""
    providers: dict[str, Provider] = {}
    for name, config in profile.providers.items():
        factory = adapter_for(config.kind)
        api_key = config.api_key.resolve() if config.api_key else None
        providers[name] = factory(ProviderContext(config, session, api_key, rng,
                                                  connect_timeout_s=profile.server.connect_timeout_s,
                                                  idle_timeout_s=profile.server.idle_timeout_s))
    return providers


def make_app(profile: Profile, *, fail_targets: Collection[str] = (), embedder: Embedder | None = None,
             metrics_folder: Path | None = None) -> web.Application:
    """The gateway application for ``profile``. Nothing is opened until the app starts. ``fail_targets``
    (``provider/model`` names) are made to fail without being called, as ``llmgw smoke --fail`` asks;
    ``embedder`` replaces the semantic cache's model (tests use a small deterministic one); ``metrics_folder``
    (one of several workers) is where the workers publish their metrics for each other's ``/metrics``."""
    max_bytes = int(profile.server.max_body_mb * 1024 * 1024)
    # An open proxy (no keys) serves loopback names and same-site callers only: a web page is not a client.
    guard = [] if profile.governed else [browser_guard(profile.server.allowed_hosts)]
    # handler_cancellation: a client that hangs up cancels its handler, and with it the upstream request.
    app = web.Application(client_max_size=max_bytes,
                          middlewares=[*tracing_middlewares(profile), *guard, _error_middleware],
                          handler_args={"handler_cancellation": True})
    app[PROFILE] = profile
    app[FAIL_TARGETS] = frozenset(fail_targets)
    app[EMBEDDER] = [embedder] if embedder is not None else []
    app.cleanup_ctx.append(_resources)
    for wire in FORMATS.values():
        for route in wire.routes:
            app.router.add_post(route.path, format_handler(wire, route, profile, lambda: app[PIPELINE], max_bytes))
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
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
    session = aiohttp.ClientSession(connector=connector, json_serialize=lambda o: orjson.dumps(o).decode(),
                                    trace_configs=[telemetry.trace_config()] if telemetry is not None else None)
    try:
        rng = random.Random()
        scrub = scrubber(profile)   # every configured secret, kept out of what upstreams say
        router = Router(build_providers(profile, session, rng), profile.routing, rng=rng,
                        first_token_timeout_s=profile.server.first_token_timeout_s,
                        fail_targets=app[FAIL_TARGETS], scrub=scrub)
        prices = PriceTable.for_profile(profile)  # the mock is free, not unpriced
        meter = MeterStage(prices, writer, listeners=[app[METRICS].observe, app[EVENTS].publish], scrub=scrub)
        keys = await asyncio.to_thread(open_keys, profile) if profile.governed else None
        state = await open_shared_state(profile)
        reloader = KeyReloader(keys, lambda: open_keys(profile)) if keys is not None else None
        auth = AuthStage(profile.models, keys, reloader.fresh if reloader is not None else None)
        limits = LimitsStage(state, prices, profile.teams, default_max_tokens=profile.server.default_max_tokens)
        app[SESSION] = session
        app[WRITER] = writer
        app[AUTH] = auth
        app[ROUTER] = router
        guard = GuardrailStage.from_profile(profile)
        # The cache comes after limits (hits count against rpm, not budgets) and after the guard (its keys and
        # stored answers hold placeholders, never redacted values; it stores nothing for an exchange with findings).
        cache = await asyncio.to_thread(CacheStage.from_profile, profile, embedder=next(iter(app[EMBEDDER]), None))
        app[CACHE] = cache
        # The trace stage, when on, comes first: its response phase runs last, once the meter has logged.
        traced = [telemetry.stage] if telemetry is not None else []
        stages = [*traced, meter, auth, limits, *([guard] if guard.active else []), *([cache] if cache.active else []),
                  router]
        app[PIPELINE] = Pipeline(stages)
        refresher = asyncio.create_task(refresh_keys(reloader)) if reloader is not None else None
        anomalies = asyncio.create_task(refresh_spend_anomalies(app[METRICS], LogSource.of(profile.state)))
        yield
        anomalies.cancel()
        await asyncio.to_thread(cache.close)
        if refresher is not None:
            refresher.cancel()
        await state.close()
    finally:
        await session.close()
        await asyncio.to_thread(writer.close)
        if telemetry is not None:
            await asyncio.to_thread(telemetry.close)


async def _models(request: web.Request) -> web.Response:
    """The aliases, in a shape both SDKs read: OpenAI's model list and Anthropic's (``type``, ``display_name``,
    ``created_at``, ``has_more``, ``first_id``, ``last_id``)."""
    profile = request.app[PROFILE]
    auth = request.app[AUTH]
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
    return web.json_response({"status": "ready", "models": len(request.app[PROFILE].models)})


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
