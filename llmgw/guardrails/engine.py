"""Running a rule set over the texts of one request or answer.

Contract (:class:`Scan`): one instance per phase of one exchange. :meth:`Scan.text` judges one text with every
rule at once — each rule looks at the original text; where findings of several rules overlap, the more severe
action wins (block > redact > flag), then the earlier rule — records each kept finding (as its log form, with
the text's key path), notes the first block, and returns the text with the ``redact`` findings replaced by
placeholders from the shared table. After a block, further texts are returned unchanged and not scanned.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .redact import Placeholders
from .rules import SEVERITY, Finding, Rule, apply_findings


def merge_findings(rules: Sequence[Rule], text: str, table: Placeholders | None,
                   allow: Collection[str] = ()) -> list[Finding]:
    """Every rule's findings in ``text``, overlaps resolved (severity, then rule order), sorted by position."""
    found: list[tuple[int, int, Finding]] = []
    for order, rule in enumerate(rules):
        found.extend((-SEVERITY[f.action], order, f) for f in rule.find(text, table, allow))
    if not found:
        return []
    found.sort(key=lambda item: (item[0], item[1], item[2].start))
    kept: list[Finding] = []
    for _, _, f in found:
        if not any(f.start < k.end and k.start < f.end for k in kept):
            kept.append(f)
    kept.sort(key=lambda f: f.start)
    return kept


def as_redacting(rules: Sequence[Rule]) -> tuple[Rule, ...]:
    """The PII rules among ``rules``, all turned into non-restoring redactions: what masks a log copy."""
    return tuple(replace(r, action="redact", restore=False) for r in rules if r.kind == "pii")


@dataclass
class Scan:
    """Accumulates one phase's judgement over many texts (see the module contract)."""

    rules: tuple[Rule, ...]
    phase: str
    table: Placeholders
    allow: frozenset[str] = frozenset()
    record: bool = True
    restoring: bool = True              # False for answers: their redactions are never restored
    findings: list[dict[str, Any]] = field(default_factory=list)
    blocked: str | None = None          # "'rule' (kind): reason in where", from the first block
    redacted: bool = False
    unredacted_pii: bool = False        # PII flagged (or blocked) but left in place
    _by_name: dict[str, Rule] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_name = {r.name: r for r in self.rules}

    def find(self, text: str) -> list[Finding]:
        """The merged findings in ``text`` (nothing recorded)."""
        return merge_findings(self.rules, text, self.table, self.allow)

    def note(self, findings: Sequence[Finding], where: str) -> None:
        """Record ``findings`` (found in the text at ``where``) as this phase's verdicts."""
        if not self.record or not findings:
            return
        self.findings.extend(f.as_log(where, self.phase) for f in findings)
        for f in findings:
            if f.action == "block" and self.blocked is None:
                self.blocked = f"{f.rule!r} ({f.kind}): {f.reason()} in {where}"
            elif f.action == "redact":
                self.redacted = True
            if f.kind == "pii" and f.action != "redact":
                self.unredacted_pii = True

    def apply(self, text: str, findings: Sequence[Finding]) -> str:
        """``text`` with the redact findings replaced."""
        return apply_findings(text, findings, self.table, self._by_name, restoring=self.restoring)

    def text(self, text: str, where: str) -> str:
        """Judge one text; returns it as it should leave."""
        if self.blocked is not None or not self.rules:
            return text
        findings = self.find(text)
        if not findings:
            return text
        self.note(findings, where)
        return self.apply(text, findings)

    def outcome(self) -> str:
        """The phase's verdict so far: ``block``, ``redact``, ``flag`` or ``allow``."""
        if self.blocked is not None:
            return "block"
        worst = max((SEVERITY[f["action"]] for f in self.findings), default=0)
        return next(action for action, level in SEVERITY.items() if level == worst)

