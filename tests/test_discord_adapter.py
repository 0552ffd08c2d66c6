"""The Discord adapter over the wire: real discord.py against the fake Discord on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import discord
import pytest
from conftest import Clock
from fakediscord import (
    BAN_MEMBERS,
    EPHEMERAL,
    MODERATE_MEMBERS,
    FakeDiscord,
    FakeMessage,
    run_client,
)
from fakediscord._models import iter_components

from safebot.adapters.discord import DiscordAdapter
from safebot.app import assemble
from safebot.conversation import Engine
from safebot.model import CommunityId, PersonId
from safebot.settings import EscalationSettings, OutboxSettings, Settings
from safebot.store import open_store
from safebot.store.base import Store

MANAGE_GUILD = discord.Permissions(manage_guild=True).value
REF = re.compile(r"R-[2-9A-Z]{4}")
ZWSP = "\u200b"


@dataclass
class World:
    fake: FakeDiscord
    guild: Any
    general: Any
    safety: Any
    mod_role: Any
    owner: Any
    alice: Any
    mod: Any
    offender: Any
    stranger: Any


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with FakeDiscord() as fake:
        owner = fake.add_user("owner")
        guild = fake.add_guild("Test Server", owner_id=owner)
        mod_role = fake.add_role(
            guild, "Safety Team", MODERATE_MEMBERS | BAN_MEMBERS, mentionable=True
        )
        alice = fake.add_user("alice")
        mod = fake.add_user("mod")
        offender = fake.add_user("offender")
        stranger = fake.add_user("stranger")
        fake.add_member(guild, owner)
        fake.add_member(guild, alice)
        fake.add_member(guild, mod, roles=[mod_role])
        fake.add_member(guild, offender)
        general = fake.add_channel(guild, "general")
        safety = fake.add_channel(guild, "safety")
        yield World(fake, guild, general, safety, mod_role, owner, alice, mod, offender, stranger)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    opened = await open_store(settings.database_url)
    yield opened
    await opened.close()


def make_adapter(engine: Engine, store: Store, settings: Settings, **kw: Any) -> DiscordAdapter:
    adapter = DiscordAdapter(settings, engine.content, guild_ready_timeout=0.05, **kw)
    assemble(engine, store, adapter, settings)

    async def no_identify_wait(shard_id: int | None, *, initial: bool = False) -> None:
        return None  # discord.py waits 5 s between shards to respect Discord's identify limit

    adapter.client.before_identify_hook = no_identify_wait  # type: ignore[method-assign]
    return adapter


@contextlib.asynccontextmanager
async def running(world: World, adapter: DiscordAdapter) -> AsyncIterator[DiscordAdapter]:
    async with run_client(world.fake, adapter.client):
        yield adapter
    await adapter.close()


@pytest.fixture
async def bot(
    world: World, engine: Engine, store: Store, settings: Settings
) -> AsyncIterator[DiscordAdapter]:
    async with running(world, make_adapter(engine, store, settings)) as adapter:
        yield adapter


def has_choices(message: FakeMessage) -> bool:
    return bool(message.custom_ids())


def custom_id_for(message: FakeMessage, wanted: str) -> str:
    """The custom_id of a component by choice id (``sb:c:<node>:<wanted>``) or by label."""
    for component in iter_components(message.components):
        cid = component.get("custom_id", "")
        if cid == wanted or cid.endswith(f":{wanted}") or component.get("label") == wanted:
            return str(cid)
    raise AssertionError(f"no component {wanted!r} in {message.custom_ids()}")


async def dm(world: World, user: Any, text: str, **kw: Any) -> FakeMessage:
    world.fake.mark()
    await world.fake.send_dm(user, text, **kw)
    return await world.fake.wait_for_message(channel_id=user, predicate=has_choices)


async def press(world: World, user: Any, message: FakeMessage, wanted: str) -> FakeMessage:
    cid = custom_id_for(message, wanted)
    if cid.startswith("sb:s:"):
        inter = await world.fake.click(user, message, cid, values=[wanted])
    else:
        inter = await world.fake.click(user, message, cid)
    return await inter.wait_followup(has_choices)


async def reply_text(inter: Any) -> str:
    """The text the person saw: a direct response (type 4) or, after a deferral, a followup."""
    response = await inter.response()
    if response["type"] == 4:
        return str(response["data"].get("content", ""))
    return str((await inter.wait_followup()).content)


async def setup_server(
    world: World, channel: Any = None, *, guild: Any = None, owner: Any = None, role: Any = None
) -> None:
    inter = await world.fake.slash(
        owner or world.owner,
        "safety",
        {"channel": channel or world.safety, "role": role or world.mod_role},
        guild=guild or world.guild,
        subcommand="setup",
    )
    text = await reply_text(inter)
    assert "Saved" in text, text


async def report_by_dm(
    world: World, *, offender: str, details: str, evidence: str, community: str = "Test Server"
) -> str:
    first = await dm(world, world.alice, "hi")
    msg = await press(world, world.alice, first, "report")
    msg = await press(world, world.alice, msg, "report.go")
    assert community in [c.get("label") for c in iter_components(msg.components)]
    msg = await press(world, world.alice, msg, community)
    msg = await press(world, world.alice, msg, "cat.threats")
    for text in (offender, details, evidence):
        msg = await dm(world, world.alice, text)
    msg = await press(world, world.alice, msg, "identity.share")
    assert "Who will see it" in msg.content
    msg = await press(world, world.alice, msg, "report.confirm")
    found = REF.search(msg.content)
    assert found, msg.content
    return found.group(0)


def community_of_guild(world: World) -> CommunityId:
    return CommunityId("discord", str(world.guild.id))


def roles_of(mentions: dict[str, Any]) -> list[str]:
    return [str(r) for r in mentions.get("roles", [])]


def assert_inert(world: World, role_id: int) -> None:
    """Every message the bot sent pinged nobody, except alerts pinging the moderator role."""
    for message in world.fake.message_index.values():
        if not message.by_bot or message.body is None:
            continue
        if not message.content and not message.embeds:
            continue  # a "thinking…" placeholder of a deferred interaction
        mentions = message.allowed_mentions
        assert mentions is not None, message
        assert mentions.get("parse", []) == [], message
        assert mentions.get("users", []) == [], message
        assert set(roles_of(mentions)) <= {str(role_id)}, message
        texts = [message.content] + [str(e) for e in message.embeds]
        for text in texts:
            for token in ("@everyone", "@here", "<@&", "<@!", "<#"):
                for hit in re.finditer(re.escape(token), text):
                    following = text[hit.start() + 1 : hit.start() + 2]
                    leading_ping = text.startswith(f"<@&{role_id}>") and hit.start() == 0
                    assert leading_ping or following == ZWSP, (token, text[:200])


# --- people --------------------------------------------------------------------------------
async def test_dm_conversation_to_confirmed_report(world: World, bot: DiscordAdapter) -> None:
    await setup_server(world)
    reference = await report_by_dm(
        world,
        offender=f"<@{world.offender.id}>",
        details="He wants $500 or he'll send my pics to my followers",
        evidence="https://discord.com/channels/1/2/3",
    )
    alert = await world.fake.wait_for_message(channel_id=world.safety)
    assert alert.content == f"<@&{world.mod_role.id}>"
    mentions = alert.allowed_mentions
    assert mentions["parse"] == [] and roles_of(mentions) == [str(world.mod_role.id)]
    assert not mentions.get("users")
    [embed] = alert.embeds
    assert reference in embed["title"]
    assert "$500" in embed["description"]
    ids = alert.custom_ids()
    for action in ("ack", "claim", "resolve"):
        assert f"sb:m:{action}:{reference}" in ids
    assert f"sb:x:ban:{reference}:{world.offender.id}" in ids
    assert alert.nonce is not None


async def test_a_reported_moderator_is_not_pinged_and_the_others_are_warned(
    world: World, bot: DiscordAdapter
) -> None:
    # The person reported holds the moderator role: a role ping would tell them at once.
    world.fake.guilds[world.guild.id].members[world.offender.id].role_ids.append(world.mod_role.id)
    await setup_server(world)
    reference = await report_by_dm(
        world, offender=f"<@{world.offender.id}>", details="he is a mod here", evidence="skip"
    )
    alert = await world.fake.wait_for_message(channel_id=world.safety)
    assert f"<@&{world.mod_role.id}>" not in (alert.content or "")
    assert roles_of(alert.allowed_mentions) == [] and not alert.allowed_mentions.get("users")
    [embed] = alert.embeds
    shown = json.dumps(embed)
    assert "pinged no one" in shown and "not pinged" in shown, shown
    # The warning stays when a moderator acts on the alert.
    ack = await world.fake.click(world.mod, alert, f"sb:m:ack:{reference}")
    edit = await ack.response()
    assert edit["type"] == 7 and "pinged no one" in json.dumps(edit["data"]["embeds"])


async def test_an_urgent_report_says_so_in_the_alert(world: World, bot: DiscordAdapter) -> None:
    await setup_server(world)
    await dm(world, world.alice, "i want to die")
    reference = await report_by_dm(
        world, offender="someone", details="he posts them in 2 hours", evidence="skip"
    )
    alert = await world.fake.wait_for_message(channel_id=world.safety)
    [embed] = alert.embeds
    assert embed["title"] == f"URGENT safety report {reference}"
    [why] = [f for f in embed["fields"] if f["name"] == "Why urgent"]
    assert "crisis" in why["value"] and "deadline" in why["value"]


async def test_an_unacknowledged_alert_gets_a_reminder_reply_with_a_fresh_ping(
    world: World, engine: Engine, store: Store, settings: Settings
) -> None:
    soon = EscalationSettings(after_minutes=0.02, urgent_after_minutes=0.02, again_minutes=600)
    adapter = make_adapter(engine, store, replace(settings, escalation=soon))
    async with running(world, adapter):
        await setup_server(world)
        reference = await report_by_dm(world, offender="someone", details="x", evidence="skip")
        alert = await world.fake.wait_for_message(channel_id=world.safety)
        reminder = await world.fake.wait_for_message(
            channel_id=world.safety, predicate=lambda m: "Reminder" in (m.content or ""), timeout=8
        )
    assert reminder["message_reference"]["message_id"] == str(alert.id)
    assert reminder.content.startswith(f"<@&{world.mod_role.id}>")
    assert reference in reminder.content
    assert roles_of(reminder.allowed_mentions) == [str(world.mod_role.id)]
    log = await store.audit_log(reference)
    assert [e.action for e in log].count("escalate") == 1


async def test_reminders_reach_the_alert_without_reading_the_channel_history(
    world: World, engine: Engine, store: Store, settings: Settings
) -> None:
    """send_alert answers where the alert is; the outbox keeps it, so what goes under the
    alert later (reminders, notes, status) needs no search through the channel's messages."""
    soon = EscalationSettings(after_minutes=0.01, urgent_after_minutes=0.01, again_minutes=0.02)
    adapter = make_adapter(engine, store, replace(settings, escalation=soon))
    async with running(world, adapter):
        await setup_server(world)
        reference = await report_by_dm(world, offender="someone", details="x", evidence="skip")
        alert = await world.fake.wait_for_message(channel_id=world.safety)
        after_alert = len(world.fake.requests)
        for _ in range(2):  # each reminder is a reply to the alert
            reminder = await world.fake.wait_for_message(
                channel_id=world.safety,
                predicate=lambda m: "Reminder" in (m.content or ""),
                timeout=10,
            )
            assert reminder["message_reference"]["message_id"] == str(alert.id)
    stored = await store.get_outbox_item(f"alert:{reference}")
    assert stored is not None and stored.posted == f"{world.safety.id}/{alert.id}"
    history = [
        r
        for r in world.fake.requests[after_alert:]
        if r.method == "GET" and r.path == f"/channels/{world.safety.id}/messages"
    ]
    assert history == []


