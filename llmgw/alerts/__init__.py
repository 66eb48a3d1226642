"""Spend alerts: ``[[alerts]]`` entries watched by a running server and posted to a Slack-compatible webhook.

Modules: :mod:`.model` (the :class:`Alert`, its record and Slack payload), :mod:`.budgets` (budget shares
crossed), :mod:`.anomaly` (spend far above a group's own history), :mod:`.loops` (one key repeating a prompt),
:mod:`.ledger` (each alert claimed once per period, across workers and restarts), :mod:`.delivery` (the webhook
POST with retries) and :mod:`.engine` (the :class:`AlertEngine` that ties them to the server, off the request
path). See docs/alerts.md.
"""

from .engine import AlertEngine
from .model import Alert

__all__ = ["Alert", "AlertEngine"]
