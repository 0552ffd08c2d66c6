"""The free-text recogniser: a table of real-looking messages, crisis detection, normalization,
the bundled content files, robustness on any input, and speed."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import time
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from understanding_set import HELD_OUT, MAIN, load

from safebot.recognise import (
    _RAW_MAX_CHARS,
    CRISIS_MAX_CHARS,
    INTENTS,
    Recogniser,
    Recognition,
    normalize,
)

CONTENT = Path(__file__).parents[1] / "content"
LOCALES = ["en", "es"]
EVALUATION = [sample.text for sample in load(MAIN + HELD_OUT)]


@pytest.fixture(scope="module")
def rec() -> Recogniser:
    return Recogniser.from_dir(CONTENT, LOCALES)


@functools.cache
def _table(locale: str) -> dict[str, Any]:
    with (CONTENT / locale / "intents.toml").open("rb") as fh:
        return tomllib.load(fh)


@functools.cache
def _recogniser(*locales: str) -> Recogniser:
    """Shared across hypothesis examples (a fixture would be reset between them)."""
    return Recogniser.from_tables({locale: _table(locale) for locale in locales})


# (message, expected intent, expected locale)
EN: list[tuple[str, str, str]] = [
    # crisis
    ("i want to die", "crisis", "en"),
    ("i wanna die", "crisis", "en"),
    ("kms", "crisis", "en"),
    ("gonna kms fr", "crisis", "en"),
    ("Im going to kill myself", "crisis", "en"),
    ("i cant go on like this", "crisis", "en"),
    ("i just want to end it all", "crisis", "en"),
    ("been thinking about hurting myself", "crisis", "en"),
    ("i dont wanna be alive anymore", "crisis", "en"),
    ("if he posts them im gonna unalive myself", "crisis", "en"),
    ("i feel suicidal", "crisis", "en"),
    ("i cant take it anymore", "crisis", "en"),
    ("honestly everyone would be better off without me", "crisis", "en"),
    ("hes outside my house right now", "crisis", "en"),
    # stop
    ("stop", "stop", "en"),
    ("bye", "stop", "en"),
    ("leave me alone", "stop", "en"),
    ("quit", "stop", "en"),
    ("ok bye thanks", "stop", "en"),
    ("i want to end this chat", "stop", "en"),
    # forget
    ("delete my data", "forget", "en"),
    ("forget me", "forget", "en"),
    ("can you delete everything you know about me", "forget", "en"),
    ("pls dont save any of this", "forget", "en"),
    # language
    ("change language", "language", "en"),
    ("spanish", "language", "en"),
    ("can u talk in spanish", "language", "en"),
    ("English please", "language", "en"),
    ("wrong country", "language", "en"),
    # report
    ("tell the mods", "report", "en"),
    ("can you report him to the admins", "report", "en"),
    ("report this", "report", "en"),
    ("i want to let the moderators know", "report", "en"),
    # block
    ("how do I block them", "block", "en"),
    ("make him stop messaging me", "block", "en"),
    ("he keeps making new accounts to dm me", "block", "en"),
    ("how to blok someone on discord", "block", "en"),
    # q_pay
    ("should I pay?", "q_pay", "en"),
    ("shuld i pay him", "q_pay", "en"),
    ("if i pay will they stop", "q_pay", "en"),
    ("should i just send another pic", "q_pay", "en"),
    ("what if i dont pay", "q_pay", "en"),
    ("i already paid him 200 and he wants more", "q_pay", "en"),
    ("do i have to pay??", "q_pay", "en"),
    # q_delete
    ("should I delete the chat?", "q_delete", "en"),
    ("can i delete everything", "q_delete", "en"),
    ("shud i delete my insta", "q_delete", "en"),
    ("is it ok to delete the messages", "q_delete", "en"),
    # takedown
    ("get my pics taken down", "takedown", "en"),
    ("remove my photos", "takedown", "en"),
    ("how do i get them off the internet", "takedown", "en"),
    ("take it down", "takedown", "en"),
    ("my nudes got leaked on twitter", "takedown", "en"),
    # disclosure
    ("he wants $500 or he'll send my pics to my followers", "disclosure", "en"),
    ("someone is threatening to post my nudes", "disclosure", "en"),
    ("she says she'll share my video unless I pay", "disclosure", "en"),
    ("he sed he'll post my nudes", "disclosure", "en"),
    ("this guy is blackmailing me", "disclosure", "en"),
    ("he wants 1k in gift cards", "disclosure", "en"),
    ("some girl on insta recorded our facetime and now wants money", "disclosure", "en"),
    ("they keep asking for more pics", "disclosure", "en"),
    ("he has my n00dz and says hell leak them", "disclosure", "en"),
    ("i sent a girl pics and now shes thretening me", "disclosure", "en"),
    # understand
    ("what is sextortion", "understand", "en"),
    ("is this sextortion", "understand", "en"),
    ("is it my fault", "understand", "en"),
    ("will i get in trouble", "understand", "en"),
    ("wat is sextortion", "understand", "en"),
    ("i feel so stupid", "understand", "en"),
    # todo
    ("what do I do", "todo", "en"),
    ("help me what now", "todo", "en"),
    ("idk what to do", "todo", "en"),
    ("wat should i do now", "todo", "en"),
    # resources
    ("who can I call", "resources", "en"),
    ("is there a hotline", "resources", "en"),
    ("should i go to the police", "resources", "en"),
    ("i need someone to talk to", "resources", "en"),
    # menu
    ("hi", "menu", "en"),
    ("Hello!", "menu", "en"),
    ("help", "menu", "en"),
    ("back to menu", "menu", "en"),
    ("heyyyy", "menu", "en"),
]

ES: list[tuple[str, str, str]] = [
    # crisis
    ("me quiero morir", "crisis", "es"),
    ("me kiero morir", "crisis", "es"),
    ("ya no quiero vivir", "crisis", "es"),
    ("me quiero matar", "crisis", "es"),
    ("voy a matarme", "crisis", "es"),
    ("pienso en suicidarme", "crisis", "es"),
    ("no aguanto más", "crisis", "es"),
    ("quiero acabar con todo", "crisis", "es"),
    ("tengo ganas de cortarme", "crisis", "es"),
    ("si publica las fotos me mato", "crisis", "es"),
    ("subió las fotos y ya no quiero seguir viviendo", "crisis", "es"),
    ("está afuera de mi casa", "crisis", "es"),
    # stop
    ("para", "stop", "es"),
    ("Adiós", "stop", "es"),
    ("chau", "stop", "es"),
    ("ya basta", "stop", "es"),
    ("déjame en paz", "stop", "es"),
    ("no quiero seguir hablando", "stop", "es"),
    # forget
    ("borra mis datos", "forget", "es"),
    ("olvídame", "forget", "es"),
    ("borrá todo lo que te dije", "forget", "es"),
    ("no guardes nada de esto porfa", "forget", "es"),
    # language
    ("español", "language", "es"),
    ("cambiar idioma", "language", "es"),
    ("¿hablas inglés?", "language", "es"),
    ("estoy en otro país", "language", "es"),
    # report
    ("avisar a los moderadores", "report", "es"),
    ("quiero reportarlo", "report", "es"),
    ("dile a los admins", "report", "es"),
    ("como lo denuncio en el server", "report", "es"),
    # block
    ("¿cómo lo bloqueo?", "block", "es"),
    ("bloquear", "block", "es"),
    ("quiero que deje de escribirme", "block", "es"),
    ("no me deja en paz", "block", "es"),
    # q_pay
    ("¿le pago?", "q_pay", "es"),
    ("¿debería pagar?", "q_pay", "es"),
    ("tengo q pagarle?", "q_pay", "es"),
    ("si le pago me deja en paz?", "q_pay", "es"),
    ("que pasa si no le pago", "q_pay", "es"),
    ("ya le pagué y quiere más", "q_pay", "es"),
    ("¿le mando otra foto?", "q_pay", "es"),
    # q_delete
    ("¿borro el chat?", "q_delete", "es"),
    ("debo borrar mi cuenta?", "q_delete", "es"),
    ("puedo eliminar la conversación", "q_delete", "es"),
    ("ya borré todos los mensajes", "q_delete", "es"),
    # takedown
    ("borrar mis fotos de internet", "takedown", "es"),
    ("quiero que quiten mis fotos", "takedown", "es"),
    ("como saco mi video de internet", "takedown", "es"),
    ("subió mis fotos a twitter", "takedown", "es"),
    ("mis fotos ya están circulando", "takedown", "es"),
    # disclosure
    ("me están extorsionando", "disclosure", "es"),
    ("dice que va a publicar mis fotos si no le pago", "disclosure", "es"),
    ("me amenaza con pasar mis fotos", "disclosure", "es"),
    ("un tipo tiene mi pack y me pide plata", "disclosure", "es"),
    ("me pide 200 dolares o las sube", "disclosure", "es"),
    ("quiere mas nudes", "disclosure", "es"),
    ("me dijo q si no le mando mas fotos se las pasa a mis papas", "disclosure", "es"),
    ("si no le depositás 500 pesos publica todo", "disclosure", "es"),
    ("me chantajea con un video", "disclosure", "es"),
    # understand
    ("¿qué es la sextorsión?", "understand", "es"),
    ("ke es sextorsion", "understand", "es"),
    ("¿es mi culpa?", "understand", "es"),
    ("esto es sextorsion?", "understand", "es"),
    ("me van a meter en problemas?", "understand", "es"),
    ("me siento re estúpida", "understand", "es"),
    # todo
    ("¿qué hago?", "todo", "es"),
    ("q hago", "todo", "es"),
    ("no sé qué hacer", "todo", "es"),
    ("y ahora qué", "todo", "es"),
    ("qué debería hacer", "todo", "es"),
    # resources
    ("número de ayuda", "resources", "es"),
    ("¿a quién puedo llamar?", "resources", "es"),
    ("puedo ir a la policía?", "resources", "es"),
    ("necesito hablar con alguien", "resources", "es"),
    # menu
    ("hola", "menu", "es"),
    ("ayuda", "menu", "es"),
    ("holaaa", "menu", "es"),
    ("volver al menú", "menu", "es"),
    ("buenas", "menu", "es"),
]

TABLE = EN + ES


def test_table_is_balanced() -> None:
    assert len(TABLE) >= 100
    assert abs(len(EN) - len(ES)) <= 10
    assert {intent for _, intent, _ in TABLE} == set(INTENTS)


@pytest.mark.parametrize(("text", "intent", "locale"), TABLE)
def test_table(rec: Recogniser, text: str, intent: str, locale: str) -> None:
    got = rec.recognise(text)
    assert (got.intent, got.locale) == (intent, locale)
    assert got.crisis == (intent == "crisis")


@pytest.mark.parametrize(("text", "intent", "locale"), TABLE)
def test_table_with_either_preference(rec: Recogniser, text: str, intent: str, locale: str) -> None:
    """The person's current locale never changes which intent is found."""
    for prefer in LOCALES:
        assert rec.recognise(text, prefer=prefer).intent == intent


