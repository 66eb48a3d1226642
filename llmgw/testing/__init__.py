"""Test doubles shipped with llmgw: fake upstreams that are real aiohttp servers speaking each provider's
exact wire format. ``python -m llmgw.testing --port N`` serves the fake OpenAI upstream (for benchmarks).

Layout: :mod:`.fake_openai`, :mod:`.fake_anthropic` and :mod:`.fake_gemini` hold what is each provider's own (its
endpoints, bodies and errors); :mod:`.server` the lifecycle, settings and request prologue they share
(:class:`~.server.FakeServer`) and the command line; :mod:`.answers` the deterministic answer text, token counts
and embeddings; :mod:`.wire` JSON responses, recorded headers and SSE writing; :mod:`.samples` the providers'
recorded wire shapes.
"""

from .fake_anthropic import FakeAnthropic, anthropic_answer_for, anthropic_input_tokens_for
from .fake_gemini import FakeGemini, gemini_answer_for, gemini_prompt_tokens_for
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
    "FakeAnthropic",
    "FakeGemini",
    "FakeOpenAI",
    "answer_for",
    "anthropic_answer_for",
    "anthropic_input_tokens_for",
    "gemini_answer_for",
    "gemini_prompt_tokens_for",
    "main",
    "make_fake_openai_app",
    "prompt_tokens_for",
]
