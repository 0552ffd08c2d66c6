"""The service layer with real stores: reports reach moderators exactly once, whatever fails."""

from __future__ import annotations

import contextlib
import logging
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import Clock, Tokens

from safebot.adapters.memory import MemoryBot, MemoryPlatform
from safebot.content import Content
from safebot.conversation import Engine, Policy
from safebot.events import ChoiceSelected, TextReceived
from safebot.flows import parse_flow, validate
from safebot.messages import Message
from safebot.model import Community, CommunityConfig, OutboxKind, PersonId, ReportStatus
from safebot.moderation import Alert
from safebot.recognise import Recogniser
from safebot.service import SafeBot
from safebot.settings import OutboxSettings, Settings
from safebot.store import open_store
from safebot.store.memory import MemoryStore
from safebot.store.sqlite import SqliteStore


def choice_ids(messages: tuple[Message, ...]) -> list[str]:
    return [c.id for m in messages for c in m.choices]


async def report(
    bot: MemoryBot,
    person: PersonId,
    community: Community,
    offender: str = "someone#1234",
    details: str = "They say they will post my photos unless I pay",
) -> str:
    """Walk one person through a report and confirm it; returns the receipt's reference."""
    await review_screen(bot, person, community, offender, details)
    receipt = await bot.press(person, "report.confirm", "report.review")
    text = receipt[-1].text
    start = text.index("R-")
    return text[start : start + 6]


async def review_screen(
    bot: MemoryBot, person: PersonId, community: Community, offender: str, details: str
) -> tuple[Message, ...]:
    """Walk one person through a report up to its review screen, which this returns."""
    await bot.say(person, "hi")
    await bot.press(person, "report", "menu")
    offered = await bot.press(person, "report.go", "report.start")
    names = [c.label for m in offered for c in m.choices if c.id.startswith("community.")]
    index = names.index(community.name)
    await bot.press(person, f"community.{index}", "report.community")
    await bot.press(person, "cat.threats", "report.category")
    await bot.say(person, offender)
    await bot.say(person, details)
    await bot.press(person, "skip", "report.evidence")
    return await bot.press(person, "identity.share", "report.identity")


async def test_control_characters_never_reach_the_report_or_the_alert(bot: MemoryBot) -> None:
    """A terminal escape, a bell, NUL, DEL, a C1 control and a lone surrogate in what the
    person types are taken out before the report is stored and the alert is sent; the words
    around them stay."""
    home = await bot.setup_community("g1", "Home")
    lee = bot.person("lee")
    bot.platform.join(lee, home)
    reference = await report(
        bot, lee, home, offender="bad\x1b[2Jguy\x07", details="pay\x00 or\x7f else\x85 \ud800now"
    )
    stored = await bot.service.store.get_report(reference)
    assert stored is not None
    assert (stored.offender, stored.details) == ("bad[2Jguy", "pay or else \ufffdnow"), stored
    await bot.deliver()
    [alert] = [a for a in bot.platform.alerts() if a.reference == reference]
    shown = " ".join(str(f.value) for f in alert.fields)
    assert "pay or else \ufffdnow" in shown and "bad[2Jguy" in shown, shown
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown), ascii(shown)


async def test_full_report_reaches_moderators_and_ack_reaches_reporter(bot: MemoryBot) -> None:
    home = await bot.setup_community("g1", "Home")
    alice = bot.person("alice")
    bot.platform.join(alice, home)
    reference = await report(bot, alice, home)
    assert await bot.deliver() == 1
    [alert] = bot.platform.alerts("mods")
    assert alert.reference == reference
    fields = {f.label: f.value for f in alert.fields}
    assert fields["Reported person"] == "someone#1234"
    assert fields["Reported by"] == "alice"
    assert "do not download" in alert.guidance.lower()
    result = await bot.moderate(home, reference.lower(), "ack")
    assert result.ok and "acknowledged" in result.message.text
    await bot.deliver()
    [update] = bot.platform.private(alice)
    assert reference in update.text and "seen it" in update.text
    assert (await bot.service.store.get_report(reference)).status is ReportStatus.ACKNOWLEDGED  # type: ignore[union-attr]
    again = await bot.moderate(home, reference, "ack")
    assert not again.ok and "already" in again.message.text
    assert (await bot.moderate(home, reference, "claim")).ok
    assert (await bot.moderate(home, reference, "resolve")).ok
    await bot.deliver()
    assert len(bot.platform.private(alice)) == 3
    log = await bot.service.store.audit_log(reference)
    assert [e.action for e in log] == ["report", "ack", "claim", "resolve"]


