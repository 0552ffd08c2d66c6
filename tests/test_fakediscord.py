"""The fake Discord server, exercised with REAL discord.py clients over 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import discord
import pytest
from discord import app_commands
from discord.ext import commands
from fakediscord import (
    BAN_MEMBERS,
    EPHEMERAL,
    LOADING,
    MODERATE_MEMBERS,
    ClientCrashed,
    ClientLoggedError,
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeRole,
    FakeUser,
    client_kwargs,
    default_intents,
    run_client,
)

TEST_TIMEOUT = 5.0


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as f:
        yield f
        f.assert_no_unknown_requests()


@dataclass
class World:
    guild: FakeGuild
    general: FakeChannel
    modlog: FakeChannel
    alice: FakeUser
    bob: FakeUser
    mod: FakeUser
    mod_role: FakeRole


@pytest.fixture
def world(fake: FakeDiscord) -> World:
    guild = fake.add_guild("Safety HQ", channels=("general", "mod-log"))
    mod_role = fake.add_role(guild, "Moderator", BAN_MEMBERS | MODERATE_MEMBERS)
    alice, bob, mod = fake.add_user("alice"), fake.add_user("bob"), fake.add_user("mod")
    fake.add_member(guild, alice)
    fake.add_member(guild, bob)
    fake.add_member(guild, mod, roles=[mod_role])
    fake.set_overwrites(
        guild.channel("mod-log"),
        {
            guild.everyone: (0, discord.Permissions(view_channel=True)),
            mod_role: (discord.Permissions(view_channel=True), 0),
        },
    )
    return World(
        guild, guild.channel("general"), guild.channel("mod-log"), alice, bob, mod, mod_role
    )


class TreeBot(discord.Client):
    """A plain Client with a CommandTree that syncs globally in setup_hook."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**client_kwargs(**kwargs))
        self.tree = app_commands.CommandTree(self)
        self.synced: list[app_commands.AppCommand] = []

    async def setup_hook(self) -> None:
        self.synced = await self.tree.sync()


# --------------------------------------------------------------------------- (1) connect
async def test_bot_connects_and_sees_guild_and_members(fake: FakeDiscord, world: World) -> None:
    bot = commands.Bot(command_prefix="!", **client_kwargs())
    ready = asyncio.Event()

    @bot.event
    async def on_ready() -> None:
        ready.set()

    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, bot):
        await asyncio.wait_for(ready.wait(), 1)
        assert bot.user is not None and bot.user.id == fake.bot.id
        guild = bot.get_guild(world.guild.id)
        assert guild is not None and guild.name == "Safety HQ"
        assert guild.member_count == 5  # owner, bot, alice, bob, mod
        assert guild.me is not None and guild.me.guild_permissions.ban_members
        assert {c.name for c in guild.text_channels} == {"general", "mod-log"}
        modlog = guild.get_channel(world.modlog.id)
        assert isinstance(modlog, discord.TextChannel)
        assert not modlog.permissions_for(guild.me).view_channel
        member = await guild.fetch_member(world.mod.id)
        assert [r.name for r in member.roles if not r.is_default()] == ["Moderator"]
        assert member.guild_permissions.ban_members
        stranger = fake.add_user("stranger")
        with pytest.raises(discord.NotFound) as err:
            await guild.fetch_member(stranger.id)
        assert err.value.code == 10007
        assert (await bot.fetch_user(world.alice.id)).name == "alice"
        roles = await guild.fetch_roles()
        assert "Moderator" in {r.name for r in roles}
    assert fake.identifies[0]["intents"] == default_intents().value
    assert "shard" not in fake.identifies[0]


