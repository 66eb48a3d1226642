"""Guardrail rules: what ``[[guardrails]]`` entries become, and how one rule judges one text.

Contract:
- :func:`parse_rules` turns the raw ``[[guardrails]]`` list into :class:`Rule` s or raises :class:`ProfileError`
  listing every problem as ``"guardrails[i].key: what is wrong"``.
- :meth:`Rule.check` is pure apart from the :class:`Placeholders` table it is given: it returns a
  :class:`Verdict` whose ``action`` is the rule's action when anything was found, else ``"allow"``; whose
  ``redacted_text`` is the text with every finding replaced by its placeholder when the action is ``redact``
  (the text unchanged otherwise); and whose ``why`` explains each finding without quoting any PII value.
- A :class:`Finding` keeps the matched value for redaction and restoring only; :meth:`Finding.as_log` (what is
  logged, shown and counted) never contains it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import phonenumbers

from ..errors import ProfileError
from .detectors import ENTITIES, Match, PiiDetector
from .injection import find_injections
from .redact import PLACEHOLDER, Placeholders

KINDS = ("pii", "regex", "denylist", "injection")
ACTIONS = ("redact", "block", "flag")
PHASES = ("request", "response", "both")
SEVERITY: Mapping[str, int] = MappingProxyType({"allow": 0, "flag": 1, "redact": 2, "block": 3})
_DEFAULT_ACTION: Mapping[str, str] = MappingProxyType({"pii": "redact", "regex": "block", "denylist": "block",
                                                      "injection": "flag"})
_COMMON_KEYS = frozenset({"name", "kind", "action", "applies_to", "restore"})
_KIND_KEYS: Mapping[str, frozenset[str]] = MappingProxyType({
    "pii": frozenset({"entities", "regions"}), "regex": frozenset({"pattern", "label", "ignore_case"}),
    "denylist": frozenset({"terms", "label"}), "injection": frozenset()})


class Detector(Protocol):
    """Finds what one rule looks for."""

    def find(self, text: str) -> list[Match]: ...


class RegexDetector:
    """Matches of a profile-supplied regular expression."""

    def __init__(self, pattern: str, ignore_case: bool = False) -> None:
        self.pattern = re.compile(pattern, re.I if ignore_case else 0)

    def find(self, text: str) -> list[Match]:
        why = f"matches pattern {self.pattern.pattern!r}"
        return [Match("regex", m.start(), m.end(), why) for m in self.pattern.finditer(text) if m.end() > m.start()]


class DenylistDetector:
    """Denied terms, case-insensitive, as whole words where they begin or end with a word character; any run of
    whitespace in a term matches any run of whitespace in the text."""

    def __init__(self, terms: Sequence[str]) -> None:
        parts = []
        for term in sorted({t.strip().lower() for t in terms if t.strip()}, key=len, reverse=True):
            body = r"\s+".join(re.escape(w) for w in term.split())
            parts.append((r"\b" if term[0].isalnum() or term[0] == "_" else "") + body
                         + (r"\b" if term[-1].isalnum() or term[-1] == "_" else ""))
        self.pattern = re.compile("|".join(parts), re.I)

    def find(self, text: str) -> list[Match]:
        return [Match("denylist", m.start(), m.end(), f"denied term {' '.join(m.group().lower().split())!r}")
                for m in self.pattern.finditer(text)]


class InjectionDetector:
    """Heuristic prompt-injection markers (see :mod:`llmgw.guardrails.injection`)."""

    def find(self, text: str) -> list[Match]:
        return [Match("injection", s, e, why) for s, e, why in find_injections(text)]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a rule found in one text. ``value`` is for redaction/restoring only: never log it."""

    rule: str
    kind: str
    entity: str
    action: str
    start: int
    end: int
    why: str
    value: str = field(repr=False, compare=False)

    def reason(self) -> str:
        """What was found and why, without the value: ``credit_card: Luhn-valid Visa number``."""
        return self.why if self.entity == self.kind else f"{self.entity}: {self.why}"

    def describe(self) -> str:
        return f"{self.rule}: {self.entity} at {self.start}-{self.end} ({self.why})"

    def as_log(self, where: str = "", phase: str = "request") -> dict[str, Any]:
        """The finding as logged and shown: rule, entity, action, place and reason, never the value."""
        return {"rule": self.rule, "kind": self.kind, "entity": self.entity, "action": self.action,
                "phase": phase, "where": where, "span": [self.start, self.end], "why": self.why}


