"""The answer leaves before the bookkeeping: a whole reply or an error is written to the client before
``Pipeline.finish`` (the log row, the metrics, settling limits, storing in the cache) runs, as a stream's end is;
and the bookkeeping still runs to its end. (A keep-alive connection serves its next request once the handler is
done, so these requests close theirs and the checks meanwhile come on another.)"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from llmgw.errors import InvalidRequest
from llmgw.exchange import Exchange
from llmgw.proxy import handlers
from llmgw.proxy.app import SERVING
from llmgw.testing.exchanges import make_exchange

from .conftest import GatewayFactory, log_rows

HI = [{"role": "user", "content": "hi there"}]
CLOSE = {"Connection": "close"}


async def post_closing(client: TestClient, body: dict[str, object]) -> ClientResponse:
    """A chat request on a connection of its own (closed after the answer), its answer's head within 5 s."""
    return await asyncio.wait_for(client.post("/v1/chat/completions", json=body, headers=CLOSE), 5)


Hold = Callable[[TestClient], asyncio.Event]


@pytest.fixture
def hold(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hold]:
    """``hold(client)``: the serving pipeline's way out (``Pipeline.finish``) waits for the returned event, inside the
    task that a client's hang-up cannot cancel (as a shared store's settling would). Every gate opens at teardown,
    so a failing test never leaves a handler waiting."""
    gates: list[asyncio.Event] = []

    def held_pipeline(client: TestClient) -> asyncio.Event:
        gate = asyncio.Event()
        gates.append(gate)
        pipeline = client.server.app[SERVING].current.pipeline
        real = pipeline.finish

        async def held(ex: Exchange) -> None:
            await gate.wait()
            await real(ex)

        monkeypatch.setattr(pipeline, "finish", held)
        monkeypatch.setattr(pipeline, "finish_suspends", True)
        return gate

    yield held_pipeline
    for gate in gates:
        gate.set()


async def test_a_whole_answer_arrives_while_the_bookkeeping_waits(gateway: GatewayFactory, tmp_path: Path,
                                                                   hold: Hold) -> None:
    client = await gateway()
    gate = hold(client)
    resp = await post_closing(client, {"model": "fast", "messages": HI})
    body = await asyncio.wait_for(resp.json(), 5)
    assert resp.status == 200 and body["choices"][0]["message"]["content"]
    assert float(resp.headers["x-llmgw-cost-usd"]) >= 0 and resp.headers["x-llmgw-request-id"].startswith("req_")
    metrics = await asyncio.wait_for((await client.get("/metrics")).text(), 5)
    assert 'llmgw_requests_total{alias="fast"' not in metrics      # not counted yet: its finish is held
    gate.set()
    for _ in range(100):
        metrics = await (await client.get("/metrics")).text()
        if 'llmgw_requests_total{alias="fast",target="mock/mock-1",team="",status="200"} 1' in metrics:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"the request was never counted once its finish ran: {metrics}")
    await client.close()
    rows = log_rows(tmp_path)
    assert [(r["alias"], r["status"], r["outcome"]) for r in rows] == [("fast", 200, "ok")]


async def test_an_error_arrives_while_the_bookkeeping_waits(gateway: GatewayFactory, tmp_path: Path,
                                                            hold: Hold) -> None:
    client = await gateway()
    gate = hold(client)
    resp = await post_closing(client, {"model": "nope", "messages": HI})
    assert resp.status == 404
    assert "does not exist" in (await asyncio.wait_for(resp.json(), 5))["error"]["message"]
    bad = await post_closing(client, {"model": "fast", "messages": "hi"})
    assert bad.status == 400
    gate.set()
    await asyncio.sleep(0.05)
    await client.close()
    assert sorted(r["status"] for r in log_rows(tmp_path)) == [400, 404]


async def test_a_client_gone_before_the_answer_is_written_is_a_disconnect() -> None:
    ex = make_exchange()
    response = web.json_response({"ok": True})
    with mock.patch.object(web.Response, "prepare", side_effect=ConnectionResetError("gone")):
        sent = await handlers.send(mock.Mock(), ex, response)
    assert sent is response
    assert (ex.outcome, ex.status, ex.delivered) == ("client_disconnect", 499, False)


async def test_a_written_answer_is_delivered_and_an_error_is_not() -> None:
    ex = make_exchange()
    with mock.patch.object(web.Response, "prepare"), mock.patch.object(web.Response, "write_eof"):
        await handlers.send(mock.Mock(), ex, web.json_response({"ok": True}))
        assert ex.delivered and ex.outcome != "client_disconnect"
        refused = make_exchange()
        refused.fail(InvalidRequest("no"))
        await handlers.send(mock.Mock(), refused, web.json_response({}, status=400))
        assert not refused.delivered
