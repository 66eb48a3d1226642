# ruff: noqa: RUF001 (the corpus is made of look-alike characters on purpose)
"""Regenerate the bypass corpus: ``python tests/data/pii/bypass_cases.py`` writes ``bypass_cases.toml``.

Each ``[[case]]`` is what someone trying to walk around a ``redact``/``block`` rule would send — obfuscated values
(other scripts' digits, look-alike letters, zero-width and no-break spaces, doubled, mixed or unusual separators,
``[at]``/``[dot]``, lower-case or dashed IBANs, dotted SSNs, denied terms with hyphens or homoglyphs) and values
in fields a walk could miss (split text parts, names, tool and parameter descriptions, predictions, ``user``,
``metadata``, JSON keys, search results, document titles, reasoning in answers, a repeated key) — and clean
look-alikes that must pass. ``absent`` lists each case's raw values: they must not survive in what leaves, and a
test sweeps the request log for them. Run the cases against ``bypass_profile.toml``:
``llmgw guard test --profile tests/data/pii/bypass_profile.toml --cases tests/data/pii/bypass_cases.toml``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ZW, NBSP, SHY, ZWJ, E_ACUTE = "\u200b", "\u00a0", "\u00ad", "\u200d", "\u00e9"


def digits_of(zero: int) -> Callable[[str], str]:
    """Rewrite ASCII digits in another script whose zero is ``zero``."""
    return lambda s: "".join(chr(zero + int(c)) if c.isdigit() else c for c in s)


ARABIC, PERSIAN, DEVANAGARI, FULLWIDTH = digits_of(0x660), digits_of(0x6F0), digits_of(0x966), digits_of(0xFF10)


def fullwidth(s: str) -> str:
    """Every printable ASCII character as its fullwidth form (spaces stay)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


CYRILLIC = str.maketrans("aeopcxyAEOPCXH", "\u0430\u0435\u043e\u0440\u0441\u0445\u0443\u0410\u0415\u041e\u0420\u0421"
                                          "\u0425\u041d")


def lookalike(s: str, count: int = 1) -> str:
    """``s`` with its first ``count`` look-alike-able letters written in Cyrillic."""
    out, done = [], 0
    for c in s:
        if done < count and c in "aeopcx":
            out.append(c.translate(CYRILLIC))
            done += 1
        else:
            out.append(c)
    return "".join(out)


CASES: list[dict[str, Any]] = []


def case(name: str, expect: str, *, text: str | None = None, body: dict[str, Any] | None = None,
         raw: str | None = None, entities: list[str] | None = None, absent: list[str] | None = None,
         format: str = "openai", phase: str | None = None) -> None:
    entry: dict[str, Any] = {"name": name, "expect": expect}
    if text is not None:
        entry["text"] = text
    elif raw is not None:
        entry["json"] = raw
    else:
        entry["json"] = json.dumps(body, ensure_ascii=True)
    if format != "openai":
        entry["format"] = format
    if phase is not None:
        entry["phase"] = phase
    if entities is not None:
        entry["expect_entities"] = entities
    if absent:
        entry["absent"] = absent
    CASES.append(entry)


# --- cards -------------------------------------------------------------------------------------------------------

CARDS = [["4111", "1111", "1111", "1111"], ["5555", "5555", "5555", "4444"], ["3782", "822463", "10005"],
         ["6011", "1111", "1111", "1117"], ["3530", "1113", "3330", "0000"], ["4012", "8888", "8888", "1881"]]
