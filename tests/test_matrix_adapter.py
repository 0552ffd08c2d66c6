"""The Matrix adapter against a real Synapse on 127.0.0.1, driven by real matrix-nio clients
with end-to-end encryption (see tests/synapse/)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from nio import MegolmEvent, RoomGetEventResponse, RoomMessagesResponse
from nio.exceptions import EncryptionError

from safebot.adapters.matrix import MatrixAdapter
from safebot.app import assemble
from safebot.conversation import Engine
from safebot.model import PersonId
from safebot.settings import EscalationSettings, OutboxSettings, Settings
from safebot.store import open_store
from safebot.store.base import Store

try:  # ``python -m pytest`` from the repo root
    from tests.synapse import (
        ClientRunner,
        MatrixHarness,
        RegisteredUser,
        SynapseServer,
        create_dm,
        create_room,
        send_reaction,
        send_text,
    )
    from tests.synapse.fixtures import matrix, matrix_user, running_synapse, synapse
except ModuleNotFoundError as exc:  # plain ``pytest``: only tests/ is on sys.path
    if exc.name not in ("tests", "tests.synapse"):
        raise
    from synapse import (  # type: ignore[no-redef, unused-ignore]
        ClientRunner,
        MatrixHarness,
        RegisteredUser,
        SynapseServer,
        create_dm,
        create_room,
        send_reaction,
        send_text,
    )
    from synapse.fixtures import (  # type: ignore[no-redef, unused-ignore]
        matrix,
        matrix_user,
        running_synapse,
        synapse,
    )

__all__ = ["matrix", "matrix_user", "running_synapse", "synapse"]

REF = re.compile(r"R-[2-9A-Z]{4}")
TIMEOUT = 20.0


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    opened = await open_store(settings.database_url)
    yield opened
    await opened.close()


class Bot:
    """Starts and restarts one MatrixAdapter for a registered bot user."""

    def __init__(
        self, harness: MatrixHarness, engine: Engine, store: Store, settings: Settings, tmp: Path
    ) -> None:
        self.harness = harness
        self.engine = engine
        self.store = store
        self.settings = settings
        self.user: RegisteredUser = harness.user("safebot")
        self.data_dir = tmp / "matrix-bot"
        self.adapter: MatrixAdapter | None = None

    def credentials(self) -> dict[str, str]:
        """How this bot logs in: the registered user's token and device."""
        return {"access_token": self.user.access_token, "device_id": self.user.device_id}

    async def start(self) -> MatrixAdapter:
        adapter = MatrixAdapter(
            self.settings,
            self.engine.content,
            homeserver=self.harness.server.url,
            user_id=self.user.user_id,
            data_dir=self.data_dir,
            **self.credentials(),
            retry_wait=1.0,
            sync_timeout_ms=3000,
            undecryptable_wait=5.0,
        )
        assemble(self.engine, self.store, adapter, self.settings)
        await adapter.start()
        await asyncio.wait_for(adapter.synced.wait(), TIMEOUT)
        self.adapter = adapter
        return adapter

    async def stop(self) -> None:
        if self.adapter is not None:
            await self.adapter.close()
            self.adapter = None


@pytest.fixture
async def bot(
    matrix: MatrixHarness, engine: Engine, store: Store, tmp_path: Path
) -> AsyncIterator[Bot]:
    settings = Settings(
        database_url=str(tmp_path / "bot.db"),
        outbox=OutboxSettings(max_attempts=30, base_delay=0.2, max_delay=1.0),
    )
    holder = Bot(matrix, engine, store, settings, tmp_path)
    await holder.start()
    try:
        yield holder
    finally:
        await holder.stop()


async def from_bot(
    runner: ClientRunner, room: str, bot: Bot, predicate: Callable[[str], bool] | None = None
) -> Any:
    return await runner.wait_for_message(
        room,
        lambda m: m.sender == bot.user.user_id and (predicate is None or predicate(m.body)),
        timeout=TIMEOUT,
    )


async def say(runner: ClientRunner, room: str, bot: Bot, text: str, expect: str) -> Any:
    await send_text(runner, room, text)
    return await from_bot(runner, room, bot, lambda body: expect in body)


async def person(
    matrix: MatrixHarness, bot: Bot, name: str, encrypted: bool = True
) -> tuple[ClientRunner, str]:
    runner = await matrix.runner(matrix.user(name), auto_join=True)
    room = await create_dm(runner, bot.user.user_id, encrypted=encrypted)
    return runner, room