# --- crisis ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "he posted it and i just want to die",
        "everyone at school saw it, i dont want to live anymore",
        "idk what to do he wants $500 and honestly i wanna kms",
        "should i pay? i cant do this anymore",
        "hi. i think im going to end my life tonight",
        "he told me to kill myself if i dont pay",
        "my parents are going to find out and i want to disappear",
        "pls help me hes threatening to post my pics and i keep thinking about suicide",
        "I WANT TO DIE",
        "i wanna die lol",
        "i want to d1e",
        "im gonna k1ll myself",
        "su\u200bicide",
        "suicdie",
        "he said he'll kill me",
        "i'm not safe",
        "ya subió las fotos y me quiero morir",
        "no sé qué hacer, ya no quiero vivir",
        "me dijo que si no le pago me va a matar",
        "estoy pensando en suicidarme",
        "ya no puedo más con esto",
        "si mis papás ven eso me muero",
        "im literally going to die",
        "gonna die",
        "ya no quiero despertar",
    ],
)
def test_crisis_detected(rec: Recogniser, text: str) -> None:
    got = rec.recognise(text)
    assert got.crisis
    assert got.intent == "crisis"


@pytest.mark.parametrize(
    "text",
    [
        "this homework is killing me",
        "im dying of laughing",
        "lmao im dead",
        "im gonna die of laughter",
        "my mom is gonna kill me if she finds out",
        "i killed it at practice today",
        "me muero de risa jajaja",
        "me mato de risa",
        "i cant go on discord rn",
        "no estoy seguro de qué hacer",
        "should i delete the chat",
        "he wants $500",
        "my phone is going to die",
        "my battery is about to die",
        "i cant go on vacation",
        "i want to end the call",
        "casi me muero del susto",
        "me muero de ganas de verte",
        "mi celular se va a morir",
        "no quiero despertar temprano mañana",
        "no puedo más tarde, mejor mañana",
        "me mata la tarea",
    ],
)
def test_not_crisis(rec: Recogniser, text: str) -> None:
    assert not rec.recognise(text).crisis