async def test_members_intent_caches_all_members(fake: FakeDiscord, world: World) -> None:
    client = discord.Client(**client_kwargs(intents=default_intents(members=True)))
    joined: asyncio.Queue[discord.Member] = asyncio.Queue()
    left: asyncio.Queue[discord.RawMemberRemoveEvent] = asyncio.Queue()

    @client.event
    async def on_member_join(member: discord.Member) -> None:
        joined.put_nowait(member)

    @client.event
    async def on_raw_member_remove(payload: discord.RawMemberRemoveEvent) -> None:
        left.put_nowait(payload)

    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, client):
        guild = client.get_guild(world.guild.id)
        assert guild is not None and guild.chunked
        assert {m.name for m in guild.members} >= {"alice", "bob", "mod"}
        carol = fake.add_user("carol")
        fake.add_member(world.guild, carol)  # GUILD_MEMBER_ADD
        assert (await asyncio.wait_for(joined.get(), 1)).name == "carol"
        # arbitrary gateway events can be pushed too
        await fake.dispatch(
            "GUILD_MEMBER_REMOVE", {"guild_id": str(world.guild.id), "user": carol.payload()}
        )
        assert (await asyncio.wait_for(left.get(), 1)).user.id == carol.id
        assert guild.get_member(carol.id) is None


# --------------------------------------------------------------------------- (2) DM echo
async def test_dm_echo(fake: FakeDiscord, world: World) -> None:
    client = discord.Client(**client_kwargs())
    seen: list[discord.Message] = []

    @client.event
    async def on_message(message: discord.Message) -> None:
        if message.author == client.user:
            return
        seen.append(message)
        await message.channel.send(
            f"echo: {message.content}", allowed_mentions=discord.AllowedMentions.none()
        )

    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, client):
        sent = await fake.send_dm(world.alice, "hello bot", attachments=[("note.txt", b"hi")])
        reply = await fake.wait_for_message(channel_id=world.alice)
        assert reply.content == "echo: hello bot"
        assert reply.channel_id == fake.dm_channel(world.alice).id
        assert reply.allowed_mentions == {"parse": []}
        assert fake.channel_messages(fake.dm_channel(world.alice))[-1] is reply
        msg = seen[0]
        assert msg.guild is None and isinstance(msg.channel, discord.DMChannel)
        assert msg.id == sent.id and msg.attachments[0].filename == "note.txt"
        assert await msg.attachments[0].read() == b"hi"  # served by the fake's CDN
        assert fake.cdn_requests
        post = fake.requests[-1] if fake.requests[-1].method == "POST" else fake.requests[-2]
        assert post.json["content"] == "echo: hello bot"


# --------------------------------------------------------------------------- (3) slash
async def test_slash_command_in_guild_and_dm_ephemeral(fake: FakeDiscord, world: World) -> None:
    bot = TreeBot()
    calls: list[tuple[bool, str, str]] = []

    @bot.tree.command(name="report", description="Report a user privately")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.describe(target="who", reason="what happened")
    async def report(interaction: discord.Interaction, target: discord.User, reason: str) -> None:
        calls.append((interaction.guild_id is not None, target.name, reason))
        await interaction.response.send_message(f"Got it: {target.name} / {reason}", ephemeral=True)

    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, bot):
        assert [c["name"] for c in fake.global_commands] == ["report"]
        assert [c.name for c in bot.synced] == ["report"]
        inter = await fake.slash(
            world.alice, "report", {"target": world.bob, "reason": "spam"}, guild=world.guild
        )
        resp = await inter.response()
        assert resp["type"] == 4
        assert resp["data"]["flags"] & EPHEMERAL
        assert resp["data"]["content"] == "Got it: bob / spam"
        assert inter.original is not None and inter.original.ephemeral
        assert inter.original not in fake.channel_messages(
            world.general
        )  # ephemeral: not in history

        dm_inter = await fake.slash(world.alice, "report", {"target": world.bob, "reason": "dm"})
        dm_resp = await dm_inter.response()
        assert dm_resp["type"] == 4 and dm_resp["data"]["flags"] == EPHEMERAL
        assert calls == [(True, "bob", "spam"), (False, "bob", "dm")]