CARD_STYLES: dict[str, Callable[[list[str]], str]] = {
    "mixed separators": lambda g: g[0] + " " + "-".join(g[1:-1]) + "." + g[-1],
    "doubled spaces": lambda g: "  ".join(g),
    "doubled dashes": lambda g: "--".join(g),
    "no-break spaces": lambda g: NBSP.join(g),
    "zero-width spaces between groups": lambda g: ZW.join(g),
    "zero-width spaces inside groups": lambda g: " ".join(x[:2] + ZW + x[2:] for x in g),
    "line breaks": lambda g: "\n".join(g),
    "underscores": lambda g: "_".join(g),
    "slashes": lambda g: "/".join(g),
    "Arabic-Indic digits": lambda g: ARABIC(" ".join(g)),
    "Persian digits": lambda g: PERSIAN(" ".join(g)),
    "Devanagari digits": lambda g: DEVANAGARI(" ".join(g)),
    "fullwidth digits": lambda g: FULLWIDTH(" ".join(g)),
    "en dashes": lambda g: "\u2013".join(g),
    "soft hyphens": lambda g: SHY.join(g),
    "spaced dashes": lambda g: " - ".join(g),
}
for groups in CARDS:
    for style, make in CARD_STYLES.items():
        value = make(groups)
        case(f"card {groups[0]}\u2026: {style}", "redact", text=f"please charge card {value} today",
             entities=["credit_card"], absent=[value])

# --- e-mail -------------------------------------------------------------------------------------------------------

EMAILS = [("jane.doe", "example.com"), ("bob.smith", "corp.io"), ("li+news", "mail.example.org"),
          ("tom", "firm.co.uk"), ("a.khan", "uni-heidelberg.de"), ("maria", "example.net")]
EMAIL_STYLES: dict[str, Callable[[str, str], str]] = {
    "fullwidth at sign": lambda u, d: f"{u}\uff20{d}",
    "small at sign": lambda u, d: f"{u}\ufe6b{d}",
    "Cyrillic look-alike domain": lambda u, d: f"{u}@{lookalike(d, 2)}",
    "Cyrillic look-alike name": lambda u, d: f"{lookalike(u)}@{d}",
    "[at] and [dot]": lambda u, d: f"{u} [at] {d.replace('.', ' [dot] ')}",
    "(at) and (dot)": lambda u, d: f"{u}(at){d.replace('.', '(dot)')}",
    "{at}": lambda u, d: f"{u}{{at}}{d}",
    "zero-width space in the name": lambda u, d: f"{u[:1]}{ZW}{u[1:]}@{d}",
    "zero-width joiner in the domain": lambda u, d: f"{u}@{d[:2]}{ZWJ}{d[2:]}",
    "fullwidth address": lambda u, d: fullwidth(f"{u}@{d}"),
    "accented letters": lambda u, d: f"{u}@{d.replace('e', E_ACUTE, 1)}",
}
for user, domain in EMAILS:
    for style, make in EMAIL_STYLES.items():
        value = make(user, domain)
        case(f"e-mail {user}: {style}", "redact", text=f"write to {value} tomorrow", entities=["email"],
             absent=[value])

# --- phones -------------------------------------------------------------------------------------------------------

PHONES = [["+1", "415", "555", "2671"], ["(212)", "555", "0123"], ["+44", "20", "7946", "0958"],
          ["+49", "30", "901820"]]
PHONE_STYLES: dict[str, Callable[[list[str]], str]] = {
    "no-break spaces": lambda g: NBSP.join(g),
    "zero-width spaces": lambda g: " ".join(x[:2] + ZW + x[2:] for x in g),
    "mixed separators": lambda g: g[0] + " " + ".".join(g[1:-1]) + "-" + g[-1],
    "doubled separators": lambda g: "  ".join(g),
    "underscores": lambda g: "_".join(g),
    "slashes": lambda g: "/".join(g),
    "Arabic-Indic digits": lambda g: ARABIC(" ".join(g)),
    "fullwidth digits": lambda g: fullwidth(" ".join(g)),
    "en dashes": lambda g: "\u2013".join(g),
}
for groups in PHONES:
    for style, make in PHONE_STYLES.items():
        value = make(groups)
        case(f"phone {groups[0]} {groups[1]}: {style}", "redact", text=f"call me on {value} after six",
             entities=["phone"], absent=[value])