def test_crisis_wins_whatever_else_matches(rec: Recogniser) -> None:
    got = rec.recognise("hola, me quiero morir", prefer="en")
    assert got == Recognition("crisis", "es", True, language="es", language_words=3)
    got = rec.recognise("bye. i want to die")
    assert got == Recognition("crisis", "en", True, language="en", language_words=4)


def test_crisis_past_the_examined_prefix(rec: Recogniser) -> None:
    story = "he sent me a message and " * 120  # about 3,000 characters
    got = rec.recognise(story + "i just want to die")
    assert got.crisis and got.intent == "crisis" and got.locale == "en"
    # Intents other than crisis are only looked for at the start.
    assert rec.recognise("x " * 1_500 + "should i pay").intent is None


# --- unknown text, priority and locale preference ------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["asdfgh", "", "   ", "\u200b\u200f", "🙂🙂", "12345", "lol", "ok"],
)
def test_unknown(rec: Recogniser, text: str) -> None:
    assert rec.recognise(text) == Recognition(None, None, False)


def test_language_of_unrecognised_text(rec: Recogniser) -> None:
    got = rec.recognise("the weather is nice")
    assert got == Recognition(None, None, False, language="en", language_words=2)
    got = rec.recognise("qué calor hace hoy")
    assert got == Recognition(None, None, False, language="es", language_words=3)


