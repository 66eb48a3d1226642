"""The client-format contract: everything the gateway knows about one wire format lives behind it.

A :class:`WireFormat` is one client API (OpenAI Chat Completions, Anthropic Messages). The server serves its
``routes``; every other module asks the format instead of branching on its name:

- ``parse(ex, body)`` validates what the gateway needs (400 naming the field, nothing changed) and fills the
  exchange: ``client_body``, the canonical ``body``, ``alias``, ``stream``, ``include_usage``;
- ``output_cap`` / ``set_output_cap`` read and write the request's output-token limit in this format's own field
  (the limits stage sends the limit it reserved when the client gave none);
- ``request_texts`` / ``answer_texts`` visit every text of a request or an answer in this format, in place
  (guardrails and cache keys read them);
- ``canonical_answer`` turns an answer in this format into the canonical OpenAI ``chat.completion`` (the cache
  stores that); ``answer_text`` / ``answer_usage`` read an answer for replay (``None``: not this format's answer);
- ``event_delta`` reads one streamed event's text and canonical finish reason (the stream accumulator);
  ``guard_event`` / ``held_text_event`` give the stream guard this format's text channels;
- ``error_body`` is an error in this format's shape (the error tree knows statuses, not wire formats);
- ``render_reply`` / ``render_stream`` / ``render_error`` write the answer back, streams through
  :func:`llmgw.formats.streaming.forward_stream` and the one SSE encoder (:func:`llmgw.sse.encode_data`);
- ``count_tokens_answer`` is the shape of a count-tokens answer, where the format has that endpoint.

Replies and stream events carry the *name* of the format they are in (``UpstreamReply.format``,
``StreamEvent.format``); :func:`llmgw.formats.named` turns it back into the format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import web

from ..errors import GatewayError
from ..exchange import Exchange, StreamEvent, Usage
from ..stages.auth import presented_key
from .texts import TextFn

if TYPE_CHECKING:
    from ..guardrails.stream import StreamGuard



@dataclass(frozen=True, slots=True)
class Route:
    """One POST endpoint of a format: its path (aiohttp's pattern: ``{name}`` parts become the exchange's
    ``route_params``), the exchange's ``endpoint`` kind (chat, embeddings, count_tokens), and whether the route
    itself asks for a stream (Gemini's ``:streamGenerateContent``: the exchange starts with ``stream`` set; formats
    whose body says it leave this False)."""

    path: str
    endpoint: str
    stream: bool = False


def canonical_output_cap(body: Mapping[str, Any]) -> int | None:
    """A canonical (OpenAI Chat Completions) body's output limit: ``max_completion_tokens``, else ``max_tokens``;
    None when neither is a whole number."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


