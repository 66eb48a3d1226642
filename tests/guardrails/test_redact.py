"""Placeholders: numbering per value, restoring whole texts and texts that arrive in chunks split anywhere."""

from __future__ import annotations

import itertools

import orjson
import pytest

from llmgw.guardrails.redact import Placeholders, Restorer


def table_with(**values: str) -> Placeholders:
    table = Placeholders()
    for label, value in values.items():
        table.token(label.rstrip("0123456789"), value, restorable=True)
    return table


def test_numbering_per_label_and_value() -> None:
    table = Placeholders()
    assert table.token("EMAIL", "a@x.io", restorable=True) == "<EMAIL_1>"
    assert table.token("EMAIL", "b@x.io", restorable=True) == "<EMAIL_2>"
    assert table.token("PHONE", "415-555-2671", restorable=False) == "<PHONE_1>"
    assert table.token("EMAIL", "a@x.io", restorable=True) == "<EMAIL_1>"
    assert table.restorable == {"<EMAIL_1>": "a@x.io", "<EMAIL_2>": "b@x.io"}
    assert table.issued == {"<EMAIL_1>", "<EMAIL_2>", "<PHONE_1>"}


def test_reserved_placeholders_are_skipped() -> None:
    table = Placeholders()
    table.reserve("the template says <EMAIL_1> and <EMAIL_3>")
    assert table.token("EMAIL", "a@x.io", restorable=True) == "<EMAIL_2>"
    assert table.token("EMAIL", "b@x.io", restorable=True) == "<EMAIL_4>"
    assert table.restore("<EMAIL_1> <EMAIL_2>") == "<EMAIL_1> a@x.io"


def test_restore_whole_text_and_json() -> None:
    table = Placeholders()
    table.token("EMAIL", 'o"brien@x.io', restorable=True)
    table.token("PHONE", "+1 415 555 2671", restorable=False)
    text = "write <EMAIL_1>, call <PHONE_1>, unknown <EMAIL_9>"
    assert table.restore(text) == 'write o"brien@x.io, call <PHONE_1>, unknown <EMAIL_9>'
    args = orjson.dumps({"to": "<EMAIL_1>"}).decode()
    assert orjson.loads(table.restore(args, json=True)) == {"to": 'o"brien@x.io'}


def test_mask_puts_placeholders_back() -> None:
    table = table_with(EMAIL="jane@example.com", CREDIT_CARD="4111 1111 1111 1111")
    assert table.mask("jane@example.com paid with 4111 1111 1111 1111") == "<EMAIL_1> paid with <CREDIT_CARD_1>"


ANSWER = "Sure <EMAIL_1>, I will call <PHONE_1> and <PHONE_12>; <b>bold</b> <EMAIL_1><EMAIL_2> <EMAIL_"


def _restored_in_chunks(restorer: Restorer, text: str, cuts: tuple[int, ...]) -> str:
    bounds = [0, *cuts, len(text)]
    out = [restorer.feed(text[a:b]) for a, b in itertools.pairwise(bounds)]
    return "".join(out) + restorer.flush()


def test_restorer_split_at_every_offset() -> None:
    table = table_with(EMAIL="jane@example.com", PHONE="+1 415 555 2671")
    table.token("PHONE", "+44 20 7946 0958", restorable=True)   # <PHONE_2>; <PHONE_12> is not ours
    expected = table.restore(ANSWER)
    assert "jane@example.com" in expected and "<PHONE_12>" in expected and expected.endswith("<EMAIL_")
    for cut in range(len(ANSWER) + 1):
        assert _restored_in_chunks(table.restorer(), ANSWER, (cut,)) == expected, cut
    for a, b in itertools.combinations(range(0, len(ANSWER) + 1, 3), 2):
        assert _restored_in_chunks(table.restorer(), ANSWER, (a, b)) == expected, (a, b)


def test_restorer_one_character_at_a_time_holds_back_only_placeholder_prefixes() -> None:
    restorer = table_with(EMAIL="jane@example.com").restorer()
    out = []
    for ch in "a <EM":
        out.append(restorer.feed(ch))
    assert "".join(out) == "a "
    assert restorer.pending == "<EM"
    assert restorer.feed("AIL_1> b") == "jane@example.com b"
    assert restorer.feed("<b>") == "<b>"            # not a placeholder prefix: nothing held
    assert restorer.feed("<EMAIL_2") == "<EMAIL_2"  # not one of ours either
    assert restorer.flush() == ""


@pytest.mark.parametrize("cut", range(0, 40))
def test_restorer_json_channel(cut: int) -> None:
    table = table_with(EMAIL='a"b@x.io')
    args = '{"to": "<EMAIL_1>", "cc": ["<EMAIL_1>"]}'
    restorer = table.restorer(json=True)
    out = restorer.feed(args[:cut]) + restorer.feed(args[cut:]) + restorer.flush()
    assert orjson.loads(out) == {"to": 'a"b@x.io', "cc": ['a"b@x.io']}


def test_restorer_without_placeholders_is_a_passthrough() -> None:
    restorer = Placeholders().restorer()
    assert restorer.feed("<EMAIL_1") == "<EMAIL_1"
    assert restorer.flush() == ""
