"""Matrix: guidance only in a private 1:1 room, and the moderator side (threads, members who
left, which room `link` checks). Against the real Synapse of tests/synapse/, with real
matrix-nio clients; the pure rules of adapters/matrix/privacy.py are checked first."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import uuid4

import pytest
from nio import RoomCreateResponse, RoomPreset

import safebot.adapters.matrix.outbound as matrix_outbound
from safebot.adapters.matrix.powers import RoomPowers
from safebot.adapters.matrix.privacy import (
    RedirectLimiter,
    RoomView,
    is_private,
    names_bot,
    private_room,
    view_from_state,
)
from safebot.conversation import Engine
from safebot.settings import Settings
from safebot.store.base import Store

try:  # ``python -m pytest`` from the repo root
    from tests.synapse import ClientRunner, MatrixHarness, create_dm, create_room, send_reaction
    from tests.synapse import send_text as send_raw
    from tests.synapse.clients import _api
    from tests.test_matrix_adapter import (
        TIMEOUT,
        Bot,
        bot,
        from_bot,
        matrix,
        person,
        running_synapse,
        say,
        store,
        synapse,
        walk_report,
    )
except ModuleNotFoundError as exc:  # plain ``pytest``: only tests/ is on sys.path
    if exc.name not in ("tests", "tests.synapse", "tests.test_matrix_adapter"):
        raise
    from synapse import (  # type: ignore[no-redef, unused-ignore]
        ClientRunner,
        MatrixHarness,
        create_dm,
        create_room,
        send_reaction,
    )
    from synapse import send_text as send_raw  # type: ignore[no-redef, unused-ignore]
    from synapse.clients import _api  # type: ignore[no-redef, unused-ignore]
    from test_matrix_adapter import (  # type: ignore[no-redef, unused-ignore]
        TIMEOUT,
        Bot,
        bot,
        from_bot,
        matrix,
        person,
        running_synapse,
        say,
        store,
        synapse,
        walk_report,
    )

__all__ = ["bot", "matrix", "running_synapse", "store", "synapse"]

HINT = "just you and me"  # the neutral line (content/en/matrix.toml, matrix.private_only)
GUIDANCE = ("only you can see it", "What would help", "reference", "Update on your report")
QUIET = 1.0
UNREADABLE = "couldn't read your last message"
SCAN = 5  # the adapter's page of history (50 in production), made small to keep tests short
BUSY = 8  # bot answers after an alert: more than one page
THIRD_PARTY_INVITE = {
    "type": "m.room.third_party_invite",
    "state_key": "token",
    "content": {"display_name": "c...@example.org"},
}  # seconds to wait before asserting that nothing more was said


# --- the rules, without a server ------------------------------------------------------------
def _state(join_rule: str = "invite", history: str = "shared", **members: str) -> list[dict]:
    events: list[dict] = [
        {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": join_rule}},
        {
            "type": "m.room.history_visibility",
            "state_key": "",
            "content": {"history_visibility": history},
        },
    ]
    for user, membership in members.items():
        events.append(
            {
                "type": "m.room.member",
                "state_key": f"@{user}:x",
                "content": {"membership": membership},
            }
        )
    return events


def test_privacy_rule() -> None:
    bot_id, alice = "@bot:x", "@alice:x"
    private = view_from_state(_state(bot="join", alice="join"))
    assert is_private(private, bot_id, alice)
    assert is_private(view_from_state(_state(bot="join", alice="invite")), bot_id, alice)
    assert is_private(view_from_state(_state("knock", bot="join", alice="join")), bot_id, alice)
    assert is_private(
        view_from_state(_state(bot="join", alice="join", carol="leave", dave="ban")), bot_id, alice
    )
    not_private = [
        _state("public", bot="join", alice="join"),
        _state("restricted", bot="join", alice="join"),
        _state("knock_restricted", bot="join", alice="join"),
        _state(history="world_readable", bot="join", alice="join"),
        _state(bot="join", alice="join", carol="join"),
        _state(bot="join", alice="join", carol="invite"),
        _state(bot="invite", alice="join"),
        _state(bot="join", alice="leave"),
        _state(bot="join", carol="join"),
        [*_state(bot="join", alice="join"), THIRD_PARTY_INVITE],
    ]
    for events in not_private:
        assert not is_private(view_from_state(events), bot_id, alice), events
    assert not is_private(private, bot_id, "@carol:x")  # someone else's private room
    assert RoomView("invite", "shared", frozenset({bot_id, alice}), frozenset()) == private


def test_names_bot() -> None:
    bot_id = "@safebot:example.org"
    for body in ("SafeBot help", "hey @safebot:example.org", "safebot: hi", "ask Helper!"):
        assert names_bot(body, bot_id, "Helper"), body
    for body in ("safebots are cool", "unsafebot", "hi all", "help"):
        assert not names_bot(body, bot_id, "Helper"), body
    assert not names_bot("helper", bot_id, None)


def test_redirect_limiter_says_it_once_per_room_per_period() -> None:
    limiter = RedirectLimiter(interval=60.0, capacity=3)
    assert limiter.due("!a", 0.0)
    assert not limiter.due("!a", 59.0)
    assert limiter.due("!b", 59.0)
    assert limiter.due("!a", 61.0)
    for i in range(10):
        assert limiter.due(f"!r{i}", 100.0)
    assert len(limiter._last) == 3  # bounded


def test_moderators_must_be_joined_now() -> None:
    create = {"room_version": "12"}
    levels = {"users": {"@mia:x": 50, "@max:x": 100, "@eve:x": 0}, "kick": 50, "ban": 50}
    powers = RoomPowers.from_state("@owner:x", create, levels, ["@owner:x", "@mia:x", "@eve:x"])
    assert powers.moderators() == ["@mia:x", "@owner:x"]
    assert powers.is_moderator("@mia:x") and powers.is_moderator("@owner:x")
    assert not powers.is_moderator("@max:x")  # power 100 but left
    assert not powers.is_moderator("@eve:x")
    gone = RoomPowers.from_state("@owner:x", create, levels, ["@mia:x"])
    assert not gone.is_moderator("@owner:x") and gone.moderators() == ["@mia:x"]


# --- over the wire --------------------------------------------------------------------------
def bot_lines(runner: ClientRunner, room: str, bot: Bot) -> list[str]:
    return [m.body for m in runner.messages.get(room, []) if m.sender == bot.user.user_id]


async def only_the_hint(runner: ClientRunner, room: str, bot: Bot) -> None:
    """The bot said the neutral line once in ``room`` and nothing else."""
    await from_bot(runner, room, bot, lambda body: HINT in body)
    await asyncio.sleep(QUIET)
    lines = bot_lines(runner, room, bot)
    assert len(lines) == 1 and HINT in lines[0], lines
    assert not any(g in lines[0] for g in GUIDANCE)


async def direct_room(
    runner: ClientRunner, invite: list[str], preset: RoomPreset = RoomPreset.private_chat
) -> str:
    """A room created like a DM (``is_direct`` on the invites) that is not 1:1 or not private."""
    response = await runner.client.room_create(is_direct=True, preset=preset, invite=invite)
    assert isinstance(response, RoomCreateResponse), response
    return str(response.room_id)


async def test_no_guidance_in_rooms_that_are_not_one_to_one(
    matrix: MatrixHarness, bot: Bot
) -> None:
    """A public 2-member room and an is_direct invite into a 3-person room get one neutral
    line (once, however many messages), never the welcome or the menu."""
    alice = await matrix.runner(matrix.user("alice"), auto_join=True)
    carol = await matrix.runner(matrix.user("carol"), auto_join=True)
    public = await direct_room(alice, [bot.user.user_id], RoomPreset.public_chat)
    group = await direct_room(alice, [bot.user.user_id, carol.user_id])
    await alice.wait_for_room(public, joined=[bot.user.user_id], timeout=TIMEOUT)
    await alice.wait_for_room(group, joined=[bot.user.user_id, carol.user_id], timeout=TIMEOUT)
    for room in (public, group):
        await send_raw(alice, room, "hi")
        await send_raw(alice, room, "someone is threatening to share my pictures")
        await send_raw(alice, room, "!safebot report")
        await send_raw(alice, room, "photo.jpg", msgtype="m.image")  # no warning here either
    for room in (public, group):
        await only_the_hint(alice, room, bot)
    # Chatter in a bigger room the bot was invited to normally is left alone entirely.
    plain = await create_room(alice, name="Hangout", invite=[bot.user.user_id, carol.user_id])
    await alice.wait_for_room(plain, joined=[bot.user.user_id, carol.user_id], timeout=TIMEOUT)
    await send_raw(alice, plain, "hi all")
    await asyncio.sleep(QUIET)
    assert bot_lines(alice, plain, bot) == []
    # ... unless a message names the bot: then the neutral line, once.
    await send_raw(alice, plain, f"{bot.user.localpart} someone has my pictures")
    await only_the_hint(alice, plain, bot)


async def test_a_dm_that_gains_a_third_member_gets_no_more_guidance(
    matrix: MatrixHarness, bot: Bot
) -> None:
    """Answered while 1:1; after a third person is invited (not even joined yet) only the
    neutral line; the status update of the person's report goes to a fresh private DM."""
    alice, dm = await person(matrix, bot, "alice")
    carol = await matrix.runner(matrix.user("carol"), auto_join=False)
    owner, _community, mods = await _linked_community(matrix, bot, [alice])
    reference = await walk_report(alice, dm, bot, "x", "y", "https://a.test/1")
    alert = await from_bot(owner, mods, bot, lambda body: reference in body)
    adapter = bot.adapter
    assert adapter is not None
    adapter.undecryptable_wait = 0.5
    await send_unreadable(alice, dm)  # while 1:1, a message the bot cannot read gets a nudge
    await from_bot(alice, dm, bot, lambda body: UNREADABLE in body)
    before = len(bot_lines(alice, dm, bot))
    await alice.client.room_invite(dm, carol.user_id)  # pending: carol has not joined
    await alice.wait_for_room(dm, members=[carol.user_id], timeout=TIMEOUT)
    await send_raw(alice, dm, "menu")
    await send_raw(alice, dm, "help")
    await from_bot(alice, dm, bot, lambda body: HINT in body)
    await send_unreadable(alice, dm)  # no nudge any more
    await send_reaction(owner, mods, alert.event_id, "\u2705")
    fresh = await _new_dm_with_update(alice, bot, dm, reference)
    assert fresh != dm
    await asyncio.sleep(QUIET)
    after = bot_lines(alice, dm, bot)[before:]
    assert len(after) == 1 and HINT in after[0], after


