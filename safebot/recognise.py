"""Free-text recogniser: a small, fast, deterministic, rule-based intent classifier.

The rules are data: ``content/<locale>/intents.toml`` holds, for every intent, regular
expressions (Python ``re`` syntax, searched in the *normalized* text) and optional single-word
``keywords`` (exact, or Damerau-Levenshtein distance <= 1 when both the keyword and the word
are at least 6 letters long).

Intents are tried in priority order (:data:`INTENTS`); the earliest intent that matches in any
locale wins. ``crisis`` comes first, so crisis language always wins and also sets
``Recognition.crisis``. When two locales match the same best intent, the caller's current
locale (``prefer``) is reported, else the first locale the recogniser was built with.

Nothing here logs or keeps the text it sees.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

__all__ = ["INTENTS", "Recogniser", "Recognition", "normalize"]

INTENTS: tuple[str, ...] = (
    "crisis",
    "stop",
    "forget",
    "language",
    "report",
    "block",
    "q_pay",
    "q_delete",
    "takedown",
    "disclosure",
    "understand",
    "todo",
    "resources",
    "menu",
)
"""Every intent, in priority order: when several match, the earlier one wins."""

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


# --- the recogniser -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recognition:
    intent: str | None
    """The best intent, or None when nothing matched."""
    locale: str | None
    """The locale whose patterns produced ``intent`` (None when nothing matched)."""
    crisis: bool
    """Crisis language was present, whatever else matched."""


_NOTHING = Recognition(intent=None, locale=None, crisis=False)


@dataclass(frozen=True, slots=True)
class _Locale:
    name: str
    patterns: tuple[re.Pattern[str] | None, ...]  # by rank


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


class Recogniser:
    """Recognises intents in free text for a fixed set of locales. Thread-safe, immutable."""

    __slots__ = ("_exact", "_fuzzy", "_locales")

    def __init__(
        self,
        locales: Sequence[_Locale],
        exact: Mapping[str, frozenset[tuple[int, int]]],
        fuzzy: Mapping[str, tuple[tuple[str, int, int], ...]],
    ) -> None:
        self._locales = tuple(locales)
        # word -> {(locale index, rank)}
        self._exact = dict(exact)
        # deletion variant -> ((keyword, locale index, rank), ...)
        self._fuzzy = dict(fuzzy)

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
        return cls.from_tables(tables)

    @classmethod
    def from_tables(cls, tables: Mapping[str, Mapping[str, Any]]) -> Recogniser:
        """Build from parsed tables: ``{locale: {intent: {"patterns": [...], "keywords":
        [...]}}}``. Locale order matters for ties. Raises ValueError on anything malformed:
        an unknown intent or key, a pattern that does not compile or could never match
        normalized text, a keyword that is not one word."""
        locales: list[_Locale] = []
        exact: dict[str, set[tuple[int, int]]] = {}
        fuzzy: dict[str, list[tuple[str, int, int]]] = {}
        for index, (locale, table) in enumerate(tables.items()):
            if not isinstance(table, Mapping):
                raise ValueError(f"{locale}: expected a table of intents")
            unknown = sorted(set(table) - set(INTENTS))
            if unknown:
                raise ValueError(f"{locale}: unknown intents {unknown}; known: {list(INTENTS)}")
            compiled: list[re.Pattern[str] | None] = [None] * len(INTENTS)
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
                if checked:
                    combined = "|".join(f"(?:{p})" for p in checked)
                    try:
                        compiled[rank] = re.compile(combined)
                    except re.error as exc:  # e.g. inline global flags mid-pattern
                        raise ValueError(f"{where}: patterns do not combine: {exc}") from None
                for keyword in keywords:
                    word = _check_keyword(where, keyword)
                    exact.setdefault(word, set()).add((index, rank))
                    if len(word) >= FUZZY_MIN_LEN:
                        for variant in _variants(word):
                            fuzzy.setdefault(variant, []).append((word, index, rank))
            locales.append(_Locale(locale, tuple(compiled)))
        return cls(
            locales,
            {word: frozenset(hits) for word, hits in exact.items()},
            {variant: tuple(dict.fromkeys(hits)) for variant, hits in fuzzy.items()},
        )

    @property
    def locales(self) -> tuple[str, ...]:
        return tuple(locale.name for locale in self._locales)

    def _keyword_ranks(self, text: str) -> list[int]:
        """Best keyword rank per locale index (len(INTENTS) when none)."""
        best = [len(INTENTS)] * len(self._locales)
        exact, fuzzy = self._exact, self._fuzzy
        for word in _WORD_RE.findall(text):
            for index, rank in exact.get(word, ()):
                if rank < best[index]:
                    best[index] = rank
            if len(word) >= FUZZY_MIN_LEN and fuzzy:
                for variant in _variants(word):
                    for keyword, index, rank in fuzzy.get(variant, ()):
                        if rank < best[index] and _within_one_edit(word, keyword):
                            best[index] = rank
        return best

    def _ranks(self, text: str) -> list[int]:
        """Best rank per locale index (``len(INTENTS)`` for none). Lower ranks than the
        best found so far are all that is searched for, ties included."""
        ranks = self._keyword_ranks(text)
        best = min(ranks, default=len(INTENTS))
        for index, locale in enumerate(self._locales):
            for rank in range(min(ranks[index], best + 1)):
                pattern = locale.patterns[rank]
                if pattern is not None and pattern.search(text) is not None:
                    ranks[index] = rank
                    best = min(best, rank)
                    break
        return ranks

    def _crisis_locales(self, text: str) -> list[int]:
        found = [i for i, rank in enumerate(self._keyword_ranks(text)) if rank == _CRISIS]
        for index, locale in enumerate(self._locales):
            pattern = locale.patterns[_CRISIS]
            if index not in found and pattern is not None and pattern.search(text) is not None:
                found.append(index)
        return sorted(found)

    def recognise(self, text: str, prefer: str | None = None) -> Recognition:
        """The best intent in ``text``. Never raises; empty or unknown text gives intent None.

        ``prefer`` is the person's current locale: it is reported when several locales
        match the same best intent.
        """
        if not isinstance(text, str) or not text or not self._locales:
            return _NOTHING
        normalized = normalize(text[:_RAW_MAX_CHARS])
        head = normalized[:MAX_CHARS]
        ranks = self._ranks(head)
        best = min(ranks)
        if best != _CRISIS and len(normalized) > MAX_CHARS:
            # Long text: look for crisis language past the first MAX_CHARS too.
            crisis = self._crisis_locales(normalized[:CRISIS_MAX_CHARS])
            if crisis:
                return self._result(_CRISIS, crisis, prefer)
        if best == len(INTENTS):
            return _NOTHING
        tied = [i for i, rank in enumerate(ranks) if rank == best]
        if len(tied) > 1:
            # A pattern match is stronger evidence of the language than a lone keyword
            # ("sextorsion" is a keyword in both files, "que es la ..." only a Spanish pattern).
            by_pattern = [i for i in tied if self._pattern_matches(i, best, head)]
            tied = by_pattern or tied
        return self._result(best, tied, prefer)

    def _pattern_matches(self, index: int, rank: int, text: str) -> bool:
        pattern = self._locales[index].patterns[rank]
        return pattern is not None and pattern.search(text) is not None

    def _result(self, rank: int, candidates: list[int], prefer: str | None) -> Recognition:
        names = [self._locales[i].name for i in candidates]
        locale = prefer if prefer in names else names[0]
        return Recognition(intent=INTENTS[rank], locale=locale, crisis=rank == _CRISIS)
