"""Urgent reports: crisis words or a deadline in the conversation mark the report urgent for the
moderators, and a person in crisis is never told to wait for them before seeing crisis lines."""

from __future__ import annotations

import pytest
from test_service import report

from safebot.adapters.memory import MemoryBot
from safebot.content import Content
from safebot.messages import Message
from safebot.model import Community, PersonId


async def _home(bot: MemoryBot, who: str) -> tuple[Community, PersonId]:
    home = await bot.setup_community("g1", "Home")
    person = bot.person(who)
    bot.platform.join(person, home)
    return home, person


async def _alert_fields(bot: MemoryBot, reference: str) -> tuple[str, dict[str, str]]:
    await bot.deliver()
    [alert] = [a for a in bot.platform.alerts() if a.reference == reference]
    return alert.title, {f.label: str(f.value) for f in alert.fields}


async def test_an_ordinary_report_is_not_urgent(bot: MemoryBot) -> None:
    home, alice = await _home(bot, "alice")
    reference = await report(bot, alice, home)
    stored = await bot.service.store.get_report(reference)
    assert stored is not None and stored.urgent == ()
    title, fields = await _alert_fields(bot, reference)
    assert not title.startswith("URGENT") and "Why urgent" not in fields


async def test_a_deadline_in_the_details_makes_the_report_urgent(bot: MemoryBot) -> None:
    home, alice = await _home(bot, "alice")
    reference = await report(bot, alice, home, details="he says he posts them by tonight")
    stored = await bot.service.store.get_report(reference)
    assert stored is not None and stored.urgent == ("deadline",)
    title, fields = await _alert_fields(bot, reference)
    assert title.startswith("URGENT") and "deadline" in fields["Why urgent"]
    # The reason leads the alert.
    assert next(iter(fields)) == "Why urgent"


async def test_crisis_words_earlier_make_the_report_urgent_and_crisis_lines_come_first(
    bot: MemoryBot,
) -> None:
    home, alice = await _home(bot, "alice")
    said = await bot.say(alice, "i want to die, he has my pics")
    assert said[0].urgent  # crisis lines first, at once
    reference = await report(bot, alice, home)
    stored = await bot.service.store.get_report(reference)
    assert stored is not None and stored.urgent == ("crisis",)
    title, fields = await _alert_fields(bot, reference)
    assert title.startswith("URGENT") and "crisis" in fields["Why urgent"]


async def test_after_a_crisis_the_receipt_comes_after_the_crisis_lines(bot: MemoryBot) -> None:
    _home_community, alice = await _home(bot, "alice")
    await bot.say(alice, "i keep cutting myself")
    await bot.say(alice, "menu")
    await bot.press(alice, "report", "menu")
    await bot.press(alice, "report.go", "report.start")
    await bot.press(alice, "community.0", "report.community")
    await bot.press(alice, "cat.threats", "report.category")
    for _ in range(3):
        await bot.say(alice, "skip")
    await bot.press(alice, "identity.share", "report.identity")
    replies: tuple[Message, ...] = await bot.press(alice, "report.confirm", "report.review")
    assert replies[0].urgent, [m.text[:60] for m in replies]
    assert "988" in replies[0].text or "741741" in replies[0].text
    assert any("R-" in m.text and "on its way" in m.text for m in replies[1:])


async def test_a_cancelled_report_keeps_the_urgency_for_the_next_one(bot: MemoryBot) -> None:
    home, alice = await _home(bot, "alice")
    await bot.say(alice, "he said i have 2 hours or everyone sees")
    await bot.press(alice, "report", None)
    await bot.press(alice, "report.go", "report.start")
    await bot.press(alice, "report.cancel", None)
    reference = await report(bot, alice, home)
    stored = await bot.service.store.get_report(reference)
    assert stored is not None and "deadline" in stored.urgent


@pytest.mark.parametrize(
    ("text", "deadline"),
    [
        ("he said by tonight or he posts them", True),
        ("i have 24 hours", True),
        ("she gave me until 9pm", True),
        ("he wants it in 2 hours", True),
        ("me dio hasta mañana", True),
        ("dice que en 3 horas las sube", True),
        ("tengo que pagar antes de las 8", True),
        ("hoy o las publica", True),
        ("i saw him today at school", False),
        ("we have a test tomorrow", False),
        ("mañana tengo examen", False),
        ("i have 2 cats", False),
    ],
)
def test_deadlines_are_found_in_both_languages(content: Content, text: str, deadline: bool) -> None:
    assert content.deadline_in(text) is deadline
