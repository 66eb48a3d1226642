"""What the request-log backends share and that naming a database needs, without importing any driver.

Contracts:
- :func:`describe_url` shows a database URL with any password replaced by ``***``.
- :class:`LogMissing` and :class:`LogUnavailable` are the two ways opening a log fails; the message of
  :class:`LogUnavailable` is one line and names no secret.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def describe_url(url: str) -> str:
    """``url`` for people and logs: any password in it replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))
    except ValueError:
        return "<unparsable url>"


class LogMissing(Exception):
    """There is no request log yet (a SQLite file that was never written)."""


class LogUnavailable(Exception):
    """The request log cannot be opened; the message is one line and names no secret."""