@dataclass(frozen=True, slots=True)
class Verdict:
    """A rule's judgement of one text (see the module contract)."""

    action: str
    findings: tuple[Finding, ...]
    redacted_text: str
    why: str


@dataclass(frozen=True)
class Rule:
    """One ``[[guardrails]]`` entry, ready to run."""

    name: str
    kind: str
    action: str
    detector: Detector = field(repr=False)
    applies_to: str = "request"
    restore: bool = False
    label: str = ""

    def applies(self, phase: str) -> bool:
        """Whether the rule runs on ``phase`` (``"request"`` or ``"response"``)."""
        return self.applies_to in (phase, "both")

    def placeholder_label(self, entity: str) -> str:
        return entity.upper() if self.kind == "pii" else self.label

    def find(self, text: str, placeholders: Placeholders | None = None,
             allow: Collection[str] = ()) -> tuple[Finding, ...]:
        """What the rule finds in ``text``, by position. Values in ``allow`` are not findings (an answer may
        repeat the values restored into it); the table's own placeholders are never matched."""
        matches = self.detector.find(text)
        if matches and placeholders and "<" in text:
            own = [(m.start(), m.end()) for m in PLACEHOLDER.finditer(text) if m.group() in placeholders.issued]
            matches = [m for m in matches if not any(m.start < e and s < m.end for s, e in own)]
        return tuple(Finding(self.name, self.kind, m.entity, self.action, m.start, m.end, m.why,
                             text[m.start:m.end]) for m in matches if text[m.start:m.end] not in allow)

    def check(self, text: str, placeholders: Placeholders | None = None, allow: Collection[str] = ()) -> Verdict:
        """Judge ``text`` (see the module contract); redaction issues placeholders from ``placeholders`` (a fresh
        table when ``None``)."""
        findings = self.find(text, placeholders, allow)
        if not findings:
            return Verdict("allow", (), text, "")
        redacted = text
        if self.action == "redact":
            redacted = apply_findings(text, findings, placeholders if placeholders is not None else Placeholders(),
                                      {self.name: self})
        return Verdict(self.action, findings, redacted, explain(findings))


def explain(findings: Sequence[Finding]) -> str:
    """Why, in one line: each rule with the distinct reasons it gave (never a matched value)."""
    by_rule: dict[str, dict[str, None]] = {}
    kinds: dict[str, str] = {}
    for f in findings:
        by_rule.setdefault(f.rule, {})[f.reason()] = None
        kinds[f.rule] = f.kind
    return "; ".join(f"{rule} ({kinds[rule]}): " + "; ".join(reasons) for rule, reasons in by_rule.items())


def apply_findings(text: str, findings: Sequence[Finding], placeholders: Placeholders,
                   rules: Mapping[str, Rule], *, restoring: bool = True) -> str:
    """``text`` with every finding whose action is ``redact`` replaced by its placeholder. ``findings`` must be
    sorted and non-overlapping; ``rules`` maps rule names to rules (for the label and ``restore``); with
    ``restoring`` false no value becomes restorable (answers: what a response rule redacts stays redacted)."""
    pieces: list[str] = []
    last = 0
    for f in findings:
        if f.action != "redact":
            continue
        rule = rules[f.rule]
        pieces += [text[last:f.start], placeholders.token(rule.placeholder_label(f.entity), f.value,
                                                          restorable=rule.restore and restoring)]
        last = f.end
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def default_rules() -> list[Rule]:
    """What ``llmgw guard test`` runs when the profile has no ``[[guardrails]]``: redact (and restore) all PII."""
    return [Rule("pii", "pii", "redact", PiiDetector(), applies_to="request", restore=True)]


# --- parsing ----------------------------------------------------------------------------------------------------


