"""Running the server: one event loop per process, graceful shutdown, and ``--workers N`` on one port.

Contract:
- ``serve(profile, host, port, workers)`` blocks until SIGINT/SIGTERM, then stops accepting connections, lets
  in-flight requests finish (up to ``SHUTDOWN_GRACE_S``), flushes the request log, and returns normally.
- With ``workers > 1`` the parent starts N worker processes that all listen on the same port (SO_REUSEPORT), each
  with its own event loop; a signal to the parent is passed to every worker and the parent waits for them. The
  workers publish their metrics to a folder of the run (:mod:`llmgw.proxy.metrics_share`) that the parent creates
  before and removes after.
- ``on_ready(url)`` is called once the socket listens (with the real port when ``port`` is 0) and SIGHUP is
  handled (so a pid file written then can be signalled at once).
- SIGHUP reloads the profile from ``source`` (:mod:`llmgw.proxy.reload`): validated, built, swapped; a bad profile
  is refused on stderr and the old one keeps serving. With ``watch`` the file is also polled and reloaded when it
  changes. With ``workers > 1`` the parent passes SIGHUP to every worker and each worker reloads (and, with
  ``watch``, watches) by itself. Reloads are logged at INFO on ``llmgw.proxy.reload`` (shown by ``llmgw serve``).
- Each process raises its open-file soft limit to the hard limit at start and serves at most
  ``[server] max_connections`` client connections (fewer if that limit is lower), refusing more with a 503; a
  connection must send its request headers within ``header_timeout_s`` and is closed after
  ``keepalive_timeout_s`` idle (:mod:`llmgw.proxy.connections`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..profile import Profile
from .app import SERVING, make_app
from .connections import ConnectionGuard, GuardedSite, connection_cap, raise_fd_limit
from .metrics_share import run_folder
from .reload import ProfileSource

log = logging.getLogger("llmgw.proxy.runner")

SHUTDOWN_GRACE_S = 30.0
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"   # as `llmgw` sets it up
GC_GEN0_THRESHOLD = 50_000   # allocations between young collections (CPython's default is 700)


def tune_gc() -> None:
    """Make the cyclic GC cheap for a server: objects alive after start-up (modules, the app, the profile) move to
    the permanent generation and are never scanned again, and young collections run every 50,000 allocations
    instead of 700, so that the objects of requests in flight die by reference counting before a collection
    looks at them. Measured: about 10% more requests per second at high concurrency (bench/RESULTS.md)."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def _install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    """A worker whose parent died (even by SIGKILL) stops by itself instead of lingering on the port."""
    while not stop.is_set():
        if os.getppid() != parent_pid:
            stop.set()
            return
        await asyncio.sleep(0.5)


TASK_NAME = "llmgw"


def named_task(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
    """The serving loop's task factory: every task is named ``TASK_NAME`` unless its creator names it. Python 3.11
    otherwise formats a fresh ``Task-N`` name for each of the few tasks every request creates (aiohttp's handler,
    the upstream request's body writer), which costs more than the rest of creating the task. (Python 3.13 passes
    the creator's ``name`` and ``context`` here; 3.11 and 3.12 pass ``context`` and set the name afterwards.)"""
    kwargs.setdefault("name", TASK_NAME)
    return asyncio.Task(coro, loop=loop, **kwargs)


async def _serve_async(profile: Profile, host: str, port: int, reuse_port: bool,
                       on_ready: Callable[[str], None] | None, parent_pid: int | None = None,
                       source: ProfileSource | None = None, watch: bool = False) -> None:
    asyncio.get_running_loop().set_task_factory(named_task)
    folder = run_folder(profile.state.db_path.parent, parent_pid) if parent_pid else None
    app = make_app(profile, metrics_folder=folder, source=source)
    server = profile.server
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S,
                           keepalive_timeout=server.keepalive_timeout_s)
    await runner.setup()
    try:
        sock = _listen_socket(host, port, reuse_port)
    except OSError:
        await runner.cleanup()
        raise
    cap = connection_cap(server.max_connections, raise_fd_limit())
    if cap < server.max_connections:
        log.warning("serving at most %d connections (server.max_connections is %d): the open-file limit allows no"
                    " more", cap, server.max_connections)
    site = GuardedSite(runner, sock, ConnectionGuard(cap, server.header_timeout_s), backlog=2048)
    await site.start()
    tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    serving = app[SERVING]
    loop.add_signal_handler(signal.SIGHUP, serving.request)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})   # a worker's SIGHUP that came early runs now
    if on_ready is not None:
        on_ready(_url(host, sock.getsockname()[1]))
    watcher = asyncio.create_task(_watch_parent(parent_pid, stop)) if parent_pid else None
    file_watch = asyncio.create_task(serving.watch()) if watch else None
    try:
        await stop.wait()
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        for task in (watcher, file_watch):
            if task is not None:
                task.cancel()
        await runner.cleanup()