async def anonymous_report(bot: MemoryBot, who: str) -> Community:
    """``who`` reports to a new community "Home" without sharing their name (every text step
    skipped); returns the community."""
    home = await bot.setup_community("g1", "Home")
    person = bot.person(who)
    bot.platform.join(person, home)
    await bot.say(person, "tell the mods")
    await bot.press(person, "report.go", "report.start")
    await bot.press(person, "community.0", "report.community")
    await bot.press(person, "cat.money", "report.category")
    for _ in range(3):
        session = await bot.service.store.load_session(person)
        assert session is not None
        await bot.press(person, "skip", session.node)
    await bot.press(person, "identity.anonymous", "report.identity")
    await bot.press(person, "report.confirm", "report.review")
    return home


async def test_anonymous_report_hides_the_reporter(bot: MemoryBot) -> None:
    await anonymous_report(bot, "bob")
    await bot.deliver()
    [alert] = bot.platform.alerts()
    assert {f.label: f.value for f in alert.fields}["Reported by"] == "anonymous"
    assert "bob" not in alert.as_message().text


async def test_only_members_of_configured_communities_are_offered(bot: MemoryBot) -> None:
    home = await bot.setup_community("g1", "Home")
    bot.platform.add_community("g2", "Not set up")  # the bot is there, moderators are not
    away = await bot.setup_community("g3", "Elsewhere")
    carol = bot.person("carol")
    bot.platform.join(carol, home)
    bot.platform.join(carol, bot.platform.add_community("g2", "Not set up"))
    await bot.say(carol, "hi")
    await bot.press(carol, "report", "menu")
    offered = await bot.press(carol, "report.go", "report.start")
    labels = [c.label for m in offered for c in m.choices]
    assert "Home" in labels and "Not set up" not in labels and away.name not in labels


async def test_membership_is_checked_again_at_submit(bot: MemoryBot) -> None:
    home = await bot.setup_community("g1", "Home")
    dan = bot.person("dan")
    bot.platform.join(dan, home)
    await bot.say(dan, "hi")
    await bot.press(dan, "report", "menu")
    await bot.press(dan, "report.go", "report.start")
    await bot.press(dan, "community.0", "report.community")
    await bot.press(dan, "cat.other", "report.category")
    for node in ("report.who", "report.details", "report.evidence"):
        await bot.press(dan, "skip", node)
    await bot.press(dan, "identity.share", "report.identity")
    bot.platform.leave(dan, home)
    replies = await bot.press(dan, "report.confirm", "report.review")
    assert "Nothing was sent" in replies[0].text
    assert await bot.service.store.reports_for_community(home.id) == []


async def test_updates_and_replies_go_to_where_the_alert_was_posted(bot: MemoryBot) -> None:
    """send_alert answers with where the alert is; every later update and reply to it carries
    that reference (Alert.posted), also after the alert was sent twice (a crash)."""
    home = await bot.setup_community("g1", "Home")
    alice = bot.person("alice")
    bot.platform.join(alice, home)
    reference = await report(bot, alice, home)
    await bot.deliver()
    posted = bot.platform.posted[f"alert:{reference}"]
    assert (await bot.moderate(home, reference, "ack")).ok
    await bot.service.add_case_note(home.id, reference, "mod", "called the parents")
    await bot.deliver()
    later = [s for s in bot.platform.deliveries if s.kind != "alert" and s.alert is not None]
    assert later and {s.alert.posted for s in later if s.alert} == {posted}


async def test_an_alert_posted_anew_is_reached_at_its_new_place(bot: MemoryBot) -> None:
    """When showing a status posts the alert anew (Matrix takes a forgotten reporter's name
    off that way), the outbox keeps the new place, so later updates and replies go there even
    from a process that remembers nothing (the old copy may be gone)."""
    home = await bot.setup_community("g1", "Home")
    ivy = bot.person("ivy")
    bot.platform.join(ivy, home)
    reference = await report(bot, ivy, home)
    await bot.deliver()
    first = bot.platform.posted[f"alert:{reference}"]
    shown = bot.platform.update_alert

    async def reposting(config: CommunityConfig, alert: Alert, key: str) -> str | None:
        await shown(config, alert, key)
        return "copy-2" if alert.remove_name else None

    bot.platform.update_alert = reposting  # type: ignore[method-assign]
    await bot.say(ivy, "forget me")
    await bot.press(ivy, "forget.yes", "forget.confirm")
    await bot.deliver()
    moved = await bot.service.store.get_outbox_item(f"alert:{reference}")
    assert moved is not None and moved.posted == "copy-2" and moved.delivered_at is not None
    assert (await bot.moderate(home, reference, "claim")).ok
    await bot.deliver()
    claim = [s for s in bot.platform.deliveries if s.kind == "update"][-1]
    assert claim.alert is not None and claim.alert.posted == "copy-2" != first