def _label(name: str) -> str:
    label = re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")
    return label if label and label[0].isalpha() else f"R_{label or 'MATCH'}"


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _detector(raw: dict[str, Any], kind: str, path: str, problems: list[str]) -> Detector | None:
    if kind == "pii":
        entities = raw.get("entities", list(ENTITIES))
        regions = raw.get("regions", ["US"])
        if not _strings(entities) or not entities:
            problems.append(f"{path}.entities: expected a non-empty array of entity names ({', '.join(ENTITIES)})")
            return None
        unknown = [e for e in entities if e not in ENTITIES]
        if unknown:
            problems.append(f"{path}.entities: unknown entity {unknown[0]!r} (one of {', '.join(ENTITIES)})")
            return None
        bad = [r for r in regions if not isinstance(r, str) or r.upper() not in phonenumbers.SUPPORTED_REGIONS] \
            if isinstance(regions, list) else [regions]
        if bad:
            problems.append(f"{path}.regions: expected an array of ISO country codes, e.g. [\"US\", \"GB\"]; "
                            f"{bad[0]!r} is not one")
            return None
        return PiiDetector(entities, [r.upper() for r in regions])
    if kind == "regex":
        pattern = raw.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            problems.append(f"{path}.pattern: required for kind \"regex\" (a Python regular expression)")
            return None
        try:
            detector = RegexDetector(pattern, bool(raw.get("ignore_case", False)))
        except re.error as exc:
            problems.append(f"{path}.pattern: invalid regular expression: {exc}")
            return None
        if detector.pattern.search(""):
            problems.append(f"{path}.pattern: matches the empty string; it would match everywhere")
            return None
        return detector
    if kind == "denylist":
        terms = raw.get("terms")
        if not _strings(terms) or not any(t.strip() for t in terms):
            problems.append(f"{path}.terms: required for kind \"denylist\" (a non-empty array of strings)")
            return None
        return DenylistDetector(terms)
    return InjectionDetector()


def _rule(raw: Any, i: int, problems: list[str]) -> Rule | None:
    path = f"guardrails[{i}]"
    if not isinstance(raw, dict):
        problems.append(f"{path}: expected a table ([[guardrails]] entry)")
        return None
    before = len(problems)
    kind = raw.get("kind")
    if kind not in KINDS:
        what = "missing" if kind is None else f"unknown kind {kind!r}"
        problems.append(f"{path}.kind: {what} (one of {', '.join(KINDS)})")
        return None
    for key in raw:
        if key not in _COMMON_KEYS | _KIND_KEYS[kind]:
            allowed = ", ".join(sorted(_COMMON_KEYS | _KIND_KEYS[kind]))
            problems.append(f"{path}.{key}: unknown key for kind {kind!r} (allowed: {allowed})")
    name = raw.get("name", kind)
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{path}.name: expected a non-empty string")
        name = kind
    action = raw.get("action", _DEFAULT_ACTION[kind])
    if action not in ACTIONS:
        problems.append(f"{path}.action: expected one of {', '.join(ACTIONS)}, got {action!r}")
    applies_to = raw.get("applies_to", "request")
    if applies_to not in PHASES:
        problems.append(f"{path}.applies_to: expected one of {', '.join(PHASES)}, got {applies_to!r}")
    restore = raw.get("restore", False)
    if not isinstance(restore, bool):
        problems.append(f"{path}.restore: expected a boolean")
    elif restore and (kind != "pii" or action != "redact"):
        problems.append(f"{path}.restore: only a kind = \"pii\" rule with action = \"redact\" can restore values")
    if "ignore_case" in raw and not isinstance(raw["ignore_case"], bool):
        problems.append(f"{path}.ignore_case: expected a boolean")
    label = raw.get("label", name)
    if not isinstance(label, str) or not label.strip():
        problems.append(f"{path}.label: expected a non-empty string")
        label = name
    detector = _detector(raw, kind, path, problems)
    if detector is None or len(problems) > before:
        return None
    return Rule(name, kind, action, detector, applies_to=applies_to, restore=restore, label=_label(label))


def parse_rules(raw: Any) -> list[Rule]:
    """The ``[[guardrails]]`` list as :class:`Rule` s; raises :class:`ProfileError` naming every problem."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ProfileError(["guardrails: expected an array of tables ([[guardrails]])"])
    problems: list[str] = []
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(raw):
        rule = _rule(entry, i, problems)
        if rule is None:
            continue
        if rule.name in seen:
            problems.append(f"guardrails[{i}].name: {rule.name!r} is already the name of guardrails[{seen[rule.name]}];"
                            " give each rule its own name")
            continue
        seen[rule.name] = i
        rules.append(rule)
    if problems:
        raise ProfileError(problems)
    return rules
