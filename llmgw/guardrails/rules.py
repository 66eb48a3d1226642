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
from .injection import INJECTION_SPAN, find_injections
from .normalize import View, collapse_spaces, normalize
from .redact import PLACEHOLDER, Placeholders

KINDS = ("pii", "regex", "denylist", "injection")
ACTIONS = ("redact", "block", "flag")
PHASES = ("request", "response", "both")
SEVERITY: Mapping[str, int] = MappingProxyType({"allow": 0, "flag": 1, "redact": 2, "block": 3})
_DEFAULT_ACTION: Mapping[str, str] = MappingProxyType({"pii": "redact", "regex": "block", "denylist": "block",
                                                      "injection": "flag"})
_COMMON_KEYS = frozenset({"name", "kind", "action", "applies_to", "restore", "over_budget"})
OVER_BUDGET = ("block", "allow")
_KIND_KEYS: Mapping[str, frozenset[str]] = MappingProxyType({
    "pii": frozenset({"entities", "regions"}), "regex": frozenset({"pattern", "label", "ignore_case"}),
    "denylist": frozenset({"terms", "label"}), "injection": frozenset()})


UNBOUNDED_SPAN = 256    # a pattern with unbounded repetition: how much of a stream is held back for it
MAX_SPAN = 16_384       # the most any pattern is held back for
UNBOUNDED_WINDOW = 4096  # an unbounded pattern: the overlap of the windows a long text is scanned in


def pattern_span(pattern: re.Pattern[str]) -> int | None:
    """The longest match of ``pattern``, or ``None`` when its repetition is unbounded."""
    try:
        from re import _parser  # type: ignore[attr-defined]

        width = _parser.parse(pattern.pattern, pattern.flags).getwidth()[1]
    except Exception:   # a future re module without the parser: treat as unbounded
        return None
    return None if width >= MAX_SPAN else int(width)


class Detector(Protocol):
    """Finds what one rule looks for, in the normalised view (:mod:`llmgw.guardrails.normalize`).

    ``span`` is the longest match it reports (what a scan of a long text overlaps its windows by); ``hold(text)``
    is the position of ``text`` from which more text could still change a match (the stream guard sends only what
    lies before it)."""

    span: int

    def find(self, text: str) -> list[Match]: ...

    def hold(self, text: str) -> int: ...


def _hold_for(text: str, span: int | None, matches: list[Match]) -> int:
    """Fixed-span hold: the last ``span`` characters (plus context), or :data:`UNBOUNDED_SPAN` and every match
    that runs into the end, for unbounded patterns."""
    cut = max(0, len(text) - (span if span is not None else UNBOUNDED_SPAN) - 16)
    if span is None:
        for m in matches:
            if m.end >= len(text) - 1:
                cut = min(cut, m.start)
    return cut


class RegexDetector:
    """Matches of a profile-supplied regular expression (in the normalised view)."""

    def __init__(self, pattern: str, ignore_case: bool = False) -> None:
        self.pattern = re.compile(pattern, re.I if ignore_case else 0)
        self._span = pattern_span(self.pattern)
        self.span = self._span if self._span is not None else UNBOUNDED_WINDOW

    def find(self, text: str) -> list[Match]:
        why = f"matches pattern {self.pattern.pattern!r}"
        return [Match("regex", m.start(), m.end(), why) for m in self.pattern.finditer(text) if m.end() > m.start()]

    def hold(self, text: str) -> int:
        if self._span is not None:
            return _hold_for(text, self._span, [])
        base = max(0, len(text) - UNBOUNDED_WINDOW)
        tail = [Match(m.entity, m.start + base, m.end + base, m.why) for m in self.find(text[base:])]
        return _hold_for(text, None, tail)


_WORD_GAP = r"[\s\-_./]{0,3}"      # between the words of a term: any few spaces, dashes, dots, slashes, or none
_LETTER_GAP = r"[\-_.]?"          # inside a word: one hyphen, underscore or dot


def _compact(term: str) -> str:
    return re.sub(r"[\s\-_./]+", "", normalize(term).text.lower())