# --- IBAN ---------------------------------------------------------------------------------------------------------

IBANS = ["DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606", "NL91ABNA0417164300",
         "CH9300762011623852957"]


def grouped(s: str, sep: str) -> str:
    return sep.join(s[i:i + 4] for i in range(0, len(s), 4))


IBAN_STYLES: dict[str, Callable[[str], str]] = {
    "lower case": lambda s: s.lower(),
    "lower case in groups": lambda s: grouped(s.lower(), " "),
    "dashed groups": lambda s: grouped(s, "-"),
    "lower case, dashed": lambda s: grouped(s.lower(), "-"),
    "no-break spaces": lambda s: grouped(s, NBSP),
    "zero-width spaces": lambda s: grouped(s, ZW),
    "fullwidth": lambda s: fullwidth(grouped(s, " ")),
}
for iban in IBANS:
    for style, make in IBAN_STYLES.items():
        value = make(iban)
        case(f"IBAN {iban[:4]}: {style}", "redact", text=f"wire it to {value} by Friday", entities=["iban"],
             absent=[value])

# --- SSN ----------------------------------------------------------------------------------------------------------

SSNS = [("078", "05", "1120"), ("219", "09", "9999"), ("536", "22", "5471"), ("123", "45", "6789")]
SSN_STYLES: dict[str, Callable[[tuple[str, str, str]], str]] = {
    "dots": lambda g: ".".join(g),
    "no-break spaces": lambda g: NBSP.join(g),
    "en dashes": lambda g: "\u2013".join(g),
    "zero-width spaces": lambda g: "-".join(x[:1] + ZW + x[1:] for x in g),
    "fullwidth": lambda g: fullwidth("-".join(g)),
    "Arabic-Indic digits": lambda g: ARABIC("-".join(g)),
}
for ssn in SSNS:
    for style, make in SSN_STYLES.items():
        value = make(ssn)
        case(f"SSN {ssn[0]}: {style}", "redact", text=f"my SSN is {value}, keep it private", entities=["ssn"],
             absent=[value])

# --- IP addresses and secrets -----------------------------------------------------------------------------------

for ip in ("203.0.113.195", "81.2.69.142"):
    for style, value in (("fullwidth", fullwidth(ip)), ("zero-width spaces", ip.replace(".", ZW + ".")),
                         ("Arabic-Indic digits", ARABIC(ip))):
        case(f"IP {ip}: {style}", "redact", text=f"the client at {value} keeps failing", entities=["ip"],
             absent=[value])

OPENAI_KEY = "sk-proj-Xf3k9Lq2Zr8Wn5Vb1Ty7Hu4Mi6Op0As2Dd4Ff6Gg8"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
GITHUB = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
       "KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm\n-----END RSA PRIVATE KEY-----")
for label, value in (("OpenAI key with a zero-width space", OPENAI_KEY[:12] + ZW + OPENAI_KEY[12:]),
                     ("OpenAI key with a soft hyphen", OPENAI_KEY[:20] + SHY + OPENAI_KEY[20:]),
                     ("OpenAI key in fullwidth", fullwidth(OPENAI_KEY)),
                     ("AWS key with a zero-width joiner", AWS_KEY[:4] + ZWJ + AWS_KEY[4:]),
                     ("AWS key with a Cyrillic letter", AWS_KEY.replace("A", "\u0410", 1)),
                     ("GitHub token with zero-width spaces", GITHUB[:10] + ZW + GITHUB[10:30] + ZW + GITHUB[30:]),
                     ("PEM key with a zero-width space in the header", PEM.replace("PRIVATE", "PRI" + ZW + "VATE", 1)),
                     ("PEM key with no-break spaces", PEM.replace(" ", NBSP))):
    case(label, "redact", text=f"use this: {value}\nthanks", entities=["api_key"], absent=[value])

# --- denied terms -------------------------------------------------------------------------------------------------

