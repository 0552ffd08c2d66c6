"""No alert left waiting: an alert nobody acknowledges is posted again with a fresh ping, sooner
for an urgent report, at most twice, and never once a moderator has it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import Clock, Tokens
from test_service import report

from safebot.adapters.memory import MemoryBot
from safebot.conversation import Engine
from safebot.model import Community, PersonId
from safebot.settings import EscalationSettings, Settings, SettingsError, load_settings
from safebot.store import open_store

MINUTE = 60.0


async def _reported(
    bot: MemoryBot, details: str = "They say they will post my photos unless I pay"
) -> tuple[Community, PersonId, str]:
    home = await bot.setup_community("g1", "Home")
    alice = bot.person("alice")
    bot.platform.join(alice, home)
    reference = await report(bot, alice, home, details=details)
    assert await bot.deliver() == 1  # the alert itself
    return home, alice, reference


async def test_an_unacknowledged_alert_is_posted_again_twice(bot: MemoryBot, clock: Clock) -> None:
    _home, _alice, reference = await _reported(bot)
    clock.advance(14 * MINUTE)
    assert await bot.deliver() == 0 and bot.platform.reminders() == []
    clock.advance(1 * MINUTE)
    assert await bot.deliver() == 1
    [first] = bot.platform.reminders("mods")
    assert first.alert is not None and first.alert.reference == reference
    assert first.message is not None
    assert reference in first.message.text and "15 minutes" in first.message.text
    clock.advance(30 * MINUTE)
    assert await bot.deliver() == 1
    assert len(bot.platform.reminders()) == 2
    clock.advance(24 * 60 * MINUTE)
    assert await bot.deliver() == 0  # two reminders, no more
    actions = [entry.action for entry in await bot.service.store.audit_log(reference)]
    assert actions.count("escalate") == 2
    assert bot.service.metrics.escalations == 2


@pytest.mark.parametrize("action", ["ack", "claim", "resolve"])
async def test_no_reminder_once_a_moderator_has_it(
    bot: MemoryBot, clock: Clock, action: str
) -> None:
    home, _alice, reference = await _reported(bot)
    clock.advance(10 * MINUTE)
    assert (await bot.moderate(home, reference, action)).ok
    await bot.deliver()
    clock.advance(60 * MINUTE)
    await bot.deliver()
    assert bot.platform.reminders() == []
    assert "escalate" not in [e.action for e in await bot.service.store.audit_log(reference)]


async def test_an_urgent_report_is_posted_again_sooner(bot: MemoryBot, clock: Clock) -> None:
    await _reported(bot, details="he posts them by tonight")
    clock.advance(4 * MINUTE)
    await bot.deliver()
    assert bot.platform.reminders() == []
    clock.advance(1 * MINUTE)
    await bot.deliver()
    assert len(bot.platform.reminders()) == 1


async def test_waiting_reminders_are_not_counted_as_alerts_waiting(bot: MemoryBot) -> None:
    home, _alice, _reference = await _reported(bot)
    backlog = await bot.service.store.backlog(home.id)
    assert backlog.waiting == 0 and backlog.oldest_created_at is None


async def test_a_reminder_that_fails_is_retried(bot: MemoryBot, clock: Clock) -> None:
    await _reported(bot)
    bot.platform.down.add("mods")
    clock.advance(15 * MINUTE)
    assert await bot.deliver() == 0
    bot.platform.down.clear()
    clock.advance(MINUTE)
    assert await bot.deliver() == 1
    assert len(bot.platform.reminders()) == 1


async def test_reminders_can_be_turned_off(
    engine: Engine, settings: Settings, clock: Clock
) -> None:
    off = replace(settings, escalation=EscalationSettings(after_minutes=0))
    store = await open_store("memory")
    bot = MemoryBot(engine, store, off, clock=clock, tokens=Tokens())
    await _reported(bot)
    clock.advance(24 * 60 * MINUTE)
    assert await bot.deliver() == 0 and bot.platform.reminders() == []


def test_escalation_settings_are_read_and_checked(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "s.toml"
    path.write_text("[escalation]\nafter_minutes = 20\nurgent_after_minutes = 2\n")
    assert load_settings(path).escalation == EscalationSettings(20.0, 2.0, 30.0)
    path.write_text("[escalation]\nagain_minutes = 0\n")
    with pytest.raises(SettingsError, match="escalation"):
        load_settings(path)


async def test_the_last_reminder_also_reaches_the_escalation_target(
    bot: MemoryBot, clock: Clock
) -> None:
    home, _alice, _reference = await _reported(bot)
    config = await bot.service.store.get_community(home.id)
    assert config is not None
    await bot.service.configure_community(replace(config, escalate_to="oncall"), actor="admin")
    clock.advance(15 * MINUTE)
    await bot.deliver()
    assert bot.platform.sent_to("oncall") == []  # the first reminder stays with the moderators
    clock.advance(30 * MINUTE)
    await bot.deliver()
    [escalated] = bot.platform.sent_to("oncall")
    assert escalated.kind == "escalation" and escalated.message is not None


async def test_setting_up_again_keeps_what_it_does_not_change(bot: MemoryBot) -> None:
    home, _alice, _reference = await _reported(bot)
    config = await bot.service.store.get_community(home.id)
    assert config is not None
    kept = replace(
        config, escalate_to="oncall", policy_room="!list:x", region="UK", blocked=("p:1",)
    )
    await bot.service.configure_community(kept, actor="admin")
    again = await bot.service.set_up_community(
        home.id, name="Home 2", destination="mods2", actor="admin", locale="es", mention="9"
    )
    assert (again.name, again.destination, again.mention) == ("Home 2", "mods2", "9")
    assert (again.escalate_to, again.policy_room, again.region) == ("oncall", "!list:x", "UK")
    assert again.blocked == ("p:1",) and again.locale == config.locale
    assert await bot.service.store.get_community(home.id) == replace(
        again,
        updated_at=(await bot.service.store.get_community(home.id)).updated_at,  # type: ignore[union-attr]
    )