class DenylistDetector:
    """Denied terms, case-insensitive, as whole words where they begin or end with a word character. The terms
    are normalised like the text (look-alikes, accents, zero-width characters); between the words of a term any
    run of whitespace, up to three dashes, dots or slashes, or nothing matches; inside a word, one hyphen,
    underscore or dot is skipped (``pro-ject``)."""

    def __init__(self, terms: Sequence[str]) -> None:
        parts = []
        for term in sorted({normalize(t.strip()).text.lower() for t in terms if t.strip()}, key=len, reverse=True):
            words = [_LETTER_GAP.join(re.escape(ch) for ch in w) for w in term.split()]
            body = _WORD_GAP.join(words)
            parts.append((r"\b" if term[0].isalnum() or term[0] == "_" else "") + body
                         + (r"\b" if term[-1].isalnum() or term[-1] == "_" else ""))
        self.pattern = re.compile("|".join(parts), re.I)
        self.span = pattern_span(self.pattern) or MAX_SPAN
        self._terms = {_compact(t): t for t in terms if t.strip()}

    def find(self, text: str) -> list[Match]:
        view = collapse_spaces(text)
        found = []
        for m in self.pattern.finditer(view.text):
            start, end = view.span(m.start(), m.end())
            term = self._terms.get(_compact(m.group()), " ".join(m.group().lower().split()))
            found.append(Match("denylist", start, end, f"denied term {term.strip().lower()!r}"))
        return found

    def hold(self, text: str) -> int:
        view = collapse_spaces(text)
        return view.start(_hold_for(view.text, self.span, []))


class InjectionDetector:
    """Heuristic prompt-injection markers (see :mod:`llmgw.guardrails.injection`)."""

    span = INJECTION_SPAN

    def find(self, text: str) -> list[Match]:
        return [Match("injection", s, e, why) for s, e, why in find_injections(text)]

    def hold(self, text: str) -> int:
        return _hold_for(text, self.span, [])


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
    over_budget: str = "block"      # a scan past its budget: refuse (block) or let it through unscanned (allow)

    def applies(self, phase: str) -> bool:
        """Whether the rule runs on ``phase`` (``"request"`` or ``"response"``)."""
        return self.applies_to in (phase, "both")

    def placeholder_label(self, entity: str) -> str:
        return entity.upper() if self.kind == "pii" else self.label

    def find(self, text: str, placeholders: Placeholders | None = None, allow: Collection[str] = (),
             view: View | None = None) -> tuple[Finding, ...]:
        """What the rule finds in ``text`` (read through its normalised ``view``, computed when not given), by
        position, as spans of ``text``. Values in ``allow`` are not findings (an answer may repeat the values
        restored into it); the table's own placeholders are never matched."""
        view = view if view is not None else normalize(text)
        found = []
        for m in self.detector.find(view.text):
            start, end = view.span(m.start, m.end)
            if start < end:
                found.append(Finding(self.name, self.kind, m.entity, self.action, start, end, m.why, text[start:end]))
        if found and placeholders and "<" in text:
            found = outside(found, own_placeholders(text, placeholders))
        if allow:
            found = [f for f in found if f.value not in allow]
        return tuple(found)

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


def own_placeholders(text: str, placeholders: Placeholders) -> list[tuple[int, int]]:
    """The spans of ``text`` that hold placeholders ``placeholders`` issued, by position."""
    return [m.span() for m in PLACEHOLDER.finditer(text) if m.group() in placeholders.issued]


def outside(findings: Sequence[Finding], spans: Sequence[tuple[int, int]]) -> list[Finding]:
    """The findings that overlap none of ``spans`` (both by position; linear)."""
    if not spans:
        return list(findings)
    kept = []
    i = 0
    for f in sorted(findings, key=lambda f: f.start):
        while i < len(spans) and spans[i][1] <= f.start:
            i += 1
        if i < len(spans) and spans[i][0] < f.end:
            continue
        kept.append(f)
    return kept


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
    over_budget = raw.get("over_budget", "block")
    if over_budget not in OVER_BUDGET:
        problems.append(f"{path}.over_budget: expected one of {', '.join(OVER_BUDGET)}, got {over_budget!r}")
    label = raw.get("label", name)
    if not isinstance(label, str) or not label.strip():
        problems.append(f"{path}.label: expected a non-empty string")
        label = name
    detector = _detector(raw, kind, path, problems)
    if detector is None or len(problems) > before:
        return None
    return Rule(name, kind, action, detector, applies_to=applies_to, restore=restore, label=_label(label),
                over_budget=over_budget)


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