async def community_with_mods(
    matrix: MatrixHarness,
    bot: Bot,
    members: list[ClientRunner],
    *,
    encrypted_mods: bool = True,
    name: str = "Cozy Gamers",
    moderators: tuple[ClientRunner, ...] = (),
    bot_level: int = 0,
) -> tuple[ClientRunner, str, str]:
    """An owner creates a community room (room version 12: the creator is not listed in the
    power levels) and a private moderator room, and links them."""
    owner = await matrix.runner(matrix.user("owner"), auto_join=True)
    community = await create_room(
        owner,
        name=name,
        invite=[bot.user.user_id, *(m.user_id for m in members)],
        power_levels={bot.user.user_id: bot_level, **{m.user_id: 50 for m in moderators}},
    )
    for member in members:
        await member.wait_for_room(community, timeout=TIMEOUT)
    mods = await create_room(
        owner, name=f"{name} mods", invite=[bot.user.user_id], encrypted=encrypted_mods
    )
    adapter = bot.adapter
    assert adapter is not None and adapter.client is not None
    for room in (community, mods):
        for _ in range(100):
            if room in adapter.client.rooms:
                break
            await asyncio.sleep(0.1)
    await owner.wait_for_room(mods, members=[bot.user.user_id], timeout=TIMEOUT)
    await say(owner, mods, bot, f"!safebot link {community}", "Linked")
    return owner, community, mods


async def walk_to_review(
    alice: ClientRunner,
    dm: str,
    bot: Bot,
    offender: str,
    details: str,
    evidence: str,
    community: str = "Cozy Gamers",
) -> None:
    await say(alice, dm, bot, "hi", "What would help right now")
    await say(alice, dm, bot, "tell the mods", "send a private alert")
    await say(alice, dm, bot, "1", community)
    await say(alice, dm, bot, community, "What is happening")  # the label works like a number
    await say(alice, dm, bot, "2", "Who is doing this")
    await say(alice, dm, bot, offender, "Anything else")
    await say(alice, dm, bot, details, "links")
    await say(alice, dm, bot, evidence, "Can the moderators see")
    await say(alice, dm, bot, "1", "Who will see it")


async def walk_report(
    alice: ClientRunner,
    dm: str,
    bot: Bot,
    offender: str,
    details: str,
    evidence: str,
    community: str = "Cozy Gamers",
) -> str:
    await walk_to_review(alice, dm, bot, offender, details, evidence, community)
    receipt = await say(alice, dm, bot, "1", "reference")
    found = REF.search(receipt.body)
    assert found, receipt.body
    return found.group(0)


async def test_encrypted_dm_to_report_alert_and_ack(matrix: MatrixHarness, bot: Bot) -> None:
    alice, dm = await person(matrix, bot, "alice")
    owner, _community, mods = await community_with_mods(matrix, bot, [alice])
    first = await say(alice, dm, bot, "hi", "What would help right now")
    assert first.decrypted and first.source["content"]["msgtype"] == "m.notice"
    assert "<ol>" in first.source["content"]["formatted_body"]
    reference = await walk_report(
        alice, dm, bot, "@mallory:localhost", "He wants $500", "https://matrix.to/#/!x:y/$e"
    )
    alert = await from_bot(owner, mods, bot, lambda body: reference in body)
    content = alert.source["content"]
    assert alert.decrypted  # the moderator room is encrypted
    assert content["m.mentions"] == {"user_ids": [owner.user_id]}  # the v12 creator
    assert content["org.safebot.reference"] == reference
    # Acknowledge by reaction; the reporter gets a status DM, the alert a threaded update.
    await send_reaction(owner, mods, alert.event_id, "\u2705")
    await from_bot(owner, mods, bot, lambda body: f"You acknowledged {reference}" in body)
    update = await from_bot(alice, dm, bot, lambda body: "has seen it" in body)
    assert reference in update.body
    thread = await from_bot(owner, mods, bot, lambda body: "acknowledged by" in body)
    assert thread.source["content"]["m.relates_to"]["event_id"] == alert.event_id
    # Claim and resolve by command.
    await say(owner, mods, bot, f"!safebot claim {reference}", f"You claimed {reference}")
    await say(owner, mods, bot, f"!safebot resolve {reference}", f"You resolved {reference}")
    await from_bot(alice, dm, bot, lambda body: "resolved" in body)
    report = await bot.store.get_report(reference)
    assert report is not None and report.status.value == "resolved"


async def test_a_reported_moderator_is_not_mentioned_and_the_others_are_warned(
    matrix: MatrixHarness, bot: Bot
) -> None:
    alice, dm = await person(matrix, bot, "alice")
    mallory = await matrix.runner(matrix.user("mallory"), auto_join=True)
    owner, _community, mods = await community_with_mods(
        matrix, bot, [alice, mallory], moderators=(mallory,)
    )
    reference = await walk_report(
        alice, dm, bot, f"it is {mallory.user_id}", "a moderator here, posts by tonight", "skip"
    )
    alert = await from_bot(owner, mods, bot, lambda body: reference in body)
    content = alert.source["content"]
    assert content["m.mentions"] == {"user_ids": [owner.user_id]}
    assert "pinged no one" not in alert.body  # the owner was pinged
    assert "is one of this community's moderators" in alert.body
    assert mallory.user_id not in alert.body.splitlines()[0]  # not in the ping line
    # A deadline made it urgent: the title says so, and why.
    assert f"URGENT safety report {reference}" in alert.body
    assert "mentioned a deadline" in alert.body


