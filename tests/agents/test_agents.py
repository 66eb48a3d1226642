"""Real coding agents, headless, through a real ``llmgw serve`` to a fake upstream of every kind: the agent's own
success output, what the upstream received (its tools, its system prompt and system messages), the log row, and a
round trip through one of the agent's own tools. The cells are every pair of ``harness.AGENTS`` and
``harness.UPSTREAMS``, and ``docs/compatibility.md`` lists exactly these."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from .conftest import AgentGateway
from .harness import (
    AGENTS,
    PASSED_THROUGH,
    UPSTREAMS,
    AgentSpec,
    alias,
    arm_tool_call,
    mid_conversation_system,
    run_agent,
    sent_system,
    sent_tool_names,
    tool_results,
)

pytestmark = pytest.mark.e2e

CELLS = [pytest.param(agent, upstream, id=f"{agent.name}-{upstream}")
         for agent in AGENTS for upstream in agent.upstreams]


def check_log(rows: list[dict[str, Any]], agent: AgentSpec, upstream: str, count: int) -> None:
    """Every request the agent made is one 200 row of its format, its key and team, through the alias."""
    brief = [{k: r[k] for k in ("endpoint", "status", "error", "alias", "provider", "input_tokens", "output_tokens")}
             for r in rows]
    assert all(r["status"] == 200 for r in rows), brief
    chats = [r for r in rows if r["endpoint"] == "chat"]
    assert len(chats) == count, brief
    for row in chats:
        assert (row["status"], row["client_format"], row["alias"], row["provider"]) == (
            200, agent.client_format, alias(upstream), upstream)
        assert (row["key"], row["team"]) == ("agent", "agents")
        assert row["input_tokens"] > 0 and row["output_tokens"] > 0
    dropped = [orjson.loads(r["dropped_params"]) for r in chats]
    if agent.client_format in PASSED_THROUGH[upstream]:   # untouched: nothing dropped
        assert dropped == [[]] * count, dropped
    else:   # translated: what had no equivalent is named
        assert all(isinstance(names, list) and agent.drops <= set(names) for names in dropped), dropped


@pytest.mark.parametrize(("agent", "upstream"), CELLS)
async def test_answer(agent: AgentSpec, upstream: str, installed: Callable[[AgentSpec], Path],
                      gateway: AgentGateway, home: Path, workdir: Path) -> None:
    binary = installed(agent)
    fake = gateway.fake(upstream)
    fake.set_answer(f"Hello from {UPSTREAMS[upstream]} through llmgw.")
    done = await run_agent(agent, binary, "Say hello.", url=gateway.url, alias=alias(upstream), key=gateway.key,
                           home=home, workdir=workdir)
    assert done.returncode == 0 and done.outcome is not None, done.explain()
    assert done.outcome.ok and done.outcome.text == f"Hello from {UPSTREAMS[upstream]} through llmgw.", \
        done.explain()

    [sent] = gateway.chats(upstream)
    body = sent["body"]
    assert agent.offers <= set(sent_tool_names(upstream, body))
    assert agent.system_marker in sent_system(upstream, body)
    if agent.mid_system_marker is not None:
        assert any(agent.mid_system_marker in text for text in mid_conversation_system(upstream, body))
    check_log(gateway.rows(), agent, upstream, 1)


@pytest.mark.parametrize(("agent", "upstream"), CELLS)
async def test_tool_round_trip(agent: AgentSpec, upstream: str, installed: Callable[[AgentSpec], Path],
                               gateway: AgentGateway, home: Path, workdir: Path) -> None:
    binary = installed(agent)
    note = workdir / "note.txt"
    note.write_text("pineapple-42\n", encoding="utf-8")
    fake = gateway.fake(upstream)
    arm_tool_call(fake, upstream, agent.tool, agent.tool_input(workdir, note))
    fake.set_answer("The note says pineapple-42.")
    done = await run_agent(agent, binary, "Read note.txt and tell me what it says.", url=gateway.url,
                           alias=alias(upstream), key=gateway.key, home=home, workdir=workdir)
    assert done.returncode == 0 and done.outcome is not None, done.explain()
    assert done.outcome.ok and done.outcome.text == "The note says pineapple-42.", done.explain()

    chats = gateway.chats(upstream)
    assert len(chats) == 2, [c["body"] for c in chats]
    assert agent.tool in sent_tool_names(upstream, chats[0]["body"])
    assert tool_results(upstream, chats[0]["body"]) == []
    [result] = tool_results(upstream, chats[1]["body"])
    assert "pineapple-42" in result
    check_log(gateway.rows(), agent, upstream, 2)