def _listen_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:  # a port in use: the socket must not outlive the error
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def show_reloads() -> None:
    """Let the server's reload lines (INFO) through to stderr, unless logging was set up more verbosely."""
    reload_log = logging.getLogger("llmgw.proxy.reload")
    if reload_log.getEffectiveLevel() > logging.INFO:
        reload_log.setLevel(logging.INFO)


def serve_one(profile: Profile, host: str, port: int, *, reuse_port: bool = False,
              on_ready: Callable[[str], None] | None = None, parent_pid: int | None = None,
              source: ProfileSource | None = None, watch: bool = False) -> None:
    """Serve in this process until SIGINT/SIGTERM (or, for a worker, until its parent is gone); SIGHUP (and, with
    ``watch``, a change of the file) reloads the profile from ``source``."""
    _install_uvloop()
    show_reloads()
    asyncio.run(_serve_async(profile, host, port, reuse_port, on_ready, parent_pid, source, watch))
    # Shut down cleanly already: a second ^C or SIGTERM while the interpreter exits changes nothing.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _worker(profile: Profile, host: str, port: int, parent_pid: int, source: ProfileSource | None = None,
            watch: bool = False, log_level: int = logging.WARNING) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent forwards SIGTERM; a terminal ^C reaches us all
    logging.basicConfig(level=log_level, format=LOG_FORMAT)   # a spawned process starts with no logging set up
    serve_one(profile, host, port, reuse_port=True, parent_pid=parent_pid, source=source, watch=watch)


def serve(profile: Profile, host: str, port: int, workers: int = 1,
          on_ready: Callable[[str], None] | None = None, *, source: ProfileSource | None = None,
          watch: bool = False) -> None:
    """Serve with ``workers`` processes until SIGINT/SIGTERM; returns after a clean shutdown. SIGHUP reloads the
    profile from ``source`` (in every worker); ``watch`` reloads it when the file changes."""
    if workers <= 1:
        serve_one(profile, host, port, on_ready=on_ready, source=source, watch=watch)
        return
    metrics_folder = run_folder(profile.state.db_path.parent, os.getpid())
    shutil.rmtree(metrics_folder, ignore_errors=True)
    metrics_folder.mkdir(parents=True)
    ctx = multiprocessing.get_context("spawn")
    # Workers start with SIGHUP blocked (the mask is inherited) until their loop handles it: a reload asked for
    # while one starts waits for it instead of killing it.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    level = logging.getLogger().getEffectiveLevel()
    procs = [ctx.Process(target=_worker, args=(profile, host, port, os.getpid(), source, watch, level),
                         name=f"llmgw-worker-{i}")
             for i in range(workers)]
    for proc in procs:
        proc.start()
    stopping = False

    def forward(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)

    def forward_reload(signum: int, frame: object) -> None:
        if stopping:
            return
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGHUP)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward_reload)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    if on_ready is not None:
        on_ready(_url(host, port))
    try:
        for proc in procs:
            proc.join()
    finally:
        shutil.rmtree(metrics_folder, ignore_errors=True)
