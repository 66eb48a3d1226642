"""PII detectors: cheap candidate patterns, then validation (checksums, parsers, number plans, context).

Contract:
- :class:`PiiDetector` ``.find(text)`` returns :class:`Match` es sorted by position, never overlapping (where two
  entity types claim the same characters, the stronger evidence wins: api_key, iban, credit_card, email, ssn,
  ip, phone). It is pure and thread-safe; one instance serves every request.
- Every candidate is validated before it is reported: Luhn + IIN range + length for cards, country length +
  mod-97 for IBANs, :mod:`ipaddress` for IPs, libphonenumber (``phonenumbers``) for phones, the SSA's valid ranges
  for SSNs, the address grammar for e-mail, known key formats (and a decodable header for JWTs) for secrets.
- Patterns are linear-time on any input: no nested unbounded repetition; e-mail is found by expanding around
  each ``@``.
- Obvious non-PII is skipped: UUIDs and hashes (digits glued to letters), ISO dates and timestamps, order and
  invoice numbers (``#`` or an order-like word just before), version strings, OIDs, user-agent product tokens,
  unspecified/loopback/multicast/reserved/link-local IPs, bare digit runs with no phone or SSN wording nearby.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from types import MappingProxyType

import phonenumbers

from .checksums import IBAN_LENGTHS, card_brand, iban_ok, luhn_ok
from .match import Match
from .secrets import SECRET_SPAN, TOKEN_SPAN, find_secrets, open_secret, open_secret_reach

ENTITIES = ("email", "phone", "credit_card", "ssn", "iban", "ip", "api_key")
# Overlaps go to the entity listed first.
_PRIORITY = ("api_key", "iban", "credit_card", "email", "ssn", "ip", "phone")


def _before(text: str, start: int, width: int = 32) -> str:
    return text[max(0, start - width):start].lower()


_RUN = re.compile(r"\d[\d ().\-]{5,}\d")

Run = tuple[int, int]    # (start, end): at least 7 characters of digits and separators, digits at both ends
Finder = Callable[[str, list[Run], bytearray], Iterator[Match]]   # (text, runs, characters taken) -> matches


def number_runs(text: str) -> list[Run]:
    """Every stretch of digits and separators (space, dot, dash, parentheses) long enough to hold a phone number,
    an IPv4 address, an SSN or a card. The number detectors only look around these, so prose costs one scan."""
    return [m.span() for m in _RUN.finditer(text)]


def _windows(text: str, runs: list[Run] | None, min_length: int, before: int,
             after: int) -> Iterator[tuple[int, int]]:
    """(pos, endpos) around each run at least ``min_length`` long; ``after`` characters of look-ahead."""
    for start, end in number_runs(text) if runs is None else runs:
        if end - start >= min_length:
            yield max(0, start - before), min(len(text), end + after)


# --- e-mail ------------------------------------------------------------------------------------------------------

_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~\\-"
_LOCAL_RUN = re.compile(f"[{_ATEXT}.]{{1,65}}")    # matched on the reversed text before the "@"
_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,63}(?![\w-]|\.[A-Za-z0-9])")
_RETINA = re.compile(r"\d(?:\.\d)?x\.", re.I)   # icon@2x.png, logo@1.5x.webp
_SCP_PATH = re.compile(r":[A-Za-z~/_.]")          # git@github.com:org/repo.git is a login, not an address


def find_emails(text: str) -> Iterator[Match]:
    """Addresses ``local@domain.tld``: dot-atom local part of at most 64 characters, a domain of LDH labels and
    an alphabetic TLD. Asset names such as ``icon@2x.png`` and scp-style logins (``git@host:path``) are
    skipped."""
    at = text.find("@")
    while at != -1:
        domain = _DOMAIN.match(text, at + 1)
        left = _LOCAL_RUN.match(text[max(0, at - 66):at][::-1]) if at and domain else None
        if left and domain:
            local = text[at - left.end():at]
            start = at - left.end()
            trimmed = local.lstrip(".'")
            start += len(local) - len(trimmed)
            ok = (0 < len(trimmed) <= 64 and not trimmed.endswith(".") and ".." not in trimmed
                  and domain.end() - start <= 254 and not _RETINA.match(domain.group())
                  and not _SCP_PATH.match(text, domain.end()))
            if ok:
                yield Match("email", start, domain.end(), "e-mail address (dot-atom local part, domain with TLD)")
        at = text.find("@", at + 1)


# --- cards ------------------------------------------------------------------------------------------------------

_NUMBER_RUN = re.compile(r"(?<![\w.\-])\d{1,19}(?:[ .\-]\d{1,19}){0,7}(?!\w)")
_GROUP = re.compile(r"\d+")


def _groups(text: str, run: re.Match[str]) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _GROUP.finditer(text, run.start(), run.end())]


def find_cards(text: str, runs: list[Run] | None = None) -> Iterator[Match]:
    """Payment card numbers: 12-19 digits, optionally grouped by separators (space, dash or dot, mixed or not),
    in a scheme's IIN range and length, passing Luhn. A longer run of groups is searched for a card inside it."""
    for pos, endpos in _windows(text, runs, 12, 0, 1):
        yield from _cards_in(text, pos, endpos)


