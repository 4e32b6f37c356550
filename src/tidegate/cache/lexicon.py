"""Small English word lists the trap guard reads: function words, numbers, dates, polarity.

They are deliberately short and generic (support-desk English, not a dictionary): the guard only
has to notice that two near-identical questions differ in a word that changes the answer. A
word missing here costs a refused hit (a miss), never a wrong answer, except for the synonym
groups, which are kept to words that are interchangeable in requests ("change"/"update").
"""

from __future__ import annotations

__all__ = [
    "ANTONYMS",
    "CONJUNCTIONS",
    "CONTRACTIONS",
    "DATE_MODIFIERS",
    "DATE_UNITS",
    "DATE_WORDS",
    "DIRECTIONAL",
    "NEGATING_PREFIXES",
    "NEGATIONS",
    "NUMBER_WORDS",
    "ROMAN",
    "STOPWORDS",
    "SYNONYMS",
]

STOPWORDS = frozenset(
    """
    a an the this that these those my your our their his her its me you we they he she it i us
    them him mine yours ours theirs myself yourself
    is am are was were be been being do does did doing done have has had having will would shall
    should can could may might must
    how what when where why which who whom whose whether if then than so as
    of for at by with about into onto from to
    and or but also too very really just please pls thanks thank hi hello hey ok okay
    there here some any all each every other another such own same more most much many
    way possible able like want need would'd 'd let know tell explain
    """.split()
)
"""Words that never decide an answer by themselves. Prepositions carrying direction or place
(in/out/on/off/up/down/before/after) are *not* here: "log in" vs "log out" differ in exactly
those."""

CONTRACTIONS = {
    "can't": "can not", "cannot": "can not", "won't": "will not", "shan't": "shall not",
    "n't": " not", "what's": "what is", "whats": "what is", "where's": "where is",
    "wheres": "where is", "how's": "how is", "hows": "how is", "who's": "who is",
    "it's": "it is", "that's": "that is", "there's": "there is", "i'm": "i am", "im": "i am",
    "i've": "i have", "i'd": "i would", "i'll": "i will", "you're": "you are",
    "let's": "let us", "ain't": "is not",
}  # fmt: skip

NEGATIONS = frozenset(
    "not no non never none nothing nobody nowhere neither nor without unable lack lacking".split()
)

NEGATING_PREFIXES = ("un", "in", "im", "ir", "il", "dis", "non", "de", "mis")
"""``valid``/``invalid``, ``install``/``uninstall``, ``activate``/``deactivate``: a token equal to
the other question's token with one of these in front flips the meaning."""

NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
    "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40",
    "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
    "hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000",
    "dozen": "12", "half": "0.5", "quarter": "0.25", "once": "1", "twice": "2", "thrice": "3",
    "single": "1", "double": "2", "triple": "3", "both": "2",
    "first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5", "sixth": "6",
    "seventh": "7", "eighth": "8", "ninth": "9", "tenth": "10",
}  # fmt: skip
"""``one`` after a determiner ("which one", "the second one") is a pronoun, not a number; the
tokenizer drops it there."""

ROMAN = {"ii": "2", "iii": "3", "iv": "4", "vi": "6", "vii": "7", "viii": "8", "ix": "9"}

DATE_WORDS = {
    **{d: d for d in "monday tuesday wednesday thursday friday saturday sunday".split()},
    **{d + "s": d for d in "monday tuesday wednesday thursday friday saturday sunday".split()},
    "mon": "monday", "tue": "tuesday", "tues": "tuesday", "thu": "thursday",
    "thur": "thursday", "thurs": "thursday", "fri": "friday",
    **{m: m for m in (
        "january february march april may june july august september october november december"
    ).split()},
    "jan": "january", "feb": "february", "apr": "april", "jun": "june",
    "jul": "july", "aug": "august", "sep": "september", "sept": "september", "oct": "october",
    "nov": "november", "dec": "december",
    "today": "today", "tonight": "tonight", "tomorrow": "tomorrow", "yesterday": "yesterday",
    "morning": "morning", "mornings": "morning", "afternoon": "afternoon",
    "afternoons": "afternoon", "evening": "evening", "evenings": "evening", "night": "night",
    "nights": "night", "noon": "noon", "midday": "noon", "midnight": "midnight",
    "lunch": "lunch", "dinner": "dinner", "breakfast": "breakfast", "brunch": "brunch",
    "weekend": "weekend", "weekends": "weekend", "weekday": "weekday", "weekdays": "weekday",
    "spring": "spring", "springtime": "spring", "summer": "summer", "summertime": "summer",
    "fall": "autumn", "autumn": "autumn", "winter": "winter", "wintertime": "winter",
    "christmas": "christmas", "xmas": "christmas", "easter": "easter",
    "thanksgiving": "thanksgiving", "halloween": "halloween",
    "before": "before", "after": "after", "until": "until", "till": "until", "since": "since",
    "earlier": "earlier", "later": "later", "ago": "ago",
}  # fmt: skip
"""Bare units (day, week, month) are not here: "per day" vs "per week" is caught as a changed
word, and "how long" vs "how many days" should still match. ``may`` and ``march`` count only
when capitalized mid-sentence or next to a number (they are also a modal and a verb)."""

