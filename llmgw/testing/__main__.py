"""``python -m llmgw.testing --port N``: serve the fake OpenAI upstream until SIGINT/SIGTERM."""

from .fake_openai import main

main()