def test_priority_earlier_intent_wins(rec: Recogniser) -> None:
    # disclosure + question about paying: q_pay comes first
    assert rec.recognise("he wants $500 should i pay").intent == "q_pay"
    # disclosure + what now: disclosure comes first
    assert rec.recognise("he wants $500 what do i do").intent == "disclosure"
    # a greeting does not hide the story
    got = rec.recognise("hi, me están extorsionando", prefer="en")
    assert (got.intent, got.locale, got.crisis) == ("disclosure", "es", False)


def test_prefer_breaks_ties_between_locales(rec: Recogniser) -> None:
    for text, intent in [("menu", "menu"), ("stopncii", "takedown")]:
        for prefer in ("es", "en"):
            got = rec.recognise(text, prefer=prefer)
            assert (got.intent, got.locale, got.crisis) == (intent, prefer, False)
        assert rec.recognise(text).locale == "en"  # first locale by default
        assert rec.recognise(text, prefer="fr").locale == "en"


@pytest.mark.parametrize(
    ("text", "locale"),
    [
        # "sextorsion" is a keyword in both files; only Spanish has a pattern for the question.
        ("que es la sextorsion", "es"),
        # "admins" alone is an English pattern; Spanish explains the whole message.
        ("dile a los admins", "es"),
        ("tell the admins", "en"),
    ],
)
def test_more_evidence_beats_preference(rec: Recogniser, text: str, locale: str) -> None:
    for prefer in [None, *LOCALES]:
        assert rec.recognise(text, prefer=prefer).locale == locale


