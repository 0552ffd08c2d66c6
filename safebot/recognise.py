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

The stages live in their own modules: :mod:`safebot.normalize` (the text rules are written
against, and one-typo keyword matching), :mod:`safebot.first_words` (the index of the words
each pattern can start with), this module (loading the rules and matching them), and
:mod:`safebot.concepts`.

Text examined: the first :data:`MAX_CHARS` characters after normalization, and for crisis
language the first :data:`CRISIS_MAX_CHARS`. Nothing here logs or keeps the text it sees,
except a bounded in-memory table of which rules a word can start, for words that start some
rule ("want", "pics", "suicdie"), so that common words are looked up once.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from safebot.concepts import Combination, Concepts, load_combinations
from safebot.first_words import PREFIX_KEY, first_words, is_anchored, top_level_bar
from safebot.normalize import FUZZY_MIN_LEN, WORD_RE, normalize, variants, within_one_edit

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

_ALLOWED_KEYS = frozenset({"patterns", "keywords"})
_MARKERS = "markers"
"""The table in intents.toml that lists a language's marker words (not an intent)."""
_CONCEPTS = "concepts"
"""The table in intents.toml that sorts words into concepts (see safebot/concepts.py)."""
_NOT_INTENTS = frozenset({_MARKERS, _CONCEPTS})
COMBINATIONS = "combinations.toml"
"""The shared file, next to the locale folders, of concept combinations that mean an intent."""

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
    if not WORD_RE.fullmatch(normalized):
        raise ValueError(f"{where}: keyword {keyword!r} must be a single word")
    return normalized


def _combine(where: str, patterns: Sequence[str]) -> re.Pattern[str] | None:
    """One alternation for a list of patterns. Those starting with ``\\b`` share it, so the
    engine rejects a position inside a word once rather than once per pattern."""
    if not patterns:
        return None
    at_word = [p[2:] for p in patterns if p.startswith("\\b") and not top_level_bar(p)]
    others = [p for p in patterns if not (p.startswith("\\b") and not top_level_bar(p))]
    parts = [f"(?:{p})" for p in others]
    if at_word:
        parts.insert(0, "\\b(?:" + "|".join(f"(?:{p})" for p in at_word) + ")")
    try:
        return re.compile("|".join(parts))
    except re.error as exc:  # e.g. inline global flags mid-pattern
        raise ValueError(f"{where}: patterns do not combine: {exc}") from None


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
                    starts = first_words(pattern)
                    if starts is None:
                        (at_start if is_anchored(pattern) else elsewhere).append(pattern)
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
                        for variant in variants(word):
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
        for word in set(WORD_RE.findall(text)):
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
        for found in WORD_RE.finditer(text):
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
            for variant in variants(word):
                for keyword, index, rank in self._fuzzy.get(variant, ()):
                    if within_one_edit(word, keyword):
                        hits.add((index, rank))
        entries = list(self._by_word.get(word, ()))
        for n in range(1, min(len(word), PREFIX_KEY) + 1):
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
            i == index and r == rank and within_one_edit(word, keyword)
            for variant in variants(word)
            for keyword, i, r in self._fuzzy.get(variant, ())
        )

    def _crisis_locales(self, text: str) -> list[int]:
        """Locales whose crisis rules or crisis concept combinations match anywhere in
        ``text``."""
        ranks = [len(INTENTS)] * len(self._locales)
        self._add_concepts(text, ranks)
        found = [index for index, rank in enumerate(ranks) if rank == _CRISIS]
        words = set(WORD_RE.findall(text))
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
        for word in WORD_RE.findall(text):
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
