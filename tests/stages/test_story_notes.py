"""The notes auth and limits leave in ``ex.story`` (what ``llmgw why`` tells): who was accepted or refused and
why, the limits that admitted a request or the one that refused it; never the key itself."""

from __future__ import annotations

import json

import pytest

from llmgw.errors import AuthenticationError, ModelNotFound, RateLimited
from llmgw.pricing import PriceTable
from llmgw.profile import Budget, ModelConfig, Price, Target, TeamConfig
from llmgw.stages.auth import AuthStage
from llmgw.stages.limits import LimitsStage
from llmgw.store.keys import KeyIndex, KeyRecord, hash_secret
from llmgw.store.shared import MemoryState
from llmgw.testing.exchanges import make_exchange

SALT, SECRET = "salt", "sk-story-secret-0001"
MODELS = {alias: ModelConfig(alias, (Target("mock", "priced"),)) for alias in ("fast", "secret")}
TEAMS = {"search": TeamConfig("search", models=("fast",))}
PRICES = PriceTable({}, overrides={"mock/priced": Price(input=1.0, output=1.0)})


def auth() -> AuthStage:
    return AuthStage(MODELS, KeyIndex(SALT, {hash_secret(SALT, SECRET): KeyRecord("ci", "search")}, TEAMS))


def events(ex) -> list[tuple[str, str]]:
    return [(n["stage"], n["event"]) for n in ex.story]


async def test_auth_notes_the_key_id_and_team_never_the_key() -> None:
    ex = make_exchange({"model": "fast"}, model=None, credential=SECRET)
    await auth().headers(ex)
    await auth().request(ex)
    [note] = ex.story
    assert (note["event"], note["key"], note["team"]) == ("allowed", "ci", "search")
    assert SECRET not in json.dumps(ex.story)


@pytest.mark.parametrize(("credential", "reason"), [(None, "no key"), ("sk-unknown-0001", "unknown key")])
async def test_auth_notes_why_a_key_was_refused(credential: str | None, reason: str) -> None:
    ex = make_exchange({"model": "fast"}, model=None, credential=credential)
    with pytest.raises(AuthenticationError):
        await auth().headers(ex)
    assert [(n["event"], n["reason"]) for n in ex.story] == [("refused", reason)]
    assert "sk-unknown" not in json.dumps(ex.story)


async def test_auth_notes_an_alias_off_the_allow_list_apart_from_an_unknown_one() -> None:
    for alias, reason in (("secret", "alias not allowed"), ("nope", "unknown alias")):
        ex = make_exchange({"model": alias}, model=None, credential=SECRET)
        stage = auth()
        await stage.headers(ex)
        with pytest.raises(ModelNotFound):
            await stage.request(ex)
        assert [(n["event"], n["reason"]) for n in ex.story] == [("refused", reason)]


async def test_limits_note_what_admitted_and_what_refused() -> None:
    teams = {"search": TeamConfig("search", rpm=1, budget=Budget(daily=1.0))}
    limits = LimitsStage(MemoryState(), PRICES, teams)
    key = KeyRecord("ci", "search", tpm=10_000)
    first = make_exchange(max_tokens=100, model=MODELS["fast"], key=key)
    await limits.request(first)
    [note] = first.story
    assert note["event"] == "admitted"
    assert note["windows"] == ["key ci tokens per minute (10000)", "team search requests per minute (1)"]
    assert note["budgets"] == ["team search daily budget ($1.00)"]
    assert note["reserved_tokens"] == first.reservation.windows[0].cost
    assert note["reserved_usd"] == pytest.approx(first.reservation.holds[0].amount)
    second = make_exchange(max_tokens=100, model=MODELS["fast"], key=key)
    with pytest.raises(RateLimited) as refused:
        await limits.request(second)
    [note] = second.story
    assert (note["event"], note["limit"], note["budget"]) == ("refused", "team search requests per minute (1)", False)
    assert note["retry_after_s"] == refused.value.retry_after


async def test_an_open_proxy_leaves_no_limits_note() -> None:
    ex = make_exchange()
    await LimitsStage(MemoryState(), PRICES, {}).request(ex)
    assert events(ex) == []
