"""``[cache]`` and ``[[guardrails]]`` are parsed once, when the profile loads, into typed fields
(``Profile.cache``: a CacheConfig; ``Profile.guardrails``: Rules), their problems reported with the rest."""

from __future__ import annotations

from typing import Any

import pytest

from llmgw.cache.config import CacheConfig
from llmgw.guardrails.rules import Rule
from llmgw.profile import ProfileError, parse_profile

BASE: dict[str, Any] = {"providers": {"m": {"kind": "mock"}}, "models": {"fast": {"targets": ["m/mock-1"]}}}


def test_absent_sections_give_an_off_cache_and_no_rules() -> None:
    profile = parse_profile(BASE)
    assert profile.cache == CacheConfig() and not profile.cache.enabled
    assert profile.guardrails == ()
    assert "cache" not in profile.extra and "guardrails" not in profile.extra


def test_cache_and_guardrails_are_typed_at_load_time_and_the_raw_tables_kept() -> None:
    raw_rules = [{"name": "pii", "kind": "pii", "entities": ["email"]},
                 {"name": "words", "kind": "denylist", "terms": ["secret plan"], "action": "flag"}]
    profile = parse_profile({**BASE, "cache": {"semantic": True, "threshold": 0.9, "ttl": "2h"},
                             "guardrails": raw_rules})
    assert isinstance(profile.cache, CacheConfig)
    assert (profile.cache.enabled, profile.cache.semantic, profile.cache.threshold, profile.cache.ttl_s) == \
        (True, True, 0.9, 7200.0)
    assert isinstance(profile.guardrails, tuple) and all(isinstance(r, Rule) for r in profile.guardrails)
    assert [(r.name, r.kind, r.action) for r in profile.guardrails] == [("pii", "pii", "redact"),
                                                                        ("words", "denylist", "flag")]
    assert profile.extra["cache"] == {"semantic": True, "threshold": 0.9, "ttl": "2h"}
    assert profile.extra["guardrails"] == raw_rules


def test_cache_and_guardrail_problems_come_with_every_other_problem_by_key_path() -> None:
    data = {**BASE, "server": {"port": -1}, "cache": {"threshold": 3},
            "guardrails": [{"name": "x", "kind": "telepathy"}]}
    with pytest.raises(ProfileError) as info:
        parse_profile(data)
    problems = info.value.problems
    assert any(p.startswith("server.port:") for p in problems)
    assert any(p.startswith("cache.threshold:") for p in problems)
    assert any(p.startswith("guardrails[0].kind:") for p in problems)