async def test_when_handling_fails_the_apology_is_in_the_persons_language(
    bot: MemoryBot,
) -> None:
    """Adapters answer a failure with SafeBot.sorry: Spanish for someone talking Spanish (or
    whose client is Spanish), never a fixed English line."""
    ana = bot.person("ana")
    await bot.say(ana, "hola, necesito ayuda")
    assert "Perdón" in bot.service.sorry(ana).text
    assert "Perdón" in bot.service.sorry(bot.person("new"), locale_hint="es-MX").text
    assert "Sorry" in bot.service.sorry(bot.person("new")).text


async def test_moderator_of_another_community_cannot_act(bot: MemoryBot) -> None:
    home = await bot.setup_community("g1", "Home")
    other = await bot.setup_community("g2", "Other", destination="other-mods")
    erin = bot.person("erin")
    bot.platform.join(erin, home)
    reference = await report(bot, erin, home)
    refused = await bot.moderate(other, reference, "resolve")
    assert not refused.ok and "don't know" in refused.message.text
    assert (await bot.service.store.get_report(reference)).status is ReportStatus.NEW  # type: ignore[union-attr]
    await bot.deliver()
    assert bot.platform.alerts("other-mods") == []
    assert (await bot.moderate(home, "R-ZZZZ", "ack")).ok is False
    assert (await bot.moderate(home, reference, "explode")).ok is False


async def test_outage_retries_with_backoff_then_delivers_once(bot: MemoryBot, clock: Clock) -> None:
    home = await bot.setup_community("g1", "Home")
    fay = bot.person("fay")
    bot.platform.join(fay, home)
    bot.platform.down.add("mods")
    reference = await report(bot, fay, home)
    assert await bot.deliver() == 0
    item = await bot.service.store.get_outbox_item(f"alert:{reference}")
    assert item is not None and item.attempts == 1 and item.next_try > clock.now
    backlog = await bot.service.store.backlog(home.id)
    assert backlog.waiting == 1
    assert await bot.deliver() == 0  # not due yet: nothing is hammered
    bot.platform.down.clear()
    clock.advance(60)
    assert await bot.deliver() == 1
    assert len(bot.platform.alerts()) == 1
    clock.advance(60)
    assert await bot.deliver() == 0
    assert (await bot.service.store.backlog(home.id)).waiting == 0


@pytest.mark.parametrize("failure", ["forbidden", "down"])
async def test_poison_alert_is_parked_and_does_not_block_others(
    bot: MemoryBot, clock: Clock, caplog: pytest.LogCaptureFixture, failure: str
) -> None:
    """An alert that can never be delivered (refused for good, or a destination that never
    comes back) is older than a good one, so it is tried first in every pass: the good one
    still goes out in the first pass, and the poison one is parked and logged."""
    bad = await bot.setup_community("g1", "Bad", destination="gone")
    good = await bot.setup_community("g2", "Good", destination="mods")
    gus = bot.person("gus")
    bot.platform.join(gus, bad)
    bot.platform.join(gus, good)
    getattr(bot.platform, failure).add("gone")
    ref_bad = await report(bot, gus, bad)
    clock.advance(61)
    ref_good = await report(bot, gus, good)
    assert await bot.deliver() == 1
    assert [a.reference for a in bot.platform.alerts()] == [ref_good]
    for _ in range(bot.service.settings.outbox.max_attempts):
        clock.advance(3600)
        await bot.deliver()
    parked = await bot.service.store.get_outbox_item(f"alert:{ref_bad}")
    assert parked is not None and parked.parked
    assert (await bot.service.store.backlog(bad.id)).parked == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(ref_bad in m and "parked" in m for m in errors), errors


async def test_retry_delays_double_are_capped_and_jittered(
    engine: Engine, settings: Settings, clock: Clock
) -> None:
    """Each failed try waits ``base_delay * 2^(n-1)``, at most ``max_delay``, times a random
    factor in [0.5, 1]. Retried exactly when due, nine times, so the doubling reaches the cap."""
    outbox = OutboxSettings(max_attempts=10, base_delay=1.0, max_delay=20.0, lease=30.0)
    store = await open_store("memory")
    bot = MemoryBot(engine, store, replace(settings, outbox=outbox), clock=clock, tokens=Tokens())
    home = await bot.setup_community("g1", "Home")
    ida = bot.person("ida")
    bot.platform.join(ida, home)
    bot.platform.down.add("mods")
    reference = await report(bot, ida, home)
    ratios: list[float] = []
    for attempt in range(1, outbox.max_attempts):
        await bot.deliver()
        item = await store.get_outbox_item(f"alert:{reference}")
        assert item is not None and item.attempts == attempt and not item.parked
        delay = item.next_try - clock.now
        nominal = min(outbox.max_delay, outbox.base_delay * 2 ** (attempt - 1))
        assert 0.5 * nominal <= delay <= nominal, (attempt, delay, nominal)
        ratios.append(delay / nominal)
        clock.advance(delay)
    # The factor is random: nine draws all at one value (or all near the top) means no jitter.
    assert len({round(r, 9) for r in ratios}) > 1 and min(ratios) < 0.9, ratios
    await store.close()


