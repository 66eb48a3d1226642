"""`llmgw keys create/list/revoke`: virtual keys minted into the state database."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from ..durations import parse_duration, parse_point
from ..profile import Profile
from ..store.key_backend import open_key_store
from ..store.keys import KeyStore
from ..store.log_backend import LogUnavailable
from .common import FORMAT_HELP, PROFILE_HELP, console, fail, load_or_exit, plain, plural, print_json

app = typer.Typer(
    help="Mint, list and revoke virtual keys.\n\nExample: llmgw keys create --team search --name ci",
    no_args_is_help=True, rich_markup_mode=None)


def _store(prof: Profile) -> KeyStore:
    """The minted keys (in the SQLite file or PostgreSQL), or exit 1 with one line when they cannot be opened."""
    try:
        return open_key_store(prof.state)
    except LogUnavailable as exc:
        fail(str(exc))


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


@app.command(short_help="Mint a key for a team (the secret is shown once).")
def create(
    team: str = typer.Option(..., "--team", metavar="TEAM", help="The [teams.*] the key belongs to."),
    name: str = typer.Option("", "--name", metavar="NAME",
                             help="A label for people: shown in lists, reports (--by key) and usable to revoke."),
    expires: str | None = typer.Option(None, "--expires", metavar="D", help="30d, 12h, or an ISO date."),
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
) -> None:
    """Mint a key for a team. The secret is printed once; only its salted hash is stored. A running server
    accepts it from its first request.

    Example: llmgw keys create --team search --name ci --expires 90d
    """
    prof = load_or_exit(profile)
    if team not in prof.teams:
        fail(f"--team: unknown team {team!r} (declared in the profile: {', '.join(prof.teams) or 'none'})")
    store = _store(prof)
    try:
        key_id, secret = store.create(team, name, _expiry(expires))
    finally:
        store.close()
    label = f"key {key_id}" + (f" ({name})" if name else "")
    console.print(f"{label} for team {team} — copy the secret now, it is not stored:", highlight=False,
                  markup=False)
    typer.echo(secret)


@app.command("list", short_help="List minted keys (never their secrets).")
def list_(
    format: str = typer.Option("table", "--format", metavar="FORMAT", help=FORMAT_HELP),
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
) -> None:
    """List minted keys (never their secrets).

    Example: llmgw keys list --format json
    """
    if format not in ("table", "json"):
        fail(f"--format: expected table or json, got {format!r}")
    prof = load_or_exit(profile)
    store = _store(prof)
    try:
        rows = store.rows()
    finally:
        store.close()
    records = [{**r, "created": _iso(r["created"]), "expires": _iso(r["expires"]) or None,
                "revoked": _iso(r["revoked"]) or None} for r in rows]
    if format == "json":
        print_json(records)
        return
    table = Table(title=plural(len(records), "minted key"), title_justify="left")
    for column in ("id", "team", "name", "created", "expires", "status"):
        table.add_column(column)
    for r in records:
        status = "revoked" if r["revoked"] else "active"
        table.add_row(*(plain(v) for v in (r["id"], r["team"], r["name"] or "-", r["created"], r["expires"] or "-",
                                           status)))
    console.print(table)


def _revoke_target(store: KeyStore, ident: str, profile_keys: Collection[str]) -> dict[str, object] | None:
    """The key ``ident`` (an id or a name) names: None when it is already revoked; exits 1 when there is none or
    several active keys carry that name."""
    matches = store.matching(ident)
    if not matches:
        if ident in profile_keys:
            fail(f"key {ident!r} is declared in the profile ([keys.{ident}]); remove it there to revoke it")
        fail(f"no minted key with id or name {ident!r}; `llmgw keys list` shows them")
    active = [m for m in matches if m["revoked"] is None]
    if len(active) > 1:
        ids = ", ".join(str(m["id"]) for m in active)
        fail(f"{len(active)} active keys are named {ident!r} ({ids}); revoke one by its id")
    return active[0] if active else None


@app.command(short_help="Revoke a minted key by id or name.")
def revoke(
    key: str = typer.Argument(..., metavar="ID|NAME", help="The key's id or name, as `llmgw keys list` shows them."),
    profile: Path | None = typer.Option(None, "--profile", "-p", metavar="FILE", help=PROFILE_HELP),
) -> None:
    """Revoke a minted key, by id or by name; running servers refuse it within seconds. Revoking a key that is
    already revoked says so and exits 0.

    Example: llmgw keys revoke ci-bot
    """
    prof = load_or_exit(profile)
    store = _store(prof)
    try:
        target = _revoke_target(store, key, prof.keys)
        if target is not None:
            store.revoke(str(target["id"]))
            console.print(f"revoked {_label(target)}", highlight=False, markup=False)
            return
        last = max(store.matching(key), key=lambda m: float(m["revoked"]))  # type: ignore[arg-type]
    finally:
        store.close()
    console.print(f"{_label(last)} is already revoked (since {_iso(last['revoked'])})", highlight=False, markup=False)


def _label(row: dict[str, object]) -> str:
    """``key key_3f2a… (ci-bot)``: a minted key as messages name it."""
    return f"key {row['id']}" + (f" ({row['name']})" if row["name"] else "")
