"""Test doubles shipped with llmgw: fake upstreams that are real aiohttp servers speaking each provider's
exact wire format. ``python -m llmgw.testing --port N`` serves the fake OpenAI upstream (for benchmarks)."""

from .fake_openai import (
    CHAT_COMPLETION_CHUNK_SAMPLE,
    CHAT_COMPLETION_SAMPLE,
    EMBEDDINGS_SAMPLE,
    ERROR_SAMPLE,
    MODELS_SAMPLE,
    USAGE_CHUNK_SAMPLE,
    FakeOpenAI,
    answer_for,
    main,
    make_fake_openai_app,
    prompt_tokens_for,
)

__all__ = [
    "CHAT_COMPLETION_CHUNK_SAMPLE",
    "CHAT_COMPLETION_SAMPLE",
    "EMBEDDINGS_SAMPLE",
    "ERROR_SAMPLE",
    "MODELS_SAMPLE",
    "USAGE_CHUNK_SAMPLE",
    "FakeOpenAI",
    "answer_for",
    "main",
    "make_fake_openai_app",
    "prompt_tokens_for",
]
