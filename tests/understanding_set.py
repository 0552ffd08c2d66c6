"""The labelled first messages in tests/data/ and how SafeBot's first reply to each is scored.

Used by tests/test_understanding.py (which pins the crisis figures) and bench/understanding.py
(which prints every figure). Each message is sent as the first message of a new conversation,
exactly as a platform would deliver it, and the engine's reply is read back.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from safebot.conversation import Engine, Outcome, Reply
from safebot.events import TextReceived
from safebot.messages import Message
from safebot.model import PersonId

DATA = Path(__file__).resolve().parent / "data"
MAIN = tuple(
    DATA / name
    for name in (
        "understanding.toml",
        "understanding_seen.toml",
        "understanding_seen2.toml",
        "understanding_seen3.toml",
        "understanding_seen4.toml",
        "understanding_seen5.toml",
    )
)
"""The set the rules are tuned on: the main set and the earlier held-out parts, once seen."""
HELD_OUT = tuple(path for path in (DATA / "understanding_heldout.toml",) if path.exists())
"""Never used for tuning: run at the end to check for overfitting. Absent between rounds: each
part joins the main set once it has been looked at, and the next one is written before the
next round of rules."""

SEXTORTION = frozenset({"threat", "money", "more_images"})
"""Labels for a sextortion disclosure of any kind."""
SEXTORTION_INTENTS = frozenset({"disclosure", "q_pay", "understand"})
"""Intents that answer a sextortion disclosure (what it is, what to do, whether to pay)."""
LABEL_INTENT = {"block": "block", "report": "report", "takedown": "takedown", "greeting": "menu"}
"""The intent each how-to label should be recognised as."""

_LINE = "fallback.crisis"
"""The short line in every "not sure I understood" reply that offers crisis help."""
_NOW = 1_800_000_000.0
_PERSON = PersonId("eval", "person")


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    label: str
    lang: str
    style: str


@dataclass(frozen=True, slots=True)
class Scored:
    sample: Sample
    intent: str | None
    """What the recogniser found (None: nothing)."""
    crisis_first: bool
    """The first reply is the crisis reply."""
    crisis_offered: bool
    """Some reply offers crisis help (the crisis reply, or the fallback's crisis line)."""
    locale: str
    """The language SafeBot answered in ("mixed" when part of the reply was in another)."""

    @property
    def sextortion(self) -> bool:
        return self.intent in SEXTORTION_INTENTS

    @property
    def right(self) -> bool:
        """Did the first reply give this label the help it needs?"""
        label = self.sample.label
        if label == "crisis":
            return self.crisis_first
        if label in SEXTORTION:
            return self.sextortion and not self.crisis_first
        if label in LABEL_INTENT:
            return self.intent == LABEL_INTENT[label] and not self.crisis_first
        return not self.crisis_first and not self.sextortion  # benign, ambiguous


def load(paths: tuple[Path, ...] = MAIN) -> list[Sample]:
    samples: list[Sample] = []
    for path in paths:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        samples += [
            Sample(text, group["label"], group["lang"], group.get("style", group["lang"]))
            for group in data["group"]
            for text in group["messages"]
        ]
    return samples


def score(engine: Engine, sample: Sample) -> Scored:
    """Send ``sample`` as a person's very first message and read SafeBot's reply."""
    outcome = engine.step(None, TextReceived(_PERSON, sample.text), _NOW, token="eval")
    assert outcome.session is not None
    replies = replies_of(outcome)
    locale = outcome.session.locale
    # (has(): so the benchmark also runs on code from before the line existed.)
    line = engine.content.text(locale, _LINE) if engine.content.has(_LINE) else None
    offered = any(m.urgent or (line is not None and line in _raw(m)) for m in replies)
    if any(
        _welcome(engine, other) in _raw(m) for other in _others(engine, locale) for m in replies
    ):
        locale = "mixed"  # part of the reply is in another language
    found = engine.recogniser.recognise(sample.text)
    return Scored(
        sample=sample,
        intent=found.intent,
        crisis_first=bool(replies) and replies[0].urgent,
        crisis_offered=offered,
        locale=locale,
    )


def replies_of(outcome: Outcome) -> list[Message]:
    """The messages a step says to the person, in order."""
    return [effect.message for effect in outcome.effects if isinstance(effect, Reply)]


def _others(engine: Engine, locale: str) -> list[str]:
    return [other for other in engine.content.locales if other != locale]


def _welcome(engine: Engine, locale: str) -> str:
    return engine.content.text(locale, "welcome.hello")


def _raw(message: Message) -> str:
    return "".join(span.text for span in message.spans)
