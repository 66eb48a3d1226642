"""The difference guard: a semantic hit must not differ from its query in what makes answers differ.

A cosine threshold alone confuses same-template prompts ("capital of France" / "capital of Germany"). On top of
it, :func:`differs` compares the two texts' *facts* and refuses the pair when any of these differ:

- numbers (digits, number words; ``1,000`` = ``1000``) as multisets;
- negation (``not``, ``no``, ``never``, ``n't``, ``without``...): present in one, absent in the other;
- names and literals: capitalised words not starting a sentence, acronyms, words with digits, code-like tokens
  (``a_b``, ``x.y``, ``/path``), quoted strings — each must appear in the other text;
- word order: the same content words in another order ("miles to kilometers" / "kilometers to miles"), or, in
  texts that relate things ("to", "from", "than", "into", "vs"), the same names in another order ("from Paris to
  Rome" / "from Rome to Paris", "Is Python faster than Java?" / "Is Java faster than Python?");
- direction: opposite particles ("turn on" / "turn off", "scale up" / "scale down", "log in" / "log out",
  "shipping to Canada" / "shipping from Canada", "delete all" / "delete some"), or direction particles with
  none in common ("sign up" / "sign in");
- question words: who, when, where, why, whom, whose must be the same ("When was Python created?" / "Where was
  Python created?");
- content words: after dropping stop words and generic request words ("how", "explain", "please"...) and a light
  stemming, a content word of one text absent from the other is a difference, unless ``partner`` (a word
  similarity, e.g. from the embedding model) pairs it with an unmatched word of the other text at or above
  ``word_threshold``; at most ``max_swaps`` such pairings are tolerated. Never tolerated: opposites (a list of
  antonyms such as buy/sell, enable/disable, upload/download, and a word against its negating prefix form:
  lock/unlock, advantage/disadvantage, encrypt/decrypt) and time words (today/tomorrow, weekdays, months), which
  embedding models rate alike although they change the answer.

Contract: ``differs(a, b)`` (texts, or their :func:`facts` computed once by a caller comparing one text with many)
is symmetric, pure, returns the reason (a short string) or ``None`` when the pair may
share an answer. It is meant for short prompts; it never looks at anything but the two texts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

WordSimilarity = Callable[[str, str], float]

_TOKEN = re.compile(r"\"[^\"]{1,200}\"|'[^']{2,200}'(?!\w)|`[^`]{1,200}`|[\w][\w'.:/_+-]*[\w]|\w")
_NUMBER = re.compile(r"^[+-]?\d[\d,]*(\.\d+)?%?$")


def _words(text: str) -> list[str]:
    return text.split()


NUMBER_WORDS = {w: str(i) for i, w in enumerate(_words(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
    " seventeen eighteen nineteen twenty"))}
NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "hundred": "100", "thousand": "1000",
                     "million": "1000000", "billion": "1000000000", "first": "1st", "second": "2nd",
                     "third": "3rd", "half": "0.5", "twice": "2x", "double": "2x", "triple": "3x"})
NEGATIONS = frozenset(_words("not no never nor none nobody nothing nowhere neither without cannot cant dont doesnt"
                             " didnt isnt arent wasnt werent wont wouldnt shouldnt couldnt hasnt havent hadnt mustnt"))
STOP_WORDS = frozenset(_words("""
a an the and or but if then so of to in on at by for from with as into onto about over under up down out off
is are was were be been being am do does did doing done have has had having will would shall should can could
may might must i me my mine we us our ours you your yours he him his she her hers it its they them their theirs
this that these those there here what which who whom whose when where why how whats hows wheres whos
some any all each every other another such own same than too very just also only really quite rather
get got getting give gives tell explain describe show let lets please need want like know find help
way ways steps step someone something thing things kind sort able possible best good quick quickly simple
simply exactly actually basically mean means meaning difference between vs versus during people
"""))
_SENTENCE_END = re.compile(r"[.!?:;]\s*$")

# Particles whose opposite changes the request ("turn on"/"turn off"); "into"/"onto" count as "in"/"on".
OPPOSITE_PARTICLES = (("on", "off"), ("up", "down"), ("in", "out"), ("over", "under"), ("above", "below"),
                      ("before", "after"), ("forward", "backward"), ("upstairs", "downstairs"), ("to", "from"),
                      ("all", "some"), ("every", "some"), ("always", "sometimes"), ("always", "rarely"),
                      ("often", "rarely"))
_DIRECTIONAL = frozenset(_words("on off up down in out over under above below forward backward"))
QUESTION_WORDS = frozenset(_words("who when where why whom whose"))
RELATIONS = frozenset(_words("to from than into vs versus"))   # words after which the order of names matters
_PARTICLE_OF = {"into": "in", "onto": "on"}
_PARTICLES = frozenset(w for pair in OPPOSITE_PARTICLES for w in pair)
ANTONYMS = tuple(tuple(pair.split("/")) for pair in _words("""
buy/sell sell/rent buy/rent increase/decrease upload/download import/export open/close start/stop start/end
begin/end add/remove add/delete create/delete create/remove show/hide allow/deny allow/block accept/reject
include/exclude push/pull send/receive win/lose minimum/maximum min/max first/last early/late earlier/later
old/new older/newer oldest/newest young/old hot/cold high/low higher/lower highest/lowest fast/slow faster/slower
big/small large/small bigger/smaller larger/smaller long/short longer/shorter good/bad better/worse worst/best
more/less most/least many/few cheap/expensive cheapest/expensive heavy/light strong/weak positive/negative
true/false safe/dangerous pros/cons north/south east/west left/right top/bottom front/back inner/outer
input/output upper/lower uppercase/lowercase ascending/descending vertical/horizontal plus/minus
multiply/divide encode/decode grant/revoke increase/reduce raise/lower reduce/raise merge/split
join/leave arrive/depart arrival/departure incoming/outgoing
inbound/outbound credit/debit deposit/withdraw borrow/lend enable/disable install/remove assign/unassign
attach/detach mount/unmount freeze/unfreeze zip/unzip pause/resume publish/unpublish approve/reject
compress/extract sunrise/sunset
"""))
_NEGATING_PREFIXES = ("un", "dis", "de", "in", "im", "il", "ir", "non", "anti")
TIME_WORDS = frozenset(_words("""
today tomorrow yesterday tonight morning afternoon evening night noon midnight weekend weekday daily weekly
monthly yearly annually hourly monday tuesday wednesday thursday friday saturday sunday january february march
april may june july august september october november december spring summer autumn fall winter
"""))


@dataclass(frozen=True, slots=True)
class Facts:
    numbers: Counter[str]
    negated: bool
    names: frozenset[str]
    content: frozenset[str]
    order: tuple[str, ...]        # content words in order of first appearance
    particles: frozenset[str]     # the opposable particles present (see OPPOSITE_PARTICLES)
    name_order: tuple[str, ...]   # names in order of first appearance
    relational: bool              # one of RELATIONS appears
    questions: frozenset[str]     # the QUESTION_WORDS present


def stem(word: str) -> str:
    """A light suffix-stripping stem (equates "passwords"/"password", "causes"/"cause", "resetting"/"reset")."""
    if word.endswith("'s"):
        word = word[:-2]
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        word = word[:-1]
    for suffix in ("ations", "ation", "ing", "edly", "ed", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def facts(text: str) -> Facts:
    """What :func:`differs` compares of one text."""
    numbers: Counter[str] = Counter()
    names: set[str] = set()
    content: set[str] = set()
    order: list[str] = []
    particles: set[str] = set()
    name_order: list[str] = []
    relational = False
    questions: set[str] = set()
    negated = False
    previous_end = True

    def name(value: str) -> None:
        if value not in names:
            names.add(value)
            name_order.append(value)

    for match in _TOKEN.finditer(text):
        token = match.group(0)
        start = match.start()
        sentence_start = previous_end
        previous_end = bool(_SENTENCE_END.search(text[match.end(): match.end() + 2]))
        if token[0] in "\"'`":
            name(token[1:-1].strip().lower())
            continue
        core = token.strip("'.")
        core = core[:-2] if core.endswith("'s") and len(core) > 2 else core
        lower = core.lower()
        bare = lower.replace("'", "")
        if _NUMBER.match(core):
            numbers[core.replace(",", "").rstrip("%") + ("%" if core.endswith("%") else "")] += 1
            continue
        if lower in NUMBER_WORDS:
            numbers[NUMBER_WORDS[lower]] += 1
            continue
        if bare in NEGATIONS or lower.endswith("n't"):
            negated = True
            continue
        if any(c.isdigit() for c in core) or any(c in core for c in "_./:+") or (core.isupper() and len(core) > 1):
            name(lower)
            continue
        if core[:1].isupper() and not sentence_start and not (start > 0 and text[start - 1] in "\"'(") \
                and (lower not in STOP_WORDS or len(core) == 1) and lower != "i":
            name(lower)   # a name, or a single capital letter mid-sentence ("server A")
            continue
        relational = relational or bare in RELATIONS
        if bare in QUESTION_WORDS:
            questions.add(bare)
        particle = _PARTICLE_OF.get(bare, bare)
        if particle in _PARTICLES:
            particles.add(particle)
        if bare in STOP_WORDS or len(bare) < 2:
            continue
        word = stem(bare)
        if word not in content:
            content.add(word)
            order.append(word)
    return Facts(numbers, negated, frozenset(names), frozenset(content), tuple(order), frozenset(particles),
                 tuple(name_order), relational, frozenset(questions))


def differs(a: str | Facts, b: str | Facts, *, partner: WordSimilarity | None = None, word_threshold: float = 0.6,
            max_swaps: int = 1) -> str | None:
    """Why ``a`` and ``b`` must not share an answer, or ``None`` (see the module contract)."""
    fa = a if isinstance(a, Facts) else facts(a)
    fb = b if isinstance(b, Facts) else facts(b)
    if fa.numbers != fb.numbers:
        return "numbers differ"
    if fa.negated != fb.negated:
        return "negation differs"
    if _unmatched_names(fa, fb) or _unmatched_names(fb, fa):
        return "names differ"
    for x, y in OPPOSITE_PARTICLES:
        if (x in fa.particles and y in fb.particles and y not in fa.particles and x not in fb.particles) or \
                (y in fa.particles and x in fb.particles and x not in fa.particles and y not in fb.particles):
            return f"direction differs '{x}'/'{y}'"
    directions_a, directions_b = _directions(fa), _directions(fb)
    if directions_a and directions_b and not directions_a & directions_b:
        return "direction differs"
    if fa.questions != fb.questions:
        return "question words differ"
    if fa.relational and fb.relational and fa.names == fb.names and fa.name_order != fb.name_order:
        return "order of names differs"
    names = {stem(n) for n in fa.names | fb.names}
    only_a = sorted(fa.content - fb.content - names)
    only_b = sorted(fb.content - fa.content - names)
    if not only_a and not only_b:
        if fa.content == fb.content and fa.order != fb.order:
            return "word order differs"
        return None
    for word in (*only_a, *only_b):
        if word in _TIME_STEMS:
            return f"time word {word!r} differs"
    for word in only_a:
        for other in only_b:
            if opposite(word, other):
                return f"opposite words {word!r}/{other!r}"
    if partner is None or len(only_a) != len(only_b) or len(only_a) > max_swaps:
        return "content words differ"
    for word in only_a:
        if max(partner(word, other) for other in only_b) < word_threshold:
            return f"content word {word!r} differs"
    return None


_ANTONYM_STEMS = frozenset(frozenset((stem(a), stem(b))) for a, b in ANTONYMS)
_TIME_STEMS = frozenset(stem(w) for w in TIME_WORDS)


def _directions(f: Facts) -> frozenset[str]:
    """The direction particles of a text, "on" counted as "in" ("in Linux" / "on Linux" say the same)."""
    return frozenset("in" if p == "on" else p for p in f.particles & _DIRECTIONAL)


def opposite(a: str, b: str) -> bool:
    """Whether two stemmed content words are opposites: a listed antonym pair, or one is the other with a
    negating prefix (lock/unlock, advantag/disadvantag, crypt-style encrypt/decrypt via the list)."""
    if frozenset((a, b)) in _ANTONYM_STEMS:
        return True
    short, long_ = sorted((a, b), key=len)
    return len(short) >= 3 and any(long_ == prefix + short for prefix in _NEGATING_PREFIXES)


def _unmatched_names(x: Facts, y: Facts) -> bool:
    """Whether a name of ``x`` is missing from ``y`` (as a name or as a word)."""
    return any(name not in y.names and stem(name) not in y.content for name in x.names)


@dataclass(frozen=True, slots=True)
class TermRule:
    """What every text that :func:`differs` could accept against a query contains (see :func:`term_rule`)."""

    mandatory: frozenset[str]     # every one of these
    optional: frozenset[str]      # at least ``need`` of these
    need: int


def index_terms(text: str) -> frozenset[str]:
    """The terms of a stored text that :func:`term_rule` asks for: content words, stemmed names, numbers."""
    f = facts(text)
    return f.content | {stem(n) for n in f.names} | {"#" + n for n in f.numbers}


def term_rule(text: str | Facts, max_swaps: int = 1) -> TermRule:
    """A necessary condition for ``differs(text, other, max_swaps=max_swaps)`` to be ``None``, on
    ``index_terms(other)``: the other text has each of the query's numbers and (stemmed) names, and all of its
    other content words but at most ``max_swaps``. Lets a search skip texts the guard would refuse anyway."""
    f = text if isinstance(text, Facts) else facts(text)
    names = frozenset(stem(n) for n in f.names)
    optional = f.content - names
    return TermRule(names | {"#" + n for n in f.numbers}, optional, max(0, len(optional) - max_swaps))
