"""Auth and allow-lists: who is calling, and may they call this alias.

Contracts:
- With no ``[teams]``/``[keys]`` in the profile the gateway is open and this stage only resolves the alias.
- A key the index does not know is looked up once more after ``fresh(secret)`` (a re-read of the key store, see
  :class:`llmgw.proxy.governance.KeyReloader`), so a key minted a moment ago works on its first request.
- Otherwise the key comes from ``Authorization: Bearer`` or ``x-api-key`` (same policy either way). A missing,
  malformed, unknown, revoked or expired key gets the same 401, whatever the reason. The key is checked in the
  ``headers`` phase, before the body is read: an unauthenticated request is answered 401 whatever its body, which
  is never read, parsed or logged. (``request`` checks it too for a caller that skipped that phase.)
- The alias must exist and be on the key's and the team's allow-lists; an alias outside them answers exactly like
  an unknown alias (404, same message), so aliases cannot be enumerated: the message may suggest the closest
  alias ("did you mean 'fast'?"), chosen only among the aliases this caller may use.
- On success ``ex.key_id``, ``ex.team`` and ``ex.model`` are set.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable, Iterable, Mapping

from ..errors import AuthenticationError, ModelNotFound
from ..exchange import Exchange
from ..profile import ModelConfig
from ..store.keys import KeyIndex, KeyRecord
from .base import Stage

UNAUTHORIZED = "invalid API key: send a virtual key in Authorization: Bearer or x-api-key"


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The secret a client presented, from either header."""
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


def unknown_model(alias: str, usable: Iterable[str] = ()) -> ModelNotFound:
    """The 404 for an alias the caller cannot use. The message depends only on ``alias`` and ``usable`` (the
    aliases this caller may use), never on whether ``alias`` exists for someone else."""
    message = f"model {alias!r} does not exist"
    close = difflib.get_close_matches(alias, list(usable), n=1, cutoff=0.6)
    if close:
        message += f"; did you mean {close[0]!r}?"
    return ModelNotFound(f"{message}; `GET /v1/models` lists the aliases", param="model")


class AuthStage(Stage):
    def __init__(self, models: Mapping[str, ModelConfig], keys: KeyIndex | None,
                 fresh: Callable[[str | None], Awaitable[None]] | None = None) -> None:
        self.models = models
        self.keys = keys
        self.fresh = fresh

    def identify(self, secret: str | None) -> KeyRecord:
        """The key record for a presented secret, or the one 401."""
        record = self.keys.lookup(secret) if self.keys is not None and secret else None
        if record is None:
            raise AuthenticationError(UNAUTHORIZED)
        return record

    async def identify_fresh(self, secret: str | None) -> KeyRecord:
        """:meth:`identify`, after a re-read of the key store when the key is unknown (see the module contract)."""
        try:
            return self.identify(secret)
        except AuthenticationError:
            if self.fresh is None or self.keys is None or not secret:
                raise
        await self.fresh(secret)
        return self.identify(secret)

    async def headers(self, ex: Exchange) -> None:
        if self.keys is not None:
            try:
                record = await self.identify_fresh(ex.credential)
            except AuthenticationError:
                ex.note("auth", "refused", reason="unknown key" if ex.credential else "no key")
                raise
            ex.key_id, ex.team, ex.principal = record.id, record.team, record

    async def request(self, ex: Exchange) -> None:
        if self.keys is not None and ex.principal is None:
            await self.headers(ex)
        record: KeyRecord | None = ex.principal if self.keys is not None else None
        model = self.models.get(ex.alias)
        if model is None or (record is not None and not self.allowed(record, ex.alias)):
            ex.note("auth", "refused", reason="unknown alias" if model is None else "alias not allowed",
                    key=ex.key_id, team=ex.team)
            raise unknown_model(ex.alias, self.usable(record))
        ex.model = model
        ex.note("auth", "allowed", key=ex.key_id, team=ex.team)

    def usable(self, record: KeyRecord | None) -> list[str]:
        """The aliases ``record`` may call (every alias on an open proxy)."""
        return [alias for alias in self.models if record is None or self.allowed(record, alias)]

    def allowed(self, record: KeyRecord, alias: str) -> bool:
        team = self.keys.teams.get(record.team) if self.keys is not None else None
        if record.models is not None and alias not in record.models:
            return False
        return not (team is not None and team.models is not None and alias not in team.models)