async def test_an_unacknowledged_alert_gets_a_reminder_in_its_thread(
    matrix: MatrixHarness, engine: Engine, store: Store, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=str(tmp_path / "bot.db"),
        outbox=OutboxSettings(max_attempts=30, base_delay=0.2, max_delay=1.0),
        escalation=EscalationSettings(
            after_minutes=0.05, urgent_after_minutes=0.05, again_minutes=0.05
        ),
    )
    bot = Bot(matrix, engine, store, settings, tmp_path)
    await bot.start()
    try:
        alice, dm = await person(matrix, bot, "alice")
        mallory = await matrix.runner(matrix.user("mallory"), auto_join=True)
        owner, _community, mods = await community_with_mods(
            matrix, bot, [alice, mallory], moderators=(mallory,)
        )
        oncall = await create_room(owner, name="On call", invite=[bot.user.user_id])
        await owner.wait_for_room(oncall, members=[bot.user.user_id], timeout=TIMEOUT)
        await say(owner, mods, bot, f"!safebot escalate {oncall}", "second one will also go")
        reference = await walk_report(alice, dm, bot, mallory.user_id, "x", "skip")
        alert = await from_bot(
            owner, mods, bot, lambda body: reference in body and "URGENT" not in body
        )
        reminder = await from_bot(owner, mods, bot, lambda body: "Reminder" in body)
        escalated = await from_bot(owner, oncall, bot, lambda body: "Reminder" in body)
    finally:
        await bot.stop()
    content = reminder.source["content"]
    assert reference in reminder.body
    assert content["m.relates_to"]["event_id"] == alert.event_id  # in the alert's thread
    # A fresh ping of the moderators, never of the reported one.
    assert content["m.mentions"] == {"user_ids": [owner.user_id]}
    assert "is one of this community's moderators" in reminder.body
    # The second room gets the last reminder: the reference and the wait, nothing of the report.
    assert reference in escalated.body and "content" not in escalated.source["content"]
    assert escalated.source["content"]["m.mentions"] == {"user_ids": []}
    assert mallory.user_id not in escalated.body


async def test_my_reports_and_a_note_in_the_alert_thread(matrix: MatrixHarness, bot: Bot) -> None:
    alice, dm = await person(matrix, bot, "alice")
    owner, _community, mods = await community_with_mods(matrix, bot, [alice])
    reference = await walk_report(alice, dm, bot, "someone", "x", "skip")
    alert = await from_bot(owner, mods, bot, lambda body: reference in body)
    listed = await say(alice, dm, bot, "!safebot my-reports", "Your reports")
    assert reference in listed.body and "waiting for a moderator" in listed.body
    await say(alice, dm, bot, "1", "Type what you want the moderators to know")
    await say(alice, dm, bot, "he has a new account @room <b>x</b>", "will see your note")
    note = await from_bot(owner, mods, bot, lambda body: "A note from" in body)
    content = note.source["content"]
    assert content["m.relates_to"]["event_id"] == alert.event_id
    assert content["m.mentions"] == {"user_ids": []} and content["msgtype"] == "m.notice"
    assert "<b>x</b>" not in content["formatted_body"]


async def test_after_a_restart_the_alert_thread_is_found_without_reading_history(
    matrix: MatrixHarness, bot: Bot
) -> None:
    """The outbox keeps the alert's event id (send_alert's answer): a bot that restarted knows
    nothing in memory, and still threads a note under the alert without paging the room."""
    alice, dm = await person(matrix, bot, "alice")
    owner, _community, mods = await community_with_mods(matrix, bot, [alice])
    reference = await walk_report(alice, dm, bot, "someone", "x", "skip")
    alert = await from_bot(owner, mods, bot, lambda body: reference in body)
    await bot.stop()
    adapter = await bot.start()
    assert adapter.client is not None
    paged: list[str] = []
    room_messages = adapter.client.room_messages

    async def counting(room_id: str, *args: Any, **kwargs: Any) -> Any:
        paged.append(room_id)
        return await room_messages(room_id, *args, **kwargs)

    adapter.client.room_messages = counting  # type: ignore[method-assign]
    await say(alice, dm, bot, "!safebot my-reports", "Your reports")
    await say(alice, dm, bot, "1", "Type what you want the moderators to know")
    await say(alice, dm, bot, "a new account", "will see your note")
    note = await from_bot(owner, mods, bot, lambda body: "A note from" in body)
    assert note.source["content"]["m.relates_to"]["event_id"] == alert.event_id
    assert mods not in paged


