"""PII detectors: each entity validated (checksums, parsers, number plans), obvious non-PII skipped."""

from __future__ import annotations

import itertools
import time

import pytest

from llmgw.guardrails.checksums import card_brand, iban_ok, luhn_ok
from llmgw.guardrails.detectors import ENTITIES, PiiDetector, find_phones

DETECT = PiiDetector()


def found(text: str, detector: PiiDetector = DETECT) -> list[tuple[str, str]]:
    return [(m.entity, text[m.start:m.end]) for m in detector.find(text)]


# --- cards ---


def _luhn(prefix: str, length: int) -> str:
    body = prefix + "0" * (length - len(prefix) - 1)
    return next(body + str(d) for d in range(10) if luhn_ok(body + str(d)))


@pytest.mark.parametrize(("prefix", "length", "brand"), [
    ("4", 16, "Visa"), ("4", 13, "Visa"), ("4", 19, "Visa"),
    ("51", 16, "Mastercard"), ("55", 16, "Mastercard"), ("2221", 16, "Mastercard"), ("2720", 16, "Mastercard"),
    ("34", 15, "American Express"), ("37", 15, "American Express"),
    ("6011", 16, "Discover"), ("644", 16, "Discover"), ("649", 19, "Discover"), ("65", 16, "Discover"),
    ("622126", 16, "Discover"), ("3528", 16, "JCB"), ("3589", 19, "JCB"), ("62", 16, "UnionPay"),
    ("36", 14, "Diners Club"), ("300", 14, "Diners Club"), ("305", 16, "Diners Club"), ("3095", 14, "Diners Club"),
    ("5018", 12, "Maestro"), ("6759", 19, "Maestro"), ("6304", 16, "Maestro"), ("2200", 16, "Mir"),
])
def test_card_ranges(prefix: str, length: int, brand: str) -> None:
    number = _luhn(prefix, length)
    assert card_brand(number) == brand
    assert found(f"card {number} ok") == [("credit_card", number)]


@pytest.mark.parametrize("number", ["2220" + "0" * 12, "2721" + "0" * 12, "1234567890123452", "9111111111111111"])
def test_card_outside_iin_ranges(number: str) -> None:
    number = number[:-1] + next(str(d) for d in range(10) if luhn_ok(number[:-1] + str(d)))
    assert card_brand(number) is None
    assert found(f"ref {number}") == []


@pytest.mark.parametrize("text", ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111.1111.1111.1111",
                                  "4111111111111111", "3782 822463 10005", "3056 930902 5904"])
def test_card_separators(text: str) -> None:
    assert found(f"pay with {text}.") == [("credit_card", text)]


def test_card_luhn_and_separator_rules() -> None:
    assert found("card 4111 1111 1111 1112") == []               # Luhn fails
    assert found("card 4111-1111 1111.1111") == [("credit_card", "4111-1111 1111.1111")]  # mixed separators
    assert found("12 4111 1111 1111 1111") == [("credit_card", "4111 1111 1111 1111")]  # a card inside a run
    assert found("x4111111111111111") == []                      # glued to a word


# --- IBAN ---


@pytest.mark.parametrize("value", ["DE89370400440532013000", "DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432",
                                   "NL91ABNA0417164300", "FR1420041010050500013M02606", "NO9386011117947",
                                   "BE68539007547034", "CH9300762011623852957"])
def test_iban_valid(value: str) -> None:
    assert iban_ok(value.replace(" ", ""))
    assert found(f"IBAN {value}, thanks") == [("iban", value)]


@pytest.mark.parametrize("value", ["DE89370400440532013001", "DE8937040044053201300", "XX89370400440532013000",
                                   "GB82WEST1234569876543"])
def test_iban_invalid(value: str) -> None:
    assert not iban_ok(value)
    assert [e for e, _ in found(f"IBAN {value}")] == []


def test_iban_wins_over_a_card_inside_it() -> None:
    assert found("an DE75 5121 0800 1245 1261 99 bitte") == [("iban", "DE75 5121 0800 1245 1261 99")]


# --- SSN ---


def test_ssn_valid_and_invalid_ranges() -> None:
    assert found("SSN 123-45-6789") == [("ssn", "123-45-6789")]
    assert found("ssn: 123456789") == [("ssn", "123456789")]          # bare, after SSN wording
    assert found("batch 123456789 done") == []                         # bare, no wording
    for bad in ["000-12-3456", "666-12-3456", "900-12-3456", "999-12-3456", "123-00-4567", "123-45-0000"]:
        assert found(f"SSN {bad}") == [], bad


# --- e-mail ---


@pytest.mark.parametrize("value", ["jane@example.com", "j.doe+tag@mail.example.co.uk", "o'brien@law.ie",
                                   "UPPER.Case@EXAMPLE.ORG", "a_b-c@x-y.travel"])
def test_email_valid(value: str) -> None:
    assert found(f"mail <{value}>.") == [("email", value)]


@pytest.mark.parametrize("text", ["user@localhost", "icon@2x.png", "npm i lodash@4.17.21", "@channel",
                                  "git@github.com:org/repo.git", "a..b@example.com"])
def test_email_skipped(text: str) -> None:
    assert found(text) == []


# --- IP ---


def test_ips() -> None:
    assert found("from 8.8.8.8 and 192.168.1.20") == [("ip", "8.8.8.8"), ("ip", "192.168.1.20")]
    assert found("peer 2001:4860:4860::8888 and fe80::1 and ::1") == [("ip", "2001:4860:4860::8888")]
    assert found("at [2a03:2880:f12f:83:face:b00c::25de]:443") == [("ip", "2a03:2880:f12f:83:face:b00c::25de")]


