"""Free-text recogniser: a small, fast, deterministic, rule-based intent classifier.

The rules are data: ``content/<locale>/intents.toml`` holds, for every intent, regular
expressions (Python ``re`` syntax, searched in the *normalized* text) and optional single-word
``keywords`` (exact, or Damerau-Levenshtein distance <= 1 when both the keyword and the word
are at least 6 letters long).

Every locale's rules are tried on every message. The intent earliest in :data:`INTENTS` that
matches in any locale wins; ``crisis`` comes first, so crisis language always wins and also
sets ``Recognition.crisis``. When several locales match that intent, the reported locale is
the one whose rules cover the longest stretch of the message (a Spanish sentence that happens
to contain the English-pattern word "admins" is Spanish); if that is still a tie, the
caller's current locale (``prefer``), else the first locale the recogniser was built with.

A second stage (:mod:`safebot.concepts`) reads the same files' ``[concepts]`` table, word
classes, and ``content/combinations.toml``, the classes that together mean an intent; its
matches count like a pattern match of that intent, in the locales whose words it used.

The same files' ``[markers]`` table lists everyday words of each language; the locale whose
marker words (distinct, times the table's ``weight``) a message holds most is
``Recognition.language``, which the engine uses to answer in the person's language.

Text examined: the first :data:`MAX_CHARS` characters after normalization, and for crisis
language the first :data:`CRISIS_MAX_CHARS`. Nothing here logs or keeps the text it sees,
except a bounded in-memory table of which rules a word can start, for words that start some
rule ("want", "pics", "suicdie"), so that common words are looked up once.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from safebot.concepts import Combination, Concepts, load_combinations

__all__ = ["INTENTS", "Recogniser", "Recognition", "normalize"]

INTENTS: tuple[str, ...] = (
    "crisis",
    "stop",
    "forget",
    "language",
    "q_pay",
    "q_delete",
    "takedown",
    "disclosure",
    "report",
    "block",
    "understand",
    "todo",
    "resources",
    "menu",
)
"""Every intent, in priority order: when several match, the earlier one wins. A threat comes
before blocking or reporting: "if i block him he posts my pics" is a disclosure first."""

_RANK: dict[str, int] = {name: rank for rank, name in enumerate(INTENTS)}
_CRISIS = _RANK["crisis"]

MAX_CHARS = 2_000
"""Intents are looked for in the first ``MAX_CHARS`` characters of the normalized text."""
CRISIS_MAX_CHARS = 8_000
"""Crisis language is looked for further: a long story may end with it."""
_RAW_MAX_CHARS = 16_000
"""Characters of raw input normalized at most (normalizing is linear, but why pay for more)."""

FUZZY_MIN_LEN = 6
"""Keywords and words at least this long match with one edit (typo) allowed."""

_ALLOWED_KEYS = frozenset({"patterns", "keywords"})
_MARKERS = "markers"
"""The table in intents.toml that lists a language's marker words (not an intent)."""
_CONCEPTS = "concepts"
"""The table in intents.toml that sorts words into concepts (see safebot/concepts.py)."""
_NOT_INTENTS = frozenset({_MARKERS, _CONCEPTS})
COMBINATIONS = "combinations.toml"
"""The shared file, next to the locale folders, of concept combinations that mean an intent."""

# --- normalization ------------------------------------------------------------------------

# Apostrophe-like characters are removed ("don't" -> "dont", "he'll" -> "hell") so patterns
# never need them and match the common apostrophe-less spelling too. Some must go before
# NFKC, which turns the acute accent into a space plus a combining mark.
_APOSTROPHES = "'`´ʹʻʼʽˈ՚‘’‛′＇"
_PRE_NFKC = str.maketrans(dict.fromkeys(_APOSTROPHES, None))

# Look-alike letters from other scripts, after casefolding (Cyrillic, Greek).
_CONFUSABLES: dict[str, str] = {
    "а": "a",
    "в": "b",
    "е": "e",
    "ё": "e",
    "к": "k",
    "м": "m",
    "н": "h",
    "о": "o",
    "р": "p",
    "с": "c",
    "т": "t",
    "у": "y",
    "х": "x",
    "ѕ": "s",
    "і": "i",
    "ї": "i",
    "ј": "j",
    "ԁ": "d",
    "ԛ": "q",
    "ԝ": "w",
    "ӏ": "l",
    "α": "a",
    "β": "b",
    "ε": "e",
    "ι": "i",
    "κ": "k",
    "ν": "v",
    "ο": "o",
    "ρ": "p",
    "τ": "t",
    "υ": "u",
    "χ": "x",
}


