"""Running a rule set over the texts of one request or answer.

Contract (:class:`Scan`): one instance per phase of one exchange.
- :meth:`Scan.text` judges one text with every rule at once: each rule reads the text's normalised view
  (:mod:`.normalize`) and its findings are spans of the original text; where findings of several rules overlap,
  the more severe action wins (block > redact > flag), then the earlier rule, then the longer finding. It records
  each kept finding (as its log form, with the text's key path), notes the first block, and returns the text with
  the ``redact`` findings replaced by placeholders from the shared table. After a block, further texts are
  returned unchanged and not scanned.
- :meth:`Scan.texts` judges texts the reader sees as one (the text parts of one message): each part alone and
  their concatenation, so a value split across parts is found; a redacted value that spans parts leaves its
  placeholder in the first part, one character of it in each later part the value covers whole (no part is left
  empty), and nothing of the value.
- Linear: a text longer than :data:`WINDOW` is read in overlapping windows (each overlap at least the longest
  match a rule can report), overlaps are resolved with one mark per character, and the per-request
  :class:`Budget` (CPU time of the scanning thread, and at most :data:`MAX_FINDINGS` values) is checked between
  windows and texts — past it, :class:`BudgetExceeded` is raised and nothing more is scanned.
- With ``clean`` (:class:`~llmgw.guardrails.clean_texts.CleanTexts`, request scans only), a text these rules
  found nothing in before is not scanned again, and one they find nothing in now is remembered.
- At most :data:`MAX_RECORDED` findings are recorded one by one; the rest are counted in one summary entry per
  (rule, entity, action) whose ``count`` says how many (:meth:`Scan.drain`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import GatewayError, PayloadTooLarge
from .clean_texts import CleanTexts
from .normalize import normalize
from .redact import Placeholders
from .rules import SEVERITY, Finding, Rule, apply_findings

WINDOW = 64 * 1024      # characters of one long text read at a time
CONTEXT = 64            # characters before a window read for context (phone wording, order labels)
MAX_RECORDED = 1000     # findings recorded one by one per phase
DEFAULT_BUDGET_S = 1.0  # CPU seconds one phase of one exchange may spend scanning
MAX_FINDINGS = 50_000   # values one phase of one exchange may find


class BudgetExceeded(Exception):
    """The scan spent its budget; what remains was not scanned."""


class ScanCancelled(Exception):
    """The exchange went away (client gone, server stopping); the scan stopped."""


class Budget:
    """CPU time and findings allowed to one phase's scans (``None``: unlimited); :meth:`cancel` stops a scan running
    in another thread at its next check. The findings cap keeps a dense body from filling memory (and the garbage
    collector's pauses) with values to redact."""

    def __init__(self, seconds: float | None = DEFAULT_BUDGET_S, findings: int | None = MAX_FINDINGS, *,
                 clock: Callable[[], float] = time.thread_time) -> None:
        """``clock`` measures the scan's time: the thread's CPU time by default (a scan in a worker thread shares
        the CPU); a scan on the event loop, which nothing interrupts, may pass the cheaper ``time.perf_counter``."""
        self.seconds = seconds
        self._clock = clock
        self.findings = findings
        self.used = 0.0
        self.found = 0
        self.cancelled = False
        self._entered: float | None = None

    @contextmanager
    def running(self) -> Iterator[None]:
        """Count the CPU time of the current thread inside the block."""
        outer = self.enter()
        try:
            yield
        finally:
            self.leave(outer)

    def enter(self) -> bool:
        """Start counting (what :meth:`running` does on the way in, without a context manager, for hot paths);
        returns whether counting had already started (pass it to :meth:`leave`)."""
        if self._entered is not None:
            return True
        self._entered = self._clock()
        return False

    def leave(self, outer: bool) -> None:
        """Stop counting, unless :meth:`enter` found it already started (``outer``)."""
        if not outer and self._entered is not None:
            self.used += self._clock() - self._entered
            self._entered = None

    def spent(self) -> float:
        """CPU seconds spent so far."""
        return self.used + (self._clock() - self._entered if self._entered is not None else 0.0)

    def check(self) -> None:
        """Raise :class:`ScanCancelled` or :class:`BudgetExceeded` when the scan must stop."""
        if self.cancelled:
            raise ScanCancelled
        if self.seconds is not None and self.spent() > self.seconds:
            raise BudgetExceeded(f"{self.spent():.2f} s of CPU")

    def count(self, found: int) -> None:
        """Add ``found`` findings; raise :class:`BudgetExceeded` past the cap."""
        self.found += found
        if self.findings is not None and self.found > self.findings:
            raise BudgetExceeded(f"more than {self.findings} values")

    def cancel(self) -> None:
        self.cancelled = True


def resolve(candidates: Sequence[tuple[int, Finding]], length: int) -> list[Finding]:
    """Overlapping findings resolved — severity, then rule order, then position, then the longer — and sorted by
    position. ``candidates`` are ``(rule order, finding)``; ``length`` bounds every span. Linear in the marked
    characters."""
    if not candidates:
        return []
    ranked = sorted(candidates, key=lambda c: (-SEVERITY[c[1].action], c[0], c[1].start, c[1].start - c[1].end))
    occupied = bytearray(length)
    kept: list[Finding] = []
    for _, f in ranked:
        if occupied.find(1, f.start, f.end) == -1:
            occupied[f.start:f.end] = b"\x01" * (f.end - f.start)
            kept.append(f)
    kept.sort(key=lambda f: f.start)
    return kept


def shifted(f: Finding, delta: int) -> Finding:
    """``f`` moved by ``delta`` characters."""
    return Finding(f.rule, f.kind, f.entity, f.action, f.start + delta, f.end + delta, f.why, f.value)


def _find_here(rules: Sequence[Rule], text: str, table: Placeholders | None,
               allow: Collection[str]) -> list[tuple[int, Finding]]:
    view = normalize(text)
    return [(order, f) for order, rule in enumerate(rules) for f in rule.find(text, table, allow, view)]


def merge_findings(rules: Sequence[Rule], text: str, table: Placeholders | None, allow: Collection[str] = (),
                   budget: Budget | None = None) -> list[Finding]:
    """Every rule's findings in ``text``, overlaps resolved, sorted by position (see the module contract)."""
    if not rules or not text:
        return []
    if len(text) <= WINDOW:
        if budget is not None:
            budget.check()
        here = _find_here(rules, text, table, allow)
        if budget is not None:
            budget.count(len(here))
        return resolve(here, len(text))
    found: list[tuple[int, Finding]] = []
    for low in range(0, len(text), WINDOW):
        if budget is not None:
            budget.check()
        start, end = max(0, low - CONTEXT), _window_end(rules, text, low, min(len(text), low + WINDOW))
        here = [(order, shifted(f, start)) for order, f in _find_here(rules, text[start:end], table, allow)
                if low <= f.start + start < low + WINDOW]
        if budget is not None:
            budget.count(len(here))
        found += here
    return resolve(found, len(text))


def _window_end(rules: Sequence[Rule], text: str, low: int, high: int) -> int:
    """The end of the window that finds every match starting in ``text[low:high]``: past ``high`` by the longest
    match each rule can report there (``detector.reach`` where a detector knows better than its ``span``)."""
    far = high
    for rule in rules:
        reach = getattr(rule.detector, "reach", None)
        far = max(far, reach(text, low, high) if reach is not None else high + rule.detector.span)
    return min(len(text), far + CONTEXT)


VALUE_KINDS = ("pii", "regex", "denylist")     # rules whose findings are values (injection markers are not)


def as_redacting(rules: Sequence[Rule]) -> tuple[Rule, ...]:
    """The rules among ``rules`` that find values (PII, patterns, denied terms), all turned into non-restoring
    redactions: what masks a log copy."""
    return tuple(replace(r, action="redact", restore=False) for r in rules if r.kind in VALUE_KINDS)


@dataclass(slots=True)
class Scan:
    """Accumulates one phase's judgement over many texts (see the module contract)."""

    rules: tuple[Rule, ...]
    phase: str
    table: Placeholders
    allow: frozenset[str] = frozenset()
    record: bool = True
    restoring: bool = True              # False for answers: their redactions are never restored
    budget: Budget | None = None
    clean: CleanTexts | None = None     # texts these rules found nothing in before (request scans only)
    findings: list[dict[str, Any]] = field(default_factory=list)
    blocked: str | None = None          # "'rule' (kind): reason in where", from the first block
    redacted: bool = False
    unredacted_pii: bool = False        # a value (PII, pattern, denied term) flagged or blocked, left in place
    worst: int = 0                      # the most severe action recorded (SEVERITY)
    _recorded: int = 0
    _overflow: Counter[tuple[str, str, str, str]] | None = field(default=None, repr=False)   # made when needed
    _rules_by_name: dict[str, Rule] | None = field(default=None, repr=False)                 # made when needed

    @property
    def _by_name(self) -> dict[str, Rule]:
        if self._rules_by_name is None:
            self._rules_by_name = {r.name: r for r in self.rules}
        return self._rules_by_name

    def find(self, text: str) -> list[Finding]:
        """The merged findings in ``text`` (nothing recorded); none, without a scan, for a text ``clean`` knows."""
        clean = self.clean
        if clean is None or (key := clean.key(text)) is None:
            return merge_findings(self.rules, text, self.table, self.allow, self.budget)
        if clean.known(key):
            return []
        found = merge_findings(self.rules, text, self.table, self.allow, self.budget)
        # Nothing found may mean only that every value lay inside this request's own placeholders: not remembered.
        if not found and not self.allow and (not self.table or "<" not in text):
            clean.add(key)
        return found

    def note(self, findings: Sequence[Finding], where: str) -> None:
        """Record ``findings`` (found in the text at ``where``) as this phase's verdicts."""
        if not self.record or not findings:
            return
        for f in findings:
            self.worst = max(self.worst, SEVERITY[f.action])
            if f.action == "block" and self.blocked is None:
                self.blocked = f"{f.rule!r} ({f.kind}): {f.reason()} in {where}"
            elif f.action == "redact":
                self.redacted = True
            if f.kind in VALUE_KINDS and f.action != "redact":
                self.unredacted_pii = True
            if self._recorded < MAX_RECORDED:
                self.findings.append(f.as_log(where, self.phase))
                self._recorded += 1
            else:
                if self._overflow is None:
                    self._overflow = Counter()
                self._overflow[(f.rule, f.kind, f.entity, f.action)] += 1

    def drain(self) -> list[dict[str, Any]]:
        """The findings recorded since the last drain, with one summary entry per (rule, entity, action) for those
        past :data:`MAX_RECORDED` (``count``: how many; no span)."""
        out = self.findings[:]
        self.findings.clear()
        if self._overflow is None:
            return out
        for (rule, kind, entity, action), count in self._overflow.items():
            out.append({"rule": rule, "kind": kind, "entity": entity, "action": action, "phase": self.phase,
                        "where": "", "span": None, "count": count,
                        "why": f"{count} more finding(s) not listed one by one"})
        self._overflow.clear()
        return out

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

    def texts(self, items: Sequence[tuple[str, str]]) -> list[str]:
        """Judge texts read as one (``(text, where)`` each, in order); returns each as it should leave."""
        if len(items) == 1:
            return [self.text(*items[0])]
        texts = [text for text, _ in items]
        if self.blocked is not None or not self.rules:
            return texts
        offsets = [0]
        for text in texts:
            offsets.append(offsets[-1] + len(text))
        joined = "".join(texts)
        order = {r.name: i for i, r in enumerate(self.rules)}
        candidates = [(order[f.rule], f) for f in self.find(joined)]
        for text, base in zip(texts, offsets, strict=False):
            candidates += [(order[f.rule], shifted(f, base)) for f in self.find(text)]
        findings = resolve(candidates, len(joined))
        return self._split(texts, items, offsets, findings)

    def _split(self, texts: list[str], items: Sequence[tuple[str, str]], offsets: list[int],
               findings: list[Finding]) -> list[str]:
        """Record the findings of a group and apply them part by part. A redacted value spanning parts leaves its
        placeholder in the first part; a later part it covers whole keeps one character of the placeholder (so
        no part is left empty and the parts still read the placeholder together); the rest of the value goes."""
        edits: list[list[tuple[int, int, str]]] = [[] for _ in texts]
        for f in findings:
            first = _part_of(offsets, f.start)
            last = _part_of(offsets, f.end - 1)
            base = offsets[first]
            self.note([shifted(f, -base)], items[first][1])
            if f.action != "redact":
                continue
            rule = self._by_name[f.rule]
            token = self.table.token(rule.placeholder_label(f.entity), f.value,
                                     restorable=rule.restore and self.restoring)
            whole = [k for k in range(first + 1, last + 1) if f.end >= offsets[k + 1]]
            head = token[:len(token) - len(whole)]
            edits[first].append((f.start - base, min(f.end, offsets[first + 1]) - base, head))
            for i, k in enumerate(whole):
                edits[k].append((0, offsets[k + 1] - offsets[k], token[len(head) + i]))
            if last > first and last not in whole:
                edits[last].append((0, f.end - offsets[last], ""))
        out = []
        for text, changes in zip(texts, edits, strict=True):
            pieces, last = [], 0
            for start, end, replacement in sorted(changes):
                pieces += [text[last:start], replacement]
                last = end
            out.append("".join([*pieces, text[last:]]) if changes else text)
        return out

    def outcome(self) -> str:
        """The phase's verdict so far: ``block``, ``redact``, ``flag`` or ``allow``."""
        if self.blocked is not None:
            return "block"
        return next(action for action, level in SEVERITY.items() if level == self.worst)


def over_budget(rules: Sequence[Rule], scan: Scan, what: str, spent: str) -> GatewayError | None:
    """The outcome of a scan past its budget: a 413 when a rule says ``over_budget = "block"``, else ``None``
    after recording one ``flag`` finding per rule (what was not scanned passes)."""
    blocking = [r.name for r in rules if r.over_budget == "block"]
    if blocking:
        return PayloadTooLarge(f"{what} could not be scanned within the guardrail budget ({spent}); rule "
                               f"{blocking[0]!r} refuses what it cannot judge (over_budget = \"block\"): send less",
                               code="guardrail_scan_budget")
    scan.findings.extend({"rule": r.name, "kind": r.kind, "entity": "scan_budget", "action": "flag",
                          "phase": scan.phase, "where": "", "span": None,
                          "why": f"scan budget exceeded ({spent}); the rest passed unscanned"} for r in rules)
    return None


def _part_of(offsets: list[int], position: int) -> int:
    """The index of the part holding the joined text's ``position``."""
    low, high = 0, len(offsets) - 2
    while low < high:
        mid = (low + high + 1) // 2
        if offsets[mid] <= position:
            low = mid
        else:
            high = mid - 1
    return low