DATE_UNITS = {
    "day": "day", "days": "day", "week": "week", "weeks": "week", "month": "month",
    "months": "month", "year": "year", "years": "year", "hour": "hour", "hours": "hour",
    "semester": "semester", "quarter": "quarter", "night": "night",
}  # fmt: skip
"""Units that become date tokens only after a modifier ("next week", "last month")."""

DATE_MODIFIERS = frozenset("this next last previous coming past same following current".split())

ANTONYMS = [
    ("open", "close"), ("open", "closed"), ("open", "shut"), ("enable", "disable"),
    ("on", "off"), ("in", "out"), ("up", "down"), ("add", "remove"), ("add", "delete"),
    ("increase", "decrease"), ("raise", "lower"), ("upgrade", "downgrade"), ("buy", "sell"),
    ("import", "export"), ("push", "pull"), ("read", "write"), ("start", "stop"),
    ("start", "end"), ("begin", "end"), ("send", "receive"), ("send", "request"),
    ("deposit", "withdraw"), ("show", "hide"), ("share", "hide"), ("succeed", "fail"),
    ("success", "failure"), ("pass", "fail"), ("accept", "reject"), ("accept", "decline"),
    ("approve", "reject"), ("approve", "deny"), ("allow", "block"), ("allow", "deny"),
    ("include", "exclude"), ("more", "less"), ("more", "fewer"), ("max", "min"),
    ("maximum", "minimum"), ("highest", "lowest"), ("cheapest", "expensive"),
    ("early", "late"), ("earliest", "latest"), ("sunrise", "sunset"), ("arrive", "depart"),
    ("arrival", "departure"), ("login", "logout"), ("credit", "debit"), ("income", "expense"),
    ("inbound", "outbound"), ("incoming", "outgoing"), ("upload", "download"),
    ("booked", "free"), ("busy", "free"), ("expired", "valid"), ("public", "private"),
    ("true", "false"), ("yes", "no"), ("hot", "cold"), ("new", "old"), ("new", "used"),
    ("light", "dark"), ("win", "lose"), ("gain", "loss"), ("with", "without"),
    ("above", "below"), ("over", "under"), ("inside", "outside"), ("forward", "backward"),
    ("ascending", "descending"), ("min", "max"), ("plus", "minus"), ("join", "leave"),
    ("pause", "resume"), ("first", "last"),
]  # fmt: skip

SYNONYMS = [
    "change update modify edit switch adjust amend",
    "get obtain receive",
    "cancel terminate",
    "delete erase",
    "buy purchase",
    "contact reach",
    "find locate",
    "book reserve",
    "help assist support",
    "issue problem trouble",
    "app application",
    "site website webpage",
    "mobile cellphone cell",
    "kid child children kids",
    "email mail",
    "info information details",
    "photo picture pic image",
    "fast quick quickly fast",
    "fee charge cost price pricing penalty",
    "sign signup register enroll enrol",
    "login signin",
    "big large",
    "small little",
    "start begin",
    "begin commence",
    "restart reboot",
    "combine merge",
    "job position role",
    "colleague teammate coworker",
    "shipment package parcel delivery",
    "reach talk speak",
    "person human agent representative",
    "allowed permitted",
    "improve increase boost",
    "verify confirm validate",
    "sync synchronize synchronise",
    "differ difference different",
    "create make",
    "setup configure",
    "schedule book",
    "dict dictionary",
    "config configuration",
    "repo repository",
    "doc docs document documentation",
]
"""Each line is one group of words interchangeable in requests (before stemming)."""

CONJUNCTIONS = frozenset("and or plus also nor".split())

DIRECTIONAL = frozenset("from to into than onto toward towards vs versus".split())