class _FoldTable(dict[int, "str | None"]):
    """``str.translate`` table that decides each character once and remembers it.

    Drops combining marks (accents, after NFKD), format characters (zero-width, bidi
    controls, soft hyphen), other control characters, surrogates, private-use and
    unassigned code points and apostrophes; turns every kind of whitespace and ``_`` into a
    space; maps look-alike letters to ASCII.
    """

    __slots__ = ()
    _LIMIT = 50_000  # cache at most this many code points

    def __missing__(self, key: int) -> str | None:
        value = _fold_char(chr(key))
        if len(self) < self._LIMIT:
            self[key] = value
        return value


def _fold_char(ch: str) -> str | None:
    if ch in _APOSTROPHES:
        return None
    if ch.isspace() or ch == "_":
        return " "
    category = unicodedata.category(ch)
    if category[0] in "CM":  # Cc Cf Cs Co Cn, Mn Mc Me
        return None
    return _CONFUSABLES.get(ch, ch)


_FOLD = _FoldTable()
_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
# Leet only between two letters: "k1ll" -> "kill", "n00dz" -> "noodz"; "$500" and "1k" stay.
_LEET_RE = re.compile(r"(?<=[^\W\d_])[013457@$!]+(?=[^\W\d_])")
_REPEAT_RE = re.compile(r"([^\W\d_])\1{2,}")
_WORD_RE = re.compile(r"[^\W_]+")


def _unleet(match: re.Match[str]) -> str:
    return "".join(_LEET[ch] for ch in match.group())


def normalize(text: str) -> str:
    """The form patterns are written against.

    NFKC, casefold, accents stripped (NFKD without combining marks), format/control
    characters and apostrophes removed, look-alike letters and in-word leet mapped to
    ASCII, runs of 3+ identical letters cut to 2, whitespace collapsed and stripped.
    Digits, ``$`` and other punctuation are kept.
    """
    if text.isascii():
        text = text.lower()
    else:
        text = unicodedata.normalize("NFKC", text.translate(_PRE_NFKC)).casefold()
        text = unicodedata.normalize("NFKD", text)
    text = text.translate(_FOLD)
    if _LEET_RE.search(text) is not None:
        text = _LEET_RE.sub(_unleet, text)
    text = _REPEAT_RE.sub(r"\1\1", text)
    return " ".join(text.split())


# --- keyword matching ---------------------------------------------------------------------


def _within_one_edit(a: str, b: str) -> bool:
    """Optimal-string-alignment (restricted Damerau-Levenshtein) distance <= 1."""
    la, lb = len(a), len(b)
    if la > lb:
        a, b, la, lb = b, a, lb, la
    if lb - la > 1:
        return False
    i = 0
    while i < la and a[i] == b[i]:
        i += 1
    if i == la:
        return True  # equal, or b has one extra character at the end
    if la == lb:
        if a[i + 1 :] == b[i + 1 :]:
            return True  # one substitution
        return i + 1 < la and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2 :] == b[i + 2 :]
    return a[i:] == b[i + 1 :]  # one insertion


def _variants(word: str) -> list[str]:
    """The word and every one-character deletion of it (symmetric-delete candidates)."""
    return [word] + [word[:i] + word[i + 1 :] for i in range(len(word))]


# --- pattern index --------------------------------------------------------------------------
#
# Searching ~400 patterns from every position of every message is slow in Python's ``re``
# (tens of microseconds). Most patterns start with ``\b`` and a word from a small set
# ("\b(?:want|wanna)\W+..."), so at load time each pattern's possible FIRST WORDS are read off
# it: either whole words (the word ends inside the pattern) or word prefixes. A message then
# only tries a pattern with ``match`` at the start of a word that fits. This is an exact
# optimisation: a pattern the small reader below cannot follow (``^\W*...``, lookbehinds
# mid-word, inline flags, anything unusual) is simply searched the ordinary way.
#
# The reader is written here, for the plain subset of ``re`` syntax the rule files use, rather
# than borrowed from CPython's private ``re._parser``, which may change in any release.

_PREFIX_KEY = 3  # word-prefix keys are cut to this many characters
_MAX_STARTS = 512  # give up (search normally) past this many first words
_MAX_CLASS = 12  # a [...] class with more word characters than this is not listed