async def test_the_last_reminder_pings_the_escalation_role(
    world: World, engine: Engine, store: Store, settings: Settings
) -> None:
    oncall = world.fake.add_role(world.guild, "On call", 0, mentionable=True)
    soon = EscalationSettings(after_minutes=0.01, urgent_after_minutes=0.01, again_minutes=0.02)
    adapter = make_adapter(engine, store, replace(settings, escalation=soon))
    async with running(world, adapter):
        inter = await world.fake.slash(
            world.owner,
            "safety",
            {"channel": world.safety, "role": world.mod_role, "escalate_role": oncall},
            guild=world.guild,
            subcommand="setup",
        )
        assert "Saved" in await reply_text(inter)
        await report_by_dm(world, offender="someone", details="x", evidence="skip")
        await world.fake.wait_for_message(channel_id=world.safety)
        second = await world.fake.wait_for_message(
            channel_id=world.safety,
            predicate=lambda m: (m.content or "").startswith(f"<@&{oncall.id}>"),
            timeout=10,
        )
    assert roles_of(second.allowed_mentions) == [str(oncall.id)]
    assert "Reminder" in second.content


async def test_typed_replies_work_too(world: World, bot: DiscordAdapter) -> None:
    await dm(world, world.alice, "hi")
    msg = await dm(world, world.alice, "how do I block them")
    assert "Where is this person contacting you" in msg.content
    msg = await dm(world, world.alice, "1")
    assert "computer or a phone" in msg.content


