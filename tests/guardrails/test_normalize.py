"""The normalised view: what each fold reads as, and the way back to the original text's spans."""

from __future__ import annotations

import random
import re

import pytest

from llmgw.guardrails.normalize import collapse_spaces, fold_char, normalize

ZW, NBSP = "\u200b", "\u00a0"


@pytest.mark.parametrize(("text", "view"), [
    ("jane\uff20example.com", "jane@example.com"),                             # fullwidth at sign
    ("jane@\u0435x\u0430mple.com", "jane@example.com"),                        # Cyrillic look-alikes
    ("\u0664\u0661\u0661\u0661 \u06f1\u06f1\u06f1\u06f1", "4111 1111"),         # Arabic-Indic and Persian digits
    ("\uff14\uff11\uff11\uff11", "4111"),                                      # fullwidth digits
    ("\u096a\u0967", "41"),                                                    # Devanagari digits
    (f"41{ZW}11\u00ad11\u200d11", "41111111"),                                 # zero-width, soft hyphen, joiner
    (f"4111{NBSP}1111", "4111 1111"),                                          # no-break space
    ("4111\u20131111\u22121111", "4111-1111-1111"),                            # en dash, minus sign
    ("4111--1111  1111\n1111", "4111-1111 1111 1111"),                         # doubled separators, a line break
    ("4111_1111/1111", "4111-1111-1111"),                                      # underscore, slash
    ("415 - 555", "415-555"),                                                  # spaced dash
    ("(212)_555", "(212)-555"),                                                # after a parenthesis
    ("jane [at] example [dot] com", "jane@example.com"),
    ("jane(at)example(dot)com", "jane@example.com"),
    ("jane {AT} example", "jane@example"),
    ("caf\u00e9 z\u0065\u0301us", "cafe zeus"),                                # accents, combining marks
    ("\\u0034111", "4111"),                                                    # a JSON escape
    ("\uff50\uff52\uff4f\uff4a\uff45\uff43\uff54", "project"),                 # fullwidth letters
])
def test_folds(text: str, view: str) -> None:
    assert normalize(text).text == view


@pytest.mark.parametrize("text", [
    "plain ASCII prose, 42 items at 3.5 each.", "steps 1. 2. 3. 4", "ids ab12_34cd and v1.2.3",
    "github_pat_10_65Fe", "2024-03-15 10:22", "a\n\nb  c", "price 1,234.56",
])
def test_what_is_left_alone(text: str) -> None:
    assert normalize(text).text == text


def test_identity_views_cost_no_copy() -> None:
    text = "nothing to fold here"
    view = normalize(text)
    assert view.text is text and view.identity and view.span(3, 7) == (3, 7)


def test_spans_map_back_to_what_was_sent() -> None:
    text = f"card 4{ZW}111\u00a01111--1111 1111 and jane [at] ex\u0430mple [dot] com, pro{ZW}ject z\u0435us"
    view = normalize(text)
    assert view.text == "card 4111 1111-1111 1111 and jane@example.com, project zeus"
    for word, original in [("4111 1111-1111 1111", f"4{ZW}111\u00a01111--1111 1111"),
                           ("jane@example.com", "jane [at] ex\u0430mple [dot] com"),
                           ("project zeus", f"pro{ZW}ject z\u0435us")]:
        start = view.text.index(word)
        a, b = view.span(start, start + len(word))
        assert text[a:b] == original


def test_a_span_inside_a_folded_piece_takes_the_whole_piece() -> None:
    text = "x [at] y"
    view = normalize(text)
    assert view.text == "x@y"
    assert view.span(1, 2) == (1, 7)      # the "@" is all of " [at] "


def test_long_non_ascii_texts_fold_alike() -> None:
    """Texts past the character-by-character threshold fold through a table: the same view, the same spans."""
    rng = random.Random(7)
    alphabet = ["a", "b", " ", "1", "\u0430", "\u0664", ZW, NBSP, "\u00e9", "\u00df", "\ufb01", "-", "\u2013"]
    for _ in range(20):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(600, 3000)))
        view = normalize(text)
        by_character = "".join(fold_char(c) if ord(c) > 0x7F else c for c in text)
        assert view.text == normalize(by_character).text
        for m in re.finditer(r"[a-z0-9]+", view.text):
            a, b = view.span(*m.span())
            assert normalize(text[a:b]).text.strip(" -") == m.group(), (text[a:b], m.group())


def test_fold_char() -> None:
    assert fold_char("\u200b") == "" and fold_char("\u0301") == "" and fold_char("\ufb01") == "fi"
    assert fold_char("\u0435") == "e" and fold_char("\u0666") == "6" and fold_char("\u2028") == "\n"
    assert fold_char("\u4e2d") == "\u4e2d"      # a CJK ideograph is itself


def test_collapse_spaces() -> None:
    view = collapse_spaces("a   b\n\n  c")
    assert view.text == "a b\nc" and view.span(2, 3) == (4, 5) and view.span(4, 5) == (9, 10)
