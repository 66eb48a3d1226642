"""`llmgw tail`: watch the requests flowing through a running proxy, live, in the terminal."""

from __future__ import annotations

import typer

from .common import fail

_URL_HELP = "Base URL of the running `llmgw serve`."
_KEY_HELP = "The proxy's admin key, when it has keys (default: $LLMGW_ADMIN_KEY)."


def tail(
    url: str = typer.Option("http://127.0.0.1:4000", "--url", metavar="URL", help=_URL_HELP),
    key: str | None = typer.Option(None, "--key", metavar="KEY", envvar="LLMGW_ADMIN_KEY", show_envvar=False,
                                   help=_KEY_HELP),
    history: int = typer.Option(50, "--history", metavar="N", min=0,
                                help="Start with the newest N requests of the proxy's log (0: only new ones)."),
) -> None:
    """Show live requests through a running proxy: one row per request, newest first, starting with the newest
    --history requests of its log, with filter, pause and details (keys: q quit, p pause, / filter, enter
    details (in the filter box: the newest match's), escape close, c clear).

    Example: llmgw tail --url http://127.0.0.1:4000
    """
    if not url.startswith(("http://", "https://")):
        fail(f"--url: expected an http:// or https:// URL, got {url!r}")
    try:
        from ..tui.app import make_app
    except ImportError as exc:  # Textual is what this command needs beyond the proxy's own dependencies
        fail(f"llmgw tail needs Textual ({exc}); install it with: pip install 'textual>=8'")
    from ..tui.http_source import HttpEventSource

    make_app(HttpEventSource(url, key or None, history=history)).run()
