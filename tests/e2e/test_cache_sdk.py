"""The response cache end to end: `llmgw serve` (packaged embedding model) driven by the official SDKs."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

KEY_A = "sk-llmgw-cache-e2e-team-a-0001"
KEY_B = "sk-llmgw-cache-e2e-team-b-0001"
ENV = {"LLMGW_CACHE_E2E_A": KEY_A, "LLMGW_CACHE_E2E_B": KEY_B}
PROFILE: dict[str, Any] = {
    "providers": {"mock": {"kind": "mock"}},
    "models": {"fast": {"targets": ["mock/m"]}},
    "cache": {"exact": True, "semantic": True},
    "teams": {"a": {}, "b": {}},
    "keys": {"a": {"key": "env:LLMGW_CACHE_E2E_A", "team": "a"}, "b": {"key": "env:LLMGW_CACHE_E2E_B", "team": "b"}},
}


def openai_client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


def ask(client: openai.OpenAI, text: str) -> tuple[str, str | None]:
    raw = client.chat.completions.with_raw_response.create(model="fast",
                                                           messages=[{"role": "user", "content": text}])
    return raw.headers["x-llmgw-cache"], raw.parse().choices[0].message.content


@pytest.mark.e2e
def test_two_tenants_never_share_an_answer(serve: Any) -> None:
    server = serve(PROFILE, env=ENV)
    a, b = openai_client(server.url, KEY_A), openai_client(server.url, KEY_B)
    assert ask(a, "What is the capital of France?")[0] == "miss"
    assert ask(b, "What is the capital of France?")[0] == "miss"      # same prompt, another team: not shared
    assert ask(b, "What's the capital of France?")[0] == "semantic"   # its own entry, rephrased
    assert ask(a, "What is the capital of France?")[0] == "hit"
    a.close()
    b.close()


@pytest.mark.e2e
def test_cached_answers_stream_to_both_sdks(serve: Any) -> None:
    server = serve(PROFILE, env=ENV)
    oa = openai_client(server.url, KEY_A)
    kind, original = ask(oa, "How do I reset my password?")
    assert kind == "miss" and original

    # OpenAI SDK: an exact hit replayed as a stream, usage chunk included
    raw = oa.chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": "How do I reset my password?"}], stream=True,
        stream_options={"include_usage": True})
    assert raw.headers["x-llmgw-cache"] == "hit"
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == original
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]

    # Anthropic SDK: a semantic hit (rephrased) replayed as Messages events
    an = anthropic.Anthropic(base_url=server.url, api_key=KEY_A, max_retries=0)
    stream_raw = an.messages.with_raw_response.create(
        model="fast", max_tokens=100, messages=[{"role": "user", "content": "How can I reset my password?"}],
        stream=True)
    assert stream_raw.headers["x-llmgw-cache"] == "miss"    # another client format: another partition
    for _ in stream_raw.parse():
        pass
    with an.messages.stream(model="fast", max_tokens=100,
                            messages=[{"role": "user", "content": "How could I reset my password?"}]) as stream:
        final = stream.get_final_message()
        assert stream.response.headers["x-llmgw-cache"] == "semantic"
    assert final.content[0].type == "text" and final.content[0].text == "Mock answer: How can I reset my password?"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
    oa.close()
    an.close()
