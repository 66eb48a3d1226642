"""What a new user meets at the server: the landing page, versions, unknown paths and aliases answered with a hint
in the client's format, a freshly minted key working at once, and budget refusals that explain themselves."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from llmgw import __version__
from llmgw.profile import parse_profile
from llmgw.proxy.governance import KeyReloader, open_keys
from llmgw.store.keys import KeyStore
from llmgw.store.log import write_rows

from .conftest import GatewayFactory
from .test_governance import CI_KEY, HI, bearer, governed

pytestmark = pytest.mark.usefixtures("ci_key")


@pytest.fixture
def ci_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGW_TEST_CI_KEY", CI_KEY)


# --- GET / and the version ----------------------------------------------------------------------------------------


async def test_landing_names_the_gateway_its_version_endpoints_and_docs(gateway: GatewayFactory) -> None:
    client = await gateway(**governed())
    resp = await client.get("/")  # no key needed, and nothing about the profile
    assert resp.status == 200
    body = await resp.json()
    assert body["name"] == "llmgw" and body["version"] == __version__
    for endpoint in ("POST /v1/chat/completions", "POST /v1/messages", "POST /v1/embeddings", "GET /v1/models",
                     "GET /health", "GET /metrics"):
        assert endpoint in body["endpoints"]
    assert "README.md" in body["docs"]
    assert "fast" not in str(body) and "mock" not in str(body)


async def test_health_says_the_version(gateway: GatewayFactory) -> None:
    client = await gateway()
    assert await (await client.get("/health")).json() == {"status": "ok", "version": __version__}


# --- unknown paths ------------------------------------------------------------------------------------------------


async def test_anthropic_sdk_with_v1_in_its_base_url_gets_an_anthropic_error_with_the_fix(
        gateway: GatewayFactory) -> None:
    client = await gateway()
    resp = await client.post("/v1/v1/messages", json={"model": "fast", "max_tokens": 5, "messages": HI})
    assert resp.status == 404
    body = await resp.json()
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    message = body["error"]["message"]
    assert "did you mean /v1/messages?" in message
    assert f"The SDK adds /v1 itself: use base_url=http://{client.server.host}:{client.server.port}" in message


async def test_openai_paths_get_openai_errors(gateway: GatewayFactory) -> None:
    client = await gateway()
    resp = await client.post("/v1/v1/chat/completions", json={"model": "fast", "messages": HI})
    body = await resp.json()
    assert resp.status == 404 and body["error"]["code"] == "not_found"
    assert "did you mean /v1/chat/completions?" in body["error"]["message"]
    resp = await client.post("/api/v1/chat/completions", json={"model": "fast", "messages": HI})
    assert "Remove '/api' from the client's base URL" in (await resp.json())["error"]["message"]
    resp = await client.get("/nothing/here")
    assert resp.status == 404 and "`GET /` lists the endpoints" in (await resp.json())["error"]["message"]


async def test_wrong_method_names_the_right_one(gateway: GatewayFactory) -> None:
    client = await gateway()
    resp = await client.get("/v1/messages")
    body = await resp.json()
    assert resp.status == 405 and body["type"] == "error"
    assert "send POST" in body["error"]["message"]
    resp = await client.post("/v1/models")
    assert resp.status == 405 and "send GET" in (await resp.json())["error"]["message"]


# --- unknown aliases ----------------------------------------------------------------------------------------------


async def test_an_unknown_alias_suggests_the_closest(gateway: GatewayFactory) -> None:
    client = await gateway()
    resp = await client.post("/v1/chat/completions", json={"model": "fsat", "messages": HI})
    assert resp.status == 404
    assert "did you mean 'fast'?" in (await resp.json())["error"]["message"]
    resp = await client.post("/v1/messages", json={"model": "Fast", "max_tokens": 5, "messages": HI})
    assert "did you mean 'fast'?" in (await resp.json())["error"]["message"]
    resp = await client.post("/v1/chat/completions", json={"model": "zzzzzz", "messages": HI})
    assert "did you mean" not in (await resp.json())["error"]["message"]


async def test_suggestions_never_reveal_aliases_outside_the_allow_list(gateway: GatewayFactory) -> None:
    """Key ci (team search) may use fast and priced only: 'secret-model' exists but must read like 'secret-modle',
    and neither may be suggested."""
    client = await gateway(**governed())

    async def message(alias: str) -> str:
        resp = await client.post("/v1/chat/completions", json={"model": alias, "messages": HI},
                                 headers=bearer(CI_KEY))
        assert resp.status == 404
        return str((await resp.json())["error"]["message"])

    hidden, typo = await message("secret-model"), await message("secret-modle")
    assert hidden == typo.replace("secret-modle", "secret-model")
    assert "did you mean" not in hidden
    assert "did you mean 'priced'?" in await message("prised")


# --- a freshly minted key -----------------------------------------------------------------------------------------


async def test_a_key_minted_while_the_server_runs_works_on_its_first_request(gateway: GatewayFactory,
                                                                            tmp_path: Path) -> None:
    client = await gateway(**governed())
    assert (await client.post("/v1/chat/completions", json={"model": "fast", "messages": HI},
                              headers=bearer(CI_KEY))).status == 200
    store = KeyStore(tmp_path / "llmgw.db")
    _, secret = store.create("search", "fresh")
    store.close()
    resp = await client.post("/v1/chat/completions", json={"model": "fast", "messages": HI}, headers=bearer(secret))
    assert resp.status == 200, await resp.text()
    models = await client.get("/v1/models", headers=bearer(secret))
    assert models.status == 200


class _CountingLoad:
    """A key loader that counts its calls (each is one read of the key store)."""

    def __init__(self, tmp_path: Path) -> None:
        self.calls = 0
        self.profile = parse_profile({"state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
                                      "teams": {"search": {}}})

    def __call__(self) -> Any:
        self.calls += 1
        return open_keys(self.profile)


async def test_made_up_keys_cannot_hammer_the_key_store(tmp_path: Path) -> None:
    load = _CountingLoad(tmp_path)
    reloader = KeyReloader(load(), load, min_interval_s=0.2)
    load.calls = 0
    fake = "sk-llmgw-" + "x" * 40
    started = time.monotonic()
    # a burst: the first request's read, then one read for every request that arrived while it ran
    await asyncio.gather(*[reloader.fresh(fake) for _ in range(200)])
    assert load.calls == 2
    for _ in range(5):  # one after another: one read per interval at most
        await reloader.fresh(fake)
    elapsed = time.monotonic() - started
    assert load.calls == 7 and elapsed >= 6 * 0.2 - 0.05
    await reloader.fresh("not-a-minted-key")  # other shapes never read the store
    await reloader.fresh(None)
    assert load.calls == 7


async def test_a_reread_that_started_before_the_request_does_not_count(tmp_path: Path) -> None:
    """A key minted while a re-read is under way is found: the request waits for the next one."""
    load = _CountingLoad(tmp_path)
    reloader = KeyReloader(load(), load, min_interval_s=0.0)
    store = KeyStore(tmp_path / "llmgw.db")
    periodic = asyncio.create_task(reloader.reload())
    await asyncio.sleep(0)  # the periodic re-read has started (before the key exists)
    _, secret = store.create("search")
    store.close()
    await reloader.fresh(secret)
    await periodic
    assert reloader.index.lookup(secret) is not None


# --- budget refusals ----------------------------------------------------------------------------------------------


async def test_a_budget_refusal_says_what_was_reserved_and_what_is_left(gateway: GatewayFactory,
                                                                         tmp_path: Path) -> None:
    """$0.887 of a $1.00 daily budget spent (88.7 %): a request that could cost more than the $0.113 left is
    refused, and the message says so instead of calling the budget spent."""
    write_rows(tmp_path / "llmgw.db", [_row("req_before", cost=0.887)])
    client = await gateway(**governed(teams={"search": {"budget_usd": {"daily": 1.0}, "models": ["priced"]}}))
    resp = await client.post("/v1/chat/completions", json={"model": "priced", "messages": HI, "max_tokens": 200},
                             headers=bearer(CI_KEY))
    assert resp.status == 429
    message = (await resp.json())["error"]["message"]
    assert "is spent" not in message
    assert "team search daily budget ($1.00) cannot cover this request: it could cost up to $0.2" in message
    assert "$0.1130 of $1.00 is left" in message
    assert "lower max_tokens" in message and "resets at " in message
    small = await client.post("/v1/chat/completions", json={"model": "priced", "messages": HI, "max_tokens": 50},
                              headers=bearer(CI_KEY))
    assert small.status == 200


def _row(request_id: str, *, cost: float) -> dict[str, Any]:
    return {"id": request_id, "time": time.time() - 1, "client_format": "openai", "endpoint": "chat",
            "alias": "priced", "provider": "mock", "target": "mock/priced", "status": 200, "outcome": "ok",
            "error": None, "error_message": None, "input_tokens": 1, "output_tokens": 1, "cached_tokens": 0,
            "cache_write_tokens": 0, "reasoning_tokens": 0, "cost_usd": cost, "latency_ms": 1.0, "ttft_ms": None,
            "attempts": [], "cache": "miss", "key": "ci", "team": "search", "tags": [], "stream": False,
            "dropped_params": [], "request": None, "response": None}


# --- the mock declares what it cannot honour ------------------------------------------------------------------------


@pytest.mark.parametrize(("param", "value"), [("n", 2), ("response_format", {"type": "json_object"}),
                                              ("logprobs", True)])
async def test_the_mock_refuses_what_it_cannot_honour(gateway: GatewayFactory, param: str, value: Any) -> None:
    client = await gateway()
    resp = await client.post("/v1/chat/completions", json={"model": "fast", "messages": HI, param: value})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["param"] == param and f"{param}: not supported by mock targets" in error["message"]
    neutral = {"n": 1, "response_format": {"type": "text"}, "logprobs": False}[param]
    ok = await client.post("/v1/chat/completions", json={"model": "fast", "messages": HI, param: neutral})
    assert ok.status == 200


async def test_the_mock_honours_drop_params(gateway: GatewayFactory, tmp_path: Path) -> None:
    client = await gateway(providers={"mock": {"kind": "mock", "drop_params": ["n"]}})
    resp = await client.post("/v1/chat/completions", json={"model": "fast", "messages": HI, "n": 2})
    assert resp.status == 200