async def test_attachments_are_never_fetched(world: World, bot: DiscordAdapter) -> None:
    world.fake.mark()
    await world.fake.send_dm(world.alice, "", attachments=[("photo.jpg", b"\xff\xd8secret")])
    warning = await world.fake.wait_for_message(
        channel_id=world.alice, predicate=lambda m: "didn't keep" in m.content
    )
    assert "didn't keep" in warning.content
    assert world.fake.cdn_requests == []


async def test_long_message_gets_a_kind_answer(world: World, bot: DiscordAdapter) -> None:
    msg = await dm(world, world.alice, "help me " * 500)  # 4,000 characters
    assert msg.content and len(msg.content) <= 2000


@pytest.mark.parametrize(
    ("sub", "expect"),
    [
        ("help", "What would help right now"),
        ("block", "Where is this person contacting you"),
        ("resources", "people and places that can help"),
        ("forget-me", "delete our chat"),
        ("report", "send a private alert"),
    ],
)
async def test_slash_commands_answer_ephemerally(
    world: World, bot: DiscordAdapter, sub: str, expect: str
) -> None:
    for where in ({"guild": world.guild}, {}):
        inter = await world.fake.slash(world.alice, "safety", subcommand=sub, **where)
        response = await inter.response()
        assert response["type"] == 5 and response["data"]["flags"] & EPHEMERAL
        reply = await inter.wait_followup(lambda m: expect in m.content)
        assert reply.ephemeral


async def test_slash_report_in_a_server_preselects_it(world: World, bot: DiscordAdapter) -> None:
    await setup_server(world)
    inter = await world.fake.slash(world.alice, "safety", guild=world.guild, subcommand="report")
    msg = await inter.wait_followup(has_choices)
    msg = await press(world, world.alice, msg, "report.go")
    assert "What is happening" in msg.content  # no community question
    assert msg.ephemeral


async def test_spanish_client_gets_spanish(world: World, bot: DiscordAdapter) -> None:
    inter = await world.fake.slash(world.alice, "safety", subcommand="help", locale="es-ES")
    reply = await inter.wait_followup(has_choices)
    assert "ayudaría" in reply.content