async def test_case_note_and_evidence_pack_in_the_alert_thread(
    matrix: MatrixHarness, bot: Bot
) -> None:
    alice, dm = await person(matrix, bot, "alice")
    owner, _community, mods = await community_with_mods(matrix, bot, [alice])
    reference = await walk_report(alice, dm, bot, "@mallory:localhost", "x", "https://a.b/c")
    alert = await from_bot(owner, mods, bot, lambda body: reference in body)
    await say(owner, mods, bot, f"!safebot note {reference} called <b>mum</b>", "Noted")
    pack = await say(owner, mods, bot, f"!safebot export {reference}", "evidence pack")
    content = pack.source["content"]
    assert content["m.relates_to"]["event_id"] == alert.event_id
    assert "called <b>mum</b>" in pack.body and "@mallory:localhost" in pack.body
    assert "https://a.b/c" in pack.body and "No images" in pack.body
    assert "<b>mum</b>" not in content["formatted_body"] and content["m.mentions"] == {}
    notes = await bot.store.case_notes(reference)
    assert [n.author for n in notes] == [owner.user_id]


def _admin_get(base: str, token: str, path: str) -> dict[str, Any]:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


async def test_report_to_the_homeservers_admins_never_names_the_reporter(
    matrix: MatrixHarness, bot: Bot
) -> None:
    alice, dm = await person(matrix, bot, "alice")
    mallory = await matrix.runner(matrix.user("mallory"), auto_join=True)
    owner, community, mods = await community_with_mods(matrix, bot, [alice, mallory])
    event_id = await send_text(mallory, community, "send more pics or else")
    link = f"https://matrix.to/#/{community}/{event_id}"
    reference = await walk_report(alice, dm, bot, mallory.user_id, "x", link)
    await from_bot(owner, mods, bot, lambda body: reference in body)
    done = await say(owner, mods, bot, f"!safebot report-server {reference}", "homeserver")
    assert "Users reported: " + mallory.user_id in done.body and "Messages reported: 1" in done.body
    admin = matrix.user("admin", admin=True)
    base = matrix.server.url
    users = await asyncio.to_thread(
        _admin_get, base, admin.access_token, "/_synapse/admin/v1/user_reports"
    )
    events = await asyncio.to_thread(
        _admin_get, base, admin.access_token, "/_synapse/admin/v1/event_reports"
    )
    [user_report] = [r for r in users["user_reports"] if reference in (r.get("reason") or "")]
    assert user_report["target_user_id"] == mallory.user_id
    assert user_report["user_id"] == bot.user.user_id  # the bot reports, not the person
    [event_report] = [r for r in events["event_reports"] if reference in (r.get("reason") or "")]
    assert event_report["event_id"] == event_id
    for reason in (user_report["reason"], event_report["reason"]):
        assert alice.user_id not in reason and "alice" not in reason
    actions = [e.action for e in await bot.store.audit_log(reference)]
    assert "server_report" in actions


async def test_ban_shared_to_the_policy_list_as_a_rule(matrix: MatrixHarness, bot: Bot) -> None:
    alice, dm = await person(matrix, bot, "alice")
    mallory = await matrix.runner(matrix.user("mallory"), auto_join=True)
    owner, community, mods = await community_with_mods(matrix, bot, [alice, mallory], bot_level=60)
    policy = await create_room(
        owner, name="Ban list", invite=[bot.user.user_id], power_levels={bot.user.user_id: 50}
    )
    await owner.wait_for_room(policy, members=[bot.user.user_id], timeout=TIMEOUT)
    await say(owner, mods, bot, f"!safebot policy {policy}", "will be written to that policy")
    reference = await walk_report(alice, dm, bot, mallory.user_id, "x", "skip")
    await from_bot(owner, mods, bot, lambda body: reference in body)
    done = await say(owner, mods, bot, f"!safebot ban {reference} share", "Banned")
    assert "Shared to the policy list" in done.body
    state = await owner.client.room_get_state(policy)
    rules = [e for e in state.events if e["type"] == "m.policy.rule.user"]
    [rule] = rules
    assert rule["content"]["entity"] == mallory.user_id
    assert rule["content"]["recommendation"] == "m.ban"
    assert rule["content"]["reason"] == "Money demanded (financial sextortion)"  # category only
    assert rule["sender"] == bot.user.user_id
    members = await owner.client.room_get_state(community)
    [membership] = [
        e
        for e in members.events
        if e["type"] == "m.room.member" and e["state_key"] == mallory.user_id
    ]
    assert membership["content"]["membership"] == "ban"
    assert reference in membership["content"].get("reason", "")
    actions = [e.action for e in await bot.store.audit_log(reference)]
    assert "ban" in actions and "policy_rule" in actions


