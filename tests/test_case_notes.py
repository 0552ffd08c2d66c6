"""Case notes and the evidence pack: moderators keep notes with a report, and export what a
platform, a hotline or the police need, never images and never the reporter's name unless
they chose to share it."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from conftest import Clock
from test_service import anonymous_report, report

from safebot.adapters.memory import MemoryBot
from safebot.conversation import Engine
from safebot.evidence import evidence_pack
from safebot.model import Community, CommunityId, PersonId
from safebot.settings import Settings
from safebot.store import open_store


async def _reported(bot: MemoryBot, **kw: str) -> tuple[Community, PersonId, str]:
    home = await bot.setup_community("g1", "Home")
    alice = bot.person("alice")
    bot.platform.join(alice, home)
    reference = await report(bot, alice, home, **kw)
    await bot.deliver()
    return home, alice, reference


async def test_a_case_note_is_kept_and_audited(bot: MemoryBot) -> None:
    home, _alice, reference = await _reported(bot)
    kept = await bot.service.add_case_note(home.id, reference.lower(), "mod#7", "  called mum ")
    assert kept.ok and "Noted" in kept.message.text
    [note] = await bot.service.store.case_notes(reference)
    assert (note.author, note.text) == ("mod#7", "called mum")
    assert "case_note" in [e.action for e in await bot.service.store.audit_log(reference)]


async def test_no_note_on_another_communitys_report_or_without_words(bot: MemoryBot) -> None:
    home, _alice, reference = await _reported(bot)
    elsewhere = CommunityId(home.id.platform, "other")
    assert not (await bot.service.add_case_note(elsewhere, reference, "mod", "x")).ok
    empty = await bot.service.add_case_note(home.id, reference, "mod", "  \u200b \x00 ")
    assert not empty.ok and "empty" in empty.message.text
    assert await bot.service.store.case_notes(reference) == []


async def test_the_evidence_pack_holds_what_a_hotline_asks_for(
    bot: MemoryBot, clock: Clock
) -> None:
    home, _alice, reference = await _reported(
        bot, offender="bad#0001 (id 123456789012345678)", details="he wants $200 by tonight"
    )
    clock.advance(120)
    assert (await bot.moderate(home, reference, "ack")).ok
    await bot.service.add_case_note(home.id, reference, "mod#7", "told the platform")
    pack = await bot.service.evidence(home.id, reference, "mod#7")
    stored = await bot.service.store.get_report(reference)
    assert pack is not None and stored is not None
    text = pack.as_text()
    assert f"report {reference}" in text
    assert "bad#0001 (id 123456789012345678)" in text and "$200 by tonight" in text
    assert "Why urgent" in text  # the deadline
    assert "reported" in text and "acknowledged" in text and "told the platform" in text
    assert "INHOPE" in text  # no region set: the international hotline network
    us = evidence_pack(bot.service.content, stored, [], [], "US").as_text()
    assert "CyberTipline" in us and "911" in us
    assert "No images" in text
    data = json.loads(pack.as_json())
    assert data["reference"] == reference and data["notes"][0]["text"] == "told the platform"
    assert [step["what"] for step in data["timeline"]][:2] == ["reported", "acknowledged"]
    # Exporting is audited too.
    assert "export" in [e.action for e in await bot.service.store.audit_log(reference)]


async def test_the_pack_names_the_reporter_only_if_they_chose_to(bot: MemoryBot) -> None:
    home = await anonymous_report(bot, "bob")
    [stored] = await bot.service.store.reports_for_community(home.id)
    reference = stored.reference
    pack = await bot.service.evidence(home.id, reference, "mod")
    assert pack is not None
    assert "anonymous" in pack.as_text() and "bob" not in pack.as_text()


async def test_no_pack_for_another_communitys_report(bot: MemoryBot) -> None:
    home, _alice, reference = await _reported(bot)
    elsewhere = CommunityId(home.id.platform, "other")
    assert await bot.service.evidence(elsewhere, reference, "mod") is None
    assert await bot.service.evidence(None, reference, "operator") is not None  # the CLI
    assert await bot.service.evidence(None, "R-NOPE", "operator") is None


async def test_the_operator_exports_from_the_command_line(
    engine: Engine, settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    database = str(tmp_path / "export.db")
    store = await open_store(database)
    try:
        bot = MemoryBot(engine, store, replace(settings, database_url=database), clock=clock)
        home, _alice, reference = await _reported(bot)
        await bot.service.add_case_note(home.id, reference, "mod#7", "kept for police")
    finally:
        await store.close()
    _check_cli_export(database, reference)


def _check_cli_export(database: str, reference: str) -> None:
    def export(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "safebot.cli", "export", *args, "--db", database]
        return subprocess.run(command, capture_output=True, text=True)

    text = export(reference.lower()).stdout
    assert f"report {reference}" in text and "kept for police" in text
    assert json.loads(export(reference, "--json").stdout)["reference"] == reference
    missing = export("R-NONE")
    assert missing.returncode == 1 and "no report" in missing.stderr
