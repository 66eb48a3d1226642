"""The conformance matrix: which client formats, upstream kinds and features are proven, and how.

``docs/compatibility.md`` is rendered from this module (``python -m tests.conformance.matrix``) and a test checks
that the file is current, so the page always says exactly what the test suite proves.
"""

from __future__ import annotations

from pathlib import Path

from tests.agents.harness import AGENTS, CHECKS
from tests.agents.harness import UPSTREAMS as AGENT_UPSTREAMS

CLIENTS = {"openai": "OpenAI SDK (`/v1/chat/completions`)", "anthropic": "Anthropic SDK (`/v1/messages`)",
           "gemini": "Google Gen AI SDK (`/v1beta/models/{model}:generateContent`)",
           "responses": "OpenAI SDK, Responses API (`/v1/responses`)"}
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
    "stop reason": "a `max_tokens` cut comes back as `length` / `max_tokens` (Responses API: an `incomplete`"
                   " response, `max_output_tokens`)",
    "usage": "the tokens the client is told equal the tokens logged, streamed and not",
    "error": "an upstream 429 comes back as the client's own rate-limit error with `Retry-After`",
}

DOC = Path(__file__).resolve().parents[2] / "docs" / "compatibility.md"


def render() -> str:
    """The compatibility page, from the matrix above."""
    lines = [
        "# Compatibility",
        "",
        "Every cell below is one test in `tests/conformance/` (`test_matrix.py`; the Gemini column in",
        "`test_matrix_gemini.py`, the Responses API column in `test_matrix_responses.py`): the official SDK of the",
        "client format",
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
    lines += _agents()
    lines += POLICY
    return "\n".join(lines)


def _agents() -> list[str]:
    """The coding-agent table, from the data tests/agents/ is parametrised with."""
    lines = [
        "",
        "## Coding agents",
        "",
        "Every ✓ below is two tests in `tests/agents/test_agents.py`: the agent, installed from the npm registry at",
        "the pinned version, runs headless (no network but the gateway) through a real `llmgw serve` to a fake",
        "upstream of that kind. Each asserts the agent's own success output, what the upstream received and the",
        "log row. Settings for each agent: README.md, *Coding agents*; a ready profile: `profiles/agents.toml`.",
        "",
    ]
    lines += [f"- **{name}** — {text}" for name, text in CHECKS.items()]
    lines += ["", "| agent | speaks | " + " | ".join(AGENT_UPSTREAMS.values()) + " |",
              "|---|---|" + "---|" * len(AGENT_UPSTREAMS)]
    for agent in AGENTS:
        cells = " | ".join("✓" if kind in agent.upstreams else "—" for kind in AGENT_UPSTREAMS)
        lines.append(f"| {agent.title} (`{agent.package}@{agent.version}`) | {agent.speaks} | {cells} |")
    lines += ["", *(f"- {agent.title}: {agent.settings}." for agent in AGENTS)]
    return lines


POLICY = [
    "",
    "## Same format, across formats",
    "",
    "Client APIs change every month, and coding agents send what is newest first. The gateway's policy:",
    "",
    "- **Same-format traffic is never refused for something the upstream would accept.** The gateway validates",
    "  only what it needs itself — the alias (`model`), the messages and their texts (guardrails, the cache), the",
    "  `stream` flag, token limits (budgets) — and passes everything else through untouched: roles, block types,",
    "  fields and `anthropic-beta` headers it has never seen (Anthropic SDK → Anthropic upstream, OpenAI SDK →",
    "  OpenAI-format upstream; `anthropic-version` too, and `count_tokens` bodies). A new role or block type is",
    "  not an error: the upstream judges it, and its verdict comes back.",
    "- **Across formats, what has an equivalent is translated.** Anthropic `system`-role messages (sent by",
    "  Claude Code at any position of `messages`) become system messages at the same position for OpenAI-format",
    "  targets; for Gemini, the leading ones join `systemInstruction` and a later one becomes a text part of a",
    "  user turn at its position, wrapped in `<system>` … `</system>` (Gemini has no system turns). Text",
    "  documents and search results become text, PDF documents `file` parts, `output_config.format` a",
    "  `response_format`. Redact and block rules read every message, system messages included.",
    "- **Hints without an equivalent are dropped and named** in the request's log row (`dropped_params`):",
    "  `thinking` and thinking blocks, `cache_control`, `context_management`, `output_config` settings other",
    "  than `format` (`effort`), citations settings, tool hints such as `defer_loading`, `top_k`, `seed`,",
    "  `service_tier`, and any top-level field the translation does not know.",
    "- **Only what would change the answer is refused**, with a 400 naming the field, before any upstream is",
    "  called: `response_format`, `n > 1`, `logprobs` where the target cannot honour them (unless the",
    "  provider's `drop_params` lists them), and, sent to a non-Anthropic target, server tools, MCP servers,",
    "  server-tool and container-upload blocks, mid-conversation tool additions or removals, roles and block",
    "  types the translation does not know, and `max_tokens: 0` (prompt-cache pre-warming).",
    "- The same holds for Gemini clients (Gemini CLI, the google-genai SDKs): to a Gemini target the body goes",
    "  untouched (parts, fields and roles the gateway has never seen included) with only the model in the URL",
    "  replaced, and Gemini's own bytes and events come back. Across formats `safetySettings`, `thinkingConfig`,",
    "  `topK`, thought parts and signatures are dropped and named; `cachedContent`, tools other than function",
    "  declarations (`googleSearch`, `codeExecution`...), code-execution and uploaded-file parts, non-text",
    "  `responseModalities` and `responseLogprobs` are refused with a 400 naming the field.",
    "- The same holds for OpenAI Responses API clients (Codex CLI, `client.responses`): to an OpenAI target the",
    "  body goes to `/v1/responses` untouched (items, roles, tools and fields the gateway has never seen, and the",
    "  `OpenAI-Beta` and session headers) with only `model` replaced, and OpenAI's own bytes and events come back.",
    "  Across formats `input` items become messages (`developer` as `system`), `function_call` /",
    "  `function_call_output` items tool calls and results, `max_output_tokens` `max_tokens`, `text.format` a",
    "  `response_format`, `reasoning.effort` `reasoning_effort`, the tools of a `namespace` tool flat, a custom",
    "  tool (Codex's `apply_patch`) a function of one string whose calls come back as `custom_tool_call` items;",
    "  reasoning items, `reasoning.summary`, `store`, `include`, `metadata`, `truncation` and tools OpenAI runs",
    "  itself (`web_search`...) are dropped and named; `previous_response_id`, `conversation`, stored prompts,",
    "  `item_reference` items, client-side built-in tools (`local_shell`, `computer_use`) and their calls,",
    "  `background` and log probabilities are refused with a 400 naming the field (the gateway keeps no",
    "  responses to continue from).",
    "- Usage is normalised once: input tokens include prompt-cache reads and writes, which are also counted on",
    "  their own.",
    "",
]
"""The hand-written policy section of the page (kept by the generator)."""


if __name__ == "__main__":
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC}")
