"""Secrets in their published formats: API keys and tokens, JWTs, PEM private-key blocks.

Contract:
- :func:`find_secrets` yields a :class:`~llmgw.guardrails.detectors.Match` (entity ``api_key``) for each key or
  token in a published format (OpenAI ``sk-…``, Anthropic ``sk-ant-…``, AWS ``AKIA…``, GitHub ``ghp_…``, Slack
  ``xox[bp]-…``, Stripe, GitLab, Google, Hugging Face), each JWT whose header decodes, and each PEM private-key
  block, by position. A candidate starts only at a token boundary.
- Linear in the text's length: PEM blocks are found by pairing each header with the next footer (a bisection in
  the footers' positions), never by scanning ahead from every header.
- :func:`open_secret` says where a secret that more text could still complete begins (the stream guard holds
  back from there): a PEM header without its footer yet, a JWT whose characters run to the end of the text.
  Tokens of the other formats are at most :data:`TOKEN_SPAN` characters long and covered by the fixed hold.
"""

from __future__ import annotations

import base64
import binascii
import re
from bisect import bisect_left
from collections.abc import Iterator
from types import MappingProxyType

from .match import Match

_TOKENS = re.compile(
    r"(?:"
    r"(?P<anthropic>sk-ant-[A-Za-z0-9_\-]{20,200})"
    r"|(?P<openai>sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,200})"
    r"|(?P<stripe>(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,120})"
    r"|(?P<aws>(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16})"
    r"|(?P<github>gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})"
    r"|(?P<gitlab>glpat-[A-Za-z0-9_\-]{20,64})"
    r"|(?P<slack>xox[baprs]-[A-Za-z0-9\-]{10,250})"
    r"|(?P<google>AIza[0-9A-Za-z_\-]{35})"
    r"|(?P<huggingface>hf_[A-Za-z0-9]{30,64})"
    r"|(?P<jwt>eyJ[A-Za-z0-9_\-]{8,2000}\.eyJ[A-Za-z0-9_\-]{8,8000}\.[A-Za-z0-9_\-]{16,2000})"
    r")(?![A-Za-z0-9_\-])")
_TOKEN_START = re.compile(r"sk-|sk_|rk_|AKIA|ASIA|ABIA|ACCA|gh[pousr]_|github_pat_|glpat-|xox[baprs]-|AIza|hf_|eyJ")
_PEM_HEADER = re.compile(r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY-----")
_PEM_FOOTER = re.compile(r"-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY-----(?![A-Za-z0-9_\-])")
_PEM_BODY = (16, 16000)             # characters between header and footer
_JWT_RUN = re.compile(r"[A-Za-z0-9_\-.]*")
_NAMES = MappingProxyType({"anthropic": "Anthropic API key (sk-ant-…)", "openai": "OpenAI API key (sk-…)",
                           "stripe": "Stripe secret key", "aws": "AWS access key id", "github": "GitHub token",
                           "gitlab": "GitLab personal access token", "slack": "Slack token",
                           "google": "Google API key", "huggingface": "Hugging Face token",
                           "jwt": "JSON Web Token", "private_key": "PEM private key"})

TOKEN_SPAN = 270                    # the longest key of the token formats (github_pat_ + 255), JWTs aside
JWT_SPAN = 2000 + 8000 + 2000 + 8   # the longest JWT
SECRET_SPAN = 80 + _PEM_BODY[1] + 80  # the longest PEM block: header, body, footer


def _looks_random(token: str) -> bool:
    """Keys mix letters and digits; prose such as ``sk-this-is-a-placeholder`` does not."""
    body = token.split("-", 1)[-1]
    return any(c.isdigit() for c in body) and any(c.isalpha() for c in body)


def _jwt_header_ok(token: str) -> bool:
    header = token.split(".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
    except (binascii.Error, ValueError):
        return False
    return decoded.startswith(b"{") and (b'"alg"' in decoded or b'"typ"' in decoded)


def _at_boundary(text: str, start: int) -> bool:
    return not start or not (text[start - 1].isalnum() or text[start - 1] in "_-")


def _tokens(text: str) -> Iterator[Match]:
    for hit in _TOKEN_START.finditer(text):
        start = hit.start()
        if not _at_boundary(text, start):
            continue
        m = _TOKENS.match(text, start)
        if m is None:
            continue
        kind = m.lastgroup or "secret"
        token = m.group()
        if kind in ("openai", "anthropic") and not _looks_random(token):
            continue
        if kind == "jwt" and not _jwt_header_ok(token):
            continue
        yield Match("api_key", m.start(), m.end(), _NAMES.get(kind, "secret token"))


def _private_keys(text: str) -> Iterator[Match]:
    if "-----BEGIN" not in text:
        return
    footers = [(m.start(), m.end()) for m in _PEM_FOOTER.finditer(text)]
    starts = [start for start, _ in footers]
    low, high = _PEM_BODY
    for header in _PEM_HEADER.finditer(text):
        if not _at_boundary(text, header.start()):
            continue
        i = bisect_left(starts, header.end() + low)
        if i < len(footers) and footers[i][0] - header.end() <= high:
            yield Match("api_key", header.start(), footers[i][1], _NAMES["private_key"])


def find_secrets(text: str) -> Iterator[Match]:
    """Keys, tokens, JWTs and PEM private keys in ``text``, by position (see the module contract)."""
    found = sorted([*_tokens(text), *_private_keys(text)], key=lambda m: m.start)
    yield from found


def open_secret(text: str, limit: int) -> int:
    """The earliest position before ``limit`` where a PEM block or a JWT begins that more text could still
    complete (see the module contract); ``limit`` when there is none."""
    earliest = limit
    floor = max(0, len(text) - SECRET_SPAN)
    at = text.find("-----BEGIN", floor)
    while at != -1 and at < earliest:
        if _pem_open(text, at):
            earliest = at
            break
        at = text.find("-----BEGIN", at + 1)
    at = text.find("eyJ", max(0, len(text) - JWT_SPAN))
    while at != -1 and at < earliest:
        run = _JWT_RUN.match(text, at)
        if run is not None and run.end() == len(text) and _at_boundary(text, at):
            return at
        at = text.find("eyJ", max(at + 1, run.end() if run is not None else at + 1))
    return earliest


def open_secret_reach(text: str, low: int, high: int) -> int:
    """How far a PEM block or a JWT beginning in ``text[low:high]`` can run (``high`` when none begins there)."""
    far = high
    pem = text.rfind("-----BEGIN", low, high)
    if pem != -1:
        far = max(far, pem + SECRET_SPAN)
    jwt = text.rfind("eyJ", low, high)
    if jwt != -1:
        far = max(far, jwt + JWT_SPAN)
    return far


def _pem_open(text: str, at: int) -> bool:
    header = _PEM_HEADER.match(text, at)
    if header is None:
        return len(text) - at < 80     # could still become a header
    if len(text) - header.end() > _PEM_BODY[1] + 80:
        return False
    footer = _PEM_FOOTER.search(text, header.end() + _PEM_BODY[0])
    return footer is None or footer.end() >= len(text)