async def test_non_moderators_are_refused(matrix: MatrixHarness, bot: Bot) -> None:
    alice, dm = await person(matrix, bot, "alice")
    eve = await matrix.runner(matrix.user("eve"), auto_join=True)
    owner, community, mods = await community_with_mods(matrix, bot, [alice, eve])
    # eve is in the moderator room but has no power in the community room.
    await owner.client.room_invite(mods, eve.user_id)
    await eve.wait_for_room(mods, timeout=TIMEOUT)
    reference = await walk_report(alice, dm, bot, "x", "y", "https://a.test/1")
    alert = await from_bot(owner, mods, bot, lambda body: reference in body)
    await say(eve, mods, bot, f"!safebot ack {reference}", "Only moderators")
    await send_reaction(eve, mods, alert.event_id, "\u2705")
    await from_bot(eve, mods, bot, lambda body: "Only moderators" in body)
    await say(eve, mods, bot, "!safebot unlink", "Only moderators")
    await say(eve, mods, bot, f"!safebot link {community}", "Only moderators")
    report = await bot.store.get_report(reference)
    assert report is not None and report.status.value == "new"
    await say(owner, mods, bot, "!safebot status", "Cozy Gamers")
    await say(eve, mods, bot, "!safebot policy off", "Only moderators")
    await say(eve, mods, bot, f"!safebot export {reference}", "Only moderators")
    await say(eve, mods, bot, f"!safebot note {reference} hi", "Only moderators")
    await say(eve, mods, bot, f"!safebot ban {reference}", "Only moderators")
    await say(owner, mods, bot, "!safebot unlink", "Unlinked")
    assert await bot.store.list_communities("matrix") == []
    unlinked = [e for e in await bot.store.audit_log() if e.action == "unlink"]
    assert [e.actor for e in unlinked] == [owner.user_id]  # through the service, audited


async def test_a_room_moderating_two_communities_asks_which(
    matrix: MatrixHarness, bot: Bot
) -> None:
    owner, first, mods = await community_with_mods(matrix, bot, [])
    second = await create_room(
        owner, name="Second", invite=[bot.user.user_id], power_levels={bot.user.user_id: 0}
    )
    await owner.wait_for_room(second, members=[bot.user.user_id], timeout=TIMEOUT)
    await say(owner, mods, bot, f"!safebot link {second}", "Linked")
    await say(owner, mods, bot, "!safebot unlink", "Which community room")
    await say(owner, mods, bot, "!safebot policy off", "Link exactly one community")
    await say(owner, mods, bot, f"!safebot unlink {first}", "Unlinked")
    [left] = await bot.store.list_communities("matrix")
    assert left.community.id == second


async def test_unencrypted_dm_and_prefixed_commands(matrix: MatrixHarness, bot: Bot) -> None:
    bob, dm = await person(matrix, bot, "bob", encrypted=False)
    reply = await say(bob, dm, bot, "!safebot block", "Where is this person contacting you")
    assert not reply.decrypted
    await say(bob, dm, bot, "help", "What would help right now")
    await say(bob, dm, bot, "report", "send a private alert")


async def test_pictures_are_never_downloaded(matrix: MatrixHarness, bot: Bot) -> None:
    carol, dm = await person(matrix, bot, "carol")
    encrypted_file = {  # what Element sends in an encrypted room (the bytes stay on the server)
        "url": "mxc://localhost/abc",
        "key": {
            "kty": "oct",
            "alg": "A256CTR",
            "ext": True,
            "k": "a" * 43,
            "key_ops": ["encrypt", "decrypt"],
        },
        "iv": "AAAAAAAAAAAAAAAAAAAAAA",
        "hashes": {"sha256": "b" * 43},
        "v": "v2",
    }
    await send_text(
        carol, dm, "photo.jpg", msgtype="m.image", extra_content={"file": encrypted_file}
    )
    await from_bot(carol, dm, bot, lambda body: "didn't keep" in body)
    await send_text(carol, dm, "broken.jpg", msgtype="m.image")  # malformed: no url or file
    await from_bot(carol, dm, bot, lambda body: "didn't keep" in body)