TERMS = [("project", "zeus"), ("falcon", "ridge")]
TERM_STYLES: dict[str, Callable[[str, str], str]] = {
    "zero-width space inside a word": lambda a, b: f"{a[:3]}{ZW}{a[3:]} {b}",
    "zero-width space for the space": lambda a, b: f"{a}{ZW}{b}",
    "hyphen between the words": lambda a, b: f"{a}-{b}",
    "hyphen inside a word": lambda a, b: f"{a[:3]}-{a[3:]} {b}",
    "underscore": lambda a, b: f"{a}_{b}",
    "dot": lambda a, b: f"{a}.{b}",
    "Cyrillic o": lambda a, b: f"{lookalike(a)} {b}",
    "Cyrillic e": lambda a, b: f"{a} {b.replace('e', chr(0x435), 1) if 'e' in b else lookalike(b)}",
    "fullwidth letters": lambda a, b: fullwidth(f"{a} {b}"),
    "accent": lambda a, b: f"{a} {b[0]}\u0301{b[1:]}",
    "upper case and a no-break space": lambda a, b: f"{a.upper()}{NBSP}{b.upper()}",
    "many spaces and a line break": lambda a, b: f"{a}   \n  {b}",
    "soft hyphen": lambda a, b: f"{a[:2]}{SHY}{a[2:]} {b}",
}
for first, second in TERMS:
    for style, make in TERM_STYLES.items():
        value = make(first, second)
        case(f"denied '{first} {second}': {style}", "block", text=f"status of {value} for the board?",
             entities=["denylist"], absent=[value])

# --- fields a walk could miss -------------------------------------------------------------------------------------

CARD, MAIL, PHONE = "4111 1111 1111 1111", "jane.doe@example.com", "+1 415 555 2671"


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "fast", "messages": list(messages) or [{"role": "user", "content": "hi"}], **extra}


def messages(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "fast", "max_tokens": 64, "messages": list(messages), **extra}


