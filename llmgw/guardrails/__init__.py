"""Guardrails: PII detection and redaction, regex/denylist/injection rules, restoring redacted values.

The pieces: :mod:`.normalize` (the normalised view every rule reads, mapped back to the original spans),
:mod:`.detectors` and :mod:`.secrets` (validated PII detection), :mod:`.injection` (prompt-injection heuristics),
:mod:`.rules` (``[[guardrails]]`` parsing and per-rule verdicts), :mod:`.redact` (placeholders and restoring),
:mod:`.engine` (a rule set over many texts, its budget), :mod:`.body` (a whole body through its format's walk,
text parts read as one), :mod:`.stream` (restoring and checking streamed answers). The pipeline stage is
:class:`llmgw.stages.guardrails.GuardrailStage`.
"""

from .detectors import ENTITIES, Match, PiiDetector
from .redact import Placeholders, Restorer
from .rules import Finding, Rule, Verdict, default_rules, parse_rules

__all__ = ["ENTITIES", "Finding", "Match", "PiiDetector", "Placeholders", "Restorer", "Rule", "Verdict",
           "default_rules", "parse_rules"]
