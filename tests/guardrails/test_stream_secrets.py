"""Streamed answers never let a fragment of a secret out: PEM private keys, JWTs and API keys of every length up to
4 KB, split at every chunk boundary, are redacted whole or block the stream before any of them is sent.

What is sent is never taken back, so an answer whose concatenated output is exactly ``prefix + placeholder +
suffix`` sent no fragment at any point."""

from __future__ import annotations

import base64
import itertools
import random
from collections.abc import Iterator

import pytest

from llmgw.exchange import StreamEvent
from llmgw.guardrails.engine import Scan
from llmgw.guardrails.redact import Placeholders
from llmgw.guardrails.rules import parse_rules
from llmgw.guardrails.stream import Blocked, HoldbackScanner, StreamGuard, pipe_factory

PREFIX, SUFFIX = "Here is the key you asked for:\n", "\nKeep it safe, and rotate it after use."
R = random.Random(4096)


def pem(total: int) -> str:
    """A PEM private-key block of about ``total`` characters (64-character lines)."""
    header, footer = "-----BEGIN RSA PRIVATE KEY-----\n", "\n-----END RSA PRIVATE KEY-----"
    size = max(16, total - len(header) - len(footer))
    raw = base64.b64encode(R.randbytes(size)).decode()[:size]
    lines = [raw[i:i + 64] for i in range(0, len(raw), 64)]
    body = "\n".join(lines)
    return header + body[:max(16, total - len(header) - len(footer))] + footer


def b64url(size: int) -> str:
    return base64.urlsafe_b64encode(R.randbytes(size)).decode().rstrip("=")[:size]


def jwt(total: int) -> str:
    """A JWT whose header decodes, about ``total`` characters long."""
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    rest = max(40, total - len(header) - 2)
    signature = min(683, rest // 2)     # an RSA-4096 signature at most
    return f"{header}.eyJ{b64url(rest - signature - 3)}.{b64url(signature)}"


TOKENS = {
    "openai": "sk-proj-" + b64url(48).replace("-", "x").replace("_", "y") + "Q7",
    "anthropic": "sk-ant-api03-" + b64url(93).replace("-", "x") + "9Z",
    "aws": "AKIA" + "".join(R.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16)),
    "github": "ghp_" + "".join(R.choice("abcdefABCDEF0123456789") for _ in range(36)),
    "github_pat": "github_pat_" + "".join(R.choice("abcdefABCDEF0123456789_") for _ in range(255)),
    "slack": "xoxb-" + "-".join("".join(R.choice("0123456789") for _ in range(12)) for _ in range(3)) + "-abcDEF1",
    "stripe": "sk_live_" + "".join(R.choice("abcdefABCDEF0123456789") for _ in range(99)),
    "google": "AIza" + "".join(R.choice("abcdefABCDEF0123456789_-") for _ in range(35)),
    "huggingface": "hf_" + "".join(R.choice("abcdefABCDEF0123456789") for _ in range(34)),
    "gitlab": "glpat-" + "".join(R.choice("abcdefABCDEF0123456789") for _ in range(20)),
}


def scanner(action: str = "redact") -> HoldbackScanner:
    rules = tuple(parse_rules([{"kind": "pii", "applies_to": "response", "action": action}]))
    return HoldbackScanner(Scan(rules, "response", Placeholders(), restoring=False), "content")


def streamed(text: str, cuts: list[int]) -> str:
    pipe = scanner()
    bounds = [0, *cuts, len(text)]
    return "".join(pipe.feed(text[a:b]) for a, b in itertools.pairwise(bounds)) + pipe.flush()


def offsets(secret: str) -> Iterator[int]:
    """Every split point around the secret's two ends, and a stride through its middle."""
    start, end = len(PREFIX), len(PREFIX) + len(secret)
    points = set(range(max(0, start - 24), min(end, start + 64)))
    points |= set(range(max(start, end - 64), min(len(PREFIX + secret + SUFFIX), end + 24)))
    points |= set(range(start, end, 127))
    return iter(sorted(points))


@pytest.mark.parametrize("total", [60, 200, 542, 1000, 1777, 2600, 3500, 4096])
def test_pem_blocks_split_at_every_boundary(total: int) -> None:
    secret = pem(total)
    text = PREFIX + secret + SUFFIX
    expected = PREFIX + "<API_KEY_1>" + SUFFIX
    for cut in offsets(secret):
        assert streamed(text, [cut]) == expected, (total, cut)


@pytest.mark.parametrize("total", [44, 300, 1200, 2500, 4096])
def test_jwts_split_at_every_boundary(total: int) -> None:
    secret = jwt(total)
    text = PREFIX + secret + SUFFIX
    for cut in offsets(secret):
        assert streamed(text, [cut]) == PREFIX + "<API_KEY_1>" + SUFFIX, (total, cut)


@pytest.mark.parametrize("kind", sorted(TOKENS))
def test_api_keys_split_at_every_offset(kind: str) -> None:
    secret = TOKENS[kind]
    text = PREFIX + secret + SUFFIX
    for cut in range(len(text) + 1):
        assert streamed(text, [cut]) == PREFIX + "<API_KEY_1>" + SUFFIX, (kind, cut)


def test_every_length_up_to_4_kb() -> None:
    """PEM blocks and JWTs of every length from 60 characters to 4 KB (in steps of 23), each split at a random
    point and in three random places."""
    for total in range(60, 4097, 23):
        for secret in (pem(total), jwt(total)):
            text = PREFIX + secret + SUFFIX
            start, end = len(PREFIX), len(PREFIX) + len(secret)
            one = [R.randrange(start, end)]
            three = sorted(R.randrange(start - 5, end + 5) for _ in range(3))
            for cuts in (one, three):
                assert streamed(text, cuts) == PREFIX + "<API_KEY_1>" + SUFFIX, (total, cuts)


def chunk(content: str | None = None, finish: str | None = None) -> StreamEvent:
    delta = {} if content is None else {"content": content}
    return StreamEvent({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}, raw=b"x")


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 64, 129, 1000])
def test_the_542_character_key_in_chunks_of_every_size(size: int) -> None:
    """The PEM key that went through whole when the stream held back only 128 characters."""
    secret = pem(542)
    assert 530 <= len(secret) <= 560
    text = PREFIX + secret + SUFFIX
    rules = tuple(parse_rules([{"kind": "pii", "applies_to": "response"}]))
    make = pipe_factory(Placeholders(), Scan(rules, "response", Placeholders(), restoring=False))
    assert make is not None
    guard = StreamGuard(make)
    events = [chunk(text[i:i + size]) for i in range(0, len(text), size)] + [chunk(finish="stop")]
    out = [e for event in events for e in guard.process(event)] + guard.finish()
    sent = "".join(e.data["choices"][0]["delta"].get("content") or "" for e in out if e.data.get("choices"))
    assert sent == PREFIX + "<API_KEY_1>" + SUFFIX


@pytest.mark.parametrize("total", [90, 542, 4096])
def test_a_blocking_rule_stops_the_stream_before_any_of_the_key(total: int) -> None:
    secret = pem(total)
    text = PREFIX + secret + SUFFIX
    for cut in offsets(secret):
        pipe = scanner("block")
        sent = []
        with pytest.raises(Blocked):
            for piece in (text[:cut], text[cut:]):
                sent.append(pipe.feed(piece))
            sent.append(pipe.flush())
        assert PREFIX.startswith("".join(sent)), (total, cut)
