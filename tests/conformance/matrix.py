"""The conformance matrix: which client formats, upstream kinds and features are proven, and how.

``docs/compatibility.md`` is rendered from this module (``python -m tests.conformance.matrix``) and a test checks
that the file is current, so the page always says exactly what the test suite proves.
"""

from __future__ import annotations

from pathlib import Path

CLIENTS = {"openai": "OpenAI SDK (`/v1/chat/completions`)", "anthropic": "Anthropic SDK (`/v1/messages`)"}
UPSTREAMS = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "gemini": "Gemini",
    "openai-compatible": "OpenAI-compatible (vLLM, TGI, Ollama, llama.cpp)",
    "mock": "built-in mock",
}
FEATURES = {
    "text": "a one-turn answer arrives whole, in the client's format",
    "system": "the system prompt reaches the upstream in its own place (system message, `system`, "
              "`systemInstruction`)",
    "multi-turn": "earlier user and assistant turns reach the upstream in order",
    "stream": "a streamed answer arrives in several events and reassembles to the same text",
    "tools": "tool definitions go out; parallel tool calls come back with their parsed arguments",
    "streamed tools": "tool calls streamed in argument fragments reassemble in the client's SDK",
    "stop reason": "a `max_tokens` cut comes back as `length` / `max_tokens`",
    "usage": "the tokens the client is told equal the tokens logged, streamed and not",
    "error": "an upstream 429 comes back as the client's own rate-limit error with `Retry-After`",
}

DOC = Path(__file__).resolve().parents[2] / "docs" / "compatibility.md"


def render() -> str:
    """The compatibility page, from the matrix above."""
    lines = [
        "# Compatibility",
        "",
        "Every cell below is one test in `tests/conformance/test_matrix.py`: the official SDK of the client format",
        "talks to `llmgw`, which talks to a fake upstream — a real HTTP server replaying that provider's documented",
        "wire format (`llmgw/testing/`). This page is generated from the test matrix",
        "(`python -m tests.conformance.matrix`), and the suite fails if it is out of date.",
        "",
        "What each feature checks:",
        "",
    ]
    lines += [f"- **{name}** — {text}" for name, text in FEATURES.items()]
    for client_title in CLIENTS.values():
        lines += ["", f"## {client_title}", ""]
        lines.append("| feature | " + " | ".join(UPSTREAMS.values()) + " |")
        lines.append("|---|" + "---|" * len(UPSTREAMS))
        for feature in FEATURES:
            lines.append(f"| {feature} | " + " | ".join("✓" for _ in UPSTREAMS) + " |")
    lines += [
        "",
        "## Across formats",
        "",
        "- Same-format traffic (Anthropic SDK → Anthropic upstream, OpenAI SDK → OpenAI-format upstream) passes",
        "  unknown fields through untouched; Anthropic's `anthropic-version` and `anthropic-beta` headers too.",
        "- A parameter that changes what the model must produce and that the target cannot honour",
        "  (`response_format`, `n > 1`, `logprobs`, documents or server tools sent to a non-Anthropic target) is a",
        "  400 naming it, unless the provider's `drop_params` lists it.",
        "- Hints without an equivalent (`thinking`, `cache_control`, `top_k`, `seed`, `service_tier`, …) are",
        "  dropped and named in the request's log row (`dropped_params`).",
        "- Usage is normalised once: input tokens include prompt-cache reads and writes, which are also counted on",
        "  their own.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC}")
