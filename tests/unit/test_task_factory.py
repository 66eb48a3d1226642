"""The serving loop names its tasks with one constant (llmgw.proxy.runner.named_task) instead of formatting a
``Task-N`` name for each."""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path
from typing import Any

import pytest
import uvloop

from llmgw.profile import parse_profile
from llmgw.proxy import runner
from llmgw.proxy.runner import TASK_NAME, named_task

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


@pytest.mark.parametrize("new_loop", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_tasks_get_the_constant_name_unless_named_and_keep_their_context(new_loop: Any) -> None:
    async def main() -> None:
        asyncio.get_running_loop().set_task_factory(named_task)

        async def who() -> str:
            return WHO.get()

        plain = asyncio.create_task(who())
        named = asyncio.create_task(who(), name="mine")
        context = contextvars.copy_context()
        context.run(WHO.set, "caller")
        in_context = asyncio.get_running_loop().create_task(who(), context=context)
        assert (plain.get_name(), named.get_name(), in_context.get_name()) == (TASK_NAME, "mine", TASK_NAME)
        assert await asyncio.gather(plain, named, in_context) == ["nobody", "nobody", "caller"]

    loop = new_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def test_a_name_given_to_the_factory_itself_is_kept() -> None:
    """Python 3.13 hands the creator's name to the task factory instead of setting it afterwards."""
    async def main() -> None:
        async def nothing() -> None:
            return None

        task = named_task(asyncio.get_running_loop(), nothing(), name="given")
        assert task.get_name() == "given"
        await task

    asyncio.run(main())


def test_the_serving_loop_installs_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    class Stop(Exception):
        pass

    def make_app(*args: Any, **kwargs: Any) -> None:
        seen.append(asyncio.get_running_loop().get_task_factory())
        raise Stop

    monkeypatch.setattr(runner, "make_app", make_app)
    profile = parse_profile({"state": {"url": f"sqlite:///{tmp_path / 'llmgw.db'}"},
                             "providers": {"mock": {"kind": "mock"}}, "models": {"fast": {"targets": ["mock/m"]}}})
    with pytest.raises(Stop):
        asyncio.run(runner._serve_async(profile, "127.0.0.1", 0, False, None))
    assert seen == [named_task]
