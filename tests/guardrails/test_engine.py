"""The scan engine: texts read as one, overlaps resolved, long texts in windows, the budget, the findings cap."""

from __future__ import annotations

import threading
import time

import pytest

from llmgw.guardrails.body import groups, scan_body
from llmgw.guardrails.engine import MAX_RECORDED, WINDOW, Budget, BudgetExceeded, Scan, ScanCancelled, merge_findings
from llmgw.guardrails.redact import Placeholders
from llmgw.guardrails.rules import parse_rules

CARD, MAIL = "4111 1111 1111 1111", "jane.doe@example.com"


def scan(*raw: dict[str, object], budget: Budget | None = None) -> Scan:
    return Scan(tuple(parse_rules(list(raw))), "request", Placeholders(), budget=budget)


PII = {"name": "pii", "kind": "pii"}
DENY = {"name": "codenames", "kind": "denylist", "terms": ["project zeus"]}


def test_a_value_split_across_parts_is_redacted_and_no_part_is_left_empty() -> None:
    s = scan(PII)
    out = s.texts([("card 4111 1111", "m[0].content[0].text"), ("1111 ", "m[0].content[1].text"),
                   ("1111 thanks", "m[0].content[2].text")])
    assert "".join(out) == "card <CREDIT_CARD_1> thanks"
    assert all(out) and "1111" not in "".join(out)
    [finding] = s.findings
    assert finding["where"] == "m[0].content[0].text" and finding["entity"] == "credit_card"
    assert s.table.restorable == {} and "<CREDIT_CARD_1>" in s.table.issued


def test_each_part_is_also_read_alone() -> None:
    """Joining parts must not hide a value: 'x' + 'project zeus' reads 'xproject zeus' joined."""
    s = scan(DENY)
    s.texts([("x", "m[0].content[0].text"), ("project zeus", "m[0].content[1].text")])
    assert s.blocked is not None and "m[0].content[1].text" in s.blocked


def test_groups_are_adjacent_parts_of_one_container() -> None:
    items = [("a", "messages[0].content[0].text"), ("b", "messages[0].content[1].text"),
             ("c", "messages[0].content[2].refusal"), ("d", "messages[1].content[0].text"),
             ("e", "messages[1].name"), ("f", "input[0]"), ("g", "input[1]"), ("h", "system[0].text"),
             ("i", "system[1].text")]
    assert groups(items) == [[0, 1, 2], [3], [4], [5], [6], [7, 8]]


def test_scan_body_puts_verdicts_back_in_place() -> None:
    body = {"parts": [{"text": "card 4111 1111"}, {"text": "1111 1111 ok"}], "name": MAIL}

    def walk(fn):  # type: ignore[no-untyped-def]
        for j, part in enumerate(body["parts"]):
            part["text"] = fn(part["text"], f"parts[{j}].text")
        body["name"] = fn(body["name"], "name")

    s = scan(PII)
    assert scan_body(walk, s)
    assert body == {"parts": [{"text": "card <CREDIT_CARD_1>"}, {"text": " ok"}], "name": "<EMAIL_1>"}


def test_overlaps_go_to_the_more_severe_rule_then_the_longer_finding() -> None:
    rules = tuple(parse_rules([PII, {"name": "cards", "kind": "regex", "pattern": r"4111", "action": "block"}]))
    found = merge_findings(rules, f"pay {CARD}", Placeholders())
    assert [(f.rule, f.action, f.value) for f in found] == [("cards", "block", "4111")]
    rules = tuple(parse_rules([{"name": "short", "kind": "regex", "pattern": r"1111 1111", "action": "redact"},
                               {"name": "long", "kind": "regex", "pattern": r"1111 1111 1111", "action": "redact"}]))
    found = merge_findings(rules, "x 1111 1111 1111 y", Placeholders())
    assert [f.rule for f in found] == ["short"]       # same severity: the earlier rule


def test_merging_many_findings_is_linear() -> None:
    """The issue's body: 'a@b.co ' repeated over 250 KB, once quadratic and 20 seconds on the event loop."""
    text = "a@b.co " * 36_000
    s = scan(PII)
    started = time.process_time()
    out = s.text(text, "content")
    assert time.process_time() - started < 3.0
    assert "a@b.co" not in out and out.count("<EMAIL_1>") == 36_000
    logged = s.drain()
    assert len(logged) == MAX_RECORDED + 1 and logged[-1]["count"] == 36_000 - MAX_RECORDED
    assert logged[-1]["span"] is None and "a@b.co" not in str(logged)


@pytest.mark.parametrize("offset", [WINDOW - 9, WINDOW - 1, 2 * WINDOW - 5])
def test_values_across_window_edges_are_found(offset: int) -> None:
    text = "x" * offset + f" {CARD} and {MAIL} " + "y" * 1000
    found = merge_findings(tuple(parse_rules([PII])), text, Placeholders())
    assert [f.value for f in found] == [CARD, MAIL]


def test_a_pem_block_across_a_window_edge_is_found() -> None:
    key = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(["MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"] * 300) + \
          "\n-----END PRIVATE KEY-----"
    text = "z" * (WINDOW - 100) + " " + key + " done"
    found = merge_findings(tuple(parse_rules([PII])), text, Placeholders())
    assert [(f.entity, f.value) for f in found] == [("api_key", key)]


def test_the_budget_stops_a_scan() -> None:
    budget = Budget(0.05)
    s = scan(PII, budget=budget)
    text = " ".join(f"+1 415 555 {1000 + i % 9000}" for i in range(200_000))
    started = time.process_time()
    with budget.running(), pytest.raises(BudgetExceeded):
        s.text(text, "content")
    assert time.process_time() - started < 1.0


def test_a_cancelled_scan_stops_in_its_thread() -> None:
    budget = Budget(None)
    s = scan(PII, budget=budget)
    text = " ".join(f"+1 415 555 {1000 + i % 9000}" for i in range(200_000))
    outcome: list[str] = []

    def run() -> None:
        with budget.running():
            try:
                s.text(text, "content")
                outcome.append("finished")
            except ScanCancelled:
                outcome.append("cancelled")

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.05)
    budget.cancel()
    thread.join(5)
    assert outcome == ["cancelled"]


def test_a_blocked_scan_stops_scanning() -> None:
    s = scan(DENY, PII)
    assert s.text("project zeus", "a") == "project zeus"
    assert s.text(MAIL, "b") == MAIL and s.outcome() == "block" and len(s.findings) == 1
