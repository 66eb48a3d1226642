"""Regenerate the PII evaluation corpus: ``python tests/data/pii/generate.py`` (deterministic, seeded).

Writes ``positives.jsonl`` (one text per line with its labelled entities: ``{"entity", "value"}``, the value
exactly as it appears in the text) and ``negatives.jsonl`` (texts that contain no PII but look like they might:
UUIDs, timestamps, order numbers, versions, Luhn-failing numbers, invalid IBANs, phone-like ids, IP-like
versions, invalid SSNs, e-mail-like strings, key-like words). Ground truth comes from the generators (valid by
construction: Luhn and IIN, mod-97, the SSA ranges, libphonenumber's number plan), not from the detectors.
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
from collections.abc import Callable
from pathlib import Path

import handwritten  # the sibling module: this script runs from its own folder
import phonenumbers

HERE = Path(__file__).parent
R = random.Random(20240815)

FIRST = ["jane", "john", "maria", "li", "ahmed", "olga", "pierre", "sven", "akira", "fatima", "noah", "emma",
         "lucas", "mia", "omar", "sofia", "raj", "chen", "ana", "tom"]
LAST = ["doe", "smith", "garcia", "wang", "khan", "ivanova", "dubois", "larsen", "tanaka", "ali", "brown",
        "miller", "silva", "rossi", "patel", "nguyen", "kowalski", "meyer", "lopez", "kim"]
DOMAINS = ["example.com", "mail.example.org", "corp.io", "uni-heidelberg.de", "company.co.uk", "gmail.com",
           "outlook.com", "proton.me", "startup.ai", "dept.state.gov", "hospital.health", "shop.com.br"]


def digits(n: int) -> str:
    return "".join(R.choice(string.digits) for _ in range(n))


def alnum(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(R.choice(alphabet) for _ in range(n))


def luhn_complete(prefix: str, length: int) -> str:
    body = prefix + digits(length - len(prefix) - 1)
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


# --- positive generators: each returns the value as it will appear -------------------------------------------


def email() -> str:
    if R.random() < 0.1:
        return f"{R.choice(FIRST).title()}.{R.choice(LAST).title()}@{R.choice(DOMAINS).upper()}"
    first, last = R.choice(FIRST), R.choice(LAST)
    local = R.choice([f"{first}.{last}", f"{first}{last[0]}", f"{first}_{last}{R.randint(1, 99)}",
                      f"{first}+{R.choice(['news', 'work', 'x'])}", f"{first[0]}.{last}", f"{last}-{first}"])
    return f"{local}@{R.choice(DOMAINS)}"


US_AREAS = ["201", "212", "213", "305", "312", "415", "503", "617", "646", "702", "713", "818", "917", "206", "404"]


def us_phone() -> str:
    while True:
        area, exchange, line = R.choice(US_AREAS), str(R.randint(200, 999)), digits(4)
        if phonenumbers.is_valid_number(phonenumbers.parse(area + exchange + line, "US")):
            break
    return R.choice([f"({area}) {exchange}-{line}", f"{area}-{exchange}-{line}", f"{area}.{exchange}.{line}",
                     f"{area} {exchange} {line}", f"+1 {area} {exchange} {line}", f"+1-{area}-{exchange}-{line}",
                     f"+1{area}{exchange}{line}", f"1-{area}-{exchange}-{line}", f"+1 ({area}) {exchange}-{line}"])


INTL = ["GB", "DE", "FR", "IN", "JP", "AU", "BR", "ES", "IT", "NL", "MX", "SE", "CH", "PL", "ZA", "SG"]


def intl_phone() -> str:
    region = R.choice(INTL)
    kind = R.choice([phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE])
    example = phonenumbers.example_number_for_type(region, kind)
    assert example is not None
    national = phonenumbers.national_significant_number(example)
    number = example
    for _ in range(50):
        candidate = phonenumbers.parse(f"+{example.country_code}{national[:-4]}{digits(4)}", None)
        if phonenumbers.is_valid_number(candidate):
            number = candidate
            break
    assert phonenumbers.is_valid_number(number)
    style = R.random()
    if style < 0.15:   # the international call prefix instead of "+"
        return "00" + phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)[1:]
    fmt = phonenumbers.PhoneNumberFormat.INTERNATIONAL if style < 0.7 else phonenumbers.PhoneNumberFormat.E164
    return phonenumbers.format_number(number, fmt)


CARD_PREFIXES = [("4", 16), ("4", 16), ("4", 13), ("4", 19), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16),
                 ("2500", 16), ("34", 15), ("37", 15), ("6011", 16), ("65", 16), ("644", 16), ("3528", 16),
                 ("3589", 16), ("62", 16), ("62", 19), ("36", 14), ("300", 14), ("6759", 16), ("5018", 16),
                 ("2200", 16), ("622126", 16)]


def card() -> str:
    prefix, length = R.choice(CARD_PREFIXES)
    number = luhn_complete(prefix, length)
    sep = R.choice(["", " ", "-", " ", ".", ""])
    if not sep:
        return number
    if length in (14, 15):
        groups = [number[:4], number[4:10], number[10:]]
    else:
        groups = [number[i:i + 4] for i in range(0, length, 4)]
    return sep.join(groups)


IBAN_FORMATS = {"DE": "18n", "GB": "4a14n", "FR": "23n", "NL": "4a10n", "ES": "20n", "IT": "1a22n", "BE": "12n",
                "CH": "17n", "AT": "16n", "PL": "24n", "SE": "20n", "IE": "4a14n", "PT": "21n", "NO": "11n",
                "DK": "14n", "FI": "14n"}


def iban() -> str:
    country = R.choice(list(IBAN_FORMATS))
    bban = ""
    spec = IBAN_FORMATS[country]
    while spec:
        head = ""
        while spec[0].isdigit():
            head, spec = head + spec[0], spec[1:]
        kind, spec = spec[0], spec[1:]
        count = int(head)
        bban += alnum(count, string.ascii_uppercase) if kind == "a" else digits(count)
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    compact = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    if R.random() < 0.5:
        return compact
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


def ssn() -> str:
    area = R.choice([a for a in range(1, 900) if a != 666])
    value = f"{area:03d}-{R.randint(1, 99):02d}-{R.randint(1, 9999):04d}"
    return value if R.random() < 0.85 else value.replace("-", " ")


def ip() -> str:
    choice = R.random()
    if choice < 0.45:
        while True:
            a = R.randint(1, 223)
            if a not in (10, 127, 169, 172, 192, 100):
                break
        return f"{a}.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}"
    if choice < 0.7:
        return R.choice([f"10.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}",
                         f"192.168.{R.randint(0, 255)}.{R.randint(1, 254)}",
                         f"172.{R.randint(16, 31)}.{R.randint(0, 255)}.{R.randint(1, 254)}"])
    groups = [f"{R.randint(0, 0xffff):x}" for _ in range(8)]
    groups[0] = R.choice(["2001", "2a03", "2607", "2a00", "2400", "fd12"])
    if R.random() < 0.5:
        return ":".join(groups)
    return ":".join(groups[:3]) + "::" + groups[7]


def jwt() -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return (part({"alg": "HS256", "typ": "JWT"}) + "." + part({"sub": digits(8), "name": R.choice(FIRST)})
            + "." + alnum(43, string.ascii_letters + string.digits + "-_"))


def api_key() -> str:
    return R.choice([
        lambda: "sk-proj-" + alnum(48),
        lambda: "sk-" + alnum(48),
        lambda: "sk-ant-api03-" + alnum(86, string.ascii_letters + string.digits + "-_") + "AA",
        lambda: "AKIA" + alnum(16, string.ascii_uppercase + string.digits),
        lambda: "ghp_" + alnum(36),
        lambda: "github_pat_" + alnum(22) + "_" + alnum(59),
        lambda: f"xoxb-{digits(12)}-{digits(13)}-{alnum(24)}",
        lambda: "AIza" + alnum(35, string.ascii_letters + string.digits + "-_"),
        lambda: "hf_" + alnum(34),
        lambda: "glpat-" + alnum(20),
        lambda: "sk_live_" + alnum(24),
        jwt,
    ])()


TEMPLATES: dict[str, list[str]] = {
    "email": ["Contact me at {v}.", "email: {v}", "Please reply to <{v}> by Friday", "cc {v}, thanks!",
              "Reply-To: {v}", "mailto:{v}", "The account owner is {v} (verified).", "{v} wrote:"],
    "phone": ["call me at {v}", "My cell is {v}.", "Phone: {v}", "reach the front desk on {v} tomorrow",
              "Tel. {v}", "text {v} when you land", "You can contact her at {v}, ext. 2", "fax {v}"],
    "credit_card": ["card number {v}", "Charge it to {v} please", "CC: {v} exp 04/27", "my visa is {v}",
                    "payment method {v} declined", "use {v}."],
    "iban": ["IBAN: {v}", "please wire the money to {v} by Monday", "account {v} (BIC DEUTDEFF)", "pay to {v}."],
    "ssn": ["SSN {v}", "social security number: {v}", "her ssn is {v}.", "Taxpayer {v} filed late"],
    "ip": ["login from {v} failed", "server at {v} is down", "blocked IP {v}", "ssh admin@{v}", "GET / from {v}"],
    "api_key": ["export OPENAI_API_KEY={v}", "my key is {v}", "Authorization: Bearer {v}", "token = \"{v}\"",
                "use {v} for the staging account", '{{"api_key": "{v}", "region": "us-east-1"}}'],
}

GENERATORS: dict[str, Callable[[], str]] = {"email": email, "phone": lambda: us_phone() if R.random() < 0.5
                                            else intl_phone(), "credit_card": card, "iban": iban, "ssn": ssn,
                                            "ip": ip, "api_key": api_key}
COUNTS = {"email": 60, "phone": 70, "credit_card": 70, "iban": 60, "ssn": 50, "ip": 60, "api_key": 60}


def positive(entity: str) -> dict[str, object]:
    value = GENERATORS[entity]()
    template = "SSN {v}" if entity == "ssn" and " " in value else R.choice(TEMPLATES[entity])
    return {"text": template.format(v=value), "entities": [{"entity": entity, "value": value}]}


def mixed() -> dict[str, object]:
    e, p, c = email(), us_phone(), card()
    text = f"Hi, I'm {R.choice(FIRST).title()}. Email {e} or call {p}. Card on file: {c}. Thanks!"
    return {"text": text, "entities": [{"entity": "email", "value": e}, {"entity": "phone", "value": p},
                                       {"entity": "credit_card", "value": c}]}


# --- negatives ---------------------------------------------------------------------------------------------------


def bad_luhn_card() -> str:
    number = luhn_complete(R.choice(["4", "51", "37", "6011"]), 16)
    number = number[:-1] + str((int(number[-1]) + R.randint(1, 9)) % 10)
    return " ".join(number[i:i + 4] for i in range(0, 16, 4)) if R.random() < 0.5 else number


def bad_iban() -> str:
    good = iban().replace(" ", "")
    if R.random() < 0.5:
        return good[:2] + f"{(int(good[2:4]) + R.randint(1, 50)) % 97 + 2:02d}" + good[4:]
    return good[:-1]


def ts() -> str:
    return (f"20{R.randint(10, 29)}-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}T{R.randint(0, 23):02d}:"
            f"{R.randint(0, 59):02d}:{R.randint(0, 59):02d}Z")


NEGATIVES: list[tuple[str, Callable[[], str]]] = [
    ("uuid", lambda: f"request id {uuid.UUID(int=R.getrandbits(128), version=4)} failed"),
    ("uuid", lambda: f"trace={uuid.UUID(int=R.getrandbits(128), version=4)}"),
    ("timestamp", lambda: f"created_at: {ts()}"),
    ("timestamp", lambda: f"at {R.randint(2010, 2029)}-{R.randint(1, 12):02d}-{R.randint(1, 28):02d} "
                          f"{R.randint(0, 23):02d}:{R.randint(0, 59):02d}:{R.randint(0, 59):02d} the job ran"),
    ("date", lambda: f"due {R.randint(1, 28):02d}.{R.randint(1, 12):02d}.{R.randint(2010, 2029)}"),
    ("date", lambda: f"on {R.randint(1, 12):02d}/{R.randint(1, 28):02d}/{R.randint(2010, 2029)}"),
    ("epoch", lambda: f"epoch {R.randint(1_500_000_000, 1_800_000_000)}"),
    ("order", lambda: f"Order #{digits(10)} has shipped"),
    ("order", lambda: f"order number {R.choice(US_AREAS)}{R.randint(200, 999)}{digits(4)} confirmed"),
    ("order", lambda: f"invoice INV-{R.randint(2015, 2029)}-{digits(6)}"),
    ("order", lambda: f"tracking id {digits(12)}"),
    ("order", lambda: f"customer id: {R.choice(US_AREAS)}-{R.randint(200, 999)}-{digits(4)}"),
    ("version", lambda: f"upgrade to v{R.randint(1, 20)}.{R.randint(0, 30)}.{R.randint(0, 99)}"),
    ("version", lambda: f"version {R.randint(1, 12)}.{R.randint(0, 9)}.{R.randint(0, 9)}.{R.randint(0, 99)}"),
    ("version", lambda: f"Mozilla/5.0 (X11) Chrome/{R.randint(90, 130)}.0.0.0 Safari/537.36"),
    ("version", lambda: f"build {R.randint(6, 10)}.0.{R.randint(10000, 22000)}.{R.randint(1, 999)}"),
    ("version", lambda: f"python {R.randint(2, 3)}.{R.randint(0, 13)}.{R.randint(0, 12)} is installed"),
    ("oid", lambda: f"OID 1.3.6.1.4.1.{R.randint(100, 50000)}.{R.randint(1, 9)}"),
    ("luhn_fail", lambda: f"card number {bad_luhn_card()}"),
    ("bad_iban", lambda: f"IBAN: {bad_iban()}"),
    ("ip_like", lambda: R.choice(["bind to 0.0.0.0:8080", "curl http://127.0.0.1:4000/health",
                                  "netmask 255.255.255.0", "multicast 224.0.0.251", "see section 1.2.3",
                                  "link-local 169.254.10.20", "listen on [::]:80", "ping ::1"])),
    ("ssn_invalid", lambda: R.choice([f"000-{R.randint(10, 99)}-{digits(4)}", f"666-{R.randint(10, 99)}-1234",
                                      f"9{digits(2)}-{R.randint(10, 99)}-{R.randint(1000, 9999)}",
                                      f"{R.randint(100, 599)}-00-{R.randint(1000, 9999)}",
                                      f"{R.randint(100, 599)}-{R.randint(10, 99)}-0000"]) + " is not valid"),
    ("phone_like", lambda: f"{digits(10)} rows were scanned"),
    ("phone_like", lambda: f"amount: {R.randint(1000000, 9999999)}.{digits(2)} USD"),
    ("phone_like", lambda: f"555-{digits(3)}-{digits(4)} is the fictional number from the film"),
    ("phone_like", lambda: f"the ratio was 0.{digits(12)}"),
    ("email_like", lambda: R.choice(["ping @channel now", "user@localhost is fine", "icon@2x.png loaded",
                                     "npm install lodash@4.17.21", "git clone git@github.com:org/repo.git",
                                     "pip install pkg==1.2.3 @ file:///tmp", "email me @ work"])),
    ("key_like", lambda: R.choice(["sk-learn is a typo of scikit-learn", "task-force-meeting-notes",
                                   "sk-this-is-not-a-real-key-at-all", "AKIA is the prefix of AWS keys",
                                   "ghp_ tokens look like ghp_XXXX", "eyJhbGciOi is a truncated header",
                                   "xoxo, see you", "xoxb- is the bot token prefix"])),
    ("hash", lambda: f"commit {alnum(40, '0123456789abcdef')} fixed it"),
    ("hash", lambda: f"sha256:{alnum(64, '0123456789abcdef')}"),
    ("mac", lambda: "MAC " + ":".join(alnum(2, "0123456789ABCDEF") for _ in range(6))),
    ("time", lambda: f"elapsed {R.randint(0, 23):02d}:{R.randint(0, 59):02d}:{R.randint(0, 59):02d}"),
    ("coords", lambda: f"location {R.uniform(-90, 90):.4f}, {R.uniform(-180, 180):.4f}"),
    ("isbn", lambda: f"ISBN 978-{R.randint(0, 9)}-{digits(3)}-{digits(5)}-{R.randint(0, 9)}"),
    ("number", lambda: f"population {R.randint(1, 9)},{digits(3)},{digits(3)}"),
    ("prose", lambda: R.choice(["The meeting moved to 3pm in room 4.12.", "We sold 1,250 units in Q3 2024.",
                                "Use port 5432 for Postgres and 6379 for Redis.", "Chapter 12.4.1 covers it."])),
]
NEGATIVE_COUNTS = 10


def main() -> None:
    positives = [positive(entity) for entity, n in COUNTS.items() for _ in range(n)]
    positives += [mixed() for _ in range(20)]
    positives += [{"text": text, "entities": [{"entity": e, "value": v} for e, v in labels], "source": "handwritten"}
                  for text, labels in handwritten.POSITIVES]
    negatives = [{"text": make(), "note": note} for note, make in NEGATIVES for _ in range(NEGATIVE_COUNTS)]
    negatives += [{"text": text, "note": note, "source": "handwritten"} for text, note in handwritten.NEGATIVES]
    for row in positives:
        for label in row["entities"]:  # type: ignore[union-attr]
            assert label["value"] in row["text"], row
    with (HERE / "positives.jsonl").open("w", encoding="utf-8") as out:
        for i, row in enumerate(positives):
            out.write(json.dumps({"id": f"p{i}", **row}, ensure_ascii=False) + "\n")
    with (HERE / "negatives.jsonl").open("w", encoding="utf-8") as out:
        for i, row in enumerate(negatives):
            out.write(json.dumps({"id": f"n{i}", **row}, ensure_ascii=False) + "\n")
    print(f"{len(positives)} positives, {len(negatives)} negatives")


if __name__ == "__main__":
    main()
