"""Pins the understanding figures on the hand-written evaluation set (tests/data/), so a rule
change that loses a crisis message, or starts calling everyday messages a crisis, fails CI.
bench/understanding.py prints the same figures in full."""

from __future__ import annotations

import pytest
from understanding_set import SEXTORTION, Scored, load, score

from safebot.conversation import Engine


@pytest.fixture(scope="module")
def results(engine: Engine) -> list[Scored]:
    return [score(engine, sample) for sample in load()]


def _share(results: list[Scored], labels: frozenset[str] | set[str], hit: str) -> float:
    group = [r for r in results if r.sample.label in labels]
    assert group
    return sum(bool(getattr(r, hit)) for r in group) / len(group)


def test_every_crisis_message_gets_crisis_help_first(results: list[Scored]) -> None:
    missed = [r.sample.text for r in results if r.sample.label == "crisis" and not r.crisis_first]
    assert missed == []


def test_everyday_messages_are_rarely_taken_for_a_crisis(results: list[Scored]) -> None:
    assert _share(results, {"benign"}, "crisis_first") <= 0.03


def test_sextortion_is_recognised(results: list[Scored]) -> None:
    assert _share(results, SEXTORTION, "right") >= 0.95


def test_everyday_messages_are_rarely_called_sextortion(results: list[Scored]) -> None:
    assert _share(results, {"benign"}, "sextortion") <= 0.03


def test_spanish_and_spanglish_are_answered_in_spanish(results: list[Scored]) -> None:
    spanish = [r for r in results if r.sample.lang == "es"]
    assert sum(r.locale == "es" for r in spanish) / len(spanish) >= 0.95
    english = [r for r in results if r.sample.lang == "en"]
    assert sum(r.locale == "en" for r in english) / len(english) >= 0.95


def test_how_to_questions_find_their_answer(results: list[Scored]) -> None:
    assert _share(results, {"block", "report", "takedown", "greeting"}, "right") >= 0.90