async def send_unreadable(runner: ClientRunner, room: str) -> None:
    """An encrypted message with a Megolm session nobody ever shared with the bot."""
    content = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "ciphertext": "AwgAEhA" + "A" * 40,
        "sender_key": "B" * 43,
        "session_id": "C" * 43,
        "device_id": runner.client.device_id,
    }
    path = f"/_matrix/client/v3/rooms/{quote(room)}/send/m.room.encrypted/{uuid4().hex}"
    status, reply = await _api(runner.client, "PUT", path, content)
    assert status == 200, reply


async def _new_dm_with_update(alice: ClientRunner, bot: Bot, old: str, reference: str) -> str:
    def found() -> str | None:
        for room, messages in alice.messages.items():
            if room != old and any(
                m.sender == bot.user.user_id and reference in m.body for m in messages
            ):
                return room
        return None

    return await alice.wait_until(found, TIMEOUT, "the status update in a new DM")


async def _linked_community(
    matrix: MatrixHarness,
    bot: Bot,
    members: list[ClientRunner],
    levels: dict[str, int] | None = None,
) -> tuple[ClientRunner, str, str]:
    owner = await matrix.runner(matrix.user("owner"), auto_join=True)
    community = await create_room(
        owner,
        name="Cozy Gamers",
        invite=[bot.user.user_id, *(m.user_id for m in members)],
        power_levels={bot.user.user_id: 0, **(levels or {})},
    )
    mods = await create_room(owner, name="mods", invite=[bot.user.user_id], encrypted=True)
    for member in members:
        await member.wait_for_room(community, timeout=TIMEOUT)
    await owner.wait_for_room(community, joined=[bot.user.user_id], timeout=TIMEOUT)
    await owner.wait_for_room(mods, joined=[bot.user.user_id], timeout=TIMEOUT)
    adapter = bot.adapter
    assert adapter is not None and adapter.client is not None
    for _ in range(100):
        if community in adapter.client.rooms and mods in adapter.client.rooms:
            break
        await asyncio.sleep(0.1)
    await say(owner, mods, bot, f"!safebot link {community}", "Linked")
    return owner, community, mods


