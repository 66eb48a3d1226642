"""Every command's --help: an example, no Python types in metavars, every option described, and command lists
that are never cut off."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer

from llmgw.cli.main import app

from .test_first_use import invoke, isolated

__all__ = ["isolated"]  # the fixture, used automatically


# --- help ---------------------------------------------------------------------------------------------------------


def _is_group(command: Any) -> bool:
    return hasattr(command, "commands")


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command of the app (groups included) with the words that call it."""
    found: list[tuple[tuple[str, ...], Any]] = [(prefix, group)]
    for name, command in group.commands.items():
        if _is_group(command):
            found += _commands(command, (*prefix, name))
        else:
            found.append(((*prefix, name), command))
    return found


ALL_COMMANDS = _commands(typer.main.get_command(app))


@pytest.mark.parametrize("path, command", ALL_COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_help_has_an_example_no_python_types_and_describes_every_option(path: tuple[str, ...],
                                                                       command: Any) -> None:
    result = invoke(*path, "--help", env={"COLUMNS": "80"})
    assert result.exit_code == 0
    text = result.stdout
    assert "Example: llmgw" in text, f"llmgw {' '.join(path)} --help has no example"
    assert not re.search(r"<(str|int|float|path|bool|list\[[a-z]+\]|int range|float range)>", text), text
    assert "list[" not in text
    for param in command.params:
        if param.param_type_name == "option" and param.name not in ("help", "install_completion", "show_completion"):
            assert param.help, f"llmgw {' '.join(path)} {param.opts[0]} has no description"


@pytest.mark.parametrize("path", [p for p, c in ALL_COMMANDS if _is_group(c)],
                         ids=lambda p: " ".join(p) or "llmgw")
def test_command_lists_are_never_cut_off(path: tuple[str, ...]) -> None:
    text = invoke(*path, "--help", env={"COLUMNS": "80"}).stdout
    commands = text.split("Commands:", 1)[1]
    assert "..." not in commands, commands