async def test_defer_followup_and_edit_original(fake: FakeDiscord, world: World) -> None:
    bot = TreeBot()

    @bot.tree.command(name="status", description="Slow status")
    async def status(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.edit_original_response(content="working...")
        await interaction.followup.send("done", ephemeral=True)

    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, bot):
        inter = await fake.slash(world.alice, "status", guild=world.guild)
        assert (await inter.response())["type"] == 5
        follow = await inter.wait_followup()
        assert follow.content == "done" and follow.ephemeral
        original = await inter.wait_original(lambda m: not m.flags & LOADING)
        assert original.content == "working..." and original.ephemeral
        assert inter.original_edits[0]["content"] == "working..."


# --------------------------------------------------------------------------- (4) views
class AckView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=30)

    @discord.ui.button(label="Acknowledge", custom_id="ack", style=discord.ButtonStyle.success)
    async def ack(
        self, interaction: discord.Interaction, button: discord.ui.Button[AckView]
    ) -> None:
        await interaction.response.edit_message(content="acknowledged", view=None)


class ReportButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"report:(?P<rid>[0-9]+)"
):
    def __init__(self, rid: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Handle", custom_id=f"report:{rid}", style=discord.ButtonStyle.danger
            )
        )
        self.rid = rid

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ReportButton:
        return cls(int(match["rid"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"report {self.rid} handled", ephemeral=True)


async def test_button_click_edits_message(fake: FakeDiscord, world: World) -> None:
    client = discord.Client(**client_kwargs())

    @client.event
    async def on_message(message: discord.Message) -> None:
        if message.author != client.user:
            await message.reply("Please confirm", view=AckView())

    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, client):
        user_msg = await fake.send_dm(world.alice, "menu")
        prompt = await fake.wait_for_message(channel_id=world.alice)
        assert prompt.custom_ids() == ["ack"]
        assert prompt["message_reference"]["message_id"] == str(user_msg.id)
        inter = await fake.click(world.alice, prompt, "ack")
        resp = await inter.response()
        assert resp["type"] == 7
        updated = fake.message(prompt)
        assert updated.content == "acknowledged" and updated.components == []
        with pytest.raises(LookupError):
            await fake.click(world.alice, prompt, "ack")  # the button is gone now


async def test_dynamic_item_survives_restart(fake: FakeDiscord, world: World) -> None:
    first = discord.Client(**client_kwargs())
    first.add_dynamic_items(ReportButton)
    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, first):
        channel = first.get_channel(world.general.id)
        assert isinstance(channel, discord.TextChannel)
        view = discord.ui.View(timeout=None)
        view.add_item(ReportButton(42))
        await channel.send("New report", view=view)
        prompt = await fake.wait_for_message(channel_id=world.general)

    second = discord.Client(**client_kwargs())  # a brand new process, as far as the bot knows
    second.add_dynamic_items(ReportButton)
    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, second):
        inter = await fake.click(world.mod, prompt, "report:42")
        resp = await inter.response()
        assert resp == {"type": 4, "data": resp["data"]}
        assert resp["data"]["content"] == "report 42 handled"
    assert len(fake.identifies) == 2


# --------------------------------------------------------------------------- (5) modal
class DetailsModal(discord.ui.Modal, title="Tell us more"):
    details: discord.ui.TextInput[DetailsModal] = discord.ui.TextInput(
        label="What happened?", custom_id="details", style=discord.TextStyle.paragraph
    )
    submitted: list[str]

    def __init__(self, sink: list[str]) -> None:
        super().__init__()
        self.sink = sink

    async def on_submit(self, interaction: discord.Interaction) -> None:
        self.sink.append(self.details.value)
        await interaction.response.send_message("Thanks, noted.", ephemeral=True)