async def test_stale_cache_never_makes_a_room_private(matrix: MatrixHarness) -> None:
    """The decision asks the homeserver: a client whose synced copy still shows two members
    must not call the room private once a third has joined."""
    me = await matrix.runner(matrix.user("me"), auto_join=True)
    alice = await matrix.runner(matrix.user("alice"), auto_join=True)
    carol = await matrix.runner(matrix.user("carol"), auto_join=True)
    room = await create_dm(alice, me.user_id)
    await me.wait_for_room(room, joined=[alice.user_id, me.user_id], timeout=TIMEOUT)
    assert await private_room(me.client, room, alice.user_id)
    await me.stop(close=False)  # its cache is frozen from here on
    await alice.client.room_invite(room, carol.user_id)
    await carol.wait_for_room(room, timeout=TIMEOUT)
    await alice.wait_for_room(room, joined=[carol.user_id], timeout=TIMEOUT)
    assert set(me.client.rooms[room].users) == {alice.user_id, me.user_id}  # stale
    assert not await private_room(me.client, room, alice.user_id)


async def test_message_and_third_member_in_one_sync_batch(matrix: MatrixHarness, bot: Bot) -> None:
    """The bot is away while the person writes and a third person joins right after: when it
    catches up (one sync with both), it does not answer with guidance."""
    alice, dm = await person(matrix, bot, "alice")
    carol = await matrix.runner(matrix.user("carol"), auto_join=True)
    await say(alice, dm, bot, "hi", "What would help right now")
    before = len(bot_lines(alice, dm, bot))
    await bot.stop()
    await send_raw(alice, dm, "how do I block them")
    await alice.client.room_invite(dm, carol.user_id)
    await alice.wait_for_room(dm, joined=[carol.user_id], timeout=TIMEOUT)
    await bot.start()
    await from_bot(alice, dm, bot, lambda body: HINT in body)
    await asyncio.sleep(QUIET)
    after = bot_lines(alice, dm, bot)[before:]
    assert len(after) == 1 and HINT in after[0], after


