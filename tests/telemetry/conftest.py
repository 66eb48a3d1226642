"""A real OTLP/HTTP collector for the tests: an aiohttp server on a free loopback port that takes
``POST /v1/traces`` (protobuf ``ExportTraceServiceRequest``, decoded with opentelemetry-proto) and keeps every span
as a plain dict; plus a gateway on a profile that sends its traces there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from llmgw.proxy.app import make_app
from llmgw.testing import FakeOpenAI
from tests.conftest import CANARY
from tests.proxy.conftest import profile_for

SERVER, CLIENT = 2, 3          # opentelemetry.proto.trace.v1.Span.SpanKind
UNSET, OK, ERROR = 0, 1, 2     # opentelemetry.proto.trace.v1.Status.StatusCode


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


class Collector:
    """The OTLP/HTTP receiver (see the module docstring). ``spans``: every span received, in arrival order, as
    ``{"name", "kind", "trace_id", "span_id", "parent_span_id", "trace_state", "attributes", "status",
    "status_message", "start", "end", "scope", "resource"}`` (ids in lower-case hex, ``""`` for no parent)."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.posts: list[Any] = []   # the headers of each export request (case-insensitive)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _traces(self, request: web.Request) -> web.Response:
        self.posts.append(request.headers.copy())
        assert request.content_type == "application/x-protobuf"
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        for resource_spans in message.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append({
                        "name": span.name, "kind": span.kind, "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(), "parent_span_id": span.parent_span_id.hex(),
                        "trace_state": span.trace_state,
                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                        "status": span.status.code, "status_message": span.status.message,
                        "start": span.start_time_unix_nano, "end": span.end_time_unix_nano,
                        "scope": scope_spans.scope.name, "resource": resource,
                    })
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The spans once at least ``count`` have arrived (or what arrived within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(self.spans) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.spans

    def named(self, kind: int) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["kind"] == kind]


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    receiver = Collector()
    await receiver.start()
    yield receiver
    await receiver.close()


@pytest.fixture
async def upstream(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeOpenAI]:
    monkeypatch.setenv("FAKE_UP_KEY", CANARY)
    async with FakeOpenAI(api_key=CANARY) as fake:
        yield fake


GatewayFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def gateway(aiohttp_client: Any, tmp_path: Path) -> GatewayFactory:
    """``await gateway(upstream=url, **sections)`` → a test client for a fresh app on that profile."""

    async def make(*, upstream: str | None = None, **sections: Any) -> TestClient:
        return await aiohttp_client(make_app(profile_for(tmp_path, upstream=upstream, **sections)))

    return make
