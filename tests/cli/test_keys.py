"""`llmgw keys create/list/revoke`: the secret is shown once with its prefix; only a salted hash is stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmgw.cli.main import app
from llmgw.profile import parse_profile
from llmgw.store.keys import KeyIndex, KeyStore

runner = CliRunner()


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(f'[state]\nurl = "sqlite:///{tmp_path}/state.db"\n[providers.m]\nkind = "mock"\n'
                    '[models.fast]\ntargets = ["m/x"]\n[teams.search]\nrpm = 10\n')
    return path


def test_create_list_revoke(profile: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["keys", "create", "--team", "search", "--name", "ci", "--profile", str(profile)])
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    assert secret.startswith("sk-llmgw-") and len(secret) > 40
    raw = (tmp_path / "state.db").read_bytes()
    assert secret.encode() not in raw, "the secret itself must never be stored"

    listed = runner.invoke(app, ["keys", "list", "--format", "json", "--profile", str(profile)])
    [row] = json.loads(listed.stdout)
    assert row["team"] == "search" and row["name"] == "ci" and row["revoked"] is None
    assert secret not in listed.stdout

    prof = parse_profile({"state": {"url": f"sqlite:///{tmp_path}/state.db"}, "teams": {"search": {}}})
    store = KeyStore(tmp_path / "state.db")
    assert KeyIndex.load(prof, store).lookup(secret).id == row["id"]
    result = runner.invoke(app, ["keys", "revoke", row["id"], "--profile", str(profile)])
    assert result.exit_code == 0
    assert KeyIndex.load(prof, store).lookup(secret) is None
    store.close()
    again = runner.invoke(app, ["keys", "revoke", row["id"], "--profile", str(profile)])
    assert again.exit_code == 0 and "already revoked" in again.output, again.output
    unknown = runner.invoke(app, ["keys", "revoke", "key_000000000000", "--profile", str(profile)])
    assert unknown.exit_code == 1 and "no minted key" in unknown.output


def test_unknown_team_and_bad_expiry_are_one_line_errors(profile: Path) -> None:
    result = runner.invoke(app, ["keys", "create", "--team", "nope", "--profile", str(profile)])
    assert result.exit_code == 1 and "unknown team 'nope'" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["keys", "create", "--team", "search", "--expires", "soon", "--profile", str(profile)])
    assert result.exit_code == 1 and "--expires" in result.output


def test_expiring_key(profile: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["keys", "create", "--team", "search", "--expires", "1d", "--profile", str(profile)])
    secret = result.stdout.strip().splitlines()[-1]
    prof = parse_profile({"state": {"url": f"sqlite:///{tmp_path}/state.db"}, "teams": {"search": {}}})
    store = KeyStore(tmp_path / "state.db")
    index = KeyIndex.load(prof, store)
    store.close()
    import time

    assert index.lookup(secret) is not None
    assert index.lookup(secret, now=time.time() + 2 * 86400) is None


def mint(profile: Path, name: str) -> tuple[str, str]:
    """(id, secret) of a key minted for team search with ``name``."""
    result = runner.invoke(app, ["keys", "create", "--team", "search", "--name", name, "--profile", str(profile)])
    assert result.exit_code == 0, result.output
    key_id = result.stdout.split()[1]
    return key_id, result.stdout.strip().splitlines()[-1]


def test_revoke_by_name(profile: Path) -> None:
    key_id, _ = mint(profile, "ci-bot")
    result = runner.invoke(app, ["keys", "revoke", "ci-bot", "--profile", str(profile)])
    assert result.exit_code == 0, result.output
    assert f"revoked key {key_id} (ci-bot)" in result.stdout
    again = runner.invoke(app, ["keys", "revoke", "ci-bot", "--profile", str(profile)])
    assert again.exit_code == 0 and f"key {key_id} (ci-bot) is already revoked" in again.stdout


def test_a_name_two_active_keys_share_is_refused_listing_their_ids(profile: Path) -> None:
    first, _ = mint(profile, "shared")
    second, _ = mint(profile, "shared")
    result = runner.invoke(app, ["keys", "revoke", "shared", "--profile", str(profile)])
    assert result.exit_code == 1
    assert "2 active keys are named 'shared'" in result.output and first in result.output and second in result.output
    assert runner.invoke(app, ["keys", "revoke", first, "--profile", str(profile)]).exit_code == 0
    assert runner.invoke(app, ["keys", "revoke", "shared", "--profile", str(profile)]).exit_code == 0


def test_names_are_shown_as_they_are(profile: Path) -> None:
    mint(profile, "[bold]team[/bold]")
    listed = runner.invoke(app, ["keys", "list", "--profile", str(profile)], env={"COLUMNS": "200"})
    assert "[bold]team[/bold]" in listed.stdout
    assert "1 minted key" in listed.stdout and "1 minted keys" not in listed.stdout