def _cards_in(text: str, pos: int, endpos: int) -> Iterator[Match]:
    for run in _NUMBER_RUN.finditer(text, pos, endpos):
        groups = _groups(text, run)
        i = 0
        while i < len(groups):
            found = _card_window(text, groups, i)
            if found is None:
                i += 1
                continue
            j, brand = found
            start, end = groups[i][0], groups[j - 1][1]
            yield Match("credit_card", start, end, f"Luhn-valid {brand} number ({j - i} group(s))")
            i = j


def _card_window(text: str, groups: list[tuple[int, int]], i: int) -> tuple[int, str] | None:
    """The longest run of groups from ``i`` forming a valid card: (end index, brand). Groups before the last are
    at least three digits long, so a window starting with a shorter group can only be that group alone."""
    last = i + 1 if groups[i][1] - groups[i][0] < 3 else min(len(groups), i + 8)
    for j in range(last, i, -1):
        start, end = groups[i][0], groups[j - 1][1]
        digits = "".join(text[a:b] for a, b in groups[i:j])
        if not 12 <= len(digits) <= 19:
            continue
        if j - i > 1 and any(b - a < 3 for a, b in groups[i:j - 1]):
            continue
        if end - start > 24 or not luhn_ok(digits):
            continue
        brand = card_brand(digits)
        if brand is not None:
            return j, brand
    return None


# --- IBAN -------------------------------------------------------------------------------------------------------

_IBAN = re.compile(r"([A-Za-z]{2})(\d{2})((?:[ \-]?[A-Za-z0-9]){10,32})")
_IBAN_START = re.compile(r"[A-Za-z]{2}\d\d")
IBAN_SPAN = 34 + 33     # 34 characters, a separator between any two


def find_ibans(text: str) -> Iterator[Match]:
    """IBANs, compact or printed in groups (spaces or dashes), in either case: the country's registry length,
    then mod-97."""
    for hit in _IBAN_START.finditer(text):
        if hit.start() and text[hit.start() - 1].isalnum():
            continue
        m = _IBAN.match(text, hit.start())
        if m is None:
            continue
        country = m.group(1).upper()
        length = IBAN_LENGTHS.get(country)
        if length is None:
            continue
        need = length - 4
        pos, taken = m.start(3), 0
        while taken < need and pos < m.end(3):
            if text[pos] not in " -":
                taken += 1
            pos += 1
        if taken < need or (pos < len(text) and text[pos].isalnum()):
            continue
        if pos + 1 < len(text) and text[pos] == "-" and text[pos + 1].isalnum():
            continue
        compact = text[m.start():pos].replace(" ", "").replace("-", "").upper()
        if iban_ok(compact):
            yield Match("iban", m.start(), pos, f"IBAN ({country}, {length} characters, mod-97 valid)")


# --- SSN --------------------------------------------------------------------------------------------------------

_SSN = re.compile(r"(?<![\w.\-])(\d{3})([- .]?)(\d{2})\2(\d{4})(?!\w|[.\-]\d)")
_SSN_CONTEXT = re.compile(r"\b(?:ssn|ss#|social security|soc\.? ?sec|taxpayer|tin)\b")


