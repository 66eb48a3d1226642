"""Heuristic prompt-injection markers.

Contract: :func:`find_injections` returns ``(start, end, why)`` for each marker found, by position, never
overlapping. These are heuristics for well-known phrasings (instruction overrides, persona jailbreaks such as
DAN, system-prompt exfiltration asks, chat-template role markers smuggled into content); they catch the common
copy-pasted attacks, not a determined adversary, and are meant to flag or block alongside other controls.
Every pattern is bounded (no unbounded repetition, :data:`INJECTION_SPAN` characters at most), so scanning is
linear in the text's length.
"""

from __future__ import annotations

import re

_GAP = r"[^.\n]{0,40}?"

_MARKERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("instruction override ('ignore previous instructions')", re.compile(
        r"\b(?:ignore|disregard|forget|override|bypass|skip|drop|abandon)\b" + _GAP
        + r"\b(?:previous|prior|above|earlier|preceding|foregoing|all|any|your|the|these|those|system|original|"
          r"initial)\b" + r"[^.\n]{0,20}?"
        + r"\b(?:instructions?|prompts?|rules|directions|directives|guidelines|guardrails|constraints|context|"
          r"messages?|programming|training)\b", re.I)),
    ("persona jailbreak ('you are now DAN')", re.compile(
        r"\b(?:you are|you're|act as|pretend (?:to be|you are)|roleplay as|from now on,? you are)\b" + _GAP
        + r"(?:\bDAN\b|do anything now|jailbr[eo]ak|\bunrestricted\b|\bunfiltered\b|\buncensored\b|"
          r"developer mode|no (?:restrictions|rules|limits|filters|guidelines)|without (?:any )?(?:restrictions|"
          r"rules|limits|filters|guidelines|ethics))", re.I)),
    ("jailbreak mode switch ('enable developer mode')", re.compile(
        r"\b(?:enable|activate|enter|switch to|turn on)\b" + r"[^.\n]{0,20}?"
        + r"\b(?:developer|dev|god|jailbreak|DAN|unrestricted|debug) mode\b", re.I)),
    ("system-prompt exfiltration ('reveal your system prompt')", re.compile(
        r"\b(?:reveal|show|print|repeat|output|display|tell me|give me|leak|dump|return|recite|what (?:is|are|"
          r"was|were))\b" + _GAP
        + r"\b(?:system prompt|system message|initial (?:prompt|instructions)|hidden (?:prompt|instructions)|"
          r"original (?:prompt|instructions)|(?:your|the) (?:instructions|prompt|rules)|developer (?:message|"
          r"prompt)|text above|everything above|words above)", re.I)),
    ("injected system header ('system prompt:')", re.compile(
        r"(?:^|\n)[ \t]{0,8}(?:#{1,6}[ \t]{0,4})?(?:new |updated |real |actual )?(?:system prompt|system message|"
        r"new instructions|admin instructions|developer instructions)[ \t]{0,4}:", re.I)),
    ("chat-template role marker ('<|im_start|>system', '[INST]', '<<SYS>>')", re.compile(
        r"<\|im_start\|>\s{0,4}system|<\|start_header_id\|>\s{0,4}system|<\|system\|>|\[/?INST\]|<</?SYS>>")),
)


INJECTION_SPAN = 200     # the longest marker (a phrase with its bounded gaps)


def find_injections(text: str) -> list[tuple[int, int, str]]:
    """Prompt-injection markers in ``text``: ``(start, end, why)`` by position, non-overlapping."""
    found: list[tuple[int, int, str]] = []
    for why, pattern in _MARKERS:
        for m in pattern.finditer(text):
            start = m.start() + (len(m.group()) - len(m.group().lstrip()))
            if not any(start < end and s < m.end() for s, end, _ in found):
                found.append((start, m.end(), why))
    found.sort()
    return found