_Partial = tuple[str, bool]  # text of the first word so far, "starts at a word start"
_Finished = tuple[str, bool, bool]  # text, starts at a word start, word is complete

# Parsed pattern pieces:
#   ("lit", ch)                   one literal character
#   ("class", chars, nonword)     a character set: the word characters it matches (None: too
#                                 many to list) and whether it can match a non-word character
#   ("bound",)                    \b
#   ("start",) / ("end",)         ^ / $
#   ("zero",)                     a lookahead or lookbehind (zero-width, ignored)
#   ("alt", [[piece, ...], ...])  a group: its alternatives
#   ("rep", low, high, piece)     a repeated piece (high None: no upper bound)
_Piece = tuple[Any, ...]

_NONWORD: _Piece = ("class", frozenset(), True)
_ANY: _Piece = ("class", None, True)
_DIGITS: _Piece = ("class", frozenset("0123456789"), False)
_ESCAPES: dict[str, _Piece] = {
    "b": ("bound",),
    "W": _NONWORD,
    "s": _NONWORD,
    "d": _DIGITS,
    "w": _ANY,
    "S": _ANY,
    "D": _ANY,
}


class _Unreadable(Exception):
    pass


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


class _Reader:
    """Reads a pattern into pieces; raises _Unreadable on anything outside the plain subset."""

    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.pos = 0

    def read(self) -> list[_Piece]:
        options = self._alternatives()
        if self.pos != len(self.text):
            raise _Unreadable
        return options[0] if len(options) == 1 else [("alt", options)]

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _next(self) -> str:
        ch = self._peek()
        if not ch:
            raise _Unreadable
        self.pos += 1
        return ch

    def _alternatives(self) -> list[list[_Piece]]:
        options = [self._sequence()]
        while self._peek() == "|":
            self.pos += 1
            options.append(self._sequence())
        return options

    def _sequence(self) -> list[_Piece]:
        pieces: list[_Piece] = []
        while self._peek() not in ("", "|", ")"):
            pieces.append(self._quantified(self._atom()))
        return pieces

    def _atom(self) -> _Piece:
        ch = self._next()
        if ch == "(":
            zero = False
            if self.text.startswith("?:", self.pos):
                self.pos += 2
            elif self.text.startswith(("?=", "?!"), self.pos):
                self.pos, zero = self.pos + 2, True
            elif self.text.startswith(("?<=", "?<!"), self.pos):
                self.pos, zero = self.pos + 3, True
            elif self._peek() == "?":
                raise _Unreadable  # inline flags, named groups, conditionals
            options = self._alternatives()
            if self._next() != ")":
                raise _Unreadable
            return ("zero",) if zero else ("alt", options)
        if ch == "[":
            return self._class()
        if ch == "\\":
            return self._escape()
        if ch == ".":
            return _ANY
        if ch == "^":
            return ("start",)
        if ch == "$":
            return ("end",)
        if ch in "*+?{)":
            raise _Unreadable
        return ("lit", ch)

    def _escape(self) -> _Piece:
        ch = self._next()
        if ch in _ESCAPES:
            return _ESCAPES[ch]
        if ch.isalnum():
            raise _Unreadable  # \A, \Z, \B, \x.., \u...., back-references
        return ("lit", ch)

    def _class(self) -> _Piece:
        if self._peek() == "^":
            raise _Unreadable
        chars: set[str] = set()
        nonword, listed, first = False, True, True
        while True:
            ch = self._next()
            if ch == "]" and not first:
                break
            first = False
            if ch == "\\":
                piece = self._escape()
                if piece[0] != "class" and piece[0] != "lit":
                    raise _Unreadable
                if piece[0] == "lit":
                    chars.add(piece[1])
                else:
                    nonword = nonword or piece[2]
                    if piece[1] is None:
                        listed = False
                    else:
                        chars.update(piece[1])
                continue
            if self._peek() == "-" and self.text[self.pos + 1 : self.pos + 2] not in ("]", ""):
                self.pos += 1
                end = self._next()
                if end == "\\" or ord(end) < ord(ch):
                    raise _Unreadable
                if ord(end) - ord(ch) >= _MAX_CLASS:
                    listed = False
                else:
                    chars.update(chr(c) for c in range(ord(ch), ord(end) + 1))
                continue
            chars.add(ch)
        word = frozenset(c for c in chars if _is_word_char(c))
        nonword = nonword or len(word) < len(chars)
        if not listed or len(word) > _MAX_CLASS:
            return ("class", None, True)
        return ("class", word, nonword)

    def _quantified(self, piece: _Piece) -> _Piece:
        ch = self._peek()
        if ch == "?":
            low, high = 0, 1
        elif ch == "*":
            low, high = 0, None
        elif ch == "+":
            low, high = 1, None
        elif ch == "{":
            end = self.text.find("}", self.pos)
            bounds = self.text[self.pos + 1 : end].split(",") if end > 0 else []
            if not 1 <= len(bounds) <= 2 or not all(b.isdigit() for b in bounds if b):
                raise _Unreadable
            low = int(bounds[0] or 0)
            high = None if len(bounds) == 2 and not bounds[1] else int(bounds[-1])
            self.pos = end
        else:
            return piece
        if piece[0] in ("zero", "bound", "start", "end"):
            raise _Unreadable
        self.pos += 1
        if self._peek() in ("?", "+"):
            self.pos += 1  # lazy or possessive: the same characters can match
        return ("rep", low, high, piece)