async def test_mention_injection_is_inert(matrix: MatrixHarness, bot: Bot) -> None:
    alice, dm = await person(matrix, bot, "alice")
    owner, _community, mods = await community_with_mods(matrix, bot, [alice])
    evil = (
        '@room <a href="https://matrix.to/#/@owner:localhost">pill</a> '
        f"https://matrix.to/#/{owner.user_id} <b>bold</b> **x**"
    )
    # (In the details: naming a moderator as the reported person leaves them unpinged, see
    # test_a_reported_moderator_is_not_mentioned_and_the_others_are_warned.)
    reference = await walk_report(alice, dm, bot, "someone", evil, "https://evil.test/@room")
    alert = await from_bot(owner, mods, bot, lambda body: reference in body)
    content = alert.source["content"]
    assert content["m.mentions"] == {"user_ids": [owner.user_id]}
    html_body = content["formatted_body"]
    assert '<a href="https://matrix.to/#/@owner:localhost">pill</a>' not in html_body
    assert "&lt;a href=" in html_body and "<b>bold</b>" not in html_body
    # The review the person saw carried the same text, inert too.
    review = [m for m in alice.messages[dm] if "Who will see it" in m.body][-1]
    assert review.source["content"]["m.mentions"] == {}
    assert "&lt;b&gt;bold&lt;/b&gt;" in review.source["content"]["formatted_body"]


async def test_restart_mid_conversation_keeps_state_and_decrypts(
    matrix: MatrixHarness, bot: Bot
) -> None:
    alice, dm = await person(matrix, bot, "alice")
    await say(alice, dm, bot, "hi", "What would help right now")
    await say(alice, dm, bot, "how do I block them", "Where is this person contacting you")
    await bot.stop()
    await send_text(alice, dm, "1")  # sent while the bot is offline
    await bot.start()
    answer = await from_bot(alice, dm, bot, lambda body: "computer or a phone" in body)
    assert answer.decrypted
    await say(alice, dm, bot, "2", "Step 1 of")
    await asyncio.sleep(1.0)
    answers = [m for m in alice.messages[dm] if "computer or a phone" in m.body]
    assert len(answers) == 1  # answered once, never twice


async def test_synapse_restart_recovers(
    matrix: MatrixHarness, bot: Bot, running_synapse: SynapseServer
) -> None:
    alice, dm = await person(matrix, bot, "alice")
    await say(alice, dm, bot, "hi", "What would help right now")
    await asyncio.to_thread(running_synapse.restart)  # the bot keeps syncing into the outage
    await say(alice, dm, bot, "how do I block them", "Where is this person contacting you")
    adapter = bot.adapter
    assert adapter is not None and adapter._sync_task is not None
    assert not adapter._sync_task.done()  # the same sync loop recovered by itself


async def test_moderator_room_outage_keeps_the_alert_queued(
    matrix: MatrixHarness, bot: Bot
) -> None:
    alice, dm = await person(matrix, bot, "alice")
    owner, _community, mods = await community_with_mods(matrix, bot, [alice])
    adapter = bot.adapter
    assert adapter is not None and adapter.client is not None
    await adapter.client.room_leave(mods)  # the bot lost the moderator room
    reference = await walk_report(alice, dm, bot, "x", "y", "https://a.test/1")
    await asyncio.sleep(0.5)
    assert (await bot.store.backlog()).waiting == 1
    await owner.client.room_invite(mods, bot.user.user_id)  # the moderators invite it back
    alert = await from_bot(owner, mods, bot, lambda body: reference in body)
    await asyncio.sleep(1.0)
    alerts = [m for m in owner.messages[mods] if reference in m.body and "Safety report" in m.body]
    assert len(alerts) == 1 and alert.decrypted


async def test_more_than_fifty_new_encrypted_dms(matrix: MatrixHarness, bot: Bot) -> None:
    """50 people write while the bot is offline (using up all its one-time keys), then 5 more
    after it is back: everyone is answered, once (nio alone would never upload new keys)."""
    await bot.stop()
    people: list[tuple[ClientRunner, str]] = []
    semaphore = asyncio.Semaphore(10)

    async def newcomer(i: int) -> None:
        async with semaphore:
            runner = await matrix.runner(await matrix.auser(f"p{i}"), auto_join=True)
            room = await create_dm(runner, bot.user.user_id)
            await send_text(runner, room, "hi")
            people.append((runner, room))

    await asyncio.gather(*(newcomer(i) for i in range(50)))
    await bot.start()
    for runner, room in people:
        await from_bot(runner, room, bot, lambda body: "What would help" in body)
    late = [await person(matrix, bot, f"late{i}") for i in range(5)]
    for runner, room in late:
        await say(runner, room, bot, "hi", "What would help right now")


async def test_first_start_does_not_replay_history(
    matrix: MatrixHarness, engine: Engine, store: Store, tmp_path: Path
) -> None:
    """Deploying SafeBot on an account that already has rooms: old messages stay unanswered,
    new ones are answered once."""
    settings = Settings(database_url=str(tmp_path / "fresh.db"))
    holder = Bot(matrix, engine, store, settings, tmp_path)
    plain_bot = await matrix.runner(holder.user, encrypted=False, auto_join=True)
    alice = await matrix.runner(matrix.user("alice"), auto_join=True)
    room = await create_dm(alice, holder.user.user_id, encrypted=False)
    await plain_bot.wait_for_room(room, members=[alice.user_id], timeout=TIMEOUT)
    await send_text(alice, room, "an old message from before SafeBot")
    await plain_bot.wait_for_message(room, timeout=TIMEOUT)
    await plain_bot.stop()
    holder.data_dir = tmp_path / "first-start"
    try:
        await holder.start()
        await say(alice, room, holder, "hi", "What would help right now")
        await asyncio.sleep(1.0)
        replies = [m for m in alice.messages[room] if m.sender == holder.user.user_id]
        assert len(replies) == 2  # welcome + menu for "hi"; nothing for the old message
    finally:
        await holder.stop()


