"""The recogniser's concept stage: word classes per locale, combinations that mean an intent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from safebot.concepts import Combination, Concepts, load_combinations
from safebot.recognise import Recogniser, normalize

CONTENT = Path(__file__).parents[1] / "content"

EN: dict[str, Any] = {
    "harm_act": ["cut", "scratching"],
    "body": ["arms", "wrist"],
    "accident": ["oven", "by accident"],
    "media": ["my pictures", "nudes"],
    "spread": ["put my", "website", "leak*"],
    "speech": ["says"],
    "quantity": ["<number>", "all"],
    "pills": ["pills"],
    "ingest": ["took"],
}
ES: dict[str, Any] = {"pills": ["pastillas"], "quantity": ["muchas"], "body": ["brazos"]}
COMBINATIONS = (
    Combination("crisis", frozenset({"harm_act", "body"}), "self-harm", frozenset({"accident"})),
    Combination("disclosure", frozenset({"media", "spread", "speech"}), "spreading pictures"),
    Combination("crisis", frozenset({"ingest", "pills", "quantity"}), "a lot of pills"),
)


def _intents(text: str) -> set[str]:
    concepts = Concepts([EN, ES], COMBINATIONS, normalize)
    return {match.intent for match in concepts.matches(normalize(text))}


@pytest.mark.parametrize(
    ("text", "intents"),
    [
        ("i keep scratching my arms", {"crisis"}),
        ("I CUT my wrist", {"crisis"}),
        # an `unless` concept cancels the combination
        ("i cut my arms on the oven", set()),
        ("i cut my arm by accident", set()),
        # one concept alone means nothing
        ("i cut the cake", set()),
        # overlapping phrases both count: "put my" and "my pictures"
        ("he says he will put my pictures online", {"disclosure"}),
        # a stem: "leak*" matches "leaking"
        ("she says she is leaking my nudes", {"disclosure"}),
        # punctuation between the words of a phrase does not matter
        ("he says... my, pictures are going on a website", {"disclosure"}),
        # <number> matches any word of digits
        ("i took 12 pills", {"crisis"}),
        ("i took pills", set()),
        # concepts are shared by the locales: a Spanglish message combines both
        ("i took pastillas, muchas", {"crisis"}),
        ("me corte los brazos", set()),  # "corte" is not a harm_act word in this small table
        ("i cut my brazos", {"crisis"}),
    ],
)
def test_combinations_match_concepts_from_any_wording(text: str, intents: set[str]) -> None:
    assert _intents(text) == intents


def test_a_match_names_the_locales_whose_words_it_used() -> None:
    concepts = Concepts([EN, ES], COMBINATIONS, normalize)
    (match,) = concepts.matches(normalize("i took pastillas, muchas"))
    assert match.locales == {0, 1}
    (match,) = concepts.matches(normalize("i took all the pills"))
    assert match.locales == {0}


@pytest.mark.parametrize(
    ("tables", "combinations", "message"),
    [
        ([{"body": ["Brazos"]}], (), "lowercase"),
        ([{"body": ["músculo"]}], (), "no accents"),
        ([{"body": ["arm's"]}], (), "lowercase words"),
        ([{"body": []}], (), "expected a list"),
        ([{"body": "arm"}], (), "expected a list"),
        ([{"body": ["ar*"]}], (), "usable stem"),
        ([{"body": ["two words*"]}], (), "usable stem"),
        ([{"body": ["arm"]}], (Combination("crisis", frozenset({"body", "cut"}), "x"),), "cut"),
        (
            [{"body": ["arm"], "cut": ["cut"]}],
            (Combination("crisis", frozenset({"body", "cut"}), "x", frozenset({"oven"})),),
            "oven",
        ),
    ],
)
def test_bad_concept_tables_are_refused(
    tables: list[dict[str, Any]], combinations: tuple[Combination, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Concepts(tables, combinations, normalize)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[combination]]\nintent = "crisis"\nconcepts = ["a"]\nwhy = "x"\n', "2 or more"),
        ('[[combination]]\nintent = "crisis"\nconcepts = ["a", "b"]\n', "needs intent"),
        ('[[combination]]\nintent = "crisis"\nconcepts = ["a", "b"]\nwhy = "x"\nif = 1\n', "needs"),
        ('[[combination]]\nintent = 1\nconcepts = ["a", "b"]\nwhy = "x"\n', "text"),
        ('[combination]\nintent = "crisis"\n', "only"),
        ("[[combination]\n", "combinations.toml"),
    ],
)
def test_bad_combination_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "combinations.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_combinations(path)


def test_a_combination_for_an_unknown_intent_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown intent"):
        Recogniser.from_tables(
            {"en": {"concepts": {"a": ["x"], "b": ["y"]}}},
            (Combination("dance", frozenset({"a", "b"}), "x"),),
        )


def test_the_bundled_combinations_load_and_explain_themselves() -> None:
    combinations = load_combinations(CONTENT / "combinations.toml")
    assert combinations and all(c.why for c in combinations)
    rec = Recogniser.from_dir(CONTENT, ["en", "es"])
    # Wording no phrase rule was written for still finds its intent through concepts.
    found = rec.recognise("scratched up my forearms with a sharpener again")
    assert found.crisis
    assert any("body part" in why for why in rec.explain("scratched up my forearms"))
    assert rec.explain("hello there") == []
    assert rec.recognise("i burned my arm on the oven").intent is None


def test_crisis_concepts_are_found_past_the_first_part_of_a_long_message() -> None:
    rec = Recogniser.from_dir(CONTENT, ["en", "es"])
    story = "so this is what happened at school today. " * 60
    assert rec.recognise(story + "im in the bathroom and thinking about the pills").crisis