# --- normalization -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("su\u200bicide", "suicide"),
        ("SU\u200dI\u200cCI\ufeffDE", "suicide"),
        ("\u202ekill\u202c myself", "kill myself"),
        ("soft\u00adhyphen", "softhyphen"),
        ("¿Qué HAGO?", "¿que hago?"),
        ("Olvídame", "olvidame"),
        ("niño AÑO", "nino ano"),
        ("Ｋｉｌｌ ｍｙｓｅｌｆ", "kill myself"),
        ("𝐤𝐢𝐥𝐥", "kill"),
        ("don't", "dont"),
        ("he’ll post", "hell post"),
        ("don´t", "dont"),
        ("k1ll mys3lf", "kill myself"),
        ("n00dz", "noodz"),
        ("ca$h", "cash"),
        ("$500 or 1k", "$500 or 1k"),
        ("500$ 2000", "500$ 2000"),
        ("pleeeeease", "pleease"),
        ("killll", "kill"),
        ("  lots \t of\n\nspace  ", "lots of space"),
        ("ctrl\x00\x07chars\x7f", "ctrlchars"),
        ("tab\there", "tab here"),
        ("kіll", "kill"),  # Cyrillic і
        ("ΚΙΛΛ", "kiλλ"),  # Greek capitals fold; only the look-alikes map to ASCII
        ("Straße", "strasse"),
        ("snake_case", "snake case"),
        ("", ""),
        ("\ud800", ""),  # lone surrogate
    ],
)
def test_normalize(raw: str, normalized: str) -> None:
    assert normalize(raw) == normalized


def test_normalize_is_idempotent_on_the_table() -> None:
    for text, _, _ in TABLE:
        once = normalize(text)
        assert normalize(once) == once


# --- content files ---------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
def test_every_intent_in_every_locale(locale: str) -> None:
    table = _table(locale)
    missing = [intent for intent in INTENTS if intent not in table]
    assert not missing, f"{locale}/intents.toml lacks {missing}"
    for intent in INTENTS:
        spec = table[intent]
        assert spec.get("patterns") or spec.get("keywords"), f"{locale}.{intent} is empty"


@pytest.mark.parametrize("locale", LOCALES)
def test_patterns_are_linear(locale: str) -> None:
    r"""No unbounded .* / .+ and no group ending in an unbounded quantifier that is itself
    repeated without bound (the (a+)+ shape that backtracks catastrophically). Bounded word
    gaps such as (?:\w+\W+){0,3}? are fine: \w and \W never overlap."""
    nested = re.compile(r"[+*]\)(?:[+*]|\{\d*,\})")
    for intent, spec in _table(locale).items():
        for pattern in spec.get("patterns", []):
            assert ".*" not in pattern and ".+" not in pattern, (locale, intent, pattern)
            assert not nested.search(pattern), (locale, intent, pattern)


def test_loads_as_package_resources() -> None:
    rec = Recogniser.from_dir(files("content"), LOCALES)
    assert rec.locales == ("en", "es")
    assert rec.recognise("should i pay").intent == "q_pay"


# --- loader validation --------------------------------------------------------------------------


def test_from_tables_minimal() -> None:
    rec = Recogniser.from_tables(
        {
            "en": {"crisis": {"keywords": ["suicide"]}, "q_pay": {"patterns": [r"\bpay\b"]}},
            "es": {"q_pay": {"patterns": [r"\bpago\b"]}},
        }
    )
    assert rec.recognise("Suicdie") == Recognition("crisis", "en", True)  # one typo
    assert rec.recognise("sucde").intent is None  # two typos
    assert rec.recognise("pago", prefer="en") == Recognition("q_pay", "es", False)
    assert rec.recognise("nothing") == Recognition(None, None, False)