def _walk(pieces: list[_Piece], partials: list[_Partial]) -> tuple[list[_Partial], list[_Finished]]:
    """Follow a sequence of pieces from ``partials``: the first words still being read (open)
    and those finished (complete at a non-word character or ``\\b``, or cut short)."""
    finished: list[_Finished] = []
    current = partials
    for piece in pieces:
        if not current:
            break
        following: list[_Partial] = []
        for text, anchored in current:
            opened, done = _step(piece, text, anchored)
            following.extend(opened)
            finished.extend(done)
        current = list(dict.fromkeys(following))
        if len(current) + len(finished) > _MAX_STARTS:
            raise _Unreadable
    return current, finished


def _step(piece: _Piece, text: str, anchored: bool) -> tuple[list[_Partial], list[_Finished]]:
    stop: tuple[list[_Partial], list[_Finished]] = ([], [(text, anchored, False)])
    complete: tuple[list[_Partial], list[_Finished]] = ([], [(text, anchored, True)])
    kind = piece[0]
    if kind in ("bound", "start"):
        if not text:
            return [(text, True)], []
        return complete if kind == "bound" else stop
    if kind == "end":
        return stop
    if kind == "zero":
        return [(text, anchored)], []  # ignoring a zero-width test only allows more
    if kind == "lit":
        return ([(text + piece[1], anchored)], []) if _is_word_char(piece[1]) else complete
    if kind == "class":
        _, word_chars, nonword = piece
        if word_chars is None:
            return stop
        opened = [(text + ch, anchored) for ch in sorted(word_chars)]
        return opened, complete[1] if nonword else []
    if kind == "alt":
        opened, done = [], []
        for alternative in piece[1]:
            more_opened, more_done = _walk(alternative, [(text, anchored)])
            opened.extend(more_opened)
            done.extend(more_done)
        return opened, done
    _, low, high, sub = piece  # "rep"
    opened = [(text, anchored)] if low == 0 else []
    once_opened, done = _walk([sub], [(text, anchored)])
    if high == 1:
        opened.extend(once_opened)
    else:  # more copies may follow: what was read so far is only a prefix
        done = done + [(t, a, False) for t, a in once_opened]
    return opened, done


def _first_words(pattern: str) -> tuple[frozenset[str], frozenset[str]] | None:
    """``(words, prefixes)``: every match starts at the start of a word that is one of
    ``words`` or starts with one of ``prefixes``. None when that cannot be read off."""
    try:
        opened, finished = _walk(_Reader(pattern).read(), [("", False)])
    except (_Unreadable, RecursionError):
        return None
    finished = finished + [(text, anchored, False) for text, anchored in opened]
    if not finished or any(not text or not anchored for text, anchored, _ in finished):
        return None
    words = frozenset(text for text, _, whole in finished if whole)
    prefixes = frozenset(text[:_PREFIX_KEY] for text, _, whole in finished if not whole)
    return words, prefixes


def _is_anchored(pattern: str) -> bool:
    """The pattern can only match at the very start of the text (a leading ``^``)."""
    return pattern.startswith("^") and not _top_level_bar(pattern)


# --- the recogniser -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recognition:
    intent: str | None
    """The best intent, or None when nothing matched."""
    locale: str | None
    """The locale whose patterns produced ``intent`` (None when nothing matched)."""
    crisis: bool
    """Crisis language was present, whatever else matched."""
    language: str | None = None
    """The locale the text is written in, from its marker words (None: no telling)."""
    language_words: int = 0
    """How many distinct marker words of ``language`` the text holds."""