async def test_dm_invite_from_before_the_first_start_is_joined(
    matrix: MatrixHarness, engine: Engine, store: Store, tmp_path: Path
) -> None:
    settings = Settings(database_url=str(tmp_path / "fresh.db"))
    holder = Bot(matrix, engine, store, settings, tmp_path)
    alice = await matrix.runner(matrix.user("alice"), auto_join=True)
    room = await create_dm(alice, holder.user.user_id, encrypted=False)  # the bot never ran
    try:
        await holder.start()
        await alice.wait_for_room(room, joined=[holder.user.user_id], timeout=TIMEOUT)
        await say(alice, room, holder, "hi", "What would help right now")
    finally:
        await holder.stop()


# --- moderators -----------------------------------------------------------------------------
def assert_in_thread(message: Any, root: str) -> None:
    relates = message.source["content"].get("m.relates_to", {})
    assert relates.get("rel_type") == "m.thread", message.source["content"]
    assert relates["event_id"] == root, relates


async def test_moderator_answers_go_into_the_alerts_thread(matrix: MatrixHarness, bot: Bot) -> None:
    alice, dm = await person(matrix, bot, "alice")
    owner, _community, mods = await _linked_community(matrix, bot, [alice])
    reference = await walk_report(alice, dm, bot, "x", "y", "https://a.test/1")
    alert = await from_bot(owner, mods, bot, lambda body: reference in body)

    await send_reaction(owner, mods, alert.event_id, "\u2705")
    answer = await from_bot(owner, mods, bot, lambda body: f"You acknowledged {reference}" in body)
    status = await from_bot(owner, mods, bot, lambda body: "acknowledged by" in body)
    claimed = await say(owner, mods, bot, f"!safebot claim {reference}", f"You claimed {reference}")
    again = await say(owner, mods, bot, f"!safebot claim {reference}", "already claimed")
    for message in (answer, status, claimed, again):
        assert_in_thread(message, alert.event_id)