@pytest.mark.parametrize("text", ["0.0.0.0", "127.0.0.1", "255.255.255.0", "224.0.0.251", "169.254.1.1",
                                  "v1.2.3.4", "version 10.0.0.1", "Chrome/120.0.0.0", "OID 1.3.6.1.4.1",
                                  "1.2.3", "01.2.3.4", "300.1.1.1", "12:30:45", "std::vector a::b",
                                  "MAC 00:1a:2b:3c:4d:5e"])
def test_ip_skipped(text: str) -> None:
    assert found(text) == []


def test_a_digit_run_without_three_dots_is_not_searched_for_an_address(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmgw.guardrails import detectors

    searched: list[str] = []
    real = detectors._IPV4

    class Spy:
        def finditer(self, text: str, pos: int, endpos: int):  # type: ignore[no-untyped-def]
            searched.append(text[pos:endpos])
            return real.finditer(text, pos, endpos)

    monkeypatch.setattr(detectors, "_IPV4", Spy())
    assert found("order 1234567890 and 10.1 2.3 then 8.8.8.8") == [("ip", "8.8.8.8")]
    assert searched == ["8.8.8.8"]
    assert found("at 1.2.3.4.5.6 and 10.0.0.7.") == [("ip", "10.0.0.7")]   # dots, then the pattern decides


# --- phone ---


@pytest.mark.parametrize("value", ["(415) 555-2671", "415-555-2671", "415.555.2671", "+1 415 555 2671",
                                   "+44 20 7946 0958", "+49 30 901820", "+91-98765-43210", "0044 7911 123456",
                                   "+81 3-1234-5678", "+14155552671"])
def test_phone_valid(value: str) -> None:
    assert found(f"call {value} today") == [("phone", value)]


@pytest.mark.parametrize("text", ["Order #4155552671", "order number 4155552671", "invoice 415-555-2671",
                                  "4155552671 rows", "at 2024-03-15 10:22:31", "due 15.03.2024",
                                  "call 123-456-7890", "amount: 4155552.67 USD", "1 2 3 4 5 6 7 8 9",
                                  "uuid 550e8400-e29b-41d4-a716-446655440000"])
def test_phone_skipped(text: str) -> None:
    assert found(text) == []


def test_phone_regions() -> None:
    text = "ring 020 7946 0958"
    assert list(find_phones(text)) == []
    assert [(m.entity, text[m.start:m.end]) for m in find_phones(text, ("US", "GB"))] == [
        ("phone", "020 7946 0958")]


# --- secrets ---


@pytest.mark.parametrize("value", [
    "sk-proj-Xf3k9Lq2Zr8Wn5Vb1Ty7Hu4Mi6Op0As2Dd4Ff6Gg8", "sk-ant-api03-R2D2C3POr2d2c3poR2D2C3PO-1234abcdAA",
    "AKIAIOSFODNN7EXAMPLE", "ghp_16C7e42F292c6912E7710c838347Ae178B4a", "xoxb-1234567890-0987654321-AbCdEfGhIj",
    "xoxp-1234567890-abcdefghij", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "AIzaSyA-1234567890abcdefghijklmnopqrstu",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
])
def test_secrets(value: str) -> None:
    assert found(f'key="{value}"') == [("api_key", value)]


@pytest.mark.parametrize("text", ["sk-this-is-not-a-real-key-at-all", "task-force-meeting-notes-2024",
                                  "AKIA1234", "eyJhbGciOi.eyJzdWIiOiIx.truncated", "xoxo see you"])
def test_secret_lookalikes(text: str) -> None:
    assert found(text) == []


def test_private_key_block() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx7\nabc123==\n-----END RSA PRIVATE KEY-----"
    assert found(f"here:\n{pem}\nbye") == [("api_key", pem)]


# --- the detector as a whole ---


def test_entities_subset_and_unknown() -> None:
    only_email = PiiDetector(["email"])
    assert found("jane@example.com 4111 1111 1111 1111", only_email) == [("email", "jane@example.com")]
    with pytest.raises(ValueError, match="unknown PII entities"):
        PiiDetector(["email", "passport"])
    assert set(ENTITIES) == {"email", "phone", "credit_card", "ssn", "iban", "ip", "api_key"}


def test_non_overlapping_and_sorted() -> None:
    text = "card 4111 1111 1111 1111, call (415) 555-2671, mail a@b.io, ip 8.8.8.8"
    spans = [(m.start, m.end) for m in DETECT.find(text)]
    assert spans == sorted(spans)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    assert [e for e, _ in found(text)] == ["credit_card", "phone", "email", "ip"]


@pytest.mark.parametrize("text", ["9" * 100_000, "a" * 100_000 + "@", "1." * 50_000, "a:" * 50_000,
                                  ("x" * 60 + "@") * 1500, "sk-" + "a" * 100_000, "1 " * 50_000,
                                  "12 " * 33_000, "4111 " * 20_000, "+1 (" * 25_000])
def test_adversarial_inputs_stay_linear(text: str) -> None:
    """No pattern backtracks quadratically: 100 KB of hostile text scans in about a second at worst (a quadratic
    pattern would take minutes)."""
    start = time.perf_counter()
    DETECT.find(text)
    assert time.perf_counter() - start < 3.0


def test_email_found_at_every_distance_from_the_start() -> None:
    for pad in range(140):
        assert found("x" * pad + " ab@cd.com") == [("email", "ab@cd.com")], pad
