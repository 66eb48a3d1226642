"""Texts the request rules found clean are not scanned again, and nothing with a finding is ever taken as clean."""

from __future__ import annotations

import random
import threading
from typing import Any

import orjson
import pytest

from llmgw.exchange import Exchange
from llmgw.formats.openai_chat import OpenAIChat
from llmgw.guardrails.clean_texts import CleanTexts
from llmgw.guardrails.engine import Scan
from llmgw.guardrails.redact import Placeholders
from llmgw.guardrails.rules import parse_rules
from llmgw.profile import ModelConfig, Target
from llmgw.stages.guardrails import GuardrailStage

MODELS = {"fast": ModelConfig("fast", (Target("mock", "m"),))}
PII = {"name": "pii", "kind": "pii", "action": "redact"}
SYSTEM = "You are a careful coding assistant. Read the repository before you change it, and explain each step. " * 20
EARLIER = "Please refactor the parser module so that every function has one job and a docstring that says what."


def chat(*messages: str) -> Exchange:
    body: dict[str, Any] = {"model": "fast", "messages": [
        {"role": "system", "content": SYSTEM},
        *({"role": "user" if i % 2 == 0 else "assistant", "content": m} for i, m in enumerate(messages))]}
    ex = Exchange("openai", "chat")
    ex.raw_body = orjson.dumps(body)
    OpenAIChat().parse(ex, body)
    ex.model = MODELS["fast"]
    return ex


def counting(stage: GuardrailStage, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts the stage's PII detector reads from now on."""
    seen: list[str] = []
    detector = stage.request_rules[0].detector
    find = detector.find

    def spy(text: str) -> Any:
        seen.append(text)
        return find(text)

    monkeypatch.setattr(detector, "find", spy)
    return seen


async def test_a_conversation_is_scanned_once_per_text(monkeypatch: pytest.MonkeyPatch) -> None:
    stage = GuardrailStage(parse_rules([PII]), MODELS, {})
    seen = counting(stage, monkeypatch)
    first = chat(EARLIER)
    await stage.request(first)
    assert first.error is None and SYSTEM in seen and EARLIER in seen
    seen.clear()
    reply, turn = "Done: the parser module now has small functions, each with a docstring of its contract.", \
        "Now add tests for the tokenizer, one for each kind of token, and run them all on every commit please."
    second = chat(EARLIER, reply, turn)
    await stage.request(second)
    assert second.error is None
    assert seen == [reply, turn]      # the system prompt and the earlier turn were not read again
    assert stage.clean_texts.hits == 2


async def test_a_text_with_pii_is_judged_every_time() -> None:
    stage = GuardrailStage(parse_rules([PII]), MODELS, {})
    leaky = "Send the quarterly report to jane.doe@example.com before the board meets on Friday morning."
    for _ in range(3):
        ex = chat(leaky)
        await stage.request(ex)
        assert ex.body["messages"][1]["content"] == leaky.replace("jane.doe@example.com", "<EMAIL_1>")
        assert [f["entity"] for f in ex.findings] == ["email"]
    key = stage.clean_texts.key(leaky)
    assert key is not None and not stage.clean_texts.known(key)


FULLWIDTH_EMAIL = "".join(chr(ord(c) + 0xFEE0) for c in "jane@example.com")


@pytest.mark.parametrize("added", [" jane.doe@example.com", " call (415) 555-2671", " " + FULLWIDTH_EMAIL,
                                   " jane.doe\u200b@example.com"])
async def test_a_known_clean_text_with_a_value_added_is_scanned(added: str) -> None:
    stage = GuardrailStage(parse_rules([PII]), MODELS, {})
    await stage.request(chat(EARLIER))
    ex = chat(EARLIER + added)
    await stage.request(ex)
    assert ex.findings and ex.body["messages"][1]["content"] != EARLIER + added


async def test_each_stage_has_its_own_memory() -> None:
    """A reload makes a new stage: a text its old rules passed is judged by the new rules."""
    old = GuardrailStage(parse_rules([PII]), MODELS, {})
    await old.request(chat(EARLIER))
    new = GuardrailStage(parse_rules([PII, {"name": "no-parser", "kind": "denylist", "terms": ["parser module"],
                                            "action": "block"}]), MODELS, {})
    ex = chat(EARLIER)
    await new.request(ex)
    assert ex.error is not None and ex.error.code == "guardrail_blocked"


def test_nothing_found_only_inside_own_placeholders_is_not_remembered() -> None:
    """A value dropped only because it lay inside a placeholder this request issued would be found in a request
    where the client wrote that token itself: such a text is not remembered as clean."""
    rules = parse_rules([{"name": "tokens", "kind": "regex", "pattern": "EMAIL_1", "action": "flag"}])
    clean = CleanTexts()
    text = "The address was replaced by <EMAIL_1> in the draft, so the reviewer never sees it again."
    table = Placeholders()
    table.token("EMAIL", "jane.doe@example.com", restorable=False)
    assert Scan(rules, "request", table, clean=clean).find(text) == []
    assert len(clean) == 0
    assert [f.value for f in Scan(rules, "request", Placeholders(), clean=clean).find(text)] == ["EMAIL_1"]


def test_short_texts_are_not_remembered_and_the_oldest_goes_first() -> None:
    clean = CleanTexts(max_texts=2, min_chars=8)
    assert clean.key("short") is None
    a, b, c = (clean.key(f"text number {i}") for i in range(3))
    assert a and b and c and len({a, b, c}) == 3
    clean.add(a)
    clean.add(b)
    assert clean.known(a)       # a is now the most recently seen
    clean.add(c)
    assert clean.known(a) and clean.known(c) and not clean.known(b)
    assert len(clean) == 2


def test_lone_surrogates_have_keys_of_their_own() -> None:
    clean = CleanTexts(min_chars=1)
    assert clean.key("x\ud800") != clean.key("x\ud801") != clean.key("x")


def test_threads_at_once_keep_it_bounded() -> None:
    clean = CleanTexts(max_texts=100, min_chars=1)
    errors: list[BaseException] = []

    def hammer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(5000):
                key = clean.key(str(rng.randrange(400)))
                assert key is not None
                if not clean.known(key):
                    clean.add(key)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(clean) <= 100 + len(threads)   # an eviction that met another thread waits


def test_a_full_memory_adds_as_fast_as_an_empty_one() -> None:
    """Dropping the least recently seen text costs the same however long the memory has been full (a dict whose
    first key is dropped again and again walks past every earlier hole to find the next one)."""
    import os
    import time

    clean = CleanTexts(max_texts=20_000, min_chars=1)
    keys = [os.urandom(16) for _ in range(140_000)]

    def per_add(batch: list[bytes]) -> float:
        started = time.perf_counter()
        for key in batch:
            clean.add(key)
        return (time.perf_counter() - started) / len(batch)

    filling = min(per_add(keys[i:i + 5_000]) for i in range(0, 20_000, 5_000))
    full = max(per_add(keys[i:i + 30_000]) for i in range(20_000, 140_000, 30_000))
    assert len(clean) == 20_000
    assert full < 4 * filling + 2e-6, f"{full * 1e6:.2f} us per addition when full, {filling * 1e6:.2f} when filling"