async def test_button_opens_modal_and_submit_reaches_on_submit(
    fake: FakeDiscord, world: World
) -> None:
    client = discord.Client(**client_kwargs())
    submitted: list[str] = []

    class OpenView(discord.ui.View):
        @discord.ui.button(label="Tell us", custom_id="open-modal")
        async def open(
            self, interaction: discord.Interaction, button: discord.ui.Button[OpenView]
        ) -> None:
            await interaction.response.send_modal(DetailsModal(submitted))

    @client.event
    async def on_message(message: discord.Message) -> None:
        if message.author != client.user:
            await message.channel.send("Need to talk?", view=OpenView())

    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, client):
        await fake.send_dm(world.alice, "help")
        prompt = await fake.wait_for_message(channel_id=world.alice)
        click = await fake.click(world.alice, prompt, "open-modal")
        resp = await click.response()
        assert resp["type"] == 9 and resp["data"]["title"] == "Tell us more"
        submit = await fake.submit_modal(world.alice, click, {"details": "someone threatened me"})
        done = await submit.response()
        assert done["type"] == 4 and done["data"]["content"] == "Thanks, noted."
        assert submitted == ["someone threatened me"]


# --------------------------------------------------------------------------- (6) context menu
async def test_message_context_menu(fake: FakeDiscord, world: World) -> None:
    bot = TreeBot()
    targets: list[tuple[int, str]] = []

    @bot.tree.context_menu(name="Report message")
    async def report_message(interaction: discord.Interaction, message: discord.Message) -> None:
        targets.append((message.id, message.content))
        await interaction.response.send_message("Reported to the moderators.", ephemeral=True)

    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, bot):
        assert fake.global_commands[0]["type"] == 3
        bad = await fake.send_guild_message(world.general, world.bob, "send me pics or else")
        inter = await fake.context_menu(world.alice, bad, "Report message", guild=world.guild)
        resp = await inter.response()
        assert resp["data"]["content"] == "Reported to the moderators."
        assert targets == [(bad.id, "send me pics or else")]