async def test_a_permanent_failure_is_parked_at_the_first_try(
    bot: MemoryBot, caplog: pytest.LogCaptureFixture
) -> None:
    home = await bot.setup_community("g1", "Home")
    jay = bot.person("jay")
    bot.platform.join(jay, home)
    bot.platform.forbidden.add("mods")
    reference = await report(bot, jay, home)
    assert await bot.deliver() == 0
    item = await bot.service.store.get_outbox_item(f"alert:{reference}")
    assert item is not None and item.parked and item.attempts == 1, item
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(reference in m and "parked after 1 tries" in m for m in errors), errors


async def test_retries_stop_after_max_attempts(bot: MemoryBot, clock: Clock) -> None:
    home = await bot.setup_community("g1", "Home")
    hal = bot.person("hal")
    bot.platform.join(hal, home)
    bot.platform.down.add("mods")
    reference = await report(bot, hal, home)
    for _ in range(10):
        await bot.deliver()
        clock.advance(3600)
    item = await bot.service.store.get_outbox_item(f"alert:{reference}")
    assert item is not None and item.parked
    assert item.attempts == bot.service.settings.outbox.max_attempts


async def test_forget_me_unlinks_reports_and_stops_updates(bot: MemoryBot) -> None:
    home = await bot.setup_community("g1", "Home")
    ivy = bot.person("ivy")
    bot.platform.join(ivy, home)
    reference = await report(bot, ivy, home)
    await bot.deliver()
    await bot.say(ivy, "forget me")
    replies = await bot.press(ivy, "forget.yes", "forget.confirm")
    assert "deleted" in replies[-1].text
    assert await bot.service.store.load_session(ivy) is None
    stored = await bot.service.store.get_report(reference)
    assert stored is not None and stored.reporter is None
    assert (await bot.moderate(home, reference, "ack")).ok
    await bot.deliver()
    assert bot.platform.private(ivy) == []


async def test_retention_purges_old_reports(bot: MemoryBot, clock: Clock) -> None:
    home = await bot.setup_community("g1", "Home")
    jo = bot.person("jo")
    bot.platform.join(jo, home)
    reference = await report(bot, jo, home)
    clock.advance(89 * 86400)
    assert await bot.service.purge_expired() == 0
    clock.advance(2 * 86400)
    assert await bot.service.purge_expired() == 1
    assert await bot.service.store.get_report(reference) is None


async def test_confirming_twice_stores_one_report(bot: MemoryBot) -> None:
    home = await bot.setup_community("g1", "Home")
    kim = bot.person("kim")
    bot.platform.join(kim, home)
    reference = await report(bot, kim, home)
    # A double click on an old Confirm button is refused as stale, never sent twice.
    replies = await bot.send(ChoiceSelected(kim, "report.confirm", "report.review"))
    assert "earlier step" in replies[0].text
    assert [r.reference for r in await bot.service.store.reports_for_community(home.id)] == [
        reference
    ]


async def _review_ready(bot: MemoryBot, person: PersonId, home: Community) -> None:
    await bot.say(person, "hi")
    await bot.press(person, "report", "menu")
    await bot.press(person, "report.go", "report.start")
    await bot.press(person, "community.0", "report.community")
    await bot.press(person, "cat.money", "report.category")
    for node in ("report.who", "report.details", "report.evidence"):
        await bot.press(person, "skip", node)
    await bot.press(person, "identity.share", "report.identity")


