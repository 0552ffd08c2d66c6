"""My reports: a person sees their own reports and their status without relying on status DMs,
and can add a follow-up note to an open one, which reaches the moderators under the alert."""

from __future__ import annotations

from conftest import Clock
from test_service import report

from safebot.adapters.memory import MemoryBot
from safebot.conversation import AddNote
from safebot.messages import Message
from safebot.model import Community, PersonId


async def _home(bot: MemoryBot, who: str = "alice") -> tuple[Community, PersonId]:
    home = await bot.setup_community("g1", "Home")
    person = bot.person(who)
    bot.platform.join(person, home)
    return home, person


def _text(messages: tuple[Message, ...]) -> str:
    return "\n".join(m.text for m in messages)


def _choices(messages: tuple[Message, ...]) -> list[str]:
    return [c.id for m in messages for c in m.choices]


async def test_no_reports_yet(bot: MemoryBot) -> None:
    _home_community, alice = await _home(bot)
    shown = await bot.command(alice, "my-reports")
    assert "no reports saved here" in _text(shown)
    assert "report" in _choices(shown)


async def test_reports_and_their_status_newest_first(bot: MemoryBot, clock: Clock) -> None:
    home, alice = await _home(bot)
    first = await report(bot, alice, home)
    clock.advance(60)
    await bot.deliver()
    assert (await bot.moderate(home, first, "resolve")).ok
    second = await report(bot, alice, home)
    await bot.say(alice, "menu")
    shown = await bot.press(alice, "mine", "menu")
    text = _text(shown)
    assert text.index(second) < text.index(first)
    assert "waiting for a moderator" in text and "closed by a moderator" in text
    assert "\n\n\n" not in text
    # Only the open one can take a note.
    assert f"report.{second}" in _choices(shown) and f"report.{first}" not in _choices(shown)


async def test_a_note_reaches_the_moderators_under_the_alert(bot: MemoryBot) -> None:
    home, alice = await _home(bot)
    reference = await report(bot, alice, home)
    await bot.deliver()
    await bot.command(alice, "my-reports")
    asked = await bot.press(alice, f"report.{reference}", "mine")
    assert "Type what you want the moderators to know" in _text(asked)
    sent = await bot.say(alice, "he made a new account: @evil2 <@&123>")
    assert f"moderators will see your note under report {reference}" in _text(sent)
    await bot.deliver()
    [note] = bot.platform.replies("mods")
    assert note.message is not None and note.alert is not None
    assert note.alert.reference == reference
    assert "@evil2" in note.message.text
    # The person's words stay untrusted (adapters show them inert); nobody is pinged.
    assert any(s.untrusted and "@evil2" in s.text for s in note.message.spans)
    assert bot.platform.reminders() == []
    log = [e.action for e in await bot.service.store.audit_log(reference)]
    assert "note" in log


async def test_someone_else_cannot_add_a_note_to_your_report(bot: MemoryBot) -> None:
    home, alice = await _home(bot)
    reference = await report(bot, alice, home)
    mallory = bot.person("mallory")
    bot.platform.join(mallory, home)
    await bot.command(mallory, "my-reports")
    # A choice that was never offered to this person does nothing.
    shown = await bot.press(mallory, f"report.{reference}", "mine")
    assert "Type what you want" not in _text(shown)
    await bot.deliver()
    assert bot.platform.replies() == []


async def test_a_note_on_a_report_closed_meanwhile_is_refused(bot: MemoryBot) -> None:
    home, alice = await _home(bot)
    reference = await report(bot, alice, home)
    await bot.deliver()
    await bot.command(alice, "my-reports")
    await bot.press(alice, f"report.{reference}", "mine")
    assert (await bot.moderate(home, reference, "resolve")).ok
    refused = await bot.say(alice, "one more thing")
    assert "couldn't add that note" in _text(refused)
    await bot.deliver()
    assert bot.platform.replies() == []


async def test_after_forget_me_nothing_is_listed(bot: MemoryBot) -> None:
    home, alice = await _home(bot)
    await report(bot, alice, home)
    await bot.command(alice, "forget")
    await bot.press(alice, "forget.yes", None)
    shown = await bot.command(alice, "my-reports")
    assert "no reports saved here" in _text(shown)


async def test_the_service_refuses_a_note_on_someone_elses_report(bot: MemoryBot) -> None:
    # Even if a stale or forged choice got past the conversation, the service checks again.
    home, alice = await _home(bot)
    reference = await report(bot, alice, home)
    mallory = bot.person("mallory")
    refused = await bot.service._add_note(mallory, AddNote(reference, "hi", "note:k"))
    assert not refused.ok
    assert (await bot.service._add_note(alice, AddNote(reference, "hi", "note:k"))).ok