async def test_a_failure_is_apologised_for_in_the_persons_language(
    world: World, bot: DiscordAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await dm(world, world.alice, "hola, necesito ayuda por favor")
    assert "ayud" in first.content

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(bot.bot.engine, "step", broken)
    world.fake.mark()
    await world.fake.send_dm(world.alice, "y ahora que hago")
    sorry = await world.fake.wait_for_message(channel_id=world.alice)
    assert "Perdón" in sorry.content


async def test_replies_go_out_before_the_state_is_saved(
    world: World, bot: DiscordAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The person's replies are sent before the conversation's new state is saved, so a
    failure (or a crash) while saving never leaves a saved state whose answer they missed."""

    async def disk_full(session: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(bot.store, "save_session", disk_full)
    first = await dm(world, world.alice, "hi")
    assert "What would help" in first.content
    assert await bot.store.load_session(discord_person(world.alice)) is None


async def test_language_from_client_locale_then_from_the_text(
    world: World, bot: DiscordAdapter
) -> None:
    # The interaction's locale is the first guess: a Latin American Spanish client.
    inter = await world.fake.slash(world.alice, "safety", subcommand="help", locale="es-419")
    assert "ayudaría" in (await inter.wait_followup(has_choices)).content
    # One English-looking word in a DM does not flip the language...
    assert "ayudaría" in (await dm(world, world.alice, "hi")).content
    # ...a clear English sentence does.
    msg = await dm(world, world.alice, "how do i block someone please")
    assert "Where is this person contacting you" in msg.content


async def test_spanish_first_dm_gets_a_wholly_spanish_reply(
    world: World, bot: DiscordAdapter
) -> None:
    world.fake.mark()
    await world.fake.send_dm(world.alice, "alguien tiene mis fotos y me amenaza")
    first = await world.fake.wait_for_message(channel_id=world.alice)
    assert first.content.startswith("Hola. Soy SafeBot")
    menu = await world.fake.wait_for_message(channel_id=world.alice, predicate=has_choices)
    assert "culpa" in menu.content and "fault" not in menu.content


async def test_context_menu_reports_the_message(world: World, bot: DiscordAdapter) -> None:
    await setup_server(world)
    world.fake.mark()
    threat = await world.fake.send_guild_message(world.general, world.offender, "pay or else")
    inter = await world.fake.context_menu(
        world.alice, threat, "Report to safety team", guild=world.guild
    )
    msg = await inter.wait_followup(has_choices)
    assert msg.ephemeral
    msg = await press(world, world.alice, msg, "report.go")
    msg = await press(world, world.alice, msg, "cat.money")
    for _ in range(3):
        msg = await press(world, world.alice, msg, "skip")
    msg = await press(world, world.alice, msg, "identity.anonymous")
    assert f"/channels/{world.guild.id}/{world.general.id}/{threat.id}" in msg.content


async def open_who_form(world: World) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Alice starts a report in the server and opens the "who is doing this" form: the
    click, the bot's response and the form's text field."""
    await setup_server(world)
    inter = await world.fake.slash(world.alice, "safety", guild=world.guild, subcommand="report")
    msg = await inter.wait_followup(has_choices)
    msg = await press(world, world.alice, msg, "report.go")
    msg = await press(world, world.alice, msg, "cat.money")
    write = await world.fake.click(world.alice, msg, custom_id_for(msg, "sb:w:report.who"))
    response = await write.response()
    [field] = [c for c in iter_components(response["data"]["components"]) if c["type"] == 4]
    return write, response, field


async def test_details_through_the_modal(world: World, bot: DiscordAdapter) -> None:
    write, response, field = await open_who_form(world)
    assert response["type"] == 9  # a modal
    assert field["max_length"] == bot.bot.engine.policy.max_offender_chars  # one limit
    field_id = field["custom_id"]
    submitted = await world.fake.submit_modal(world.alice, write, {field_id: "scammer#1"})
    nxt = await submitted.wait_followup(has_choices)
    assert "Anything else the moderators should know" in nxt.content
    assert nxt.ephemeral


async def test_a_form_sent_after_moving_on_is_not_taken(world: World, bot: DiscordAdapter) -> None:
    write, _response, field = await open_who_form(world)
    await dm(world, world.alice, "menu")  # the person moved on before sending the form
    submitted = await world.fake.submit_modal(world.alice, write, {field["custom_id"]: "scammer#1"})
    notice = await submitted.wait_followup(lambda m: "earlier step" in m.content)
    assert notice.ephemeral
    assert "What would help" in (await submitted.wait_followup(has_choices)).content
    session = await bot.store.load_session(discord_person(world.alice))
    assert session is not None and session.draft.offender is None


async def test_my_reports_lists_them_and_a_note_reaches_the_alert_thread(
    world: World, bot: DiscordAdapter
) -> None:
    await setup_server(world)
    reference = await report_by_dm(world, offender="someone", details="x", evidence="skip")
    alert = await world.fake.wait_for_message(channel_id=world.safety)
    inter = await world.fake.slash(
        world.alice, "safety", guild=world.guild, subcommand="my-reports"
    )
    listed = await inter.wait_followup(has_choices)
    assert listed.ephemeral and reference in listed.content
    assert "waiting for a moderator" in listed.content
    asked = await press(world, world.alice, listed, f"report.{reference}")
    write = await world.fake.click(world.alice, asked, custom_id_for(asked, "sb:w:mine.note"))
    response = await write.response()
    [field_id] = [
        c["custom_id"] for c in iter_components(response["data"]["components"]) if c["type"] == 4
    ]
    world.fake.mark()
    submitted = await world.fake.submit_modal(
        world.alice, write, {field_id: f"new account <@&{world.mod_role.id}> @everyone"}
    )
    done = await submitted.wait_followup()
    assert "will see your note" in done.content
    note = await world.fake.wait_for_message(
        channel_id=world.safety, predicate=lambda m: "A note from" in (m.content or "")
    )
    assert note["message_reference"]["message_id"] == str(alert.id)
    assert f"<@&{world.mod_role.id}>" not in note.content  # the person's words stay inert
    assert note.allowed_mentions.get("roles", []) == [] and note.allowed_mentions["parse"] == []


async def test_case_note_form_and_evidence_pack_file(world: World, bot: DiscordAdapter) -> None:
    await setup_server(world)
    reference = await report_by_dm(
        world, offender=f"<@{world.offender.id}>", details="he wants $50", evidence="skip"
    )
    alert = await world.fake.wait_for_message(channel_id=world.safety)
    cid = f"sb:m:note:{reference}"
    refused = await world.fake.click(world.alice, alert, cid)
    assert "Only this server's moderators" in await reply_text(refused)
    opened = await world.fake.click(world.mod, alert, cid)
    form = await opened.response()
    assert form["type"] == 9  # a modal
    [field_id] = [
        c["custom_id"] for c in iter_components(form["data"]["components"]) if c["type"] == 4
    ]
    kept = await world.fake.submit_modal(world.mod, opened, {field_id: "told the platform"})
    assert "Noted" in await reply_text(kept)
    inter = await world.fake.slash(
        world.mod,
        "safety",
        {"reference": reference.lower()},
        guild=world.guild,
        subcommand="export",
    )
    response = await inter.response()
    assert response["data"]["flags"] & 64  # ephemeral
    [(name, data)] = [f for r in world.fake.requests for f in r.files if f[0].endswith(".txt")]
    text = data.decode()
    assert name == f"safebot-{reference}.txt"
    assert "told the platform" in text and "$50" in text and str(world.offender.id) in text
    assert "No images" in text
    nope = await world.fake.slash(
        world.alice, "safety", {"reference": reference}, guild=world.guild, subcommand="export"
    )
    assert "Only this server's moderators" in await reply_text(nope)


async def test_buttons_survive_a_restart(
    world: World, engine: Engine, store: Store, settings: Settings
) -> None:
    async with running(world, make_adapter(engine, store, settings)):
        first = await dm(world, world.alice, "hi")
    async with running(world, make_adapter(engine, store, settings, sync_commands=False)):
        msg = await press(world, world.alice, first, "block")
        assert "Where is this person contacting you" in msg.content


# --- moderators ----------------------------------------------------------------------------
async def test_setup_needs_manage_server(world: World, bot: DiscordAdapter) -> None:
    inter = await world.fake.slash(
        world.alice,
        "safety",
        {"channel": world.safety, "role": world.mod_role},
        guild=world.guild,
        subcommand="setup",
    )
    assert "Manage Server" in await reply_text(inter)
    assert await bot.store.list_communities("discord") == []
    await setup_server(world)
    [config] = await bot.store.list_communities("discord")
    assert config.destination == str(world.safety.id) and config.mention == str(world.mod_role.id)


async def test_status_shows_permissions_and_backlog(world: World, bot: DiscordAdapter) -> None:
    await setup_server(world)
    inter = await world.fake.slash(world.mod, "safety", guild=world.guild, subcommand="status")
    text = await reply_text(inter)
    assert "safety" in text and "waiting to be delivered: 0" in text
    assert "acknowledged yet: 0" in text
    reference = await report_by_dm(world, offender="someone", details="x", evidence="skip")
    await world.fake.wait_for_message(channel_id=world.safety)
    inter = await world.fake.slash(world.mod, "safety", guild=world.guild, subcommand="status")
    assert "acknowledged yet: 1" in await reply_text(inter)
    await bot.bot.moderator_action(community_of_guild(world), reference, "ack", "mod")
    inter = await world.fake.slash(world.mod, "safety", guild=world.guild, subcommand="status")
    assert "acknowledged yet: 0" in await reply_text(inter)
    refused = await world.fake.slash(world.alice, "safety", guild=world.guild, subcommand="status")
    assert "Only this server's moderators" in await reply_text(refused)


async def test_test_alert(world: World, bot: DiscordAdapter) -> None:
    await setup_server(world)
    world.fake.mark()
    await world.fake.slash(world.owner, "safety", guild=world.guild, subcommand="test-alert")
    posted = await world.fake.wait_for_message(channel_id=world.safety)
    assert "test alert" in posted.content
    assert roles_of(posted.allowed_mentions) == [str(world.mod_role.id)]


async def test_moderator_buttons_and_status_dm(world: World, bot: DiscordAdapter) -> None:
    await setup_server(world)
    reference = await report_by_dm(world, offender="someone", details="x", evidence="https://a.b/c")
    alert = await world.fake.wait_for_message(channel_id=world.safety)
    refused = await world.fake.click(world.alice, alert, f"sb:m:ack:{reference}")
    assert "Only this server's moderators" in await reply_text(refused)
    world.fake.mark()
    ack = await world.fake.click(world.mod, alert, f"sb:m:ack:{reference}")
    edit = await ack.response()
    assert edit["type"] == 7
    assert "acknowledged by" in str(edit["data"]["embeds"])
    assert "You acknowledged" in (await ack.wait_followup()).content
    status = await world.fake.wait_for_message(channel_id=world.alice)
    assert reference in status.content and "has seen it" in status.content
    resolve = await world.fake.click(world.mod, alert, f"sb:m:resolve:{reference}")
    assert (await resolve.response())["type"] == 7
    report = await bot.store.get_report(reference)
    assert report is not None and report.status.value == "resolved"


async def test_ban_button_checks_permission_and_audits(world: World, bot: DiscordAdapter) -> None:
    await setup_server(world)
    reference = await report_by_dm(
        world, offender=f"<@{world.offender.id}>", details="x", evidence="https://a.b/c"
    )
    alert = await world.fake.wait_for_message(channel_id=world.safety)
    cid = f"sb:x:ban:{reference}:{world.offender.id}"
    refused = await world.fake.click(world.alice, alert, cid)
    assert "permission" in await reply_text(refused)
    banned = await world.fake.click(world.mod, alert, cid)
    assert "banned" in await reply_text(banned)
    [ban] = [r for r in world.fake.requests if r.method == "PUT" and "/bans/" in r.path]
    assert ban.headers.get("X-Audit-Log-Reason") == f"SafeBot report {reference}"


async def test_dms_closed_slash_path_still_works(world: World, bot: DiscordAdapter) -> None:
    await setup_server(world)
    world.fake.set_dm_closed(world.alice)
    inter = await world.fake.slash(world.alice, "safety", guild=world.guild, subcommand="report")
    msg = await inter.wait_followup(has_choices)
    for wanted in ("report.go", "cat.other", "skip", "skip", "skip", "identity.share"):
        msg = await press(world, world.alice, msg, wanted)
    cid = custom_id_for(msg, "report.confirm")
    done = await world.fake.click(world.alice, msg, cid)
    receipt = await done.wait_followup(lambda m: REF.search(m.content) is not None)
    assert receipt.ephemeral
    tip = await done.wait_followup(lambda m: "Privacy Settings" in m.content)
    assert tip.ephemeral


async def test_channel_deleted_then_restored_delivers_once(
    world: World, engine: Engine, store: Store, tmp_path: Any
) -> None:
    clock = Clock()
    settings = Settings(
        database_url=str(tmp_path / "x.db"),
        outbox=OutboxSettings(max_attempts=20, base_delay=0.05, max_delay=0.2),
    )
    adapter = make_adapter(engine, store, settings)
    _ = clock
    async with running(world, adapter):
        await setup_server(world)
        world.fake.delete_channel(world.safety)
        reference = await report_by_dm(world, offender="x", details="y", evidence="https://a.b/c")
        backlog = await store.backlog()
        assert backlog.waiting == 1
        new_channel = world.fake.add_channel(world.guild, "safety-2")
        world.fake.mark()
        await setup_server(world, new_channel)
        alert = await world.fake.wait_for_message(channel_id=new_channel, timeout=5)
        assert reference in alert.embeds[0]["title"]
        await adapter.bot.deliver_due()
    posted = [
        m
        for m in world.fake.channel_messages(new_channel)
        if m.embeds and reference in str(m.embeds)
    ]
    assert len(posted) == 1


async def test_mention_injection_is_inert_everywhere(world: World, bot: DiscordAdapter) -> None:
    await setup_server(world)
    evil = f"@everyone @here <@&{world.mod_role.id}> <@{world.mod.id}> <#1> **bold** [x](https://evil.test)"
    reference = await report_by_dm(
        world, offender=evil, details=evil, evidence="https://evil.test/@everyone"
    )
    alert = await world.fake.wait_for_message(channel_id=world.safety)
    ack = await world.fake.click(world.mod, alert, f"sb:m:ack:{reference}")
    await ack.response()
    await world.fake.wait_for_message(channel_id=world.alice)
    assert_inert(world, world.mod_role.id)


async def test_sharded_client_identifies_every_shard(
    world: World, engine: Engine, store: Store, settings: Settings
) -> None:
    adapter = make_adapter(engine, store, settings, shard_count=2)
    async with running(world, adapter):
        shards = sorted(tuple(i.get("shard", ())) for i in world.fake.identifies)
        assert (0, 2) in shards and (1, 2) in shards
        msg = await dm(world, world.alice, "hi")
        assert msg.content


async def test_run_discord_stops_cleanly_on_sigterm(world: World, settings: Settings) -> None:
    import asyncio
    import os
    import signal

    from safebot.app import serve

    def make(settings: Settings, engine: Engine, store: Store) -> DiscordAdapter:
        return DiscordAdapter(
            settings, engine.content, token=world.fake.token, guild_ready_timeout=0.05
        )

    task = asyncio.create_task(serve(settings, make))
    await world.fake.wait_until(lambda: world.fake.identifies or None, timeout=5)
    msg = await dm(world, world.alice, "hi")
    assert "What would help" in msg.content
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, timeout=5)  # returns normally: gateway and store closed
    store = await open_store(settings.database_url)
    assert await store.load_session(discord_person(world.alice)) is not None
    await store.close()


def discord_person(user: Any) -> Any:
    from safebot.model import PersonId

    return PersonId("discord", str(user.id))


# --- authorization: who may do what, and where report details can show up --------------------
@dataclass
class OtherServer:
    guild: Any
    safety: Any
    mod_role: Any
    owner: Any
    mod: Any


async def other_server(world: World, bot: DiscordAdapter) -> OtherServer:
    """A second server with its own moderators and safety channel. Alice is in both; the first
    server's moderator is a plain member here."""
    fake = world.fake
    owner = fake.add_user("other-owner")
    guild = fake.add_guild("Other Server", owner_id=owner, with_bot=False)
    mod_role = fake.add_role(guild, "Other Mods", MODERATE_MEMBERS | BAN_MEMBERS)
    mod = fake.add_user("other-mod")
    fake.add_member(guild, mod, roles=[mod_role])
    fake.add_member(guild, world.alice)
    fake.add_member(guild, world.mod)
    safety = fake.add_channel(guild, "safety-b")
    fake.add_bot_to_guild(guild)  # the bot joins now: GUILD_CREATE with everything above
    await fake.wait_until(lambda: bot.client.get_guild(guild.id), timeout=5)
    other = OtherServer(guild, safety, mod_role, owner, mod)
    await setup_server(world, safety, guild=guild, owner=owner, role=mod_role)
    return other


async def forged_click(world: World, user: Any, channel: Any, message: Any, custom_id: str) -> Any:
    """A click on a button ``message`` does not really have (here: a button carrying another
    server's report). Discord would not send this, but the bot must not rely on that: it has
    to check everything the custom_id claims."""
    fake = world.fake
    ch = fake.channel(channel)
    payload = fake._interaction_payload(3, fake.user(user), fake.guild(ch.guild_id), ch)
    payload["data"] = {"custom_id": custom_id, "component_type": 2}
    shown = copy.deepcopy(fake.message(message).payload)
    button = {"type": 2, "style": 1, "label": "x", "custom_id": custom_id}
    shown["components"] = [{"type": 1, "components": [button]}]
    payload["message"] = shown
    return await fake._dispatch_interaction(payload, message=fake.message(message))


async def test_block_reporter_button(world: World, bot: DiscordAdapter) -> None:
    await setup_server(world)
    reference = await report_by_dm(world, offender="x", details="y", evidence="https://a.b/c")
    alert = await world.fake.wait_for_message(channel_id=world.safety)
    block = f"sb:m:block:{reference}"
    assert block in alert.custom_ids()
    refused = await world.fake.click(world.alice, alert, block)
    assert "Only this server's moderators" in await reply_text(refused)
    [config] = await bot.store.list_communities("discord")
    assert config.blocked == ()
    done = await world.fake.click(world.mod, alert, block)
    answer = await done.response()
    assert answer["type"] == 4 and answer["data"]["flags"] & EPHEMERAL
    text = answer["data"]["content"]
    assert f"The person who sent {reference} can no longer report" in text
    assert str(world.alice.id) not in text and "alice" not in text
    [config] = await bot.store.list_communities("discord")
    alice_tag = await bot.bot.pseudonym(PersonId("discord", str(world.alice.id)))
    assert config.blocked == (alice_tag,)  # a pseudonym, never the id
    # Alice is no longer offered this server.
    first = await dm(world, world.alice, "menu")
    msg = await press(world, world.alice, first, "report")
    msg = await press(world, world.alice, msg, "report.go")
    assert "couldn't find a server" in msg.content
    # The moderator's private answer carries an undo button.
    assert done.original is not None
    undo = await world.fake.click(world.mod, done.original, f"sb:m:unblock:{reference}")
    edited = await undo.response()
    assert edited["type"] == 7
    assert f"{reference} can report to this community again" in edited["data"]["content"]
    [config] = await bot.store.list_communities("discord")
    assert config.blocked == ()


async def test_every_moderator_button_refuses_non_moderators(
    world: World, bot: DiscordAdapter
) -> None:
    await setup_server(world)
    reference = await report_by_dm(world, offender="x", details="y", evidence="https://a.b/c")
    alert = await world.fake.wait_for_message(channel_id=world.safety)
    world.fake.add_member(world.guild, world.stranger)  # a plain member of the server
    for user in (world.alice, world.stranger):
        for action in ("ack", "claim", "resolve", "block"):
            refused = await world.fake.click(user, alert, f"sb:m:{action}:{reference}")
            assert "Only this server's moderators" in await reply_text(refused)
    report = await bot.store.get_report(reference)
    assert report is not None and report.status.value == "new" and report.handled_by is None
    [config] = await bot.store.list_communities("discord")
    assert config.blocked == ()
    assert not any(m.edits for m in world.fake.channel_messages(world.safety))


async def test_moderators_of_one_server_cannot_touch_another_servers_reports(
    world: World, bot: DiscordAdapter
) -> None:
    await setup_server(world)
    other = await other_server(world, bot)
    marker = "OTHER-SERVER-DETAILS-5120"
    reference = await report_by_dm(
        world, offender="x", details=marker, evidence="https://a.b/c", community="Other Server"
    )
    alert_b = await world.fake.wait_for_message(channel_id=other.safety)
    assert reference in alert_b.embeds[0]["title"]
    # Server A's moderator, in server A's safety channel, clicks buttons carrying B's reference.
    await world.fake.slash(world.owner, "safety", guild=world.guild, subcommand="test-alert")
    in_a = await world.fake.wait_for_message(
        channel_id=world.safety, predicate=lambda m: "test alert" in m.content
    )
    for action in ("ack", "claim", "resolve", "block"):
        forged = await forged_click(
            world, world.mod, world.safety, in_a, f"sb:m:{action}:{reference}"
        )
        assert f"I don't know a report {reference} in this community" in await reply_text(forged)
    # In server B, A's moderator is a plain member: refused like anyone else.
    refused = await world.fake.click(world.mod, alert_b, f"sb:m:ack:{reference}")
    assert "Only this server's moderators" in await reply_text(refused)
    report = await bot.store.get_report(reference)
    assert report is not None and report.status.value == "new" and report.handled_by is None
    config_b = await bot.store.get_community(report.community)
    assert config_b is not None and config_b.blocked == ()
    # Nothing about B's report ever reached server A.
    for channel in world.fake.channels.values():
        if channel.guild_id == world.guild.id:
            for message in world.fake.channel_messages(channel):
                assert marker not in json.dumps(message.payload)
    # B's own moderator can act on it.
    ack = await world.fake.click(other.mod, alert_b, f"sb:m:ack:{reference}")
    assert (await ack.response())["type"] == 7


async def test_only_members_can_report_to_a_server(world: World, bot: DiscordAdapter) -> None:
    await setup_server(world)
    # Not offered to someone who is not a member.
    first = await dm(world, world.stranger, "hi")
    msg = await press(world, world.stranger, first, "report")
    msg = await press(world, world.stranger, msg, "report.go")
    assert "couldn't find a server" in msg.content
    assert "Test Server" not in str(msg.components)
    # Refused at submit for someone who left after picking it.
    first = await dm(world, world.alice, "hi")
    msg = await press(world, world.alice, first, "report")
    msg = await press(world, world.alice, msg, "report.go")
    msg = await press(world, world.alice, msg, "Test Server")
    msg = await press(world, world.alice, msg, "cat.threats")
    for _ in range(3):
        msg = await press(world, world.alice, msg, "skip")
    msg = await press(world, world.alice, msg, "identity.anonymous")
    assert "Who will see it" in msg.content
    world.fake.remove_member(world.guild, world.alice)
    cid = custom_id_for(msg, "report.confirm")
    done = await world.fake.click(world.alice, msg, cid)
    refusal = await done.wait_followup(lambda m: "Nothing was sent" in m.content)
    assert "can't send a report to that community" in refusal.content
    assert (
        await bot.store.reports_for_community(
            (await bot.store.list_communities("discord"))[0].community
        )
        == []
    )
    await bot.bot.deliver_due()
    assert not [m for m in world.fake.channel_messages(world.safety) if m.embeds]


def _channel_of_request(world: World, path: str) -> int | None:
    """The channel a REST call wrote to: a channel's messages, or an interaction's answer."""
    fake = world.fake
    found = re.match(r"/channels/(\d+)/", path)
    if found:
        return int(found.group(1))
    found = re.match(r"/interactions/(\d+)/", path)
    if found:
        return fake.interactions[int(found.group(1))].channel_id
    found = re.match(r"/webhooks/\d+/([^/]+)", path)
    if found:
        for inter in fake.interactions.values():
            if inter.token == found.group(1):
                return inter.channel_id
    return None


async def test_report_details_only_reach_the_dm_and_the_moderator_channel(
    world: World, bot: DiscordAdapter
) -> None:
    await setup_server(world)
    await other_server(world, bot)  # another server with its own safety channel
    marker = "ZEBRA-DETAILS-7731"
    reference = await report_by_dm(
        world, offender=f"offender {marker}", details=f"he said {marker}", evidence="https://a.b/c"
    )
    alert = await world.fake.wait_for_message(channel_id=world.safety)
    for action in ("ack", "claim", "block", "resolve"):
        clicked = await world.fake.click(world.mod, alert, f"sb:m:{action}:{reference}")
        await clicked.response()
    await world.fake.wait_for_message(
        channel_id=world.alice, predicate=lambda m: "marked it as resolved" in m.content
    )
    allowed = {world.fake.dm_channel(world.alice).id, world.safety.id}
    seen: set[int] = set()
    for message in world.fake.message_index.values():
        text = json.dumps([message.payload, message.body, message.edits])
        if marker in text:
            seen.add(message.channel_id)
    for inter in world.fake.interactions.values():
        if marker in json.dumps([inter.callbacks, inter.original_edits]):
            seen.add(inter.channel_id)
    for request in world.fake.requests:
        if marker in json.dumps(request.json) or marker in request.path:
            channel = _channel_of_request(world, request.path)
            assert channel is not None, request
            seen.add(channel)
    assert seen == allowed, (seen, allowed)
    assert marker not in json.dumps(world.fake.audit_log)
    assert not any(marker in (r.reason or "") for r in world.fake.requests)


async def test_forget_me_takes_the_name_off_the_posted_alert(
    world: World, bot: DiscordAdapter
) -> None:
    """The alert already in the moderator channel showed who reported. After "forget me" the
    same message is edited: the moderators' channel no longer holds the name anywhere."""
    await setup_server(world)
    reference = await report_by_dm(world, offender="someone", details="x", evidence="https://a.b/c")
    alert = await world.fake.wait_for_message(channel_id=world.safety)
    alice = str(world.alice.id)
    assert alice in str(alert.embeds)
    msg = await dm(world, world.alice, "forget me")
    inter = await world.fake.click(world.alice, msg, custom_id_for(msg, "forget.yes"))
    assert "taken your name off" in await reply_text(inter)
    deadline = asyncio.get_running_loop().time() + 10.0
    while alice in str(world.fake.message(alert).embeds):
        assert asyncio.get_running_loop().time() < deadline, "the alert still names the reporter"
        await asyncio.sleep(0.05)
    edited = world.fake.message(alert)
    assert reference in str(edited.embeds) and "anonymous" in str(edited.embeds)
    assert f"sb:m:ack:{reference}" in edited.custom_ids()  # moderators can still act on it
    for message in world.fake.channel_messages(world.safety):
        assert alice not in message.content + str(message.embeds)