async def test_crash_between_report_stored_and_alert_sent(
    engine: Engine, settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    """The process dies right after the receipt: on restart the alert goes out exactly once."""
    store = await open_store(settings.database_url)
    first = MemoryBot(engine, store, settings, clock=clock, tokens=Tokens())
    home = await first.setup_community("g1", "Home")
    lee = first.person("lee")
    first.platform.join(lee, home)
    reference = await report(first, lee, home)
    await store.close()  # crash: nothing was delivered

    store = await SqliteStore.open(settings.database_url)
    second = MemoryBot(engine, store, settings, clock=clock, tokens=Tokens())
    second.platform.add_community("g1", "Home")
    assert await second.deliver() == 1
    assert await second.deliver() == 0
    assert [a.reference for a in second.platform.alerts()] == [reference]
    await store.close()


async def test_crash_after_send_before_mark_redelivers_same_key(
    engine: Engine, settings: Settings, clock: Clock
) -> None:
    """Sent but not marked delivered: the redelivery carries the same key, so moderators see
    one alert."""
    store = await open_store(settings.database_url)
    bot = MemoryBot(engine, store, settings, clock=clock, tokens=Tokens())
    home = await bot.setup_community("g1", "Home")
    mo = bot.person("mo")
    bot.platform.join(mo, home)
    await report(bot, mo, home)
    platform = bot.platform

    class DiesAfterSend(MemoryPlatform):
        async def send_alert(self, config, alert):  # type: ignore[no-untyped-def]
            await platform.send_alert(config, alert)
            raise SystemExit("crash after send")

    crashing = SafeBot(
        engine=engine, store=store, port=DiesAfterSend(), settings=settings, clock=clock
    )
    with contextlib.suppress(SystemExit):
        await crashing.deliver_due()
    await store.close()
    store = await SqliteStore.open(settings.database_url)
    clock.advance(settings.outbox.lease + 1)  # the dead worker's claim expires
    again = SafeBot(engine=engine, store=store, port=platform, settings=settings, clock=clock)
    assert await again.deliver_due() == 1
    assert len(platform.deliveries) == 2  # delivered twice on the wire...
    assert len(platform.alerts()) == 1  # ...seen once, by key
    await store.close()


async def test_crash_before_session_saved_does_not_duplicate(
    engine: Engine, settings: Settings, clock: Clock
) -> None:
    """Report stored, then the crash loses the session update: pressing Confirm again on the
    same review stores nothing new and shows the same reference."""
    store = await open_store(settings.database_url)
    bot = MemoryBot(engine, store, settings, clock=clock, tokens=Tokens())
    home = await bot.setup_community("g1", "Home")
    nia = bot.person("nia")
    bot.platform.join(nia, home)
    await _review_ready(bot, nia, home)
    before = await store.load_session(nia)
    assert before is not None
    first = await bot.press(nia, "report.confirm", "report.review")
    # Simulate the lost session write by restoring the review-step session.
    current = await store.load_session(nia)
    assert current is not None
    await store.save_session(before.evolve(version=current.version))
    second = await bot.press(nia, "report.confirm", "report.review")
    ref = before.vars["reference"]
    assert ref in first[-1].text and ref in second[-1].text
    assert len(await store.reports_for_community(home.id)) == 1
    assert len([i for i in [await store.get_outbox_item(f"alert:{ref}")] if i]) == 1
    await store.close()


async def test_outbox_kinds_are_keyed_for_idempotency(bot: MemoryBot) -> None:
    home = await bot.setup_community("g1", "Home")
    ola = bot.person("ola")
    bot.platform.join(ola, home)
    reference = await report(bot, ola, home)
    await bot.moderate(home, reference, "claim")
    await bot.deliver()
    kinds = sorted(s.kind for s in bot.platform.deliveries)
    assert kinds == ["alert", "private", "update"]
    status = await bot.service.store.get_outbox_item(f"status:{reference}:claimed")
    assert status is not None and status.kind is OutboxKind.STATUS


async def test_text_events_from_many_people_do_not_mix(bot: MemoryBot) -> None:
    import asyncio

    people = [bot.person(f"p{i}") for i in range(20)]
    results = await asyncio.gather(*(bot.say(p, "how do I block them") for p in people))
    for replies in results:
        assert "block.platform" in [m.node for m in replies]
    for person in people:
        session = await bot.service.store.load_session(person)
        assert session is not None and session.node == "block.platform"


async def test_same_person_events_are_serialized(bot: MemoryBot) -> None:
    import asyncio

    pat = bot.person("pat")
    await bot.say(pat, "hi")
    await asyncio.gather(*(bot.send(TextReceived(pat, "menu")) for _ in range(10)))
    session = await bot.service.store.load_session(pat)
    assert session is not None and session.version == 11


async def test_two_processes_never_clobber_a_conversation(
    engine: Engine, settings: Settings, clock: Clock
) -> None:
    """Two services on one database, the person's events alternating between them: each
    picks up where the other left off (stale cached state is detected by its version)."""
    store_a = await SqliteStore.open(settings.database_url)
    store_b = await SqliteStore.open(settings.database_url)
    a = MemoryBot(engine, store_a, settings, clock=clock, tokens=Tokens())
    b = MemoryBot(engine, store_b, settings, clock=clock, tokens=Tokens())
    quinn = a.person("quinn")
    await a.say(quinn, "hi")  # A caches the session at the menu
    await b.press(quinn, "block", "menu")  # B moves it on
    replies = await a.press(quinn, "app.discord", "block.platform")  # A's cache is stale
    assert "computer or a phone" in replies[-1].text
    session = await store_b.load_session(quinn)
    assert session is not None and session.node == "block.device" and session.version == 3
    replies = await b.press(quinn, "device.mobile", "block.device")
    assert "Step 1 of" in replies[-1].text
    await store_a.close()
    await store_b.close()


async def test_message_rate_limit_is_kind_and_quiet(bot: MemoryBot, clock: Clock) -> None:
    rex = bot.person("rex")
    limit = bot.service.settings.limits.messages_per_minute
    for _ in range(limit):
        assert await bot.say(rex, "menu")
    slow = await bot.say(rex, "menu")
    assert len(slow) == 1 and "Wait a minute" in slow[0].text
    assert await bot.say(rex, "menu") == ()  # no amplification: one notice per minute
    other = bot.person("other")
    assert await bot.say(other, "menu")  # others are not affected
    clock.advance(61)
    assert await bot.say(rex, "menu")


class CountingStore(MemoryStore):
    """The memory store, counting the rate-limit counter's database round trips."""

    counted = 0

    async def count_hit(self, key: str, window: float, now: float) -> int:
        self.counted += 1
        return await super().count_hit(key, window, now)


async def test_a_flood_is_dropped_without_database_work(
    engine: Engine, settings: Settings, clock: Clock
) -> None:
    """Past the limit, this process's own window drops a message before the store is asked,
    so 500 messages in a minute cost the store no more than the limit's worth of counting."""
    store = CountingStore()
    bot = MemoryBot(engine, store, settings, clock=clock, tokens=Tokens())
    flooder = bot.person("flood")
    limit = settings.limits.messages_per_minute
    for _ in range(500):
        await bot.say(flooder, "menu")
    assert limit <= store.counted <= limit + 1, store.counted
    clock.advance(61)
    assert await bot.say(flooder, "menu")  # the next minute is answered again


async def test_report_rate_limit(bot: MemoryBot, clock: Clock) -> None:
    home = await bot.setup_community("g1", "Home")
    sam = bot.person("sam")
    bot.platform.join(sam, home)
    for _ in range(bot.service.settings.limits.reports_per_hour):
        await report(bot, sam, home)
        clock.advance(61)  # past the per-minute message limit, well inside the hour
    await _review_ready(bot, sam, home)
    refused = await bot.press(sam, "report.confirm", "report.review")
    assert "several reports in the last hour" in refused[0].text
    assert len(await bot.service.store.reports_for_community(home.id)) == 3
    clock.advance(3600)
    await report(bot, sam, home)
    assert len(await bot.service.store.reports_for_community(home.id)) == 4


async def test_limits_hold_across_processes_sharing_a_database(
    engine: Engine, settings: Settings, clock: Clock
) -> None:
    """Two processes on one SQLite file: each sees the other's messages and reports."""
    stores = [await open_store(settings.database_url) for _ in range(2)]
    try:
        tokens_b = Tokens()
        a = MemoryBot(engine, stores[0], settings, clock=clock, tokens=Tokens())
        b = MemoryBot(engine, stores[1], settings, clock=clock, tokens=lambda: "b" + tokens_b())
        b.platform = b.service.port = a.platform  # one platform, two processes
        limit = settings.limits.messages_per_minute
        rex = a.person("rex")
        for i in range(limit):
            assert await (a if i % 2 else b).say(rex, "menu")
        assert "Wait a minute" in (await a.say(rex, "menu"))[0].text
        assert "Wait a minute" in (await b.say(rex, "menu"))[0].text
        clock.advance(61)
        home = await a.setup_community("g1", "Home")
        sam = a.person("sam")
        a.platform.join(sam, home)
        for i in range(settings.limits.reports_per_hour):
            await report(a if i % 2 else b, sam, home)
            clock.advance(61)
        for bot in (a, b):
            await _review_ready(bot, sam, home)
            refused = await bot.press(sam, "report.confirm", "report.review")
            assert "several reports in the last hour" in refused[0].text
            clock.advance(61)
    finally:
        for store in stores:
            await store.close()


async def test_moderators_can_block_a_reporter_without_learning_who(bot: MemoryBot) -> None:
    home = await bot.setup_community("g1", "Home")
    other = await bot.setup_community("g2", "Other", destination="other-mods")
    troll = bot.person("troll")
    bot.platform.join(troll, home)
    bot.platform.join(troll, other)
    await bot.say(troll, "tell the mods")
    reference = await report(bot, troll, home)
    wrong = await bot.service.block_reporter(other.id, reference, "mod2")
    assert not wrong.ok  # a moderator of another community cannot
    done = await bot.moderate(home, reference, "block")  # one entry for every action
    assert done.ok and "troll" not in done.message.text
    await bot.say(troll, "menu")
    offered = await bot.press(troll, "report", "menu")
    offered = await bot.press(troll, "report.go", "report.start")
    labels = [c.label for m in offered for c in m.choices]
    assert "Home" not in labels and "Other" in labels
    assert (await bot.moderate(home, reference, "unblock")).ok
    config = await bot.service.store.get_community(home.id)
    assert config is not None and config.blocked == ()


async def test_a_flood_from_one_person_does_not_slow_the_others(bot: MemoryBot) -> None:
    """Others' response times with and without one person flooding, in the same run."""
    import asyncio
    import statistics
    import time

    people = [bot.person(f"calm{i}") for i in range(10)]

    async def others_latency() -> float:
        times: list[float] = []

        async def one(person: PersonId) -> None:
            for text in ("hi", "how do I block them", "menu"):
                start = time.perf_counter()
                await bot.say(person, text)
                times.append(time.perf_counter() - start)

        await asyncio.gather(*(one(p) for p in people))
        return statistics.median(times)

    quiet = await others_latency()
    flooder = bot.person("flooder")
    flood = asyncio.gather(*(bot.say(flooder, f"spam {i}") for i in range(3000)))
    busy = await others_latency()
    await flood
    assert busy < quiet * 5 + 0.002, (quiet, busy)


# --- forget me, pseudonyms, retention of conversations ----------------------------------------
async def _forget(bot: MemoryBot, person: PersonId) -> None:
    await bot.say(person, "forget me")
    replies = await bot.press(person, "forget.yes", "forget.confirm")
    assert "deleted" in replies[-1].text


async def test_forget_me_resets_neither_the_report_limit_nor_a_block(
    bot: MemoryBot, clock: Clock
) -> None:
    """Forgetting must not be a way round the limits: the count and a moderator's block are
    kept on the person's pseudonym, which outlives their id."""
    home = await bot.setup_community("g1", "Home")
    sam = bot.person("sam")
    bot.platform.join(sam, home)
    references = []
    for _ in range(bot.service.settings.limits.reports_per_hour):
        references.append(await report(bot, sam, home))
        clock.advance(61)
    await _forget(bot, sam)
    await _review_ready(bot, sam, home)
    refused = await bot.press(sam, "report.confirm", "report.review")
    assert "several reports in the last hour" in refused[0].text
    assert len(await bot.service.store.reports_for_community(home.id)) == 3

    await _forget(bot, sam)  # then a moderator blocks one of the forgotten reports' sender
    blocked = await bot.service.block_reporter(home.id, references[0], "mod")
    assert blocked.ok
    clock.advance(3600)  # the hourly limit is over; the block is not
    await bot.say(sam, "menu")
    offered = await bot.press(sam, "report", "menu")
    offered = await bot.press(sam, "report.go", "report.start")
    assert "Home" not in [c.label for m in offered for c in m.choices]
    await _forget(bot, sam)
    await bot.say(sam, "menu")
    await bot.press(sam, "report", "menu")
    offered = await bot.press(sam, "report.go", "report.start")
    assert "Home" not in [c.label for m in offered for c in m.choices]


async def test_forget_me_leaves_no_id_in_the_database_file(
    engine: Engine, settings: Settings, clock: Clock
) -> None:
    """After "forget me" the person's id is nowhere in the SQLite file: not in reports, not
    in the block list, not in the message-rate counters."""
    store = await SqliteStore.open(settings.database_url)
    try:
        bot = MemoryBot(engine, store, settings, clock=clock, tokens=Tokens())
        home = await bot.setup_community("g1", "Home")
        ivy = PersonId(bot.platform.platform, "ivy-77310")
        bot.platform.join(ivy, home)
        reference = await report(bot, ivy, home)
        await bot.deliver()
        assert (await bot.service.block_reporter(home.id, reference, "mod")).ok
        await _forget(bot, ivy)
        conn = store.raw
        assert conn is not None
        await conn.execute("PRAGMA wal_checkpoint(FULL)")
        path = Path(settings.database_url)
        data = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
        assert b"ivy-77310" not in data
        config = await store.get_community(home.id)
        assert config is not None and config.blocked == (await bot.service.pseudonym(ivy),)
    finally:
        await store.close()


async def test_forget_me_takes_the_name_off_posted_alerts(bot: MemoryBot) -> None:
    home = await bot.setup_community("g1", "Home")
    ivy, una = bot.person("ivy"), bot.person("una")
    bot.platform.join(ivy, home)
    bot.platform.join(una, home)
    named = await report(bot, ivy, home)
    await bot.deliver()
    [alert] = bot.platform.alerts("mods")
    assert {f.label: f.value for f in alert.fields}["Reported by"] == "ivy"
    await _forget(bot, ivy)
    assert await bot.deliver() == 1
    update = bot.platform.seen[f"forget:{named}"]
    assert update.kind == "update" and update.alert is not None
    assert update.alert.key == f"alert:{named}" and update.alert.remove_name
    assert {f.label: f.value for f in update.alert.fields}["Reported by"] == "anonymous"
    assert "ivy" not in update.alert.as_message().text
    await _forget(bot, ivy)  # asking twice edits nothing twice
    assert await bot.deliver() == 0


async def test_a_re_minted_reference_says_nothing_about_who_sent_it(
    engine: Engine, settings: Settings, clock: Clock
) -> None:
    """When a reference is taken, the next one must not be derived from the person: with
    the first reference and a member list, anyone could work out who sent an anonymous
    report. The same collision gives the same reference whoever the sender is."""
    minted = []
    for sender in ("x-1", "x-2"):
        bot = MemoryBot(
            engine, await open_store("memory"), settings, clock=clock, tokens=lambda: "t"
        )
        home = await bot.setup_community("g1", "Home")
        first, second = bot.person("y"), PersonId(bot.platform.platform, sender)
        bot.platform.join(first, home)
        bot.platform.join(second, home)
        taken = await report(bot, first, home)
        minted.append(await report(bot, second, home))
        assert minted[-1] != taken
    assert minted[0] == minted[1]


async def test_idle_conversations_and_drafts_expire(bot: MemoryBot, clock: Clock) -> None:
    home = await bot.setup_community("g1", "Home")
    lea, max_ = bot.person("lea"), bot.person("max")
    bot.platform.join(lea, home)
    await bot.say(lea, "hi")
    await bot.press(lea, "report", "menu")
    await bot.press(lea, "report.go", "report.start")
    await bot.press(lea, "community.0", "report.community")
    await bot.press(lea, "cat.threats", "report.category")
    await bot.say(lea, "someone#1234")
    await bot.say(lea, "what they did to me")
    expiry = bot.service.settings.session_expiry_hours * 3600
    clock.advance(expiry - 60)
    await bot.say(max_, "hi")
    await bot.service.purge_expired()
    assert await bot.service.store.load_session(lea) is not None  # not idle long enough
    clock.advance(120)
    await bot.service.purge_expired()
    assert await bot.service.store.load_session(lea) is None
    assert await bot.service.store.load_session(max_) is not None
    assert lea.key not in bot.service._sessions  # the process's cache lets it go too
    # Nor does the process keep it: Lea starts afresh, with no draft.
    await bot.say(lea, "hi")
    session = await bot.service.store.load_session(lea)
    assert session is not None and session.draft.details is None


async def test_learned_memberships_expire_after_membership_days(
    bot: MemoryBot, clock: Clock
) -> None:
    home = await bot.setup_community("g1", "Home")
    zoe = bot.person("zoe")
    store = bot.service.store
    tag = await bot.service.pseudonym(zoe)
    await store.remember_membership(tag, home.id, clock.now)
    days = bot.service.settings.membership_days
    clock.advance(days * 86400 - 60)
    await bot.service.purge_expired()
    assert await store.known_communities(tag, home.id.platform) == [home.id]
    clock.advance(120)
    await bot.service.purge_expired()
    assert await store.known_communities(tag, home.id.platform) == []


def test_a_pseudonym_is_made_for_an_id_with_a_lone_surrogate() -> None:
    """Ids from platforms can carry lone UTF-16 surrogates (the stores keep them as U+FFFD):
    the person still gets a pseudonym, the same one the stored id gives."""
    from safebot.pseudonym import new_secret, pseudonym

    secret = new_secret()
    odd, stored = PersonId("matrix", "@a\ud800:x"), PersonId("matrix", "@a\ufffd:x")
    assert pseudonym(secret, odd) == pseudonym(secret, stored)


@pytest.mark.parametrize("renamed", [False, True])
async def test_screens_say_what_they_mean_whatever_their_node_ids(
    content: Content, recogniser: Recogniser, settings: Settings, renamed: bool
) -> None:
    """Adapters add to two screens (Discord: how to report from inside a server; a check that
    updates can reach the person by DM). They find them by what the engine says they mean,
    not by node ids, which are content anyone may rename."""
    text = (Path(content.root) / "flows.toml").read_text(encoding="utf-8")
    if renamed:
        text = text.replace('"report.none"', '"report.nowhere"')
        text = text.replace('"report.done"', '"report.sent"')
    flow = parse_flow(tomllib.loads(text))
    assert not validate(flow)
    engine = Engine(flow, content, recogniser, Policy())
    store = MemoryStore()
    bot = MemoryBot(engine, store, settings, tokens=Tokens())
    home = await bot.setup_community("g1", "Home")
    lone, member = bot.person("lone"), bot.person("member")
    await bot.say(lone, "hi")
    await bot.press(lone, "report", "menu")
    nothing = await bot.press(lone, "report.go", "report.start")
    assert [m.no_community for m in nothing] == [True]
    assert nothing[0].node == ("report.nowhere" if renamed else "report.none")
    bot.platform.join(member, home)
    await review_screen(bot, member, home, "someone#1234", "They want money")
    sent = await bot.press(member, "report.confirm", "report.review")
    [receipt] = [m for m in sent if m.reported]
    assert receipt.reported is not None and receipt.reported in receipt.text
    assert not any(m.no_community for m in sent)
