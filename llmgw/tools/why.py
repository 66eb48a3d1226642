"""The story of one logged request, in plain words (``llmgw why ID``).

Contract:
- :func:`explain` turns one request-log record (:func:`llmgw.store.log_read.record_from_row` with ``bodies=True``) into
  plain-English steps, in the order the gateway took its decisions: the notes the stages left in the row's
  ``story`` (see :meth:`llmgw.exchange.Exchange.note`), the attempts, the parameters dropped in translation, the
  outcome, the tokens and the cost (``cost_breakdown``) with the gateway's own overhead (``overhead_ms``).
- A row without a story (logged before schema v6, or by a stage that tells nothing) still gets what its columns
  tell: the key and team, the cache verdict, the guardrail findings (kinds and counts), the attempts, the outcome
  and the cost.
- Pure: no I/O. Nothing it prints comes from a request or answer body; findings are told as rule, entity kind,
  action and count, never a value, and a guardrail block's error message (which may quote what matched) is left
  out.
- :func:`as_json` is the machine-readable form: the steps, the raw story and the columns they were read from.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["as_json", "explain", "money", "render_text"]

_ERROR_SHOWN = 80   # characters of an attempt's own error text (gateway-made: timeouts, resets) shown

_SKIPPED = {
    "alias": "caching is off for this alias",
    "not cacheable": "the request cannot be cached (not a plain chat request, or asked for several answers)",
    "no-cache": "the client asked for no-cache",
}
_NOT_STORED = {
    "no-store": "the client asked for no-store",
    "guardrail findings": "the exchange had guardrail findings",
    "not answered": "there was no good answer to keep",
    "no single answer": "the answer was not one single choice",
}
_AUTH_REFUSED = {
    "no key": "No key was sent: refused (401).",
    "unknown key": "The key presented is unknown, revoked or expired: refused (401).",
}
_QUOTING_ERRORS = frozenset({"guardrail_blocked"})   # error codes whose message may quote a guarded value
_ACTIONS = {"redact": "redacted", "block": "blocked", "flag": "flagged"}
_BREAKDOWN_NAMES = {"input": "input", "cached_input": "cached input", "cache_write": "cache writes",
                    "cache_write_1h": "1-hour cache writes", "output": "output", "reasoning": "reasoning"}


def money(value: float | None) -> str:
    """Dollars as people read them: cents from $1 up, four decimals below, at least two significant digits for
    less than a hundredth of a cent; ``$0`` for nothing."""
    if value is None or not math.isfinite(value) or value <= 0:
        return "$0"
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:.{max(4, 1 - math.floor(math.log10(value)))}f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "? ms"
    if value >= 10:
        return f"{value:,.0f} ms"
    return f"{value:.1f} ms" if value >= 1 else f"{value:.2f} ms"


def _similarity(value: Any) -> str:
    return f"{float(value):.3f}"


def _names(items: Iterable[str]) -> str:
    return ", ".join(items)


# --- one note, one phrase --------------------------------------------------------------------------------------


def _auth(note: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    key, team = note.get("key") or "", note.get("team") or ""
    who = f"Key {key}" + (f" (team {team})" if team else "") if key else "No key needed (open gateway)"
    if note["event"] == "allowed":
        return f"{who} was accepted for model alias {record['alias']!r}." if key else \
            f"{who}; model alias {record['alias']!r} exists."
    reason = note.get("reason", "")
    if reason in _AUTH_REFUSED:
        return _AUTH_REFUSED[reason]
    if reason == "alias not allowed":
        return f"{who} may not use model alias {record['alias']!r} (not on its allow-list): refused (404)."
    return f"{who}: model alias {record['alias']!r} does not exist: refused (404)."


def _limits(note: Mapping[str, Any]) -> str:
    event = note["event"]
    if event == "admitted":
        applied = [*note.get("windows", []), *note.get("budgets", [])]
        reserved = []
        if note.get("reserved_tokens") is not None:
            reserved.append(f"{note['reserved_tokens']:,} tokens")
        if note.get("reserved_usd") is not None:
            reserved.append(f"up to {money(note['reserved_usd'])}")
        held = f", reserving {' and '.join(reserved)}" if reserved else ""
        return f"Limits: {_names(applied)} applied; admitted{held}."
    if event == "refused":
        retry = note.get("retry_after_s")
        after = f"; retry after {max(1, math.ceil(retry))} s" if isinstance(retry, int | float) else ""
        if note.get("budget"):
            parts = []
            if note.get("spent_usd") is not None and note.get("limit_usd") is not None:
                parts.append(f"{money(note['spent_usd'])} of {money(note['limit_usd'])} already spent or held")
            if note.get("reserved_usd") is not None:
                parts.append(f"this request could cost up to {money(note['reserved_usd'])}")
            why = f" ({'; '.join(parts)})" if parts else ""
            resets = f", which resets at {note['resets']}" if note.get("resets") else ""
            return f"Limits: the {note['limit']} refused it{why}{resets}: refused (429){after}."
        return f"Limits: {note['limit']} was reached: refused (429){after}."
    if event == "unenforced":
        return "Limits: the shared state was unreachable, so rate limits were not enforced."
    return f"Limits: {event}."


def _findings(counts: Sequence[Mapping[str, Any]]) -> str:
    by_rule: dict[str, list[str]] = {}
    for f in counts:
        action = _ACTIONS.get(f["action"], f["action"])
        by_rule.setdefault(f["rule"], []).append(f"{f['count']:,} {f['entity']} ({action})")
    return "; ".join(f"rule {rule!r} found {', '.join(parts)}" for rule, parts in by_rule.items())


def _guardrails(note: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    event = note["event"]
    if event == "data_class_allowed":
        return f"Guardrails: team {note.get('team')} sends {note.get('data_class')!r} data, which model alias" \
               f" {record['alias']!r} is approved for."
    if event == "data_class_refused":
        return f"Guardrails: team {note.get('team')} sends {note.get('data_class')!r} data, which model alias" \
               f" {record['alias']!r} is not approved for: refused (403)."
    if event == "scanned":
        what = "the request" if note.get("phase") == "request" else "the answer"
        found = note.get("findings") or []
        if not found:
            return f"Guardrails: {what} was scanned; nothing found."
        return f"Guardrails: in {what}, {_findings(found)}."
    if event == "restored":
        count = note.get("placeholders", 0)
        return f"Guardrails: {count:,} redacted value{'s' if count != 1 else ''} restored in the answer the client" \
               " got (the log and the cache keep the placeholders)."
    return f"Guardrails: {event}."


def _semantic(note: Mapping[str, Any]) -> str:
    threshold = note.get("threshold")
    vetoed = note.get("vetoed") or []
    if note.get("hit"):
        before = f" after the difference guard vetoed {len(vetoed)} closer entr{'ies' if len(vetoed) > 1 else 'y'}" \
            if vetoed else ""
        return f"semantic hit: an earlier prompt had similarity {_similarity(note['similarity'])}, at or above the" \
               f" {threshold:g} threshold{before}; the upstream was not called"
    reason = note.get("reason")
    if reason == "below threshold":
        return f"the nearest semantic entry had similarity {_similarity(note['similarity'])}, below the" \
               f" {threshold:g} threshold"
    if reason == "difference guard":
        whys = _names(dict.fromkeys(v["reason"] for v in vetoed))
        return f"the nearest semantic entry had similarity {_similarity(note['similarity'])} (threshold" \
               f" {threshold:g}), but the difference guard vetoed it ({whys})"
    if reason == "no entry in partition":
        return "no earlier semantic entry for the same alias, parameters and conversation"
    return f"no semantic lookup ({reason})" if reason else "semantic miss"


def _cache(note: Mapping[str, Any]) -> str:
    event = note["event"]
    if event == "exact":
        return "Cache: exact hit; the upstream was not called." if note.get("hit") else "Cache: exact miss."
    if event == "semantic":
        return f"Cache: {_semantic(note)}."
    if event == "skipped":
        return f"Cache: not looked up; {_SKIPPED.get(note.get('reason', ''), note.get('reason', ''))}."
    if event == "stored":
        return "Cache: the answer was stored for later requests."
    if event == "not_stored":
        reason = note.get("reason", "")
        return f"Cache: the answer was not stored; {_NOT_STORED.get(reason, reason)}."
    if event == "unavailable":
        return "Cache: the store was unreachable; served as a miss."
    return f"Cache: {event}."


def _route(note: Mapping[str, Any]) -> str | None:
    event = note["event"]
    if event == "order":
        targets = note.get("targets") or []
        retries = note.get("retries") or 0
        tries = f"; each tried up to {retries + 1} times" if retries else ""
        if len(targets) == 1:
            return f"Routing: one target, {targets[0]}{tries}." if retries else None
        cooling = note.get("cooling") or []
        last = f"; {_names(cooling)} {'is' if len(cooling) == 1 else 'are'} in cooldown after repeated failures," \
            " so tried only if the others fail" if cooling else ""
        return f"Routing ({note.get('strategy', 'fallback')}): targets in order {_names(targets)}{tries}{last}."
    if event == "skipped":
        if note.get("reason") == "cooldown":
            return f"Routing: skipped {note['target']}, in cooldown after repeated failures."
        return f"Routing: gave up on {note['target']}: {note.get('reason')}."
    if event == "retry_budget_spent":
        return f"Routing: the retry budget was spent, so {note['target']} got no further attempt."
    if event == "not_retryable":
        return f"Routing: {note['target']} answered {note.get('status')}, which is not retried."
    return f"Routing: {event}."


def _phrase(note: Mapping[str, Any], record: Mapping[str, Any]) -> str | None:
    stage = note.get("stage")
    if stage == "auth":
        return _auth(note, record)
    if stage == "limits":
        return _limits(note)
    if stage == "guardrails":
        return _guardrails(note, record)
    if stage == "cache":
        return _cache(note)
    if stage == "route":
        return _route(note)
    if "event" in note:
        return f"{str(stage).capitalize()}: {note['event']}."
    return None


# --- what the columns tell -------------------------------------------------------------------------------------


def _attempts(attempts: Sequence[Mapping[str, Any]]) -> str | None:
    """The attempts as one sentence: who failed how, who answered."""
    if not attempts:
        return None
    parts: list[str] = []
    previous: Mapping[str, Any] | None = None
    for a in attempts:
        target, status, took = a.get("target"), a.get("status"), _ms(a.get("latency_ms"))
        if previous is None:
            lead = target
        elif previous.get("target") == target:
            lead = f"retried {target}"
        else:
            lead = f"fell back to {target}"
        if status == 200:
            parts.append(f"{lead}, which answered in {took}" if previous is not None else f"{lead} answered in {took}")
        elif status:
            parts.append(f"{lead} failed with {status} after {took}")
        else:
            error = str(a.get("error") or "no answer")[:_ERROR_SHOWN]
            parts.append(f"{lead} gave no answer ({error}) after {took}")
        previous = a
    count = len(attempts)
    return f"Routing: {'; '.join(parts)} ({count} attempt{'s' if count != 1 else ''})."


def _findings_from_column(findings: Sequence[Mapping[str, Any]]) -> str | None:
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for f in findings:
        counts[(f.get("phase", "request"), f.get("rule", "?"), f.get("entity", "?"), f.get("action", "?"))] += \
            int(f.get("count", 1))
    if not counts:
        return None
    phrases = []
    for phase in ("request", "response"):
        rows = [{"rule": r, "entity": e, "action": a, "count": n} for (p, r, e, a), n in counts.items() if p == phase]
        if rows:
            phrases.append(f"in the {'request' if phase == 'request' else 'answer'}, {_findings(rows)}")
    return f"Guardrails: {'; '.join(phrases)}." if phrases else None


def _outcome(record: Mapping[str, Any]) -> str:
    status, target = record.get("status"), record.get("target")
    took = f" in {_ms(record.get('latency_ms'))}"
    ttft = f" (first token after {_ms(record['ttft_ms'])})" if record.get("stream") and record.get("ttft_ms") else ""
    if record.get("outcome") == "client_disconnect":
        return f"The client hung up before the answer was complete{took}."
    if record.get("error") or (isinstance(status, int) and status >= 400):
        # a block's message quotes what matched (a denylist term): the story tells the rule and the kind instead
        message = "" if record.get("error") in _QUOTING_ERRORS else record.get("error_message") or ""
        return f"Answered {status} {record.get('error') or ''}".rstrip() + f"{took}" + (f": {message}" if message
                                                                                          else ".")
    source = {"hit": "from the cache (exact)", "semantic": "from the cache (semantic)"}.get(record.get("cache", ""))
    if source is None:
        source = f"by {target}" if target else "by the gateway"
    return f"Answered {status} {source}{took}{ttft}."


def _cost(record: Mapping[str, Any]) -> str:
    tokens = f"{record.get('input_tokens') or 0:,} in, {record.get('output_tokens') or 0:,} out"
    if record.get("cached_tokens"):
        tokens += f" ({record['cached_tokens']:,} read from the provider's prompt cache)"
    if record.get("usage_estimated"):
        tokens += ", partly estimated"
    cost = record.get("cost_usd") or 0.0
    if record.get("unpriced"):
        line = f"Tokens: {tokens}. Cost unknown: {record.get('target')} has no price."
    else:
        breakdown = record.get("cost_breakdown") or {}
        parts = [f"{_BREAKDOWN_NAMES.get(k, k)} {money(v)}" for k, v in breakdown.items() if v]
        detail = f": {', '.join(parts)}" if parts and cost > 0 else ""
        line = f"Tokens: {tokens}. Cost {money(cost)}{detail}."
    if record.get("saved_usd"):
        line += f" The cache saved {money(record['saved_usd'])}."
    if record.get("overhead_ms") is not None:
        line += f" Overhead {record['overhead_ms']:,.1f} ms."
    return line


def _dropped(record: Mapping[str, Any]) -> str | None:
    dropped = record.get("dropped_params") or []
    if not dropped:
        return None
    return f"Translation: {_names(dropped)} dropped (the target's format has no equivalent)."


# --- the whole story -------------------------------------------------------------------------------------------


def explain(record: Mapping[str, Any]) -> list[str]:
    """The steps of one request's story, in order (see the module contract)."""
    story: list[Mapping[str, Any]] = [n for n in record.get("story") or [] if isinstance(n, Mapping)]
    told = {n.get("stage") for n in story}
    attempts = record.get("attempt_log") or []
    steps: list[str] = []
    if "auth" not in told and record.get("key"):
        team = f" (team {record['team']})" if record.get("team") else ""
        steps.append(f"Key {record['key']}{team} made the request for model alias {record.get('alias')!r}.")
    attempts_told = False
    skip = False
    for i, note in enumerate(story):
        if skip:
            skip = False
            continue
        following = story[i + 1] if i + 1 < len(story) else None
        if note.get("stage") == "cache" and note.get("event") == "exact" and not note.get("hit") and \
                following is not None and following.get("stage") == "cache" and following.get("event") == "semantic":
            steps.append(f"Cache: exact miss; {_semantic(following)}.")
            skip = True
            continue
        phrase = _phrase(note, record)
        if phrase:
            steps.append(phrase)
        if note.get("stage") == "route" and (following is None or following.get("stage") != "route"):
            told_attempts = _attempts(attempts)
            if told_attempts and not attempts_told:
                steps.append(told_attempts)
                attempts_told = True
    if not attempts_told:
        told_attempts = _attempts(attempts)
        if told_attempts:
            steps.append(told_attempts)
    if "guardrails" not in told:
        found = _findings_from_column(record.get("findings") or [])
        if found:
            steps.append(found)
    if "cache" not in told and record.get("cache") in ("hit", "semantic"):
        steps.append(f"Cache: {'exact' if record['cache'] == 'hit' else 'semantic'} hit; the upstream was not called.")
    dropped = _dropped(record)
    if dropped:
        steps.append(dropped)
    steps.append(_outcome(record))
    steps.append(_cost(record))
    return steps


def _heading(record: Mapping[str, Any]) -> str:
    how = ", streamed" if record.get("stream") else ""
    return f"Request {record['id']} at {record.get('time')} ({record.get('endpoint')}, {record.get('client_format')}" \
           f" format{how})"


def render_text(record: Mapping[str, Any]) -> str:
    """The story as numbered lines under a heading."""
    lines = [_heading(record)]
    lines += [f"{n}. {step}" for n, step in enumerate(explain(record), 1)]
    return "\n".join(lines)


def as_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """The story for machines: the steps and what they were read from (no bodies)."""
    return {
        "id": record["id"], "time": record.get("time"), "alias": record.get("alias"), "target": record.get("target"),
        "status": record.get("status"), "cache": record.get("cache"), "key": record.get("key"),
        "team": record.get("team"), "steps": explain(record), "story": list(record.get("story") or []),
        "attempts": list(record.get("attempt_log") or []), "dropped_params": list(record.get("dropped_params") or []),
        "cost_usd": record.get("cost_usd"), "cost_breakdown": record.get("cost_breakdown") or {},
        "unpriced": record.get("unpriced"), "overhead_ms": record.get("overhead_ms"),
    }
