"""The ``tail`` command function: options, the admin key from the environment, the app it runs."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from llmgw.cli import tail as tail_cmd
from llmgw.tui import app as tui_app
from llmgw.tui.http_source import HttpEventSource


class _Ran:
    """Stands in for the Textual app: remembers the source it was built with."""

    def __init__(self) -> None:
        self.source: Any = None

    def __call__(self, source: Any, **options: Any) -> _Ran:
        self.source = source
        return self

    def run(self) -> None:
        pass


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(tail_cmd.tail)
    app.command("noop")(lambda: None)  # two commands, so "tail" is a subcommand as in `llmgw tail`
    return app


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> _Ran:
    stub = _Ran()
    monkeypatch.setattr(tui_app, "make_app", stub)
    monkeypatch.delenv("LLMGW_ADMIN_KEY", raising=False)
    return stub


def test_defaults_to_the_local_proxy(ran: _Ran) -> None:
    result = CliRunner().invoke(cli(), ["tail"])
    assert result.exit_code == 0, result.output
    assert isinstance(ran.source, HttpEventSource)
    assert ran.source.url == "http://127.0.0.1:4000" and ran.source._headers().get("Authorization") is None


def test_url_and_key_options_and_the_environment(ran: _Ran, monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(cli(), ["tail", "--url", "http://gw:8080/", "--key", "k1"])
    assert result.exit_code == 0, result.output
    assert ran.source.endpoint == "http://gw:8080/admin/events?bodies=1&history=50"
    assert ran.source._headers()["Authorization"] == "Bearer k1"
    monkeypatch.setenv("LLMGW_ADMIN_KEY", "k2")
    assert CliRunner().invoke(cli(), ["tail"]).exit_code == 0
    assert ran.source._headers()["Authorization"] == "Bearer k2"


def test_a_bad_url_is_one_clear_error(ran: _Ran) -> None:
    result = CliRunner().invoke(cli(), ["tail", "--url", "127.0.0.1:4000"])
    assert result.exit_code == 1 and ran.source is None
    assert "--url: expected an http:// or https:// URL" in result.output


def test_help_has_an_example() -> None:
    assert "Example:" in (tail_cmd.tail.__doc__ or "")
    result = CliRunner().invoke(cli(), ["tail", "--help"])
    assert result.exit_code == 0 and "--url" in result.output and "--key" in result.output


def test_history_option(ran: _Ran) -> None:
    assert CliRunner().invoke(cli(), ["tail", "--history", "5"]).exit_code == 0
    assert ran.source.history == 5 and ran.source.endpoint.endswith("/admin/events?bodies=1&history=5")
    assert CliRunner().invoke(cli(), ["tail", "--history", "0"]).exit_code == 0
    assert ran.source.endpoint.endswith("/admin/events?bodies=1")
    assert CliRunner().invoke(cli(), ["tail", "--history", "-1"]).exit_code == 2