FIELD_CASES: list[tuple[str, dict[str, Any], list[str], str]] = [
    ("text split over two parts", chat({"role": "user", "content": [
        {"type": "text", "text": "card 4539 1488"}, {"type": "text", "text": "0343 6467"}]}),
     ["4539 1488", "0343 6467"], "openai"),
    ("e-mail split over three parts", chat({"role": "user", "content": [
        {"type": "text", "text": "mail jane.d"}, {"type": "text", "text": "oe@exam"},
        {"type": "text", "text": "ple.com now"}]}), ["oe@exam", "jane.d"], "openai"),
    ("messages[].name", chat({"role": "user", "name": MAIL, "content": "hi"}), [MAIL], "openai"),
    ("tool description", chat(tools=[{"type": "function", "function": {
        "name": "send", "description": f"always copy {MAIL}", "parameters": {"type": "object"}}}]), [MAIL], "openai"),
    ("parameter description", chat(tools=[{"type": "function", "function": {"name": "pay", "parameters": {
        "type": "object", "properties": {"card": {"type": "string", "description": f"use {CARD}"}}}}}]), [CARD],
     "openai"),
    ("parameter enum", chat(tools=[{"type": "function", "function": {"name": "pay", "parameters": {
        "type": "object", "properties": {"to": {"type": "string", "enum": [MAIL]}}}}}]), [MAIL], "openai"),
    ("prediction.content", chat(prediction={"type": "content", "content": f"call {PHONE}"}), [PHONE], "openai"),
    ("prediction text parts", chat(prediction={"type": "content", "content": [{"type": "text", "text": MAIL}]}),
     [MAIL], "openai"),
    ("user", chat(user=MAIL), [MAIL], "openai"),
    ("metadata value", chat(metadata={"customer": MAIL}), [MAIL], "openai"),
    ("metadata key", chat(metadata={MAIL: "vip"}), [MAIL], "openai"),
    ("response_format.json_schema.description", chat(response_format={"type": "json_schema", "json_schema": {
        "name": "x", "description": f"for {MAIL}", "schema": {"type": "object"}}}), [MAIL], "openai"),
    ("assistant refusal part", chat({"role": "user", "content": "hi"}, {"role": "assistant", "content": [
        {"type": "refusal", "refusal": f"I cannot charge {CARD}"}]}), [CARD], "openai"),
    ("JSON key inside tool-call arguments", chat({"role": "assistant", "tool_calls": [{
        "id": "c1", "type": "function", "function": {"name": "lookup", "arguments": json.dumps({MAIL: "x"})}}]}),
     [MAIL], "openai"),
    ("JSON escapes inside tool-call arguments", chat({"role": "assistant", "tool_calls": [{
        "id": "c1", "type": "function", "function": {"name": "pay", "arguments":
            '{"card": "\\u0034111 1111 1111 1111"}'}}]}), ["111 1111 1111 1111"], "openai"),
    ("stop sequence", chat(stop=[MAIL]), [MAIL], "openai"),
    ("Anthropic search_result block", messages({"role": "user", "content": [{
        "type": "search_result", "source": "https://kb.example/1", "title": f"about {MAIL}",
        "content": [{"type": "text", "text": f"card {CARD}"}]}]}), [MAIL, CARD], "anthropic"),
    ("Anthropic search_result inside tool_result", messages({"role": "user", "content": [{
        "type": "tool_result", "tool_use_id": "t1", "content": [{"type": "search_result", "source": "kb",
                                                                 "title": "t", "content": [{"type": "text",
                                                                                            "text": PHONE}]}]}]}),
     [PHONE], "anthropic"),
    ("Anthropic document title", messages({"role": "user", "content": [{
        "type": "document", "title": f"records of {MAIL}", "source": {"type": "text", "media_type": "text/plain",
                                                                   "data": "ok"}}]}), [MAIL], "anthropic"),
    ("Anthropic document context", messages({"role": "user", "content": [{
        "type": "document", "context": f"card {CARD}", "source": {"type": "text", "media_type": "text/plain",
                                                                 "data": "ok"}}]}), [CARD], "anthropic"),
    ("Anthropic tools[].description", messages({"role": "user", "content": "hi"}, tools=[{
        "name": "t", "description": f"escalate to {MAIL}", "input_schema": {"type": "object"}}]), [MAIL],
     "anthropic"),
    ("Anthropic metadata.user_id", messages({"role": "user", "content": "hi"}, metadata={"user_id": MAIL}), [MAIL],
     "anthropic"),
    ("Anthropic tool_use input key", messages({"role": "assistant", "content": [{
        "type": "tool_use", "id": "t1", "name": "f", "input": {MAIL: True}}]}, {"role": "user", "content": "go"}),
     [MAIL], "anthropic"),
    ("Anthropic text blocks split", messages({"role": "user", "content": [
        {"type": "text", "text": "SSN 078-05"}, {"type": "text", "text": "-1120 thanks"}]}), ["078-05", "-1120"],
     "anthropic"),
]
for name, body, values, fmt in FIELD_CASES:
    case(f"field: {name}", "redact", body=body, format=fmt, absent=values)

case("field: a repeated key (the gateway and the upstream would read different values)", "block",
     raw='{"model": "fast", "messages": [{"role": "user", "content": "card 4111 1111 1111 1111", "content": "hi"}]}',
     entities=["duplicate_key"])
case("answer: reasoning_content", "redact", phase="response", absent=[MAIL],
     body={"choices": [{"index": 0, "message": {"role": "assistant", "content": "done",
                                                "reasoning_content": f"the user is {MAIL}"}}]})
case("answer: tool-call argument keys", "redact", phase="response", absent=[MAIL],
     body={"choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": [{
         "id": "c", "type": "function", "function": {"name": "f", "arguments": json.dumps({MAIL: 1})}}]}}]})
