"""Concepts: the recogniser's second stage, for wording its phrase rules were never written for.

Phrase rules (``intents.toml`` patterns) are precise but only know the phrasings someone wrote
down. This stage works one level up. Each locale's ``[concepts]`` table (in its
``intents.toml``) sorts words into named classes: ``harm_act`` (cut, scratch, burn, cortar,
quemar), ``body`` (arms, wrists, brazos), ``media`` (pics, nudes, fotos)... The shared
``content/combinations.toml`` lists, for an intent, sets of concepts that mean it when they all
appear in one message: a self-harm act on a body part is a crisis however it is phrased;
pictures, spreading them and a threat marker are a disclosure. Concept names are shared by all
locales, so a Spanglish message ("i took pastillas, muchas") combines words of both.

An entry of a concept is one word (matched exactly, after :func:`~safebot.recognise.normalize`),
a stem ending in ``*`` ("suicid*"), a phrase of several words ("better off"), or ``<number>``
(any word made of digits). Matching is a few dictionary lookups per word (phrases are indexed by
their first word): linear in the message. Every match can say why (:meth:`Concepts.explain`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

__all__ = ["Combination", "Concepts", "load_combinations"]

NUMBER = "<number>"
"""The concept entry that matches any word made of digits ("10", "500")."""
_WORD_RE = re.compile(r"[^\W_]+")
_ENTRY_RE = re.compile(r"[a-z0-9]+(?: [a-z0-9]+)*\*?")
_STEM_MIN = 3
"""A stem (``suicid*``) has at least this many letters."""

_Hit = tuple[str, int]  # concept name, locale index


@dataclass(frozen=True, slots=True)
class Combination:
    intent: str
    concepts: frozenset[str]
    why: str
    unless: frozenset[str] = frozenset()
    """Concepts any one of which, present too, cancels the combination ("burned my arm on
    the oven" is an accident)."""
    """One line for people reading the rules and for :meth:`Concepts.explain`."""


@dataclass(frozen=True, slots=True)
class Match:
    intent: str
    locales: frozenset[int]
    """Indexes of the locales whose words supplied the concepts."""
    combination: Combination


def load_combinations(path: Traversable | Path) -> tuple[Combination, ...]:
    """Read ``combinations.toml``; raises ValueError on anything malformed."""
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"combinations.toml: {exc}") from exc
    entries = data.get("combination", [])
    if set(data) - {"combination"} or not isinstance(entries, list):
        raise ValueError("combinations.toml: expected only [[combination]] entries")
    found: list[Combination] = []
    for number, entry in enumerate(entries, 1):
        where = f"combinations.toml entry {number}"
        if not isinstance(entry, Mapping) or not (
            {"intent", "concepts", "why"} <= set(entry) <= {"intent", "concepts", "why", "unless"}
        ):
            raise ValueError(f"{where}: needs intent, concepts and why (and maybe unless)")
        concepts = entry["concepts"]
        unless = entry.get("unless", [])
        if (
            not isinstance(entry["intent"], str)
            or not isinstance(entry["why"], str)
            or not isinstance(concepts, list)
            or len(concepts) < 2
            or not all(isinstance(c, str) and c for c in concepts)
            or not isinstance(unless, list)
            or not all(isinstance(c, str) and c for c in unless)
        ):
            raise ValueError(
                f"{where}: intent and why are text, concepts 2 or more names, unless names"
            )
        found.append(
            Combination(entry["intent"], frozenset(concepts), entry["why"], frozenset(unless))
        )
    return tuple(found)


class Concepts:
    """Word classes per locale and the combinations that mean an intent. Immutable."""

    __slots__ = ("_combinations", "_numbers", "_phrases", "_stem_lengths", "_stems", "_words")

    def __init__(
        self,
        tables: Sequence[Mapping[str, Any]],
        combinations: Sequence[Combination],
        normalize: Callable[[str], str],
    ) -> None:
        """``tables``: each locale's ``[concepts]`` table, in the recogniser's locale order.
        ``normalize``: the recogniser's normalizer, applied to every entry."""
        words: dict[str, set[_Hit]] = {}
        stems: dict[str, set[_Hit]] = {}
        phrases: dict[str, set[_Hit]] = {}
        numbers: set[_Hit] = set()
        for index, table in enumerate(tables):
            for name, entries in table.items():
                if not isinstance(entries, list) or not entries:
                    raise ValueError(f"concept {name!r}: expected a list of words")
                for raw in entries:
                    if raw == NUMBER:
                        numbers.add((name, index))
                        continue
                    entry = normalize(raw) if isinstance(raw, str) else ""
                    if _ENTRY_RE.fullmatch(entry) is None or entry != raw:
                        raise ValueError(
                            f"concept {name!r}: {raw!r} must be lowercase words, no accents"
                        )
                    hit = (name, index)
                    if entry.endswith("*"):
                        if " " in entry or len(entry) - 1 < _STEM_MIN:
                            raise ValueError(f"concept {name!r}: {raw!r} is not a usable stem")
                        stems.setdefault(entry[:-1], set()).add(hit)
                    elif " " in entry:
                        phrases.setdefault(entry, set()).add(hit)
                    else:
                        words.setdefault(entry, set()).add(hit)
        known = {name for table in tables for name in table}
        for combination in combinations:
            missing = sorted((combination.concepts | combination.unless) - known)
            if missing:
                raise ValueError(f"combination {combination.why!r}: unknown concepts {missing}")
        self._words = {word: frozenset(hits) for word, hits in words.items()}
        self._stems = {stem: frozenset(hits) for stem, hits in stems.items()}
        self._stem_lengths = tuple(sorted({len(stem) for stem in stems}))
        self._numbers = frozenset(numbers)
        by_first: dict[str, list[tuple[tuple[str, ...], frozenset[_Hit]]]] = {}
        for phrase, hits in phrases.items():
            tokens = tuple(phrase.split())
            by_first.setdefault(tokens[0], []).append((tokens, frozenset(hits)))
        self._phrases = {first: tuple(entries) for first, entries in by_first.items()}
        self._combinations = tuple(combinations)

    def _hits(self, text: str) -> dict[str, set[int]]:
        """Concept name -> locale indexes whose words for it occur in normalized ``text``.
        Phrases are matched on words, so punctuation between them does not matter."""
        found: dict[str, set[int]] = {}
        words = _WORD_RE.findall(text)
        for position, word in enumerate(words):
            groups: list[frozenset[_Hit]] = []
            single = self._words.get(word)
            if single is not None:
                groups.append(single)
            if word.isdigit():
                groups.append(self._numbers)
            for length in self._stem_lengths:
                if length > len(word):
                    break
                stem = self._stems.get(word[:length])
                if stem is not None:
                    groups.append(stem)
            for tokens, phrase_hits in self._phrases.get(word, ()):
                if tuple(words[position : position + len(tokens)]) == tokens:
                    groups.append(phrase_hits)
            for group in groups:
                for name, index in group:
                    found.setdefault(name, set()).add(index)
        return found

    def matches(self, text: str) -> list[Match]:
        """Every combination whose concepts all occur in normalized ``text``."""
        if not self._combinations:
            return []
        hits = self._hits(text)
        result: list[Match] = []
        for combination in self._combinations:
            if combination.concepts <= hits.keys() and combination.unless.isdisjoint(hits):
                locales = frozenset(i for name in combination.concepts for i in hits[name])
                result.append(Match(combination.intent, locales, combination))
        return result

    def explain(self, text: str) -> list[str]:
        """Why: the ``why`` line of every combination that matches normalized ``text``."""
        return [f"{m.intent}: {m.combination.why}" for m in self.matches(text)]
