"""AuthStage on its own: who is calling, and may they call this alias (one 401 for every bad key; an alias outside
the allow-lists looks exactly like an unknown one)."""

from __future__ import annotations

import time

import pytest

from llmgw.errors import AuthenticationError, ModelNotFound
from llmgw.profile import ModelConfig, Target, TeamConfig
from llmgw.stages.auth import AuthStage, presented_key
from llmgw.store.keys import KeyIndex, KeyRecord, hash_secret
from llmgw.testing.exchanges import make_exchange

SALT = "salt"
MODELS = {alias: ModelConfig(alias, (Target("mock", "m"),)) for alias in ("fast", "secret", "team-only")}
GOOD, REVOKED, EXPIRED, NARROW = "sk-good-0001", "sk-revoked-0001", "sk-expired-0001", "sk-narrow-0001"


def stage() -> AuthStage:
    records = {
        hash_secret(SALT, GOOD): KeyRecord("good", "search"),
        hash_secret(SALT, REVOKED): KeyRecord("old", "search", revoked=True),
        hash_secret(SALT, EXPIRED): KeyRecord("late", "search", expires=time.time() - 1),
        hash_secret(SALT, NARROW): KeyRecord("narrow", "search", models=("fast",)),
    }
    teams = {"search": TeamConfig("search", models=("fast", "team-only"))}
    return AuthStage(MODELS, KeyIndex(SALT, records, teams))


def exchange(alias: str, credential: str | None):
    return make_exchange({"model": alias}, model=None, credential=credential)


async def test_open_proxy_resolves_the_alias_only() -> None:
    ex = exchange("fast", None)
    await AuthStage(MODELS, None).request(ex)
    assert ex.model is MODELS["fast"] and ex.key_id == "" and ex.principal is None
    with pytest.raises(ModelNotFound):
        await AuthStage(MODELS, None).request(exchange("nope", None))


async def test_a_good_key_sets_key_team_and_model() -> None:
    ex = exchange("fast", GOOD)
    await stage().request(ex)
    assert (ex.key_id, ex.team, ex.model) == ("good", "search", MODELS["fast"])


@pytest.mark.parametrize("credential", [None, "", "sk-unknown", REVOKED, EXPIRED, GOOD + " ", GOOD.upper(),
                                        GOOD + "\u200b", "x" * 100_000])
async def test_every_bad_key_gets_the_same_401(credential: str | None) -> None:
    ex = exchange("fast", credential)
    with pytest.raises(AuthenticationError) as info:
        await stage().request(ex)
    assert info.value.status == 401 and "sk-" not in info.value.message
    assert ex.model is None and ex.principal is None


async def test_aliases_outside_the_allow_lists_look_unknown() -> None:
    errors = []
    for alias, credential in (("secret", GOOD), ("team-only", NARROW), ("nope", GOOD)):
        with pytest.raises(ModelNotFound) as info:
            await stage().request(exchange(alias, credential))
        errors.append((info.value.status, info.value.message.replace(repr(alias), "ALIAS")))
    assert len(set(errors)) == 1   # the same answer, whichever reason


def test_presented_key_reads_either_header() -> None:
    assert presented_key("Bearer  abc ", None) == "abc"
    assert presented_key("bearer abc", None) == "abc"
    assert presented_key("Basic abc", None) is None
    assert presented_key("Bearer ", None) is None
    assert presented_key("Bearer a", "b") == "b"
