"""``python -m llmgw`` is the ``llmgw`` command."""

from .cli.main import run

run()