async def test_answers_find_an_old_alert_after_a_restart(
    matrix: MatrixHarness, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alert is far back in a busy moderator room (more of the bot's own events after it
    than the first look back) and the bot restarted (nothing cached): the answer and the
    status line still go into its thread."""
    monkeypatch.setattr(matrix_outbound, "_HISTORY_SCAN", SCAN)
    alice, dm = await person(matrix, bot, "alice")
    owner, _community, mods = await _linked_community(matrix, bot, [alice])
    reference = await walk_report(alice, dm, bot, "x", "y", "https://a.test/1")
    alert = await from_bot(owner, mods, bot, lambda body: reference in body)
    for _ in range(BUSY):  # each gets an answer from the bot
        await say(owner, mods, bot, "!safebot status", "alerts waiting")
    await bot.stop()
    await bot.start()
    answer = await say(owner, mods, bot, f"!safebot ack {reference}", "You acknowledged")
    status = await from_bot(owner, mods, bot, lambda body: "acknowledged by" in body)
    for message in (answer, status):
        assert_in_thread(message, alert.event_id)


async def test_a_moderator_who_left_is_neither_mentioned_nor_obeyed(
    matrix: MatrixHarness, bot: Bot
) -> None:
    alice, dm = await person(matrix, bot, "alice")
    mia = await matrix.runner(matrix.user("mia"), auto_join=True)
    max_ = await matrix.runner(matrix.user("max"), auto_join=True)
    owner, community, mods = await _linked_community(
        matrix, bot, [alice, mia, max_], levels={mia.user_id: 50, max_.user_id: 100}
    )
    for moderator in (mia, max_):
        await owner.client.room_invite(mods, moderator.user_id)
        await moderator.wait_for_room(mods, timeout=TIMEOUT)
    await max_.client.room_leave(community)  # power level 100 stays in the room's state
    await owner.wait_for_room(community, joined=[owner.user_id], timeout=TIMEOUT)
    reference = await walk_report(alice, dm, bot, "x", "y", "https://a.test/1")
    alert = await from_bot(owner, mods, bot, lambda body: reference in body)
    assert alert.source["content"]["m.mentions"] == {
        "user_ids": sorted([owner.user_id, mia.user_id])
    }
    assert max_.user_id not in alert.body
    await say(max_, mods, bot, f"!safebot ack {reference}", "Only moderators")
    report = await bot.store.get_report(reference)
    assert report is not None and report.status.value == "new"
    await say(mia, mods, bot, f"!safebot ack {reference}", f"You acknowledged {reference}")


async def test_link_checks_the_community_room_not_the_moderator_room(
    matrix: MatrixHarness, bot: Bot
) -> None:
    """Eve creates her own moderator room (she has every power there) but has none in the
    community room: she cannot link it."""
    eve = await matrix.runner(matrix.user("eve"), auto_join=True)
    owner = await matrix.runner(matrix.user("owner"), auto_join=True)
    community = await create_room(owner, name="Cozy Gamers", invite=[bot.user.user_id, eve.user_id])
    await eve.wait_for_room(community, timeout=TIMEOUT)
    await owner.wait_for_room(community, joined=[bot.user.user_id], timeout=TIMEOUT)
    own = await create_room(eve, name="eve's mods", invite=[bot.user.user_id])
    await eve.wait_for_room(own, joined=[bot.user.user_id], timeout=TIMEOUT)
    await say(eve, own, bot, f"!safebot link {community}", "Only moderators")
    assert await bot.store.list_communities("matrix") == []