_NOTHING = Recognition(intent=None, locale=None, crisis=False)

_Entry = tuple[int, int, re.Pattern[str]]  # locale index, rank, one compiled pattern
_WordInfo = tuple[tuple[tuple[int, int], ...], tuple[_Entry, ...]]
_MEMO_WORDS = 20_000  # words whose lookups are remembered


@dataclass(frozen=True, slots=True)
class _Locale:
    name: str
    patterns: tuple[re.Pattern[str] | None, ...]
    """Per rank, all patterns in one alternation (for evidence and long texts)."""
    anchored: tuple[re.Pattern[str] | None, ...]
    """Per rank, the ``^`` patterns: tried once, at the start."""
    floating: tuple[re.Pattern[str] | None, ...]
    """Per rank, patterns the index cannot serve: searched everywhere."""


def _check_pattern(where: str, pattern: object) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"{where}: patterns must be non-empty strings")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{where}: bad pattern {pattern!r}: {exc}") from None
    literal = re.sub(r"\\.", "", pattern)
    for ch in literal:
        if not ch.isspace() and normalize(ch) != ch:
            raise ValueError(
                f"{where}: pattern {pattern!r} contains {ch!r}, which normalized text never "
                "holds (write lowercase, unaccented, without apostrophes)"
            )
    return pattern


def _check_keyword(where: str, keyword: object) -> str:
    if not isinstance(keyword, str):
        raise ValueError(f"{where}: keywords must be strings")
    normalized = normalize(keyword)
    if not _WORD_RE.fullmatch(normalized):
        raise ValueError(f"{where}: keyword {keyword!r} must be a single word")
    return normalized


def _combine(where: str, patterns: Sequence[str]) -> re.Pattern[str] | None:
    """One alternation for a list of patterns. Those starting with ``\\b`` share it, so the
    engine rejects a position inside a word once rather than once per pattern."""
    if not patterns:
        return None
    at_word = [p[2:] for p in patterns if p.startswith("\\b") and not _top_level_bar(p)]
    others = [p for p in patterns if not (p.startswith("\\b") and not _top_level_bar(p))]
    parts = [f"(?:{p})" for p in others]
    if at_word:
        parts.insert(0, "\\b(?:" + "|".join(f"(?:{p})" for p in at_word) + ")")
    try:
        return re.compile("|".join(parts))
    except re.error as exc:  # e.g. inline global flags mid-pattern
        raise ValueError(f"{where}: patterns do not combine: {exc}") from None


def _top_level_bar(pattern: str) -> bool:
    """Does ``pattern`` have a ``|`` outside any group or class?"""
    depth = 0
    in_class = escaped = False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            return True
    return False