class WireFormat:
    """The base of every client format (see the module contract). Subclasses override what they support."""

    name: ClassVar[str] = ""
    routes: ClassVar[tuple[Route, ...]] = ()
    forward_headers: ClassVar[tuple[str, ...]] = ()    # client headers kept for an upstream of the same format
    replay_headers: ClassVar[Mapping[str, str]] = MappingProxyType({})  # what a replay of this format must send

    # --- requests ---

    def credential(self, request: web.Request) -> str | None:
        """The key the client presented: ``x-api-key``, else ``Authorization: Bearer`` (a format whose clients
        send it elsewhere overrides this)."""
        return presented_key(request.headers.get("Authorization"), request.headers.get("x-api-key"))

    def parse(self, ex: Exchange, body: dict[str, Any]) -> None:
        """Validate ``body`` for ``ex.endpoint`` (and ``ex.route_params``, the route's path parameters) and fill
        the exchange (see the module contract)."""
        raise NotImplementedError

    def request_texts(self, endpoint: str, body: dict[str, Any], fn: TextFn) -> None:
        """Visit every text of a request of this format, in place: ``fn(text, where)`` for each, its return value
        put back (the guardrails redact through it).

        The conventions every walk follows (a field left out is a field a guardrail cannot see):

        - **Every text-bearing field**, not only the message text: names a client may fill freely (a message's
          ``name``), tool and parameter descriptions (:func:`~llmgw.formats.texts.schema_texts` on a schema),
          tool-call arguments and tool inputs with their **keys** (:func:`~llmgw.formats.texts.json_text_at`,
          :func:`~llmgw.formats.texts.visit_value`), tool results at any depth, document titles and context,
          predictions, ``user``/``metadata``-style identifiers, stop sequences, reasoning. Left alone: images,
          audio, files (base64 or ids), signed blocks (Anthropic thinking in a request), and what is structure
          rather than words (roles, types, ids, tool names, schema property names).
        - **Document order, deterministic**: the guard walks a body twice (collect, then put back) and relies on
          meeting the same texts in the same order while nothing changed.
        - **Adjacent parts read as one**: the text parts of one message (or of ``system``) are visited one after
          the other with paths ``<container>[<i>].text`` (``.refusal`` for refusal parts) sharing the container,
          e.g. ``messages[0].content[0].text``, ``messages[0].content[1].text``; the guard scans their
          concatenation as well as each part, so a value split across parts is found. Other texts get paths of
          any other shape (``messages[0].name``, ``tools[1].function.description``).
        - **Paths never carry values**: only fixed field names and indices; an object key appears in a path only
          when it is a plain name (:func:`~llmgw.formats.texts.key_path`), since paths go into findings and the
          log.
        - **One text, one visit**: never a concatenation built for the walk (the guard maps findings back to the
          text it was given).
        """
        raise NotImplementedError

    def cache_params(self, ex: Exchange) -> dict[str, Any] | None:
        """Client parameters that change the answer but have no place in the canonical body (cache partition)."""
        return None

    def estimate_input_tokens(self, body: Mapping[str, Any]) -> int:
        """A local estimate of a request's input tokens."""
        raise NotImplementedError

    def output_cap(self, ex: Exchange) -> int | None:
        """The most output tokens the client's request allows (None: it sets no limit). Budgets and tpm reserve
        it. The default reads the canonical body (:func:`canonical_output_cap`); a format whose own field says it
        differently overrides this."""
        return canonical_output_cap(ex.body)

    def set_output_cap(self, ex: Exchange, tokens: int) -> None:
        """Write ``tokens`` as the output limit into the client's own body (``ex.client_body``: what an upstream
        of this format receives when the request passes through untranslated). The limits stage calls it when
        :meth:`output_cap` is None and it reserved ``tokens`` for the answer; it sets the canonical body's
        ``max_completion_tokens`` itself. The default does nothing: a format whose requests can pass through to
        an upstream of its own format must override it, or they go out without the limit that was reserved."""
        return None

    @property
    def chat_path(self) -> str:
        """The path of this format's chat endpoint (for replay)."""
        return next(r.path for r in self.routes if r.endpoint == "chat")

    def replay_call(self, body: dict[str, Any], alias: str) -> tuple[str, dict[str, Any]]:
        """The path and body that send a logged chat request (``body``, as the client sent it) again to ``alias``,
        unstreamed (``llmgw replay``): by default the chat path, with ``model`` replaced and ``stream`` off (a
        format whose path names the model, or whose body has no such fields, overrides this)."""
        out = {**body, "model": alias, "stream": False}
        out.pop("stream_options", None)  # only allowed with stream = true
        return self.chat_path, out

    # --- answers ---

    def answer_texts(self, body: dict[str, Any], fn: TextFn) -> None:
        """Visit every text of a whole answer in this format, in place, with the conventions of
        :meth:`request_texts`; reasoning (thinking) is a text of an answer."""
        raise NotImplementedError

    def canonical_answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """The answer as a canonical OpenAI ``chat.completion``."""
        raise NotImplementedError

    def answer_text(self, body: Any) -> str | None:
        """An answer's text (tool calls as ``name(arguments)``), or None when ``body`` is not an answer of this
        format."""
        return None

    def answer_usage(self, body: Any) -> Usage | None:
        """An answer's usage, or None when ``body`` does not carry usage in this format's shape."""
        return None

    def count_tokens_answer(self, input_tokens: int) -> dict[str, Any]:
        """A count-tokens answer in this format."""
        raise NotImplementedError

    # --- streams ---

    def event_delta(self, data: dict[str, Any]) -> tuple[str | None, str | None]:
        """``(text, finish_reason)`` of one event in this format; the finish reason in canonical terms."""
        raise NotImplementedError

    def guard_event(self, guard: StreamGuard, event: StreamEvent) -> list[StreamEvent]:
        """The events to send for one event of this format, its texts through ``guard``'s pipes."""
        raise NotImplementedError

    def held_text_event(self, guard: StreamGuard, key: tuple[Any, ...], text: str, flush: bool) -> StreamEvent:
        """One event carrying text the guard held back for channel ``key``."""
        raise NotImplementedError

    # --- rendering ---

    def render_reply(self, ex: Exchange, headers: dict[str, str]) -> web.Response:
        raise NotImplementedError

    async def render_stream(self, request: web.Request, ex: Exchange, headers: dict[str, str],
                            record: Callable[[StreamEvent], None]) -> web.StreamResponse:
        """Write ``ex``'s stream; ``record`` is called with every event before it is encoded."""
        raise NotImplementedError

    def error_body(self, error: GatewayError) -> dict[str, Any]:
        """The error's body in this format."""
        raise NotImplementedError

    def render_error(self, error: GatewayError, headers: Mapping[str, str] | None = None) -> web.Response:
        raise NotImplementedError
