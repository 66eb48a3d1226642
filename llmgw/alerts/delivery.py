"""Posting an alert to a webhook: JSON over HTTP(S), retried with backoff, never naming the webhook's address.

Contract:
- :meth:`Webhook.post` sends the payload with a per-attempt timeout and retries a connection problem, a timeout,
  a 429 and any 5xx up to ``attempts`` times in all, waiting ``backoff_s`` and doubling (a 429's ``Retry-After``
  is honoured up to ``max_backoff_s``). Any 2xx is delivered; another 4xx is final (retrying would not help).
- It returns a :class:`Delivery` (delivered or not, attempts made, the last problem). Problems are told in words
  built from statuses and exception types only: the URL (a Slack webhook's path is its credential) never appears in
  a problem, a log line or an exception this module raises.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

log = logging.getLogger("llmgw.alerts")


class WebhookError(ValueError):
    """A webhook reference that does not hold a usable URL; the message names the reference, never the value."""


@dataclass(frozen=True, slots=True)
class Delivery:
    delivered: bool
    attempts: int
    problem: str | None = None


class Webhook:
    """One webhook: ``label`` (how messages name it: its reference, e.g. ``env:SLACK_WEBHOOK_URL``) and its URL."""

    def __init__(self, label: str, url: str, *, attempts: int = 5, backoff_s: float = 0.5,
                 max_backoff_s: float = 30.0, timeout_s: float = 10.0) -> None:
        try:
            parts = urlsplit(url)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != -1
        except ValueError:
            ok = False
        if not ok:
            raise WebhookError(f"{label} does not hold an http:// or https:// URL")
        self.label = label
        self._url = url
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"Webhook({self.label})"

    async def post(self, session: aiohttp.ClientSession, payload: dict[str, Any]) -> Delivery:
        """Deliver ``payload`` (see the module contract)."""
        body = orjson.dumps(payload)
        delay = self.backoff_s
        problem = "not tried"
        for attempt in range(1, self.attempts + 1):
            wait = delay
            try:
                async with session.post(self._url, data=body, headers={"Content-Type": "application/json"},
                                        timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                                        allow_redirects=False) as response:
                    await response.read()
                    if 200 <= response.status < 300:
                        return Delivery(True, attempt)
                    problem = f"the webhook answered HTTP {response.status}"
                    if response.status != 429 and response.status < 500:
                        return Delivery(False, attempt, problem)
                    wait = max(delay, _retry_after(response.headers.get("Retry-After")))
            except TimeoutError:
                problem = f"the webhook did not answer within {self.timeout_s:g}s"
            except aiohttp.ClientConnectorError as exc:
                code = exc.os_error.errno if exc.os_error is not None else None
                reason = os.strerror(code) if code else ""   # strerror itself may quote the address
                problem = "cannot reach the webhook" + (f" ({reason.lower()})" if reason else "")
            except (aiohttp.ClientError, OSError) as exc:
                problem = f"the webhook request failed ({type(exc).__name__})"
            if attempt < self.attempts:
                log.info("alert webhook %s: %s; retrying in %gs", self.label, problem, min(wait, self.max_backoff_s))
                await asyncio.sleep(min(wait, self.max_backoff_s))
                delay = min(delay * 2, self.max_backoff_s)
        return Delivery(False, self.attempts, problem)


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0