def test_keyword_typos() -> None:
    rec = Recogniser.from_tables({"en": {"resources": {"keywords": ["hotline", "988"]}}})
    for text in ["hotline", "hotlines", "hotlne", "hotilne", "hotlnie", "HOTLINE?"]:
        assert rec.recognise(text).intent == "resources", text
    for text in ["hotl", "hot line", "hoptlinr", "98", "9888"]:
        assert rec.recognise(text).intent is None, text


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"en": {"pay": {"patterns": ["x"]}}}, "unknown intents"),
        ({"en": {"q_pay": {"pattern": ["x"]}}}, "unknown keys"),
        ({"en": {"q_pay": {"patterns": "x"}}}, "must be lists"),
        ({"en": {"q_pay": {"patterns": ["(unclosed"]}}}, "bad pattern"),
        ({"en": {"q_pay": {"patterns": ["Should"]}}}, "normalized text never"),
        ({"en": {"q_pay": {"patterns": ["don't"]}}}, "normalized text never"),
        ({"en": {"q_pay": {"patterns": ["pagaré"]}}}, "normalized text never"),
        ({"en": {"q_pay": {"patterns": ["a", "(?i)b"]}}}, "do not combine"),
        ({"en": {"q_pay": {"keywords": ["two words"]}}}, "single word"),
        ({"en": {"q_pay": {"keywords": [3]}}}, "must be strings"),
        ({"en": {"q_pay": "x"}}, "expected a table"),
    ],
)
def test_from_tables_rejects(tables: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Recogniser.from_tables(tables)


def test_keywords_are_normalized_on_load() -> None:
    rec = Recogniser.from_tables({"es": {"forget": {"keywords": ["Olvídame"]}}})
    assert rec.recognise("olvidame").intent == "forget"


# --- the word index is only a shortcut -------------------------------------------------------


def _osa(a: str, b: str) -> int:
    """Optimal string alignment distance, the slow textbook way."""
    rows = [list(range(len(b) + 1))] + [[i] + [0] * len(b) for i in range(1, len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[len(a)][len(b)]


def _reference(table: dict[str, Any], text: str) -> str | None:
    """The spec, run naively: every pattern searched, every keyword compared."""
    norm = normalize(text)[:2000]
    words = re.findall(r"[^\W_]+", norm)
    for intent in INTENTS:
        spec = table.get(intent, {})
        if any(re.search(p, norm) for p in spec.get("patterns", [])):
            return intent
        for keyword in map(normalize, spec.get("keywords", [])):
            for word in words:
                if word == keyword or (
                    min(len(word), len(keyword)) >= 6 and _osa(word, keyword) <= 1
                ):
                    return intent
    return None


_VOCABULARY = sorted(
    {word for text, _, _ in TABLE for word in normalize(text).split()}
    | {"he", "she", "they", "my", "pics", "nudes", "fotos", "$500", "1k", "or", "if", "no", "?"}
)
_SALAD = st.lists(st.sampled_from(_VOCABULARY), min_size=1, max_size=14).map(" ".join)


@pytest.mark.parametrize("locale", LOCALES)
def test_index_agrees_with_naive_search_on_the_table(locale: str) -> None:
    for text, _, _ in TABLE:
        assert _recogniser(locale).recognise(text).intent == _reference(_table(locale), text), text


@settings(max_examples=150, deadline=None)
@given(text=_SALAD, locale=st.sampled_from(LOCALES))
def test_index_agrees_with_naive_search(text: str, locale: str) -> None:
    assert _recogniser(locale).recognise(text).intent == _reference(_table(locale), text)


# --- robustness and speed ---------------------------------------------------------------------

_AWKWARD = st.sampled_from(
    [
        *"\u200b\u200f\u202e\ufeff\x00\n$10'’ñé🙂\ud800\U0010ffffﷺǅİßks !?\u0301ΐ",
        *["👨\u200d👩", "kms", "die", "pay", "pago"],
    ]
)
_TEXT = st.one_of(
    st.text(),
    st.lists(st.one_of(st.characters(), _AWKWARD), max_size=60).map("".join),
    st.builds(
        lambda chunk, table_text: (chunk + " " + table_text) * (5_200 // (len(chunk) + 40) + 1),
        st.text(min_size=1, max_size=30),
        st.sampled_from([text for text, _, _ in TABLE]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(text=_TEXT, prefer=st.sampled_from([None, "en", "es", "xx"]))
def test_never_raises(text: str, prefer: str | None) -> None:
    got = _recogniser(*LOCALES).recognise(text, prefer=prefer)
    assert got.intent is None or got.intent in INTENTS
    assert (got.intent is None) == (got.locale is None)
    assert got.locale is None or got.locale in LOCALES
    assert got.crisis == (got.intent == "crisis")
    assert isinstance(normalize(text), str)


@pytest.mark.parametrize(
    "text",
    [
        "a" * 100_000,
        "should i " * 12_000,
        "he wants $500 or " * 6_000,
        "me quiero " * 10_000,
        "pics " * 20_000,
        " " * 100_000,
        "\u200b" * 100_000,
        "é" * 100_000,
        "$1" * 50_000,
        "k1" * 50_000,
        "si no " * 15_000,
        "! " * 50_000,
    ],
)
def test_huge_inputs_are_fast(rec: Recogniser, text: str) -> None:
    start = time.perf_counter()
    got = rec.recognise(text)
    elapsed = time.perf_counter() - start
    assert got.intent is None or got.intent in INTENTS
    assert elapsed < 0.25, f"{elapsed * 1000:.1f} ms"


def test_typical_message_is_fast(rec: Recogniser) -> None:
    texts = [text for text, _, _ in TABLE]
    for text in texts:  # warm the character cache
        rec.recognise(text)
    rounds = 20
    start = time.perf_counter()
    for _ in range(rounds):
        for text in texts:
            rec.recognise(text)
    per_call = (time.perf_counter() - start) / (rounds * len(texts))
    # Well under 50 microseconds on a developer machine; generous here for slow CI runners.
    assert per_call < 500e-6, f"{per_call * 1e6:.1f} µs per call"


def test_only_a_bounded_prefix_is_examined(rec: Recogniser) -> None:
    """The work per message is bounded: intents are read in the first ``MAX_CHARS`` of the
    normalized text, crisis language up to ``CRISIS_MAX_CHARS``, and normalization itself sees
    at most the first ``_RAW_MAX_CHARS`` characters. Zero-width spaces vanish in normalization,
    so a phrase after many of them shows which raw characters were looked at."""
    filler = "hello there. " * (CRISIS_MAX_CHARS // 10)
    assert rec.recognise(filler[: CRISIS_MAX_CHARS - 100] + " i want to die").crisis
    assert not rec.recognise(filler[: CRISIS_MAX_CHARS + 100] + " i want to die").crisis
    hidden = "\u200b" * _RAW_MAX_CHARS
    assert rec.recognise(hidden[:-100] + "i want to die").crisis
    assert not rec.recognise(hidden + "i want to die").crisis


@pytest.mark.parametrize(
    "text",
    [
        "he said if i block him he'll send everything to my mom",
        "if i report her she says she leaks my pics",
        "if i tell the mods he'll post the video",
        "si lo bloqueo le manda todo a mi papá",
        "dice que si lo reporto sube los videos",
    ],
)
def test_a_threat_that_mentions_blocking_or_reporting_is_a_disclosure_first(
    rec: Recogniser, text: str
) -> None:
    assert rec.recognise(text).intent == "disclosure"


def test_the_index_does_not_lean_on_cpythons_private_parser() -> None:
    """With ``re._parser`` unimportable, patterns are still indexed by their first words."""
    code = (
        "import re, sys\n"
        "sys.modules['re._parser'] = sys.modules['re._constants'] = None\n"
        "sys.modules['sre_parse'] = sys.modules['sre_constants'] = None\n"
        "from safebot.first_words import first_words as _first_words\n"
        "got = _first_words(r'\\b(?:want|wanna)\\W+(?:to\\W+)?d\\W?i+\\W?e+\\b')\n"
        "assert got == (frozenset({'want', 'wanna'}), frozenset()), got\n"
        "got = _first_words(r'\\bsu+i+c+i+d(?:e|al)\\b')\n"
        "assert got == (frozenset(), frozenset({'su'})), got\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("locale", LOCALES)
def test_index_agrees_with_naive_search_on_the_evaluation_set(locale: str) -> None:
    for text in EVALUATION:
        assert _recogniser(locale).recognise(text).intent == _reference(_table(locale), text), text
