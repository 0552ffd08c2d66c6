"""The right help first: region, the crisis screen and the advice itself (issue 11)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from test_console import REPO, console
from test_conversation import ME, drive, press, replies, start, texts, walk

from safebot.content import Content, ContentError
from safebot.conversation import Engine, Policy
from safebot.events import ChoiceSelected, CommandInvoked, CommunitiesListed, TextReceived
from safebot.messages import Message
from safebot.model import Community, CommunityId, Session
from safebot.service import build_engine
from safebot.settings import SettingsError, load_settings

# What the no-region crisis screen must show, per locale: (country label, a contact on it).
NO_REGION_LINES = {
    "en": [
        ("United States", "988"),
        ("United States", "THORN to 741741"),
        ("United Kingdom", "85258"),
        ("Canada", "686868"),
        ("Australia", "1800 55 1800"),
        ("Spain", "024"),
        ("Mexico", "800 911 2000"),
        ("findahelpline.com", "findahelpline.com"),
    ],
    "es": [
        ("Estados Unidos", "988"),
        ("Estados Unidos", "AYUDA al 741741"),
        ("México", "800 911 2000"),
        ("España", "024"),
        ("Reino Unido", "85258"),
        ("Canadá", "686868"),
        ("Australia", "1800 55 1800"),
        ("findahelpline.com", "findahelpline.com"),
    ],
}


def crisis_message(engine: Engine, locale: str, text: str) -> Message:
    session = replace(start(engine), locale=locale, locale_chosen=True)
    message = replies(drive(engine, session, TextReceived(ME, text)))[0]
    assert message.urgent
    return message


def line_with(message: Message, label: str) -> str:
    for line in message.text.splitlines():
        if label in line:
            return line
    raise AssertionError(f"no line with {label!r} in:\n{message.text}")


@pytest.mark.parametrize("locale", ["en", "es"])
def test_no_region_crisis_shows_labelled_lines_and_the_country_button(
    engine: Engine, locale: str
) -> None:
    for text in ("I want to die", "me quiero morir"):
        message = crisis_message(engine, locale, text)
        for label, contact in NO_REGION_LINES[locale]:
            # Every line carries its country on the same line as the number.
            assert any(label in line and contact in line for line in message.text.splitlines()), (
                label,
                contact,
                message.text,
            )
        ids = [c.id for c in message.choices]
        assert "settings.region" in ids, ids
        # The screen fits a phone: the menu sits behind one button.
        assert len(message.choices) <= 3, ids
        assert len(message.text.splitlines()) <= 18, message.text


def test_spanish_988_mentions_the_spanish_option(engine: Engine) -> None:
    message = crisis_message(engine, "es", "me quiero morir")
    assert "2" in line_with(message, "988")


def test_a_known_region_shows_its_own_lines(engine: Engine) -> None:
    session = replace(start(engine), region="ES", locale="es", locale_chosen=True)
    message = replies(drive(engine, session, CommandInvoked(ME, "crisis")))[0]
    assert "024" in message.text and "112" in message.text
    assert "Estados Unidos" not in message.text


def test_every_screen_that_says_press_country_has_the_button(
    engine: Engine, content: Content
) -> None:
    words = {loc: content.text(loc, "choice.region") for loc in content.locales}
    session = start(engine)
    for loc, word in words.items():
        here = replace(session, locale=loc, locale_chosen=True)
        for event in (
            TextReceived(ME, "I want to die"),
            CommandInvoked(ME, "crisis"),
            CommandInvoked(ME, "resources"),
            ChoiceSelected(ME, "crisis", "menu"),
        ):
            for message in replies(drive(engine, here, event)):
                said = re.search(rf"\b(?:press|toca|elige)\s+\**{word}\b", message.text, re.I)
                if said:
                    assert word in [c.label for c in message.choices], message.text


def test_crisis_in_the_middle_does_not_repeat_saved(engine: Engine) -> None:
    session = walk(engine, "settings", "settings.region", "region.INTL")
    assert session.node == "settings.saved"
    outcome = drive(engine, session, TextReceived(ME, "I want to die"))
    assert replies(outcome)[0].urgent
    assert "Saved." not in texts(outcome)


def test_the_deployment_default_region(engine: Engine, content: Content) -> None:
    assert Policy().default_region == ""
    configured = Engine(
        engine.flow, content, engine.recogniser, replace(engine.policy, default_region="UK")
    )
    outcome = configured.step(None, CommandInvoked(ME, "crisis", locale_hint="en-US"), 0.0)
    assert "Childline" in texts(outcome) and "999" in texts(outcome)
    # Without the setting, the client's locale is still a guess.
    guessed = engine.step(None, CommandInvoked(ME, "crisis", locale_hint="en-US"), 0.0)
    assert "988" in texts(guessed) and "Childline" not in texts(guessed)


# --- the advice itself ---------------------------------------------------------------------
def test_what_to_do_mentions_police_and_the_cybertipline(engine: Engine) -> None:
    for locale in ("en", "es"):
        session = replace(start(engine), locale=locale, locale_chosen=True)
        text = texts(press(engine, session, "todo")).lower()
        assert "cybertipline" in text
        assert "police" in text or "policía" in text


def test_pictures_advice_never_says_to_delete_them(content: Content) -> None:
    for locale in content.locales:
        for key in ("todo.list", "answer.delete"):
            text = content.text(locale, key).lower()
            assert "never keep" not in text and "nunca guardes" not in text, key
            assert "take it down" in text, (locale, key)


def test_takedown_asks_an_age_range_and_shows_the_right_tool(engine: Engine) -> None:
    asked = walk(engine, "takedown")
    ids = {c.id for c in engine.render_current(asked).choices}
    assert {"age.under18", "age.adult"} <= ids
    young = texts(press(engine, asked, "age.under18"))
    assert "Take It Down" in young and "StopNCII" not in young
    grown = texts(press(engine, asked, "age.adult"))
    assert "StopNCII" in grown and "Take It Down" not in grown
    uk = replace(asked, region="UK")
    young_uk = texts(press(engine, uk, "age.under18"))
    # "You never upload" is only said of the tools where it is true, not above Report Remove.
    assert "Report Remove" in young_uk
    assert "never upload the picture to anyone" not in young_uk


def test_age_is_forgotten_when_the_conversation_ends(engine: Engine) -> None:
    asked = walk(engine, "takedown", "age.under18")
    assert asked.vars.get("age") == "under18"
    ended = drive(engine, asked, TextReceived(ME, "stop")).session
    assert ended is not None and "age" not in ended.vars


def test_help_outside_after_a_report(engine: Engine) -> None:
    session = walk(engine, "report", "report.go", "community.0", "cat.threats")
    for _ in range(3):
        session = press(engine, session, "skip").session or session
    session = press(engine, session, "identity.anonymous").session or session
    outcome = press(engine, session, "report.confirm")
    receipt = replies(outcome)[-1]
    assert "CyberTipline" in receipt.text and "Take It Down" in receipt.text
    assert "findahelpline.com" in receipt.text  # the crisis line with no region known
    assert "platform.report.any" in [c.id for c in receipt.choices]


def test_saving_evidence_comes_first_on_every_platform(content: Content) -> None:
    for locale in content.locales:
        for platform in content.apps.values():
            for device in platform.devices:
                first = content.steps(locale, f"block.{platform.id}.{device}")[0].lower()
                words = ("screenshot", "save", "captura", "guarda")
                assert any(w in first for w in words), (locale, platform.id)


@pytest.mark.parametrize(
    ("text", "platform"),
    [
        ("how do i block her on tiktok", "tiktok"),
        ("how do I block someone on insta", "instagram"),
        ("cómo bloqueo a alguien en whatsapp", "whatsapp"),
    ],
)
def test_an_app_name_goes_straight_to_its_walkthrough(
    engine: Engine, text: str, platform: str
) -> None:
    outcome = drive(engine, start(engine), TextReceived(ME, text))
    assert outcome.session is not None
    assert outcome.session.vars.get("app") == platform
    assert outcome.session.node == "block.device"


def test_a_crisis_first_message_is_not_followed_by_the_full_menu(engine: Engine) -> None:
    outcome = drive(engine, None, TextReceived(ME, "i want to kill myself"))
    messages = replies(outcome)
    assert len(messages) == 1 and messages[0].urgent
    assert outcome.session is not None and outcome.session.node == "crisis"
    menu = press(engine, outcome.session, "menu")
    assert "understand" in [c.id for c in replies(menu)[0].choices]


# --- over the console: the real ``safebot console`` command -------------------------------
@pytest.mark.parametrize(
    ("lines", "locale"),
    [(["i want to kill myself"], "en"), (["hola", "me quiero morir"], "es")],
)
def test_console_crisis_without_region(tmp_path: Path, lines: list[str], locale: str) -> None:
    out = console(tmp_path, lines)
    crisis = out.split("> " + lines[-1])[1]
    for label, contact in NO_REGION_LINES[locale]:
        assert any(label in ln and contact in ln for ln in crisis.splitlines()), (label, crisis)
    word = {"en": "Country", "es": "País"}[locale]
    assert re.search(rf"^\s+1\) {word}$", crisis, re.M), crisis
    assert "2) Menu" in crisis or "2) Menú" in crisis
    assert "3)" not in crisis  # the menu is behind one button


def test_check_refuses_missing_no_region_lines_and_unsourced_contacts(tmp_path: Path) -> None:
    root = tmp_path / "content"
    shutil.copytree(REPO / "content", root)
    facts = root / "resources.toml"
    text = facts.read_text(encoding="utf-8")
    text = text.replace('es = [\n    "MX/mx.lineadelavida",', 'xx = [\n    "MX/mx.lineadelavida",')
    text = text.replace('contacts_source = "https://988lifeline.org/get-help/what-to-expect"\n', "")
    text = text.replace('source = "https://findahelpline.com"\n', "")
    facts.write_text(text, encoding="utf-8")
    with pytest.raises(ContentError) as caught:
        Content.load(root)
    problems = "\n".join(caught.value.problems)
    assert "es: no crisis lines for when no region is known" in problems
    assert "us.988 contacts: no source" in problems
    assert "resource INTL/intl.findahelpline: no source" in problems


# --- the deployment's default region (settings.default_region) ----------------------------
def test_console_uses_the_configured_default_region(tmp_path: Path) -> None:
    config = tmp_path / "es.toml"
    config.write_text('default_region = "ES"\n', encoding="utf-8")
    out = console(tmp_path, ["i want to kill myself"], "--config", str(config))
    crisis = out.split("> i want to kill myself")[1]
    assert "112" in crisis and "024" in crisis
    assert "United States" not in crisis  # a region is known: its own lines, not the list


def test_check_refuses_an_unknown_default_region(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('default_region = "XX"\n', encoding="utf-8")
    bad = subprocess.run(
        [sys.executable, "-m", "safebot.cli", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert bad.returncode == 1 and "default_region" in bad.stdout, bad.stdout
    assert load_settings(config).default_region == "XX"  # the file itself is well formed
    with pytest.raises(SettingsError):
        build_engine(load_settings(config))
    started = subprocess.run(
        [sys.executable, "-m", "safebot.cli", "console", "--config", str(config), "--db", "memory"],
        input="hi\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert started.returncode == 2 and "default_region" in started.stderr
    assert "Traceback" not in started.stderr


# --- a community's region ------------------------------------------------------------------
def test_a_community_region_applies_until_the_person_picks_one(engine: Engine) -> None:
    uk = Community(CommunityId("test", "g9"), "UK Server", region="UK")
    session = start(engine)
    outcome = drive(engine, session, CommandInvoked(ME, "resources", community=uk))
    assert "Childline" in texts(outcome)
    # Picking a community to report to brings its region too (and survives a restart).
    listed = engine.step(session, ChoiceSelected(ME, "report", "menu"), 1.0).session
    assert listed is not None
    listed = engine.step(listed, ChoiceSelected(ME, "report.go", "report.start"), 2.0).session
    assert listed is not None
    offered = engine.step(listed, CommunitiesListed(ME, (uk,)), 3.0).session
    assert offered is not None
    restored = Session.from_json(ME, offered.to_json(), 1)
    picked = engine.step(restored, ChoiceSelected(ME, "community.0", restored.node), 4.0)
    assert picked.session is not None and picked.session.region == "UK"
    # A country the person picked wins over the community's.
    chosen = walk(engine, "settings", "settings.region", "region.CA")
    assert chosen.region_chosen
    again = drive(engine, chosen, CommandInvoked(ME, "resources", community=uk))
    assert "Cybertip.ca" in texts(again) and "Childline" not in texts(again)


# --- what the person already said pre-selects the report category -------------------------
@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("he wants $500 or he'll post my pics", "money"),
        ("she says she will post my nudes", "threats"),
        ("me pide dinero o va a publicar mis fotos", "money"),
        ("me pidió más fotos", "more_images"),
    ],
)
def test_what_was_said_preselects_the_category(engine: Engine, text: str, category: str) -> None:
    told = drive(engine, start(engine), TextReceived(ME, text)).session
    assert told is not None
    session = walk_from(engine, told, "report", "report.go", "community.0")
    assert session.node == "report.category"
    screen = engine.render_current(session)
    assert screen.choices[0].id == f"cat.{category}", screen.choices
    label = screen.choices[0].label
    assert label in screen.text  # it says which one it picked, and the person can change it
    changed = press(engine, session, "cat.other").session
    assert changed is not None and changed.draft.category == "other"


def test_no_preselection_without_a_hint(engine: Engine) -> None:
    session = walk(engine, "report", "report.go", "community.0")
    screen = engine.render_current(session)
    assert [c.id for c in screen.choices][:2] == ["cat.threats", "cat.money"]
    assert "sounds like" not in screen.text


def walk_from(engine: Engine, session: Session, *choices: str) -> Session:
    for choice in choices:
        moved = press(engine, session, choice).session
        assert moved is not None, choice
        session = moved
    return session