def find_ssns(text: str, runs: list[Run] | None = None) -> Iterator[Match]:
    """US Social Security numbers ``AAA-GG-SSSS`` (or spaced, or dotted; bare nine digits only after SSN wording), with
    area 000, 666 and 900-999, group 00 and serial 0000 excluded."""
    for pos, endpos in _windows(text, runs, 9, 0, 2):
        yield from _ssns_in(text, pos, endpos)


def _ssns_in(text: str, pos: int, endpos: int) -> Iterator[Match]:
    for m in _SSN.finditer(text, pos, endpos):
        area, sep, group, serial = m.group(1), m.group(2), m.group(3), m.group(4)
        if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
            continue
        before = _before(text, m.start(), 40)
        if not sep and not _SSN_CONTEXT.search(before):
            continue
        if sep == "." and (_VERSION_CONTEXT.search(before[-16:]) or _PRODUCT_TOKEN.search(before)):
            continue
        yield Match("ssn", m.start(), m.end(), "US SSN (area, group and serial in issued ranges)")


# --- IP ---------------------------------------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}(?:%[\w.]{1,16})?(?![\w:])")
_VERSION_CONTEXT = re.compile(
    r"(?:\b(?:v|ver|version|release|rel|build|section|sec|chapter|ch|step|rule|clause|firmware|fw|oid|android|"
    r"ios|windows|macos|python|node|chrome|firefox|safari|edge)\.?|§)\s*$")
_PRODUCT_TOKEN = re.compile(r"[A-Za-z]/$")


def _ip_worth_reporting(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_reserved or ip.is_link_local)


def find_ips(text: str, runs: list[Run] | None = None) -> Iterator[Match]:
    """IPv4 and IPv6 addresses that :mod:`ipaddress` accepts (no leading zeros), public or private; skipped:
    unspecified, loopback, multicast, reserved (netmasks, broadcast) and link-local addresses, version-like
    numbers (``v1.2.3.4``, ``version 10.0.0.1``, ``Chrome/120.0.0.0``) and OIDs."""
    yield from _ipv4s(text, runs)
    yield from _ipv6s(text)


def _ipv4s(text: str, runs: list[Run] | None) -> Iterator[Match]:
    for pos, endpos in _windows(text, runs, 7, 0, 2):
        if text.count(".", pos, endpos) < 3:   # an address is digits and three dots, all inside one run
            continue
        for m in _IPV4.finditer(text, pos, endpos):
            match = _ipv4_match(text, m)
            if match is not None:
                yield match


def _ipv4_match(text: str, m: re.Match[str]) -> Match | None:
    before = text[max(0, m.start() - 16):m.start()]
    if _PRODUCT_TOKEN.search(before) or _VERSION_CONTEXT.search(before.lower()):
        return None
    try:
        ip = ipaddress.IPv4Address(m.group())
    except ValueError:
        return None
    if not _ip_worth_reporting(ip):
        return None
    return Match("ip", m.start(), m.end(), f"IPv4 address ({'private' if ip.is_private else 'public'})")


_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.%")


def _ipv6s(text: str) -> Iterator[Match]:
    """Expand around each colon to the stretch of hex digits, colons, dots and ``%``, then match and parse."""
    if text.count(":") < 2:
        return
    at = text.find(":")
    while at != -1:
        start = at
        while start > 0 and at - start < 40 and text[start - 1] in _IPV6_CHARS:
            start -= 1
        end = at
        while end < len(text) and end - start < 48 and text[end] in _IPV6_CHARS:
            end += 1
        m = _IPV6.search(text, start, min(len(text), end + 16))
        at = text.find(":", max(end, at + 1))
        if m is None:
            continue
        candidate = m.group()
        try:
            ip = ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        groups = [g for g in re.split(r"[:.%]", candidate) if g]
        strong = len(groups) >= 4 or any(len(g) == 4 for g in groups) or any(c.isalpha() for c in candidate)
        if strong and _ip_worth_reporting(ip):
            yield Match("ip", m.start(), m.end(), f"IPv6 address ({'private' if ip.is_private else 'public'})")


# --- phone ------------------------------------------------------------------------------------------------------