class Recogniser:
    """Recognises intents in free text for a fixed set of locales. Immutable; safe to share
    between threads and tasks."""

    __slots__ = (
        "_by_prefix",
        "_by_word",
        "_concepts",
        "_exact",
        "_fuzzy",
        "_fuzzy_max",
        "_locales",
        "_markers",
        "_memo",
        "_weights",
    )

    def __init__(
        self,
        locales: Sequence[_Locale],
        by_word: Mapping[str, tuple[_Entry, ...]],
        by_prefix: Mapping[str, tuple[_Entry, ...]],
        exact: Mapping[str, frozenset[tuple[int, int]]],
        fuzzy: Mapping[str, tuple[tuple[str, int, int], ...]],
        markers: Mapping[str, int] | None = None,
        weights: Sequence[float] = (),
        concepts: Concepts | None = None,
    ) -> None:
        self._locales = tuple(locales)
        self._by_word = dict(by_word)  # first word -> patterns that can start with it
        self._by_prefix = dict(by_prefix)  # first 1-3 letters -> patterns
        self._exact = dict(exact)  # keyword -> {(locale index, rank)}
        self._fuzzy = dict(fuzzy)  # deletion variant -> ((keyword, locale index, rank), ...)
        self._fuzzy_max = max((len(k) for hits in fuzzy.values() for k, _, _ in hits), default=0)
        self._memo: dict[str, _WordInfo] = {}  # rule word -> _word_info(word), bounded
        self._markers = dict(markers or {})  # marker word -> the one locale index it shows
        self._weights = tuple(weights) or (1.0,) * len(self._locales)
        self._concepts = concepts

    @classmethod
    def from_dir(cls, content_dir: Traversable | Path, locales: Sequence[str]) -> Recogniser:
        """Load ``<content_dir>/<locale>/intents.toml`` for each locale, in order."""
        tables: dict[str, Mapping[str, Any]] = {}
        for locale in locales:
            data = content_dir.joinpath(locale).joinpath("intents.toml").read_bytes()
            try:
                tables[locale] = tomllib.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise ValueError(f"{locale}/intents.toml: {exc}") from exc
        path = content_dir.joinpath(COMBINATIONS)
        combinations = load_combinations(path) if path.is_file() else ()
        return cls.from_tables(tables, combinations)

    @classmethod
    def from_tables(
        cls,
        tables: Mapping[str, Mapping[str, Any]],
        combinations: Sequence[Combination] = (),
    ) -> Recogniser:
        """Build from parsed tables: ``{locale: {intent: {"patterns": [...], "keywords":
        [...]}}}``. Locale order matters for ties. Raises ValueError on anything malformed:
        an unknown intent or key, a pattern that does not compile or could never match
        normalized text, a keyword that is not one word, a concept combination naming an
        unknown intent or concept."""
        locales: list[_Locale] = []
        by_word: dict[str, list[_Entry]] = {}
        by_prefix: dict[str, list[_Entry]] = {}
        exact: dict[str, set[tuple[int, int]]] = {}
        fuzzy: dict[str, list[tuple[str, int, int]]] = {}
        marker_sets: list[frozenset[str]] = []
        weights: list[float] = []
        concept_tables: list[Mapping[str, Any]] = []
        for index, (locale, table) in enumerate(tables.items()):
            if not isinstance(table, Mapping):
                raise ValueError(f"{locale}: expected a table of intents")
            words, weight = _check_markers(locale, table.get(_MARKERS, {}))
            marker_sets.append(words)
            weights.append(weight)
            concept_tables.append(table.get(_CONCEPTS, {}))
            table = {key: value for key, value in table.items() if key not in _NOT_INTENTS}
            unknown = sorted(set(table) - set(INTENTS))
            if unknown:
                raise ValueError(f"{locale}: unknown intents {unknown}; known: {list(INTENTS)}")
            every: list[re.Pattern[str] | None] = [None] * len(INTENTS)
            anchored: list[re.Pattern[str] | None] = [None] * len(INTENTS)
            floating: list[re.Pattern[str] | None] = [None] * len(INTENTS)
            for intent, spec in table.items():
                where = f"{locale}.{intent}"
                rank = _RANK[intent]
                if not isinstance(spec, Mapping):
                    raise ValueError(f"{where}: expected a table")
                bad_keys = sorted(set(spec) - _ALLOWED_KEYS)
                if bad_keys:
                    raise ValueError(f"{where}: unknown keys {bad_keys}")
                patterns = spec.get("patterns", [])
                keywords = spec.get("keywords", [])
                if not isinstance(patterns, list) or not isinstance(keywords, list):
                    raise ValueError(f"{where}: patterns and keywords must be lists")
                checked = [_check_pattern(where, p) for p in patterns]
                every[rank] = _combine(where, checked)
                at_start: list[str] = []
                elsewhere: list[str] = []
                for pattern in checked:
                    starts = _first_words(pattern)
                    if starts is None:
                        (at_start if _is_anchored(pattern) else elsewhere).append(pattern)
                        continue
                    entry = (index, rank, re.compile(pattern))
                    words, prefixes = starts
                    for word in words:
                        by_word.setdefault(word, []).append(entry)
                    for prefix in prefixes:
                        by_prefix.setdefault(prefix, []).append(entry)
                anchored[rank] = _combine(where, at_start)
                floating[rank] = _combine(where, elsewhere)
                for keyword in keywords:
                    word = _check_keyword(where, keyword)
                    exact.setdefault(word, set()).add((index, rank))
                    if len(word) >= FUZZY_MIN_LEN:
                        for variant in _variants(word):
                            fuzzy.setdefault(variant, []).append((word, index, rank))
            locales.append(_Locale(locale, tuple(every), tuple(anchored), tuple(floating)))
        return cls(
            locales,
            {word: _by_rank(entries) for word, entries in by_word.items()},
            {prefix: _by_rank(entries) for prefix, entries in by_prefix.items()},
            {word: frozenset(hits) for word, hits in exact.items()},
            {variant: tuple(dict.fromkeys(hits)) for variant, hits in fuzzy.items()},
            _unique_markers(marker_sets),
            weights,
            _concepts(concept_tables, combinations),
        )

    @property
    def locales(self) -> tuple[str, ...]:
        return tuple(locale.name for locale in self._locales)

    def recognise(self, text: str, prefer: str | None = None) -> Recognition:
        """The best intent in ``text``. Never raises; empty or unknown text gives intent None.

        ``prefer`` is the person's current locale: when several locales match the same best
        intent equally well, it is the one reported.
        """
        if not isinstance(text, str) or not text or not self._locales:
            return _NOTHING
        normalized = normalize(text[:_RAW_MAX_CHARS])
        head = normalized[:MAX_CHARS]
        language = self._language(head)
        ranks = self._ranks(head)
        self._add_concepts(head, ranks)
        best = min(ranks)
        if best != _CRISIS and len(normalized) > MAX_CHARS:
            # Long text: look for crisis language past the first MAX_CHARS too.
            crisis = self._crisis_locales(normalized[:CRISIS_MAX_CHARS])
            if crisis:
                return self._result(_CRISIS, crisis, prefer, language)
        if best == len(INTENTS):
            return replace(_NOTHING, language=language[0], language_words=language[1])
        tied = [i for i, rank in enumerate(ranks) if rank == best]
        if len(tied) > 1:
            # The locale whose rules explain more of the message wins: "dile a los admins"
            # is Spanish even though "admins" alone is an English pattern too.
            evidence = [self._evidence(i, best, head) for i in tied]
            most = max(evidence)
            tied = [i for i, size in zip(tied, evidence, strict=True) if size == most]
        return self._result(best, tied, prefer, language)

    def _add_concepts(self, text: str, ranks: list[int]) -> None:
        """Lower ``ranks`` (in place) by what concept combinations find in ``text``."""
        if self._concepts is None:
            return
        for match in self._concepts.matches(text):
            rank = _RANK[match.intent]
            for index in match.locales:
                ranks[index] = min(ranks[index], rank)

    def explain(self, text: str) -> list[str]:
        """Which concept combinations match ``text`` and why (for people tuning the rules)."""
        if self._concepts is None or not isinstance(text, str):
            return []
        return self._concepts.explain(normalize(text[:_RAW_MAX_CHARS])[:MAX_CHARS])

    def _language(self, text: str) -> tuple[str | None, int]:
        """The locale whose marker words (weighted) the text holds most, and how many distinct
        ones; ``(None, 0)`` when it holds none or two locales tie."""
        counts = [0] * len(self._locales)
        for word in set(_WORD_RE.findall(text)):
            index = self._markers.get(word)
            if index is not None:
                counts[index] += 1
        scores = [count * weight for count, weight in zip(counts, self._weights, strict=True)]
        best = max(scores)
        if best == 0 or scores.count(best) > 1:
            return None, 0
        index = scores.index(best)
        return self._locales[index].name, counts[index]

    def _ranks(self, text: str) -> list[int]:
        """Best rank per locale index (``len(INTENTS)`` for none). Only ranks no worse than
        the best found so far are looked for, ties included."""
        none = len(INTENTS)
        ranks = [none] * len(self._locales)
        best = none
        memo = self._memo
        for found in _WORD_RE.finditer(text):
            word = found.group()
            info = memo.get(word)
            if info is None:
                info = self._word_info(word)
            hits, entries = info
            for index, rank in hits:
                if rank < ranks[index]:
                    ranks[index] = rank
                    best = min(best, rank)
            for index, rank, pattern in entries:
                if rank > best:
                    break  # entries are sorted by rank
                if rank < ranks[index] and pattern.match(text, found.start()) is not None:
                    ranks[index] = rank
                    best = rank
        for index, locale in enumerate(self._locales):
            for rank in range(min(ranks[index], best + 1)):
                anchored = locale.anchored[rank]
                floating = locale.floating[rank]
                if (anchored is not None and anchored.match(text) is not None) or (
                    floating is not None and floating.search(text) is not None
                ):
                    ranks[index] = rank
                    best = min(best, rank)
                    break
        return ranks

    def _word_info(self, word: str) -> _WordInfo:
        """What one word can start or is: keyword hits ``(locale index, rank)`` and the
        patterns that may match from its start, sorted by rank."""
        hits = set(self._exact.get(word, ()))
        if FUZZY_MIN_LEN <= len(word) <= self._fuzzy_max + 1:
            for variant in _variants(word):
                for keyword, index, rank in self._fuzzy.get(variant, ()):
                    if _within_one_edit(word, keyword):
                        hits.add((index, rank))
        entries = list(self._by_word.get(word, ()))
        for n in range(1, min(len(word), _PREFIX_KEY) + 1):
            entries.extend(self._by_prefix.get(word[:n], ()))
        info = (tuple(sorted(hits)), _by_rank(entries))
        # Only words the rules care about are remembered, never arbitrary words from messages.
        if (hits or entries) and len(self._memo) < _MEMO_WORDS:
            self._memo[word] = info
        return info

    def _keyword_hit(self, word: str, index: int, rank: int) -> bool:
        if (index, rank) in self._exact.get(word, ()):
            return True
        if not FUZZY_MIN_LEN <= len(word) <= self._fuzzy_max + 1:
            return False
        return any(
            i == index and r == rank and _within_one_edit(word, keyword)
            for variant in _variants(word)
            for keyword, i, r in self._fuzzy.get(variant, ())
        )

    def _crisis_locales(self, text: str) -> list[int]:
        """Locales whose crisis rules or crisis concept combinations match anywhere in
        ``text``."""
        ranks = [len(INTENTS)] * len(self._locales)
        self._add_concepts(text, ranks)
        found = [index for index, rank in enumerate(ranks) if rank == _CRISIS]
        words = set(_WORD_RE.findall(text))
        for index, locale in enumerate(self._locales):
            pattern = locale.patterns[_CRISIS]
            if index in found:
                continue
            if (pattern is not None and pattern.search(text) is not None) or any(
                self._keyword_hit(word, index, _CRISIS) for word in words
            ):
                found.append(index)
        return found

    def _evidence(self, index: int, rank: int, text: str) -> int:
        """How much of ``text`` the locale's rules for ``rank`` cover: the longest pattern
        match or matching keyword, in characters."""
        size = 0
        pattern = self._locales[index].patterns[rank]
        if pattern is not None:
            for match in pattern.finditer(text):
                size = max(size, match.end() - match.start())
        for word in _WORD_RE.findall(text):
            if len(word) > size and self._keyword_hit(word, index, rank):
                size = len(word)
        return size

    def _result(
        self,
        rank: int,
        candidates: list[int],
        prefer: str | None,
        language: tuple[str | None, int],
    ) -> Recognition:
        names = [self._locales[i].name for i in candidates]
        locale = prefer if prefer in names else names[0]
        return Recognition(
            intent=INTENTS[rank],
            locale=locale,
            crisis=rank == _CRISIS,
            language=language[0],
            language_words=language[1],
        )


