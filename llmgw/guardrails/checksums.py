"""Checksums and number-plan tables the PII detectors validate candidates with.

Contract: pure functions over strings of digits (cards) or compact upper-case IBANs; no I/O, no state.
- :func:`luhn_ok` is the ISO/IEC 7812 mod-10 check.
- :func:`card_brand` names the scheme whose IIN range and length fit a number, or ``None``.
- :func:`iban_ok` checks the country's length from the IBAN registry and the ISO 7064 mod-97 check digits.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# (brand, IIN prefix ranges as (low, high) of equal digit count, allowed lengths). Checked in order, so the more
# specific ranges come before the broad ones they sit inside (Discover's 622126-622925 before UnionPay's 62).
_CARD_RANGES: tuple[tuple[str, tuple[tuple[int, int], ...], frozenset[int]], ...] = (
    ("Visa", ((4, 4),), frozenset({13, 16, 19})),
    ("American Express", ((34, 34), (37, 37)), frozenset({15})),
    ("Mastercard", ((51, 55), (2221, 2720)), frozenset({16})),
    ("Discover", ((6011, 6011), (644, 649), (65, 65), (622126, 622925)), frozenset(range(16, 20))),
    ("JCB", ((3528, 3589),), frozenset(range(16, 20))),
    ("Diners Club", ((300, 305), (3095, 3095), (36, 36), (38, 39)), frozenset(range(14, 20))),
    ("UnionPay", ((62, 62), (81, 81)), frozenset(range(16, 20))),
    ("Maestro", ((5018, 5018), (5020, 5020), (5038, 5038), (5893, 5893), (6304, 6304), (6759, 6759),
                 (6761, 6763)), frozenset(range(12, 20))),
    ("Mir", ((2200, 2204),), frozenset(range(16, 20))),
    ("RuPay", ((60, 60), (652, 652), (508, 508), (82, 82)), frozenset({16})),
    ("Troy", ((9792, 9792),), frozenset({16})),
)

# Length of each country's IBAN (SWIFT IBAN registry, plus the countries that publish national IBANs).
IBAN_LENGTHS: Mapping[str, int] = MappingProxyType({
    "AD": 24, "AE": 23, "AL": 28, "AO": 25, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BF": 28, "BG": 22,
    "BH": 22, "BI": 27, "BJ": 28, "BR": 29, "BY": 28, "CH": 21, "CI": 28, "CM": 27, "CR": 22, "CV": 25,
    "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "DZ": 26, "EE": 20, "EG": 29, "ES": 24,
    "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IR": 26, "IS": 26, "IT": 27, "JO": 30,
    "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27,
    "MD": 24, "ME": 22, "MG": 27, "MK": 19, "ML": 28, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "MZ": 25,
    "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24,
    "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SN": 28,
    "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
})


def luhn_ok(digits: str) -> bool:
    """True when ``digits`` (ASCII digits only) passes the Luhn mod-10 check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_brand(digits: str) -> str | None:
    """The card scheme whose IIN range and length match ``digits``, or ``None`` (no Luhn check here)."""
    length = len(digits)
    for brand, ranges, lengths in _CARD_RANGES:
        if length not in lengths:
            continue
        for low, high in ranges:
            width = len(str(low))
            if low <= int(digits[:width]) <= high:
                return brand
    return None


def iban_ok(compact: str) -> bool:
    """True when ``compact`` (upper case, no spaces) has its country's length and valid mod-97 check digits."""
    if len(compact) < 5 or IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    if not compact[2:4].isdigit() or not compact.isalnum() or not compact.isascii():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(ch if ch.isdigit() else str(ord(ch) - 55) for ch in rearranged)
    return int(number) % 97 == 1