case("answer: Anthropic thinking", "redact", phase="response", format="anthropic", absent=[CARD],
     body={"type": "message", "role": "assistant", "content": [
         {"type": "thinking", "thinking": f"their card is {CARD}", "signature": "sig"},
         {"type": "text", "text": "done"}]})

# --- clean look-alikes that must pass ----------------------------------------------------------------------------

CLEAN = [
    "card 4111 1111-1111.1112 failed the check", "pay with 4111\u00a01111\u00a01111\u00a01112",
    "reference ٤١١١ ١١١١ ١١١١ ١١١٢", "number 1234 5678 9012 3456 is a test pattern",
    "the ids 1111_2222_3333_4444 are internal", "serial 9111-1111-1111-1111",
    "released on 2024/03/15 at 10:22", "due 15/03/2024", "between 2024–03–15 and 2024–04–01",
    "upgrade to v1.2.3.4 tonight", "version 10.0.0.1 is out",
    "Mozilla/5.0 Chrome/120.0.0.0 Safari/537.36", "steps 1. 2. 3. 4 are done",
    "see section 1..2 of the spec", "prices: $1 234.56 and €4 111,11",
    "meet me [at] the lobby at noon", "see figure (a) and (b)", "look (at) this chart",
    "the {at} sign in templates", "send it [at] 5pm sharp", "email me at the office",
    "Привет, как дела? Встреча в 10:30.", "Это проект Зевс, но без деталей.",
    "Καλημέρα, τα λέμε αύριο", "لدي ٣ كتب و ٢ أقلام",
    "म\u0947र\u0947 प\u093eस ५ क\u093fत\u093eब\u0947\u0902 ह\u0948\u0902", "价格１２３元，数量４件",
    "Ｈｅｌｌｏ ｗｏｒｌｄ", "José Müller and Zoë Ångström", "Tiếng Việt rất đẹp",
    "team 👩\u200d💻 ships at 9", "project zeal is on track", "the zeus project is a myth",
    "projects zeus-like in scope", "Zeus was a god; project management is a job",
    "falcon ridges in the valley", "the falconry ridge trail", "zeus",
    "a project about zeus mythology", "de89 3704 0044 0532 0130 01",
    "gb82-west-1234-5698-7654-33", "codes ab12cdef and xy99", "ssn 000.12.3456 is invalid",
    "id 666-12-3456", "ref 912.34.5678", "x 123.45.0000", "call extension 555-01",
    "dial 0.0.0.0", "localhost is 127.0.0.1", "netmask 255.255.255.0",
    "scores: 98/100, 87/100", "ratio 16:9 and 4:3", "page 4/5", "2 // 3 in the table",
    "1\u00092\u00093\u00094 are column headers", "sk-this-is-a-placeholder",
    "use <EMAIL_1> as a template", "x = arr[at] + b[dot]",
    "uuid 550e8400-e29b-41d4-a716-446655440000", "sha 9f86d081884c7d659a2feaa0c55ad015",
    "population 1,234,567,890,123", "ISBN 978-3-16-148410-0", "order #4155552671 shipped",
    "invoice 2024-000123-4567", "the year 2024 and 2025", "rooms 101 102 103 104",
    "values 0.5 - 1.5 - 2.5", "range 10 - 20", "lot 12_34", "file_2024_03_15.csv",
    "build 1.2.3_45", "coordinates 48.8566, 2.3522", "temperature −5 °C", "ｍａｉｌ ａｔ ｔｈｅ ｏｆｆｉｃｅ",
    "the word café, naïve and résumé", "un\u00a0espace insécable", "zero\u200bwidth in prose",
    "PEM files start with -----BEGIN", "-----BEGIN CERTIFICATE----- is public",
    "eyJ is how JWTs start", "the key sk-proj-example is fake", "hf_ prefixes mark tokens",
    "AKIA is the AWS prefix", "cc: the team", "reply-to the list", "user@ prefix only",
    "@handle on social", "a@b", "name@localhost", "icon@2x.png", "git@github.com:org/repo.git",
    "mail [at] example", "card ٤١١١-١١١١-١١١١-١١١٢ was declined", "pay ４１１１ １１１２ later",
    "card 5555\u200b5555\u200b5555\u200b4445 is wrong",
    "number 6011_1111_1111_1118 (test, invalid)", "Thai digits ๑๒๓ and Bengali ১২৩",
    "２０２４年３月１５日に会議", "date ١٥/٠٣/٢٠٢٤ in Arabic", "price ٤١١١ ريال",
    "Version 2.0.1-beta is stable", "node_v20.11.1 and python3.11",
    "C:\\Users\\me\\file_1_2.txt", "img_4111_1111.png", "ISBN 0-306-40615-2", "zip 94103-1234",
    "EIN 12-3456789 belongs to a company", "color #4111ff and rgba(41, 11, 11, 0.5)",
    "UPS 1Z999AA10123456784", "4111 × 1111 = 4,565,321", "arr[0] = 1; arr[1] = 2",
    "for (i = 0; i < 10; i++) {}", "zeus-project is unrelated", "the project zeusbook",
    "a falcon on the ridge", "ridge falcon sighting", "project: zeus?", "ip 999.1.1.1",
    "mail@ without a domain", "@example.com alone", "name (at) company is a placeholder",
    "x [dot] y", "page 12/15, line 3-4", "see RFC 5322 §3.4.1",
    "IBAN example: DE00 0000 0000 0000 0000 00", "Project Zeus", "falcon ridge",
]
NOT_CLEAN = {"Project Zeus", "falcon ridge"}    # sanity: the plain terms are denied
for i, text in enumerate(CLEAN):
    if text in NOT_CLEAN:
        case(f"denied as written: {text}", "block", text=text, entities=["denylist"])
    else:
        case(f"clean {i + 1}: {text[:40]}", "allow", text=text, entities=[])

