"""The language of every reply comes from the person: their text, their client's locale, or
their explicit choice, decided before anything is said."""

from __future__ import annotations

import pytest
from understanding_set import replies_of

from safebot.conversation import Engine, Outcome
from safebot.events import ChoiceSelected, CommandInvoked, TextReceived
from safebot.messages import Message
from safebot.model import PersonId, Session

NOW = 1_800_000_000.0
ME = PersonId("test", "lang")


def first(engine: Engine, text: str, hint: str | None = None) -> Outcome:
    return engine.step(None, TextReceived(ME, text, locale_hint=hint), NOW, token="t")


def then(engine: Engine, session: Session | None, text: str) -> Outcome:
    assert session is not None
    return engine.step(session, TextReceived(ME, text), NOW + 1, token="t")


def raw(message: Message) -> str:
    return "".join(span.text for span in message.spans)


_SAMPLES = ("welcome.hello", "menu.prompt", "fallback.unsure", "fallback.here", "crisis.intro")
"""Texts that show which language a reply is in."""


def in_language(engine: Engine, outcome: Outcome, locale: str) -> None:
    """The person's language is ``locale`` and no reply holds text from another language."""
    assert outcome.session is not None and outcome.session.locale == locale
    assert replies_of(outcome)
    said = "\n".join(raw(message) for message in replies_of(outcome))
    for other in engine.content.locales:
        if other != locale:
            for key in _SAMPLES:
                assert engine.content.text(other, key) not in said, f"{other} {key}"


@pytest.mark.parametrize(
    "text",
    [
        "hola necesito ayuda",
        "alguien tiene mis fotos y dice que las va a publicar",
        "cómo bloqueo a alguien en discord",
        "me quiero morir",  # crisis: no welcome at all, but Spanish crisis help
        "no sé qué hacer, tengo mucho miedo",  # nothing recognised: Spanish fallback
        "bro me pide money o postea mis pics",  # Spanglish gets Spanish
        "how do i bloquear a alguien",
    ],
)
def test_spanish_first_message_gets_a_wholly_spanish_reply(engine: Engine, text: str) -> None:
    outcome = first(engine, text)
    in_language(engine, outcome, "es")
    if not replies_of(outcome)[0].urgent:
        assert raw(replies_of(outcome)[0]).startswith("Hola.")


@pytest.mark.parametrize(
    "text", ["hi", "someone has my pics and says hes gonna post them", "idk what to do"]
)
def test_english_first_message_gets_english(engine: Engine, text: str) -> None:
    in_language(engine, first(engine, text), "en")


def test_a_lone_hola_is_taken_as_spanish_at_the_start(engine: Engine) -> None:
    """Decided: "hola" as a first message is a Spanish speaker's greeting; the welcome says
    how to change the language if not."""
    in_language(engine, first(engine, "hola"), "es")


def test_client_locale_is_the_first_guess(engine: Engine) -> None:
    # Nothing in the text says which language: the client's locale decides.
    in_language(engine, first(engine, "ok", hint="es-419"), "es")
    in_language(engine, first(engine, "hi", hint="es-419"), "es")
    # A clear sentence beats the client's locale.
    in_language(engine, first(engine, "he has my pics and wants money", hint="es-419"), "en")
    in_language(engine, first(engine, "me pide dinero por mis fotos", hint="en-US"), "es")


def test_a_command_follows_the_client_locale(engine: Engine) -> None:
    outcome = engine.step(None, CommandInvoked(ME, "help", locale_hint="es-419"), NOW, "t")
    in_language(engine, outcome, "es")


@pytest.mark.parametrize("word", ["ok", "hola", "no", "si", "menu", "hi", "gracias", "lol"])
def test_one_word_never_flips_the_language(engine: Engine, word: str) -> None:
    english = first(engine, "someone is threatening to post my pics").session
    assert english is not None and english.locale == "en"
    assert then(engine, english, word).session.locale == "en"  # type: ignore[union-attr]
    spanish = first(engine, "alguien me amenaza con publicar mis fotos").session
    assert spanish is not None and spanish.locale == "es"
    assert then(engine, spanish, word).session.locale == "es"  # type: ignore[union-attr]


def test_writing_in_the_other_language_switches(engine: Engine) -> None:
    session = first(engine, "someone is threatening to post my pics").session
    outcome = then(engine, session, "mejor en español, cómo lo bloqueo en discord")
    in_language(engine, outcome, "es")
    outcome = then(engine, outcome.session, "ok actually can you tell me how to block him")
    in_language(engine, outcome, "en")


def test_a_chosen_language_sticks(engine: Engine) -> None:
    session = first(engine, "hi").session
    for choice, node in (("settings", None), ("settings.language", None), ("locale.es", None)):
        assert session is not None
        outcome = engine.step(session, ChoiceSelected(ME, choice, node), NOW, "t")
        session = outcome.session
    assert session is not None and session.locale == "es" and session.locale_chosen
    outcome = then(engine, session, "how do i block someone on discord please")
    assert outcome.session is not None and outcome.session.locale == "es"


@pytest.mark.parametrize(("text", "locale"), [("blorp zib", "en"), ("estoy rara hoy", "es")])
def test_the_fallback_offers_crisis_help_in_the_persons_language(
    engine: Engine, text: str, locale: str
) -> None:
    outcome = first(engine, text)
    assert outcome.session is not None and not replies_of(outcome)[0].urgent
    line = engine.content.text(locale, "fallback.crisis")
    assert any(line in raw(m) for m in replies_of(outcome))
    in_language(engine, outcome, locale)


@pytest.mark.parametrize("before", ["how do i block someone", "stop"])
def test_every_fallback_offers_crisis_help(engine: Engine, before: str) -> None:
    session = first(engine, before).session
    assert session is not None and session.node in ("block.platform", "stop")
    outcome = then(engine, session, "blorp zib")
    assert outcome.session is not None
    if before == "stop":
        assert outcome.session.node == "fallback"
    line = engine.content.text("en", "fallback.crisis")
    assert any(line in raw(m) for m in replies_of(outcome))


@pytest.mark.parametrize(
    ("before", "typed"), [("hi", "crisis"), ("hola", "crisis"), ("hi", "help now")]
)
def test_typing_what_the_crisis_line_says_gives_crisis_help(
    engine: Engine, before: str, typed: str
) -> None:
    outcome = then(engine, first(engine, before).session, typed)
    assert replies_of(outcome)[0].urgent