def _concepts(
    tables: Sequence[Mapping[str, Any]], combinations: Sequence[Combination]
) -> Concepts | None:
    if not combinations and not any(tables):
        return None
    for combination in combinations:
        if combination.intent not in _RANK:
            raise ValueError(f"combination {combination.why!r}: unknown intent")
    for table in tables:
        if not isinstance(table, Mapping):
            raise ValueError("concepts: expected a table of word lists")
    return Concepts(tables, combinations, normalize)


def _check_markers(locale: str, spec: object) -> tuple[frozenset[str], float]:
    """``[markers]``: ``words`` that show a message is written in this locale, and the
    ``weight`` of each (default 1)."""
    where = f"{locale}.{_MARKERS}"
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: expected a table")
    bad_keys = sorted(set(spec) - {"words", "weight"})
    if bad_keys:
        raise ValueError(f"{where}: unknown keys {bad_keys}")
    words = spec.get("words", [])
    weight = spec.get("weight", 1)
    if not isinstance(words, list):
        raise ValueError(f"{where}: words must be a list")
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        raise ValueError(f"{where}: weight must be a positive number")
    return frozenset(_check_keyword(where, word) for word in words), float(weight)


def _unique_markers(marker_sets: Sequence[frozenset[str]]) -> dict[str, int]:
    """Marker word -> locale index, for words listed by exactly one locale: a word two
    languages share ("no", "me") shows neither."""
    seen: dict[str, int] = {}
    shared: set[str] = set()
    for index, words in enumerate(marker_sets):
        for word in words:
            if word in seen:
                shared.add(word)
            seen[word] = index
    return {word: index for word, index in seen.items() if word not in shared}


def _by_rank(entries: list[_Entry]) -> tuple[_Entry, ...]:
    return tuple(sorted(dict.fromkeys(entries), key=lambda entry: entry[1]))