_PHONE = re.compile(r"(?<![\w.\-/+#])(\+ ?|\b00)?(?:\(\d{1,5}\)[ .\-]?|\d{1,4}[ .\-]?\(\d{1,5}\)[ .\-]?)?\d+"
                    r"(?:[ .\-]\d+){0,6}"
                    r"(?!\w|[.\-]\d)")
_PHONE_CONTEXT = re.compile(r"\b(?:phone|tel|telephone|call|mobile|cell|cellphone|fax|whatsapp|sms|text|dial|"
                            r"contact|reach|number|ph|mob|hotline|landline)\b")
_NOT_PHONE_CONTEXT = re.compile(
    r"(?:#|\b(?:order|invoice|inv|id|ref|reference|ticket|tracking|po|sku|account|acct|case|build|serial|"
    r"version|ver|isbn|txn|transaction|confirmation|booking|customer|item|part|pin|otp|code|zip|amount|total|"
    r"balance|usd|eur|price|timestamp|epoch|issue|pr|commit|port|pid|uid|gid)\b)"
    r"(?:[\s:#=.\-]|\bno\b|\bnr\b|\bnum\b|\bnumber\b|\bis\b|\bwas\b)*$")
_DATE = re.compile(r"\d{4}([-./])\d{1,2}\1\d{1,2}(?!\d)|\d{1,2}([-./])\d{1,2}\2\d{2,4}(?!\d)")


def find_phones(text: str, regions: Collection[str] = ("US",), runs: list[Run] | None = None,
                taken: bytearray | None = None) -> Iterator[Match]:
    """Phone numbers libphonenumber calls valid: international (``+CC …`` or ``00CC …``) in any country, national
    formats for ``regions``. A bare digit run counts only after phone wording (``call``, ``tel``, ``mobile``…);
    dates and numbers labelled as orders, invoices, ids, amounts… are skipped, and so are characters marked in
    ``taken`` (one byte per character of ``text``, non-zero where another entity already claimed it)."""
    last = 0
    for pos, endpos in _windows(text, runs, 7, 2, 2):
        for m in _PHONE.finditer(text, max(pos, last), endpos):
            if taken is not None and taken.find(1, m.start(), m.end()) != -1:
                continue
            found = _phone_match(text, m, regions)
            if found is not None:
                last = found.end
                yield found


def _phone_match(text: str, m: re.Match[str], regions: Collection[str]) -> Match | None:
    candidate = m.group()
    if sum(map(str.isdigit, candidate)) < 7:
        return None
    before = _before(text, m.start())
    grouped = m.group(1) is not None or not candidate.isdigit()
    if not grouped and not _PHONE_CONTEXT.search(before):   # a bare digit run needs phone wording
        return None
    if _DATE.match(candidate) or _NOT_PHONE_CONTEXT.search(before):
        return None
    found = _phone_prefix(candidate, regions)
    if found is None:
        return None
    length, where = found
    return Match("phone", m.start(), m.start() + length, f"phone number valid in {where} (libphonenumber)")


def _phone_prefix(candidate: str, regions: Collection[str]) -> tuple[int, str] | None:
    """The longest prefix of ``candidate`` (whole groups) that is a valid number: (length, region). Only the
    whole candidate and the candidate less its last group or two are tried, and runs of tiny groups (more than
    two single digits, as in ``1 2 3 4 5 6 7``) are not phone numbers."""
    groups = list(_GROUP.finditer(candidate))
    if sum(g.end() - g.start() == 1 for g in groups) > 2:
        return None
    for end in [g.end() for g in groups[-3:]][::-1]:
        part = candidate[:end]
        digits = sum(map(str.isdigit, part))
        if not 7 <= digits <= 15:
            continue
        where = _valid_phone(part, regions)
        if where is not None:
            return end, where
    return None