# --------------------------------------------------------------------------- (7) sharding
class FastShardedClient(discord.AutoShardedClient):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py sleeps 5 s before each non-first IDENTIFY (Discord's identify rate limit);
        the fake has no such limit."""


async def test_autosharded_client_identifies_each_shard(fake: FakeDiscord, world: World) -> None:
    other = fake.add_guild("Second")
    client = FastShardedClient(shard_count=2, **client_kwargs())
    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, client):
        assert sorted(tuple(i["shard"]) for i in fake.identifies) == [(0, 2), (1, 2)]
        assert set(client.shards) == {0, 1}
        assert {g.id for g in client.guilds} == {world.guild.id, other.id}
        for g in client.guilds:
            assert g.shard_id == (g.id >> 22) % 2


async def test_autosharded_client_asks_gateway_bot(fake: FakeDiscord, world: World) -> None:
    fake.gateway_shards = 2
    client = FastShardedClient(**client_kwargs())
    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, client):
        assert client.shard_count == 2
    assert any(r.path == "/gateway/bot" for r in fake.requests)


# --------------------------------------------------------------------------- (8) DM closed
async def test_dm_closed_raises_forbidden_in_bot(fake: FakeDiscord, world: World) -> None:
    bot = TreeBot()
    errors: list[discord.Forbidden] = []

    @bot.tree.command(name="optin", description="Get help by DM")
    async def optin(interaction: discord.Interaction) -> None:
        try:
            await interaction.user.send("Hi, here is how I can help.")
        except discord.Forbidden as exc:
            errors.append(exc)
            await interaction.response.send_message(
                "I can't DM you; please open your DMs.", ephemeral=True
            )
        else:
            await interaction.response.send_message("Check your DMs.", ephemeral=True)

    fake.set_dm_closed(world.alice)
    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, bot):
        inter = await fake.slash(world.alice, "optin", guild=world.guild)
        resp = await inter.response()
        assert "can't DM" in resp["data"]["content"]
        assert errors[0].code == 50007 and errors[0].status == 403
        assert errors[0].text == "Cannot send messages to this user"

        fake.set_dm_closed(world.alice, False)
        inter = await fake.slash(world.alice, "optin", guild=world.guild)
        assert (await inter.response())["data"]["content"] == "Check your DMs."
        dm = await fake.wait_for_message(channel_id=world.alice)
        assert dm.content.startswith("Hi, here is how")


# --------------------------------------------------------------------------- (9) failures
def _echo_client() -> discord.Client:
    client = discord.Client(**client_kwargs())

    @client.event
    async def on_message(message: discord.Message) -> None:
        if message.author != client.user:
            await message.channel.send("ack")

    return client


@pytest.mark.parametrize("status", [500, 429])
async def test_fail_next_then_success_is_retried(
    fake: FakeDiscord, world: World, status: int
) -> None:
    fake.fail_next("POST", r"^/channels/\d+/messages$", status)
    client = _echo_client()
    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, client):
        await fake.send_dm(world.alice, "hi")
        reply = await fake.wait_for_message(channel_id=world.alice, timeout=3)
        assert reply.content == "ack"
    posts = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/messages")]
    assert [(r.status, r.injected) for r in posts] == [(status, True), (200, False)]


async def test_injected_403_surfaces_as_forbidden(fake: FakeDiscord, world: World) -> None:
    fake.fail_next("PUT", r"/bans/", 403)
    client = discord.Client(**client_kwargs())
    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, client):
        guild = client.get_guild(world.guild.id)
        assert guild is not None
        with pytest.raises(discord.Forbidden) as err:
            await guild.ban(discord.Object(world.bob.id), reason="x")
        assert err.value.code == 50013
        assert world.bob.id not in world.guild.bans


# --------------------------------------------------------------------------- (10) moderation
async def test_ban_timeout_unban_record_decoded_reason(fake: FakeDiscord, world: World) -> None:
    client = discord.Client(**client_kwargs())
    reason = "sextortion attempt / reported by alice & mod — ünïcode"
    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, client):
        guild = client.get_guild(world.guild.id)
        assert guild is not None
        await guild.ban(discord.Object(world.bob.id), reason=reason, delete_message_seconds=3600)
        ban = fake.audit_log[-1]
        assert ban == {
            "action": "ban",
            "guild_id": world.guild.id,
            "user_id": world.bob.id,
            "reason": reason,
            "delete_message_seconds": 3600,
        }
        assert fake.requests[-1].reason == reason
        assert world.bob.id in world.guild.bans and world.bob.id not in world.guild.members

        alice = await guild.fetch_member(world.alice.id)
        await alice.timeout(dt.timedelta(minutes=10), reason="cool down")
        assert (
            fake.audit_log[-1]["action"] == "timeout"
            and fake.audit_log[-1]["reason"] == "cool down"
        )
        assert world.guild.members[world.alice.id].communication_disabled_until is not None

        await guild.unban(discord.Object(world.bob.id), reason="appeal accepted")
        assert fake.audit_log[-1]["action"] == "unban"
        with pytest.raises(discord.Forbidden):  # the owner out-ranks the bot
            await guild.ban(discord.Object(world.guild.owner_id))


# --------------------------------------------------------------------------- robustness
async def test_resume_replays_events_missed_while_disconnected(
    fake: FakeDiscord, world: World
) -> None:
    client = _echo_client()
    resumed = asyncio.Event()

    @client.event
    async def on_resumed() -> None:
        resumed.set()

    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, client):
        await fake.disconnect_all(code=4000)
        await fake.send_dm(world.alice, "while you were away")  # buffered in the session
        await asyncio.wait_for(resumed.wait(), 2)
        reply = await fake.wait_for_message(channel_id=world.alice)
        assert reply.content == "ack"
        assert len(fake.resumes) == 1 and len(fake.identifies) == 1


async def test_malformed_payload_fails_fast(fake: FakeDiscord, world: World) -> None:
    client = _echo_client()
    with pytest.raises(KeyError):
        async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, client):
            fake.dispatch("MESSAGE_CREATE", {"id": "1"})  # no channel_id: kills the gateway loop
            with pytest.raises(ClientCrashed):
                await fake.wait_for_message(timeout=2)


async def test_handler_exception_is_reported(fake: FakeDiscord, world: World) -> None:
    client = discord.Client(**client_kwargs())

    @client.event
    async def on_message(message: discord.Message) -> None:
        raise RuntimeError("boom")

    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, client, fail_on_error=False):
        await fake.send_dm(world.alice, "hi")
        fake.fail_on_client_error = True
        with pytest.raises(ClientLoggedError, match="on_message"):
            await fake.wait_for_message(timeout=1)
        fake.client_errors.clear()


async def test_unknown_routes_are_recorded(fake: FakeDiscord, world: World) -> None:
    client = discord.Client(**client_kwargs())
    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, client):
        guild = client.get_guild(world.guild.id)
        assert guild is not None
        with pytest.raises(discord.NotFound):
            await guild.fetch_emojis()
    assert [r.path for r in fake.unknown_requests] == [f"/guilds/{world.guild.id}/emojis"]
    fake.unknown_requests.clear()


async def test_message_content_intent_and_history(fake: FakeDiscord, world: World) -> None:
    client = discord.Client(**client_kwargs())
    contents: list[str] = []
    got_three = asyncio.Event()

    @client.event
    async def on_message(message: discord.Message) -> None:
        if message.author != client.user:
            contents.append(message.content)
            if len(contents) == 3:
                got_three.set()

    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, client):
        await fake.send_guild_message(world.general, world.alice, "no intent, no content")
        await fake.send_guild_message(world.general, world.alice, f"<@{fake.bot.id}> mentioned")
        await fake.send_dm(world.alice, "DMs always have content")
        await asyncio.wait_for(got_three.wait(), 1)
        assert contents == ["", f"<@{fake.bot.id}> mentioned", "DMs always have content"]
        channel = client.get_channel(world.general.id)
        assert isinstance(channel, discord.TextChannel)
        await channel.send("bot says hi")
        history = [m.content async for m in channel.history(limit=10)]
        assert history == ["bot says hi", f"<@{fake.bot.id}> mentioned", "no intent, no content"]


async def test_rest_surface_edit_delete_fetch_and_channel_delete(
    fake: FakeDiscord, world: World
) -> None:
    client = discord.Client(**client_kwargs())
    deleted = asyncio.Event()

    @client.event
    async def on_guild_channel_delete(channel: discord.abc.GuildChannel) -> None:
        deleted.set()

    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, client):
        channel = await client.fetch_channel(world.general.id)
        assert isinstance(channel, discord.TextChannel) and channel.name == "general"
        assert (await client.fetch_guild(world.guild.id)).name == "Safety HQ"
        guild = client.get_guild(world.guild.id)
        assert guild is not None
        assert {c.name for c in await guild.fetch_channels()} == {"general", "mod-log"}

        msg = await channel.send("draft", embed=discord.Embed(title="Case #1"))
        stored = fake.message(msg.id)
        assert stored.embeds[0]["title"] == "Case #1"
        await msg.edit(content="final")
        assert stored.content == "final" and stored.edits[0]["content"] == "final"
        assert (await channel.fetch_message(msg.id)).content == "final"
        await msg.delete()
        assert stored.deleted
        with pytest.raises(discord.NotFound) as err:
            await channel.fetch_message(msg.id)
        assert err.value.code == 10008

        with pytest.raises(discord.HTTPException) as too_long:
            await channel.send("x" * 2001)
        assert too_long.value.code == 50035

        fake.delete_channel(world.general)
        await asyncio.wait_for(deleted.wait(), 1)
        assert client.get_channel(world.general.id) is None
        with pytest.raises(discord.NotFound) as gone:
            await channel.send("anyone?")
        assert gone.value.code == 10003


async def test_guild_commands_user_menu_and_select(fake: FakeDiscord, world: World) -> None:
    guild_obj = discord.Object(world.guild.id)
    bot = TreeBot()
    picked: list[str] = []

    class KindSelect(discord.ui.View):
        @discord.ui.select(
            custom_id="kind",
            options=[discord.SelectOption(label=k, value=k) for k in ("threat", "scam", "other")],
        )
        async def kind(
            self, interaction: discord.Interaction, select: discord.ui.Select[Any]
        ) -> None:
            picked.extend(select.values)
            await interaction.response.defer()

    @bot.tree.command(name="modpanel", description="Moderator panel", guild=guild_obj)
    async def modpanel(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("Pick a kind", view=KindSelect(), ephemeral=True)

    @bot.tree.context_menu(name="Check user", guild=guild_obj)
    async def check_user(interaction: discord.Interaction, member: discord.Member) -> None:
        await interaction.response.send_message(
            f"{member.name}: {len(member.roles)} roles", ephemeral=True
        )

    async def setup_hook() -> None:
        await bot.tree.sync(guild=guild_obj)

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, bot):
        assert fake.global_commands == []
        assert {c["name"] for c in fake.guild_commands(world.guild)} == {"modpanel", "Check user"}
        fetched = await bot.tree.fetch_commands(guild=guild_obj)
        one = await bot.tree.fetch_command(fetched[0].id, guild=guild_obj)
        assert one.name == fetched[0].name and one.guild_id == world.guild.id
        with pytest.raises(LookupError):
            await fake.slash(world.mod, "modpanel")  # guild command: not available in DMs

        inter = await fake.slash(world.mod, "modpanel", guild=world.guild)
        assert inter.payload["data"]["guild_id"] == str(world.guild.id)
        await inter.response()
        assert inter.original is not None
        click = await fake.click(world.mod, inter.original, "kind", values=["scam"])
        assert (await click.response())["type"] == 6
        assert picked == ["scam"]

        menu = await fake.user_context_menu(world.mod, world.bob, "Check user", guild=world.guild)
        assert (await menu.response())["data"]["content"] == "bob: 1 roles"


async def test_late_interaction_response_is_unknown(fake: FakeDiscord, world: World) -> None:
    fake.interaction_timeout = 0.05
    bot = TreeBot()
    failures: list[discord.NotFound] = []

    @bot.tree.command(name="slow", description="Too slow")
    async def slow(interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.1)
        try:
            await interaction.response.send_message("late")
        except discord.NotFound as exc:
            failures.append(exc)

    async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, bot):
        inter = await fake.slash(world.alice, "slow", guild=world.guild)
        await fake.wait_for_request("POST", r"/callback$")
        assert inter.callback is None and inter.rejected_callbacks
        assert failures and failures[0].code == 10062


async def test_privileged_intents_not_enabled_in_portal(fake: FakeDiscord, world: World) -> None:
    fake.allowed_privileged_intents = 0
    client = discord.Client(**client_kwargs(intents=default_intents(members=True)))
    with pytest.raises(ClientCrashed) as err:
        async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, client):
            pass
    assert isinstance(err.value.__cause__, discord.PrivilegedIntentsRequired)


async def test_ratelimit_headers_mode() -> None:
    async with FakeDiscord(ratelimit_headers=True) as fake:
        alice = fake.add_user("alice")
        fake.add_member(fake.add_guild("G"), alice)
        fake.fail_next("POST", r"/messages$", 429, retry_after=0.02)
        client = _echo_client()
        async with asyncio.timeout(TEST_TIMEOUT), run_client(fake, client):
            for text in ("one", "two", "three"):
                await fake.send_dm(alice, text)
                assert (await fake.wait_for_message(channel_id=alice)).content == "ack"
        assert fake.requests[-1].status == 200
        assert sum(r.injected for r in fake.requests) == 1
