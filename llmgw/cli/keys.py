"""`llmgw keys create/list/revoke`: virtual keys minted into the state database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from ..durations import parse_duration, parse_point
from ..store.keys import KeyStore
from .common import PROFILE_HELP, console, fail, load_or_exit, print_json

app = typer.Typer(help="Mint, list and revoke virtual keys.", no_args_is_help=True, rich_markup_mode=None)


def _iso(ts: object) -> str:
    return "" if ts is None else datetime.fromtimestamp(float(ts), UTC).isoformat(timespec="seconds")  # type: ignore[arg-type]


def _expiry(value: str | None) -> float | None:
    """``30d`` from now, or an ISO date."""
    if value is None:
        return None
    try:
        return datetime.now(UTC).timestamp() + parse_duration(value)
    except ValueError:
        pass
    try:
        return parse_point(value)
    except ValueError as exc:
        fail(f"--expires: {exc}")


@app.command()
def create(
    team: str = typer.Option(..., "--team", help="The [teams.*] the key belongs to."),
    name: str = typer.Option("", "--name", help="A label for people (shown in lists and logs)."),
    expires: str | None = typer.Option(None, "--expires", help="30d, 12h, or an ISO date."),
    profile: Path | None = typer.Option(None, "--profile", "-p", help=PROFILE_HELP),
) -> None:
    """Mint a key for a team. The secret is printed once; only its salted hash is stored.

    Example: llmgw keys create --team search --name ci --expires 90d
    """
    prof = load_or_exit(profile)
    if team not in prof.teams:
        fail(f"--team: unknown team {team!r} (declared in the profile: {', '.join(prof.teams) or 'none'})")
    store = KeyStore(prof.state.db_path)
    try:
        key_id, secret = store.create(team, name, _expiry(expires))
    finally:
        store.close()
    console.print(f"key {key_id} for team {team} — copy the secret now, it is not stored:", highlight=False)
    typer.echo(secret)


@app.command("list")
def list_(
    format: str = typer.Option("table", "--format", help="table or json."),
    profile: Path | None = typer.Option(None, "--profile", "-p", help=PROFILE_HELP),
) -> None:
    """List minted keys (never their secrets).

    Example: llmgw keys list --format json
    """
    prof = load_or_exit(profile)
    store = KeyStore(prof.state.db_path)
    try:
        rows = store.rows()
    finally:
        store.close()
    records = [{**r, "created": _iso(r["created"]), "expires": _iso(r["expires"]) or None,
                "revoked": _iso(r["revoked"]) or None} for r in rows]
    if format == "json":
        print_json(records)
        return
    table = Table(title=f"{len(records)} minted keys", title_justify="left")
    for column in ("id", "team", "name", "created", "expires", "status"):
        table.add_column(column)
    for r in records:
        status = "revoked" if r["revoked"] else "active"
        table.add_row(str(r["id"]), str(r["team"]), str(r["name"]), str(r["created"]), str(r["expires"] or "-"),
                      status)
    console.print(table)


@app.command()
def revoke(
    key_id: str = typer.Argument(..., help="The key's id, as `llmgw keys list` shows it."),
    profile: Path | None = typer.Option(None, "--profile", "-p", help=PROFILE_HELP),
) -> None:
    """Revoke a minted key; running servers refuse it within seconds.

    Example: llmgw keys revoke key_3f2a9c1b7d0e
    """
    prof = load_or_exit(profile)
    store = KeyStore(prof.state.db_path)
    try:
        done = store.revoke(key_id)
    finally:
        store.close()
    if not done:
        fail(f"no active key with id {key_id!r}; `llmgw keys list` shows them")
    console.print(f"revoked {key_id}", highlight=False)