# --- authorization: who may do what, and where report details can show up --------------------
async def test_block_reporter_command(matrix: MatrixHarness, bot: Bot) -> None:
    alice, dm = await person(matrix, bot, "alice")
    eve = await matrix.runner(matrix.user("eve"), auto_join=True)
    owner, _community, mods = await community_with_mods(matrix, bot, [alice, eve])
    await owner.client.room_invite(mods, eve.user_id)
    await eve.wait_for_room(mods, timeout=TIMEOUT)
    reference = await walk_report(alice, dm, bot, "x", "y", "https://a.test/1")
    await from_bot(owner, mods, bot, lambda body: reference in body)
    # eve is in the moderator room without power in the community room: every action refused.
    for action in ("ack", "claim", "resolve", "block", "unblock"):
        await say(eve, mods, bot, f"!safebot {action} {reference}", "Only moderators")
    report = await bot.store.get_report(reference)
    assert report is not None and report.status.value == "new" and report.handled_by is None
    [config] = await bot.store.list_communities("matrix")
    assert config.blocked == ()
    done = await say(owner, mods, bot, f"!safebot block {reference}", "can no longer report")
    assert alice.user_id not in done.body
    [config] = await bot.store.list_communities("matrix")
    assert bot.adapter is not None
    alice_tag = await bot.adapter.bot.pseudonym(PersonId("matrix", alice.user_id))
    assert config.blocked == (alice_tag,)
    await say(alice, dm, bot, "menu", "What would help right now")
    await say(alice, dm, bot, "tell the mods", "send a private alert")
    await say(alice, dm, bot, "1", "couldn't find a server or room")
    await say(owner, mods, bot, f"!safebot unblock {reference}", "can report to this community")
    [config] = await bot.store.list_communities("matrix")
    assert config.blocked == ()
    help_text = await say(owner, mods, bot, "!safebot block", "Moderator commands")
    assert "!safebot block R-XXXX" in help_text.body


async def test_moderators_of_one_community_cannot_touch_anothers_reports(
    matrix: MatrixHarness, bot: Bot
) -> None:
    alice, dm = await person(matrix, bot, "alice")
    owner_a, _community_a, mods_a = await community_with_mods(matrix, bot, [alice])
    owner_b, _community_b, mods_b = await community_with_mods(
        matrix, bot, [alice], name="Book Club"
    )
    marker = "BOOK-CLUB-DETAILS-4471"
    reference = await walk_report(alice, dm, bot, "x", marker, "https://a.test/1", "Book Club")
    await from_bot(owner_b, mods_b, bot, lambda body: reference in body)
    for action in ("ack", "claim", "resolve", "block"):
        await say(
            owner_a,
            mods_a,
            bot,
            f"!safebot {action} {reference}",
            f"I don't know a report {reference} in this community",
        )
    report = await bot.store.get_report(reference)
    assert report is not None and report.status.value == "new" and report.handled_by is None
    config_b = await bot.store.get_community(report.community)
    assert config_b is not None and config_b.blocked == ()
    # Community A's moderators never saw anything of B's report.
    for events in owner_a.events.values():
        assert not any(marker in str(e.source) for e in events)
    assert mods_b not in owner_a.events
    await say(owner_b, mods_b, bot, f"!safebot ack {reference}", f"You acknowledged {reference}")


async def test_only_members_can_report_to_a_community(matrix: MatrixHarness, bot: Bot) -> None:
    alice, dm = await person(matrix, bot, "alice")
    stranger, stranger_dm = await person(matrix, bot, "stranger")
    owner, community, mods = await community_with_mods(matrix, bot, [alice])
    # Not offered to someone who is not in the community room.
    await say(stranger, stranger_dm, bot, "hi", "What would help right now")
    await say(stranger, stranger_dm, bot, "tell the mods", "send a private alert")
    offered = await say(stranger, stranger_dm, bot, "1", "couldn't find a server or room")
    assert "Cozy Gamers" not in offered.body
    # Refused at submit for someone who left after picking it.
    await walk_to_review(alice, dm, bot, "x", "y", "https://a.test/1")
    await alice.client.room_leave(community)
    await say(alice, dm, bot, "1", "can't send a report to that community")
    assert (
        await bot.store.reports_for_community(
            (await bot.store.list_communities("matrix"))[0].community
        )
        == []
    )
    await asyncio.sleep(0.5)
    assert not [m for m in owner.messages.get(mods, []) if REF.search(m.body)]  # no alert