def _valid_phone(number: str, regions: Collection[str]) -> str | None:
    """The region ``number`` is valid in, or ``None``. National formats are checked against each region only
    (no walk over every region sharing a country code)."""
    if number.startswith("00"):
        number = "+" + number[2:]
    if number.startswith("+"):
        try:
            parsed = phonenumbers.parse(number, None)
        except phonenumbers.NumberParseException:
            return None
        return (phonenumbers.region_code_for_number(parsed) or "?") if phonenumbers.is_valid_number(parsed) else None
    for region in regions:
        try:
            parsed = phonenumbers.parse(number, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number_for_region(parsed, region):
            return region
    return None


# --- all together -----------------------------------------------------------------------------------------------

# The longest value each entity can be, in characters of the normalised view (PEM blocks and JWTs aside: they are
# held back from where they begin, see :func:`~llmgw.guardrails.secrets.open_secret`).
SPANS: Mapping[str, int] = MappingProxyType({"email": 254, "api_key": TOKEN_SPAN, "iban": IBAN_SPAN,
                                             "credit_card": 19 + 7, "phone": 40, "ssn": 11, "ip": 64})
MARGIN = 16     # characters after a value that decide it (what may follow a card, a domain, a number)


class PiiDetector:
    """Finds the configured entity types in a text (see the module contract). ``span`` is the longest value it
    can report; :meth:`hold` serves the stream guard."""

    def __init__(self, entities: Collection[str] = ENTITIES, regions: Collection[str] = ("US",)) -> None:
        unknown = set(entities) - set(ENTITIES)
        if unknown:
            raise ValueError(f"unknown PII entities: {', '.join(sorted(unknown))}")
        self.entities = tuple(e for e in _PRIORITY if e in entities)
        self.regions = tuple(regions)
        short = max(SPANS[e] for e in self.entities) + MARGIN
        self.span = SECRET_SPAN if "api_key" in self.entities else short
        self._short = short
        self._finders = tuple((self._finder(e), _MIN_RUN.get(e, 0)) for e in self.entities)

    def reach(self, text: str, low: int, high: int) -> int:
        """How far a value starting in ``text[low:high]`` can run: the longest short entity past ``high``, or a
        whole PEM block or JWT from the last one that begins in the range."""
        far = high + self._short
        if "api_key" in self.entities:
            far = max(far, open_secret_reach(text, low, high))
        return far

    def hold(self, text: str) -> int:
        """Where the part of ``text`` more text could still change begins: the last :data:`SPANS` characters
        (the longest short entity, plus context), or an unfinished PEM block or JWT before them."""
        cut = max(0, len(text) - self._short)
        if "api_key" in self.entities:
            cut = open_secret(text, cut)
        return cut

    def _finder(self, entity: str) -> Finder:
        if entity == "phone":
            regions = self.regions
            return lambda text, runs, taken: find_phones(text, regions, runs, taken)
        return _FINDERS[entity]

    def find(self, text: str) -> list[Match]:
        """Non-overlapping matches in ``text``, by position."""
        if not text:
            return []
        runs = number_runs(text)
        longest = max(end - start for start, end in runs) if runs else 0
        occupied: bytearray | None = None   # one byte per character, set where a match took it; made at the first
        found: list[Match] = []
        for finder, min_run in self._finders:
            if min_run > longest:   # no run of digits long enough for a card, an SSN or a phone number
                continue
            for match in finder(text, runs, occupied):
                if occupied is None:
                    occupied = bytearray(len(text))
                elif occupied.find(1, match.start, match.end) != -1:
                    continue
                occupied[match.start:match.end] = b"\x01" * (match.end - match.start)
                found.append(match)
        if len(found) > 1:
            found.sort(key=lambda m: m.start)
        return found


# Each entity's finder, as (text, runs, characters taken) -> matches (phone numbers: per detector, for its regions).
_FINDERS: Mapping[str, Finder] = MappingProxyType({
    "api_key": lambda text, runs, taken: find_secrets(text),
    "email": lambda text, runs, taken: find_emails(text),
    "iban": lambda text, runs, taken: find_ibans(text),
    "credit_card": lambda text, runs, taken: find_cards(text, runs),
    "ssn": lambda text, runs, taken: find_ssns(text, runs),
    "ip": lambda text, runs, taken: find_ips(text, runs)})
# The shortest run of digits (number_runs) each entity needs: none for those found elsewhere (IPv6 is not in a run).
_MIN_RUN: Mapping[str, int] = MappingProxyType({"credit_card": 12, "ssn": 9, "phone": 7})