CLEAN_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("clean parts", chat({"role": "user", "content": [{"type": "text", "text": "order 4111"},
                                                      {"type": "text", "text": " items please"}]}), "openai"),
    ("clean name", chat({"role": "user", "name": "alice_01", "content": "hi"}), "openai"),
    ("clean tools", chat(tools=[{"type": "function", "function": {"name": "weather", "description": "Get weather",
                                                                  "parameters": {"type": "object", "properties": {
                                                                      "city": {"type": "string",
                                                                               "description": "City name"}}}}}]),
     "openai"),
    ("clean metadata", chat(metadata={"tenant": "acme", "run": "42"}, user="user-1234"), "openai"),
    ("clean arguments", chat({"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {
        "name": "f", "arguments": json.dumps({"city": "Paris", "days": 3})}}]}), "openai"),
    ("clean Anthropic tools", messages({"role": "user", "content": "hi"}, tools=[
        {"name": "t", "description": "Look up a city", "input_schema": {"type": "object"}}],
        metadata={"user_id": "u-42"}), "anthropic"),
    ("clean Anthropic document", messages({"role": "user", "content": [{
        "type": "document", "title": "Handbook", "context": "internal", "source": {
            "type": "text", "media_type": "text/plain", "data": "Be kind."}}]}), "anthropic"),
    ("clean Anthropic blocks", messages({"role": "user", "content": [
        {"type": "text", "text": "part one 12"}, {"type": "text", "text": "34 part two"}]}), "anthropic"),
]
for name, body, fmt in CLEAN_BODIES:
    case(f"field: {name}", "allow", body=body, format=fmt, entities=[])


def _toml_string(value: str) -> str:
    out = []
    for ch in value:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code > 0x7E:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return _toml_string(value)


def render() -> str:
    lines = ["# Generated by bypass_cases.py: do not edit by hand.", ""]
    for entry in CASES:
        lines.append("[[case]]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in entry.items()]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    (HERE / "bypass_cases.toml").write_text(render(), encoding="utf-8")
    print(f"{len(CASES)} cases")