async def test_report_details_only_reach_the_dm_and_the_moderator_room(
    matrix: MatrixHarness, bot: Bot
) -> None:
    alice, dm = await person(matrix, bot, "alice")
    bystander, bystander_dm = await person(matrix, bot, "bystander")
    owner, community, mods = await community_with_mods(matrix, bot, [alice, bystander])
    other_owner, _other, other_mods = await community_with_mods(
        matrix, bot, [alice, bystander], name="Book Club"
    )
    await say(bystander, bystander_dm, bot, "hi", "What would help right now")
    marker = "ZEBRA-DETAILS-7731"
    reference = await walk_report(
        alice, dm, bot, f"offender {marker}", f"he said {marker}", "https://a.test/1"
    )
    alert = await from_bot(owner, mods, bot, lambda body: reference in body)
    await send_reaction(owner, mods, alert.event_id, "\u2705")
    await from_bot(alice, dm, bot, lambda body: "has seen it" in body)
    await say(owner, mods, bot, f"!safebot claim {reference}", f"You claimed {reference}")
    await say(owner, mods, bot, f"!safebot resolve {reference}", f"You resolved {reference}")
    await from_bot(alice, dm, bot, lambda body: "resolved" in body)
    await asyncio.sleep(1.0)  # let every client sync whatever else might have been sent
    runners = [alice, bystander, owner, other_owner]
    seen = {
        room
        for runner in runners
        for room, events in runner.events.items()
        if any(marker in str(e.source) for e in events)
    }
    assert seen == {dm, mods}, (seen, {"dm": dm, "mods": mods, "community": community})
    assert not any(u for r in runners for u in r.undecryptable.values() if u.room_id == mods)
    _ = other_mods


async def test_forget_me_takes_the_name_off_the_alert_for_good(
    matrix: MatrixHarness, bot: Bot
) -> None:
    """An m.replace edit would leave the reporter's id in the original event, which any
    moderator client can still show. After "forget me" the original alert is redacted and a
    name-free copy takes its place: nothing a moderator reads from the server names them,
    and later status lines thread under the new copy, after a restart too."""
    alice, dm = await person(matrix, bot, "alice")
    owner, _community, mods = await community_with_mods(matrix, bot, [alice])
    reference = await walk_report(alice, dm, bot, "x", "y", "https://a.test/1")
    alert = await from_bot(owner, mods, bot, lambda body: reference in body)
    assert alice.user_id in alert.body
    await say(owner, mods, bot, f"!safebot ack {reference}", f"You acknowledged {reference}")
    await from_bot(owner, mods, bot, lambda body: "acknowledged by" in body)

    await say(alice, dm, bot, "forget me", "can't be undone")
    await say(alice, dm, bot, "1", "taken your name off")
    clean = await owner.wait_for_message(
        mods,
        lambda m: (
            m.sender == bot.user.user_id
            and m.event_id != alert.event_id
            and m.source["content"].get("org.safebot.key") == f"alert:{reference}"
        ),
        timeout=TIMEOUT,
    )
    assert reference in clean.body and alice.user_id not in clean.body
    assert not clean.source["content"]["m.mentions"].get("user_ids")  # it pings nobody
    deadline = asyncio.get_running_loop().time() + TIMEOUT  # redacted right after the post
    while True:
        original = await owner.client.room_get_event(mods, alert.event_id)
        assert isinstance(original, RoomGetEventResponse)
        if "redacted_because" in original.event.source.get("unsigned", {}):
            break
        assert asyncio.get_running_loop().time() < deadline, "the original alert is still there"
        await asyncio.sleep(0.2)
    assert alice.user_id not in json.dumps(original.event.source)
    # What any moderator client reads from the server now: no event names the reporter.
    history = await owner.client.room_messages(mods, None, limit=100)
    assert isinstance(history, RoomMessagesResponse)
    for event in history.chunk:
        if isinstance(event, MegolmEvent):
            with contextlib.suppress(EncryptionError):
                event = owner.client.decrypt_event(event)
        assert alice.user_id not in json.dumps(event.source), event.source
    # Moderators can still act; the update threads under the name-free alert, also once the
    # bot has restarted and knows only what the outbox kept.
    await bot.stop()
    await bot.start()
    await say(owner, mods, bot, f"!safebot claim {reference}", f"You claimed {reference}")
    thread = await from_bot(owner, mods, bot, lambda body: "being handled by" in body)
    assert thread.source["content"]["m.relates_to"]["event_id"] == clean.event_id
