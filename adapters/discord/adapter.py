"""The Discord adapter: translates Discord events into core events and core output into
Discord messages. Everything a person sees is a DM or an ephemeral reply; alerts go only to the
community's configured moderator channel."""

from __future__ import annotations

import asyncio
import datetime
import io
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import discord
from discord import app_commands

from adapters.discord.delivery import IN_MODERATOR_CHANNEL, TO_PERSON, delivery_errors
from adapters.discord.hierarchy import Refusal, rank_of, refusal
from adapters.discord.items import (
    DYNAMIC_ITEMS,
    CaseNoteModal,
    ModActionButton,
    ModButton,
    TextModal,
    choices_view,
)
from adapters.discord.logs import hide_payloads
from adapters.discord.membership import MembershipMemory
from adapters.discord.platform import discord_settings
from adapters.discord.render import (
    ALERT_FOOTER_PREFIX,
    NO_MENTIONS,
    alert_embed,
    alert_nonce,
    split_text,
    text_of,
)
from adapters.discord.setup_checks import channel_warning, role_problem
from safebot.content import Content
from safebot.events import ChoiceSelected, CommandInvoked, Event, TextReceived
from safebot.messages import Message, Span
from safebot.model import Community, CommunityConfig, CommunityId, PersonId
from safebot.moderation import Alert, build_alert
from safebot.ports import DeliveryError
from safebot.service import SafeBot
from safebot.settings import Settings
from safebot.store.base import Store

__all__ = ["PLATFORM", "DiscordAdapter", "SafeBotClient"]

log = logging.getLogger(__name__)

PLATFORM = "discord"
NO_SERVER = "report.none"  # the flow's "no server to offer" screen
TIMEOUT = datetime.timedelta(days=7)
_MEMBER_REF = re.compile(r"<@!?(\d{15,20})>|^\s*(\d{15,20})\s*$")
_HISTORY_SCAN = 50  # recent moderator-channel messages searched for an alert already sent

Send = Callable[..., Awaitable[Any]]


def _where(message: discord.Message) -> str:
    """A posted alert's reference as the outbox keeps it (``Alert.posted``)."""
    return f"{message.channel.id}/{message.id}"


def person_of(user: discord.abc.User) -> PersonId:
    return PersonId(PLATFORM, str(user.id))


def community_of(guild: discord.Guild) -> Community:
    return Community(CommunityId(PLATFORM, str(guild.id)), guild.name)


def _moderator_role(config: CommunityConfig | None) -> str | None:
    """The configured moderator role, unless it is @everyone (whose id is the server's): a
    setup saved before setup refused it must neither ping everyone nor make everyone a
    moderator."""
    if config is None or not config.mention or config.mention == config.community.id:
        return None
    return config.mention


class SafeBotClient(discord.AutoShardedClient):
    def __init__(self, adapter: DiscordAdapter, **options: Any) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # guild list, channels and roles for setup/status
        intents.dm_messages = True  # people talk to the bot in DMs (content included in DMs)
        super().__init__(intents=intents, allowed_mentions=NO_MENTIONS, **options)
        self.adapter = adapter
        self._shards_down: set[int] = set()
        self.tree: app_commands.CommandTree[SafeBotClient] = app_commands.CommandTree(self)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(*DYNAMIC_ITEMS)
        self.adapter.register_commands(self.tree)
        await self.tree.set_translator(ContentTranslator(self.adapter.content))
        if self.adapter.sync_commands:
            await self.tree.sync()
        self.adapter.start_background()

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.on_dm(message)

    # Connection state for /healthz: ready once every shard is, down while any is.
    async def on_ready(self) -> None:
        self._report_connection()

    async def on_shard_ready(self, shard_id: int) -> None:
        self._shards_down.discard(shard_id)
        self._report_connection()

    async def on_shard_resumed(self, shard_id: int) -> None:
        self._shards_down.discard(shard_id)
        self._report_connection()

    async def on_shard_disconnect(self, shard_id: int) -> None:
        self._shards_down.add(shard_id)
        self._report_connection()

    def _report_connection(self) -> None:
        self.adapter.bot.metrics.set_connected(self.is_ready() and not self._shards_down)

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        if interaction.guild_id is not None:  # whoever interacts in a server is a member
            self.adapter.members.learn(interaction.guild_id, interaction.user.id, True)


class ContentTranslator(app_commands.Translator):
    """Command names/descriptions from content/, localized for Discord clients."""

    def __init__(self, content: Content) -> None:
        self.content = content

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        key = string.extras.get("key")
        code = self.content.locale_for_hint(str(locale.value))
        if key is None or code is None or code == self.content.default_locale:
            return None
        return self.content.text(code, key)


class DiscordAdapter:
    """PlatformPort for Discord, plus every Discord-facing handler."""

    platform = PLATFORM

    def __init__(
        self,
        settings: Settings,
        content: Content,
        *,
        token: str = "",
        sync_commands: bool = True,
        **client_options: Any,
    ) -> None:
        """Build with ``safebot.app.assemble`` (or ``serve``), which attaches the service."""
        hide_payloads()  # discord.py's DEBUG logs would otherwise carry people's messages
        self.settings = settings
        self.options = discord_settings(settings)
        self.content = content
        self.token = token
        self.sync_commands = sync_commands
        self.bot: SafeBot  # set by attach()
        self.store: Store
        self.members = MembershipMemory(self.options.membership_minutes * 60.0)
        self._probes = asyncio.Semaphore(max(1, self.options.membership_checks_at_once))
        self.client = SafeBotClient(self, **client_options)
        self._stop = asyncio.Event()
        self._background: asyncio.Task[None] | None = None

    def attach(self, bot: SafeBot) -> None:
        self.bot = bot
        self.store = bot.store

    def reference_tokens(self) -> None:
        return None  # random: an interaction is never replayed after a crash

    def t(self, key: str, locale: str | None = None, **values: str) -> str:
        return text_of(self.content.spans(locale or self.content.default_locale, key, **values))

    def _locale_of(self, interaction: discord.Interaction[Any]) -> str:
        return self.content.locale_for_hint(str(interaction.locale.value)) or "en"

    # --- lifecycle ------------------------------------------------------------------------
    def start_background(self) -> None:
        if self._background is None:
            self._background = asyncio.create_task(self.bot.run_background(self._stop))

    async def run(self, stop: asyncio.Event) -> None:
        """Log in and serve until ``stop`` is set; a login failure or a fatal gateway error
        is raised."""
        runner = asyncio.create_task(self.client.start(self.token))
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if runner in done:
                runner.result()
        finally:
            stopper.cancel()
            if not runner.done():
                await self.client.close()
            await asyncio.gather(runner, return_exceptions=True)

    async def close(self) -> None:
        self._stop.set()
        self.bot.metrics.set_connected(False)
        if self._background is not None:
            await asyncio.wait({self._background}, timeout=5)
        await self.client.close()

    # --- people -----------------------------------------------------------------------------
    async def on_dm(self, message: discord.Message) -> None:
        if message.guild is not None or message.author.bot:
            return  # the bot reads DMs only
        event = TextReceived(
            person_of(message.author), message.content, attachments=len(message.attachments)
        )
        try:
            replies = await self._hinted(event.person, await self.bot.handle(event))
        except Exception:
            log.exception("handling a DM failed")
            replies = (self.bot.sorry(event.person),)
        await self._send_all(message.channel.send, replies, ephemeral=None)

    async def _send_all(
        self, send: Send, replies: Sequence[Message], *, ephemeral: bool | None
    ) -> None:
        """Send replies in order; the choices go on the last chunk of each message."""
        extra = {} if ephemeral is None else {"ephemeral": ephemeral}
        for reply in replies:
            chunks = split_text(text_of(reply.spans))
            write = self.t("discord.write", None) if reply.asks else None
            view = choices_view(reply.node, reply.choices, write)
            for index, chunk in enumerate(chunks):
                last = index == len(chunks) - 1
                kwargs: dict[str, Any] = {"allowed_mentions": NO_MENTIONS, **extra}
                if last and view is not None:
                    kwargs["view"] = view
                await send(chunk or "\u200b", **kwargs)

    async def _answer(
        self, interaction: discord.Interaction[Any], event: Event, *, ephemeral: bool
    ) -> tuple[Message, ...]:
        """Acknowledge at once (well inside Discord's 3 s), then send the replies."""
        if not interaction.response.is_done():
            await interaction.response.defer(ephemeral=ephemeral, thinking=True)
        if interaction.guild_id is not None:
            # Before handling, never beside it: a "forget me" pressed here deletes this row too.
            await self.seen_in_guild(interaction.guild_id, interaction.user.id)
        try:
            replies = await self._hinted(event.person, await self.bot.handle(event))
        except Exception:
            log.exception("handling an interaction failed")
            replies = (self.bot.sorry(event.person, str(interaction.locale.value)),)
        await self._send_all(interaction.followup.send, replies, ephemeral=ephemeral)
        if (
            ephemeral
            and interaction.guild is not None
            and any(r.node == "report.done" for r in replies)
        ):
            await self._check_dms(interaction)
        return replies

    async def _hinted(self, person: PersonId, replies: tuple[Message, ...]) -> tuple[Message, ...]:
        """The "no server" screen of a large deployment, which only asks about servers the
        person was seen in: add how to report from inside the server instead."""
        if not any(r.node == NO_SERVER for r in replies) or not await self._large():
            return replies
        session = await self.store.load_session(person)
        locale = session.locale if session is not None else self.content.default_locale
        hint = self.content.spans(locale, "discord.no_server")
        return tuple(
            replace(r, spans=(*r.spans, Span("\n\n"), *hint)) if r.node == NO_SERVER else r
            for r in replies
        )

    async def _large(self) -> bool:
        """More servers set up than ``probe_all_up_to``: offering asks only the known ones."""
        configs = await self.store.list_communities(PLATFORM)
        return len(configs) > self.options.probe_all_up_to

    async def seen_in_guild(self, guild_id: int, user_id: int) -> None:
        """The person used SafeBot in this server (a command, the message menu, a button or a
        form there), so is a member: remember it here, and in the store for every process (by
        pseudonym, for ``membership_days``)."""
        self.members.learn(guild_id, user_id, True)
        try:
            tag = await self.bot.pseudonym(PersonId(PLATFORM, str(user_id)))
            community = CommunityId(PLATFORM, str(guild_id))
            await self.store.remember_membership(tag, community, self.bot.clock())
        except Exception:
            log.exception("remembering a membership failed")

    async def _check_dms(self, interaction: discord.Interaction[Any]) -> None:
        """After a report made in a server: make sure status updates can reach the person."""
        locale = self._locale_of(interaction)
        try:
            await interaction.user.send(self.t("discord.dm_hello", locale))
        except discord.Forbidden:
            await interaction.followup.send(
                self.t("discord.dm_closed", locale), ephemeral=True, allowed_mentions=NO_MENTIONS
            )

    @staticmethod
    def _ephemeral(interaction: discord.Interaction[Any]) -> bool:
        message = interaction.message
        in_dm_history = message is not None and not message.flags.ephemeral
        return interaction.guild is not None or not in_dm_history

    async def on_choice(
        self, interaction: discord.Interaction[Any], node: str, choice: str
    ) -> None:
        event = ChoiceSelected(
            person_of(interaction.user), choice, node, locale_hint=str(interaction.locale.value)
        )
        await self._answer(interaction, event, ephemeral=self._ephemeral(interaction))

    async def open_modal(self, interaction: discord.Interaction[Any], node_id: str) -> None:
        form = self.bot.engine.form(node_id)
        if form is None:
            await interaction.response.send_message(
                self.t("error.sorry", self._locale_of(interaction)),
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
            return
        field, limit = form
        locale = self._locale_of(interaction)
        modal = TextModal(
            self,
            node_id,
            title=self.t("discord.modal.title", locale),
            prompt=self.t(f"discord.modal.{field}", locale),
            long=field != "offender",
            max_length=limit,
        )
        await interaction.response.send_modal(modal)

    async def on_modal(self, interaction: discord.Interaction[Any], node: str, value: str) -> None:
        event = TextReceived(
            person_of(interaction.user), value, locale_hint=str(interaction.locale.value), node=node
        )
        await self._answer(interaction, event, ephemeral=self._ephemeral(interaction))

    async def command(
        self,
        interaction: discord.Interaction[Any],
        name: str,
        *,
        evidence: str | None = None,
    ) -> None:
        community = None
        if interaction.guild is not None:
            # Asked from a server: the report goes there, and its region (if its moderators
            # chose one) is used until the person picks a country.
            config = await self.store.get_community(community_of(interaction.guild).id)
            if config is not None:
                community = replace(community_of(interaction.guild), region=config.region)
        event = CommandInvoked(
            person_of(interaction.user),
            name,
            community=community,
            evidence=evidence,
            locale_hint=str(interaction.locale.value),
        )
        await self._answer(interaction, event, ephemeral=True)

    # --- moderators ---------------------------------------------------------------------
    def _is_moderator(
        self, interaction: discord.Interaction[Any], config: CommunityConfig | None
    ) -> bool:
        perms = interaction.permissions
        if perms.administrator or perms.manage_guild or perms.moderate_members:
            return True
        if perms.ban_members or perms.kick_members:
            return True
        user = interaction.user
        roles = {str(r.id) for r in getattr(user, "roles", [])}
        role = _moderator_role(config)
        return role is not None and role in roles

    async def _private(self, interaction: discord.Interaction[Any], text: str) -> None:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(
                text, ephemeral=True, allowed_mentions=NO_MENTIONS
            )

    async def _moderator_here(
        self, interaction: discord.Interaction[Any]
    ) -> tuple[discord.Guild, CommunityConfig, str, str] | None:
        """The server, its SafeBot settings, their language and a name for the audit, when the
        person is one of its moderators; else they are told so privately and this is None."""
        guild = interaction.guild
        config = await self.store.get_community(community_of(guild).id) if guild else None
        locale = config.locale if config else self._locale_of(interaction)
        if guild is None or config is None or not self._is_moderator(interaction, config):
            await self._private(interaction, self.t("discord.not_moderator", locale))
            return None
        return guild, config, locale, f"{interaction.user.display_name} ({interaction.user.id})"

    async def on_mod_button(
        self, interaction: discord.Interaction[Any], action: str, reference: str
    ) -> None:
        here = await self._moderator_here(interaction)
        if here is None:
            return
        guild, config, locale, who = here
        if action == "note":
            title = self.t("discord.case_note.title", locale, reference=reference)
            prompt = self.t("discord.case_note.prompt", locale)
            await interaction.response.send_modal(CaseNoteModal(self, reference, title, prompt))
            return
        if action in ("block", "unblock"):
            await self._block_reporter(interaction, guild, reference, who, action == "block")
            return
        result = await self.bot.moderator_action(community_of(guild).id, reference, action, who)
        if result.ok and result.report is not None and interaction.message is not None:
            alert = build_alert(self.content, result.report, f"alert:{reference}", locale)
            _, alert = await self._alert_ping(config, alert)  # keep the warning, if any
            await interaction.response.edit_message(
                embed=alert_embed(alert),
                view=await self._alert_view(community_of(guild).id, alert, locale),
            )
        await self._private(interaction, text_of(result.message.spans))

    async def on_case_note(
        self, interaction: discord.Interaction[Any], reference: str, text: str
    ) -> None:
        here = await self._moderator_here(interaction)
        if here is None:
            return
        guild, _config, _locale, who = here
        result = await self.bot.add_case_note(community_of(guild).id, reference, who, text)
        await self._private(interaction, text_of(result.message.spans))

    async def export_command(self, interaction: discord.Interaction[Any], reference: str) -> None:
        """The evidence pack of one of this server's reports, as a file only the moderator
        who asked can see."""
        here = await self._moderator_here(interaction)
        if here is None:
            return
        guild, _config, locale, who = here
        pack = await self.bot.evidence(community_of(guild).id, reference, who)
        if pack is None:
            unknown = self.content.spans(locale, "mod.unknown", reference=reference[:20])
            await self._private(interaction, text_of(unknown))
            return
        data = io.BytesIO(pack.as_text().encode("utf-8"))
        await interaction.response.send_message(
            self.t("discord.export_ready", locale, reference=pack.reference),
            file=discord.File(data, filename=f"safebot-{pack.reference}.txt"),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    async def _block_reporter(
        self,
        interaction: discord.Interaction[Any],
        guild: discord.Guild,
        reference: str,
        who: str,
        block: bool,
    ) -> None:
        """Block (or unblock) the sender of a report; the moderator never learns who it is.
        The answer is ephemeral and carries the opposite button, so a slip can be undone."""
        action = "block" if block else "unblock"
        result = await self.bot.moderator_action(community_of(guild).id, reference, action, who)
        view: discord.ui.View | None = None
        if result.ok:
            config = await self.store.get_community(community_of(guild).id)
            locale = config.locale if config else None
            undo = "unblock" if block else "block"
            key = "discord.unblock_reporter" if block else "discord.block_reporter"
            view = discord.ui.View(timeout=None)
            view.add_item(ModButton(undo, reference.strip().upper(), self.t(key, locale)))
        text = text_of(result.message.spans)
        message = interaction.message
        if message is not None and message.flags.ephemeral:  # the undo button on our answer
            await interaction.response.edit_message(content=text, view=view)
            return
        kwargs: dict[str, Any] = {"ephemeral": True, "allowed_mentions": NO_MENTIONS}
        if view is not None:
            kwargs["view"] = view
        await interaction.response.send_message(text, **kwargs)

    async def on_member_action(
        self, interaction: discord.Interaction[Any], action: str, reference: str, user_id: int
    ) -> None:
        """Timeout or ban the member a report named, only if Discord would let the clicking
        moderator do it themselves (permission and role hierarchy, see hierarchy.py)."""
        guild = interaction.guild
        config = await self.store.get_community(community_of(guild).id) if guild else None
        locale = config.locale if config else "en"
        report = await self.store.get_report(reference)
        if (
            guild is None
            or config is None
            or action not in ("timeout", "ban")
            or report is None
            or report.community != community_of(guild).id
            or self._offender_id(report.offender) != user_id
        ):
            await self._private(interaction, self.t("discord.not_allowed_action", locale))
            return
        try:
            refused = await self._refusal(guild.id, action, interaction.user.id, user_id)
        except discord.NotFound:
            await self._private(interaction, self.t("discord.member_gone", locale))
            return
        except discord.HTTPException:
            log.warning("rank check failed for a %s click", action)
            await self._private(interaction, self.t("error.sorry", locale))
            return
        if refused is not None:
            key = (
                "discord.bot_cannot" if refused is Refusal.BOT else f"discord.rank.{refused.value}"
            )
            await self._private(interaction, self.t(key, locale))
            return
        reason = f"SafeBot report {reference}"
        try:
            if action == "timeout":
                member = await guild.fetch_member(user_id)
                await member.timeout(TIMEOUT, reason=reason)
            else:
                await guild.ban(discord.Object(user_id), reason=reason, delete_message_seconds=0)
        except discord.NotFound:
            await self._private(interaction, self.t("discord.member_gone", locale))
            return
        except discord.Forbidden:
            await self._private(interaction, self.t("discord.bot_cannot", locale))
            return
        actor = f"{interaction.user.display_name} ({interaction.user.id})"
        await self.bot.record(actor, action, reference, community_of(guild).id)
        await self._private(
            interaction, self.t(f"discord.done.{action}", locale, reference=reference)
        )

    async def _refusal(
        self, guild_id: int, action: str, moderator_id: int, target_id: int
    ) -> Refusal | None:
        """Ranks fetched from Discord now (never a cache): the server's roles and owner, the
        moderator, the target and the bot. NotFound means the target left."""
        http = self.client.http
        bot_id = self.client.user.id if self.client.user is not None else 0
        guild = await http.get_guild(guild_id, with_counts=False)
        target = await http.get_member(guild_id, target_id)
        try:
            moderator = await http.get_member(guild_id, moderator_id)
        except discord.NotFound:
            return Refusal.MODERATOR  # left the server since clicking
        try:
            me = await http.get_member(guild_id, bot_id)
        except discord.NotFound:
            return Refusal.BOT
        ranks = [rank_of(m, guild) for m in (moderator, target, me)]
        return refusal(action, *ranks)

    async def setup_command(
        self,
        interaction: discord.Interaction[Any],
        channel: discord.TextChannel,
        role: discord.Role,
        region: str | None = None,
        escalate_role: discord.Role | None = None,
    ) -> None:
        locale = self._locale_of(interaction)
        if interaction.guild is None:
            await self._private(interaction, self.t("discord.server_only", locale))
            return
        if not (interaction.permissions.manage_guild or interaction.permissions.administrator):
            await self._private(interaction, self.t("discord.need_manage_server", locale))
            return
        guild = interaction.guild
        for checked in (role, escalate_role):
            if checked is None:
                continue
            holds = guild.me is not None and checked in guild.me.roles
            problem = await role_problem(self.client.http, guild.id, checked, holds)
            if problem is not None:
                await self._private(interaction, self.t(problem, locale, role=checked.name))
                return
        await self.bot.set_up_community(
            community_of(guild).id,
            name=guild.name,
            destination=str(channel.id),
            actor=str(interaction.user.id),
            locale=locale,
            mention=str(role.id),
            region=region,
            escalate_to=str(escalate_role.id) if escalate_role is not None else None,
        )
        text = self.t("discord.setup_done", locale, channel=f"#{channel.name}", role=role.name)
        warning = await channel_warning(self.client, channel.id)
        if warning is not None:
            text += "\n\n" + self.t(warning, locale, channel=f"#{channel.name}")
        await self._private(interaction, text)

    async def status_command(self, interaction: discord.Interaction[Any]) -> None:
        locale = self._locale_of(interaction)
        guild = interaction.guild
        if guild is None:
            await self._private(interaction, self.t("discord.server_only", locale))
            return
        config = await self.store.get_community(community_of(guild).id)
        if not self._is_moderator(interaction, config):
            await self._private(interaction, self.t("discord.not_moderator", locale))
            return
        if config is None:
            await self._private(interaction, self.t("discord.status_unset", locale))
            return
        channel = guild.get_channel(int(config.destination))
        name = f"#{channel.name}" if channel is not None else config.destination
        lines = [self.t("discord.status_channel", locale, channel=name)]
        if not isinstance(channel, discord.TextChannel):
            lines.append(self.t("discord.status_channel_missing", locale))
        else:
            perms = channel.permissions_for(guild.me)
            role = guild.get_role(int(config.mention)) if config.mention else None
            checks = {
                "send": perms.send_messages and perms.view_channel,
                "embed": perms.embed_links,
                "history": perms.read_message_history,
                "mention": role is not None and (role.mentionable or perms.mention_everyone),
            }
            for name, ok in checks.items():
                mark = "\u2705" if ok else "\u274c"
                lines.append(f"{mark} {self.t(f'discord.perm.{name}', locale)}")
        lines.append(text_of((await self.bot.backlog_status(config, locale)).spans))
        await self._private(interaction, "\n".join(lines))

    async def test_alert_command(self, interaction: discord.Interaction[Any]) -> None:
        locale = self._locale_of(interaction)
        guild = interaction.guild
        if guild is None:
            await self._private(interaction, self.t("discord.server_only", locale))
            return
        if not (interaction.permissions.manage_guild or interaction.permissions.administrator):
            await self._private(interaction, self.t("discord.need_manage_server", locale))
            return
        config = await self.store.get_community(community_of(guild).id)
        if config is None:
            await self._private(interaction, self.t("discord.status_unset", locale))
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = self.t("discord.test_alert", config.locale)
        try:
            channel = await self._channel(config)
            await channel.send(
                self._ping(config) + text,
                allowed_mentions=self._mentions(config),
            )
        except DeliveryError as exc:
            await self._private(
                interaction, self.t("discord.test_failed", locale, reason=exc.reason)
            )
            return
        await self._private(interaction, self.t("discord.test_sent", locale))

    # --- commands -----------------------------------------------------------------------
    def register_commands(self, tree: app_commands.CommandTree[Any]) -> None:
        def s(key: str) -> app_commands.locale_str:
            return app_commands.locale_str(self.t(key), key=key)

        group = app_commands.Group(
            name="safety",
            description=s("discord.cmd.group"),
            allowed_contexts=app_commands.AppCommandContext(
                guild=True, dm_channel=True, private_channel=True
            ),
            allowed_installs=app_commands.AppInstallationType(guild=True, user=False),
        )
        adapter = self

        def simple(name: str, key: str, core: str) -> None:
            async def callback(interaction: discord.Interaction[Any]) -> None:
                await adapter.command(interaction, core)

            group.add_command(
                app_commands.Command(name=name, description=s(key), callback=callback)
            )

        simple("help", "discord.cmd.help", "help")
        simple("block", "discord.cmd.block", "block")
        simple("report", "discord.cmd.report", "report")
        simple("resources", "discord.cmd.resources", "resources")
        simple("my-reports", "discord.cmd.my_reports", "my-reports")
        simple("forget-me", "discord.cmd.forget", "forget")

        content = self.content
        regions = [
            app_commands.Choice(name=content.text(content.default_locale, r.label), value=r.id)
            for r in content.regions.values()
        ][:25]

        @group.command(name="setup", description=s("discord.cmd.setup"))
        @app_commands.describe(
            channel=s("discord.cmd.setup_channel"),
            role=s("discord.cmd.setup_role"),
            region=s("discord.cmd.setup_region"),
            escalate_role=s("discord.cmd.setup_escalate_role"),
        )
        @app_commands.choices(region=regions)
        async def setup(
            interaction: discord.Interaction[Any],
            channel: discord.TextChannel,
            role: discord.Role,
            region: str | None = None,
            escalate_role: discord.Role | None = None,
        ) -> None:
            await adapter.setup_command(interaction, channel, role, region, escalate_role)

        @group.command(name="status", description=s("discord.cmd.status"))
        async def status(interaction: discord.Interaction[Any]) -> None:
            await adapter.status_command(interaction)

        @group.command(name="export", description=s("discord.cmd.export"))
        @app_commands.describe(reference=s("discord.cmd.export.reference"))
        async def export(interaction: discord.Interaction[Any], reference: str) -> None:
            await adapter.export_command(interaction, reference)

        @group.command(name="test-alert", description=s("discord.cmd.test_alert"))
        async def test_alert(interaction: discord.Interaction[Any]) -> None:
            await adapter.test_alert_command(interaction)

        async def report_message(
            interaction: discord.Interaction[Any], message: discord.Message
        ) -> None:
            await adapter.command(interaction, "report", evidence=message.jump_url)

        menu = app_commands.ContextMenu(
            name=s("discord.cmd.context_menu"),
            callback=report_message,
            allowed_contexts=app_commands.AppCommandContext(guild=True),
        )
        tree.add_command(group)
        tree.add_command(menu)

    # --- PlatformPort -------------------------------------------------------------------
    async def shared_communities(self, person: PersonId) -> Sequence[Community]:
        """Servers with moderators set up where the person is a member, for offering them.
        Over REST, not this process's cache: with several processes, a DM arrives on shard 0
        while the person's server may live on another process's shard. Answers learned in the
        last few minutes are reused (membership.py); the rest are asked in parallel.

        Up to ``probe_all_up_to`` servers set up, each is asked. Above, only the servers the
        person was seen using SafeBot in (any process, see seen_in_guild) or recently found a
        member of: the cost follows the person's servers, not the deployment's."""
        user_id = int(person.id)
        configs = await self.store.list_communities(PLATFORM)
        if len(configs) > self.options.probe_all_up_to:
            tag = await self.bot.pseudonym(person)
            seen = {c.key for c in await self.store.known_communities(tag, PLATFORM)}
            configs = [
                c
                for c in configs
                if c.community.key in seen
                or self.members.recall(int(c.community.id), user_id) is True
            ]

        async def member(config: CommunityConfig) -> bool:
            guild_id = int(config.community.id)
            known = self.members.recall(guild_id, user_id)
            if known is not None:
                return known
            async with self._probes:
                return await self._is_member(guild_id, user_id)

        answers = await asyncio.gather(*(member(c) for c in configs))
        found: list[Community] = []
        for config, yes in zip(configs, answers, strict=True):
            if yes:
                guild = self.client.get_guild(int(config.community.id))
                named = community_of(guild) if guild else Community(config.community, config.name)
                found.append(replace(named, region=config.region))
        return found

    async def is_member(self, person: PersonId, community: CommunityId) -> bool:
        """The check when a report is submitted: one server, asked of Discord now."""
        return await self._is_member(int(community.id), int(person.id))

    async def _is_member(self, guild_id: int, user_id: int) -> bool:
        try:
            await self.client.http.get_member(guild_id, user_id)
        except (discord.NotFound, discord.Forbidden):
            self.members.learn(guild_id, user_id, False)
            return False  # not a member, or the bot is no longer in that server
        except discord.HTTPException:
            log.warning("member check failed for a guild; leaving it out")
            return False
        self.members.learn(guild_id, user_id, True)
        return True

    async def _channel(self, config: CommunityConfig) -> discord.abc.Messageable:
        with delivery_errors(("no access to the moderator channel", IN_MODERATOR_CHANNEL[1])):
            channel = self.client.get_channel(int(config.destination))
            if channel is None:
                channel = await self.client.fetch_channel(int(config.destination))
        if not isinstance(channel, discord.abc.Messageable):
            raise DeliveryError("moderator destination is not a text channel")
        return channel

    @staticmethod
    def _ping(config: CommunityConfig, role: str | None = "") -> str:
        """The role mention that starts an alert (``role``: the role to ping, default the
        moderator role; None: nobody)."""
        role = _moderator_role(config) if role == "" else role
        return f"<@&{role}> " if role else ""

    @staticmethod
    def _mentions(config: CommunityConfig, role: str | None = "") -> discord.AllowedMentions:
        role = _moderator_role(config) if role == "" else role
        roles = [discord.Object(int(role))] if role else False
        return discord.AllowedMentions(everyone=False, users=False, roles=roles, replied_user=False)

    async def _alert_ping(self, config: CommunityConfig, alert: Alert) -> tuple[str | None, Alert]:
        """The role to ping for ``alert`` and the alert to post. The reported person is never
        pinged: when they hold the moderator role, nobody is, and the alert warns the others."""
        role = _moderator_role(config)
        member_id = self._offender_id(alert.offender)
        if role is None or member_id is None:
            return role, alert
        try:
            member = await self.client.http.get_member(int(config.community.id), member_id)
        except discord.HTTPException:
            return role, alert  # not a member (or unknown): they do not hold the role
        if role not in {str(r) for r in member.get("roles", [])}:
            return role, alert
        warning = " ".join(
            self.t(key, config.locale)
            for key in ("alert.offender_is_moderator", "discord.offender_holds_role")
        )
        return None, replace(alert, warning=warning)

    def _posted(self, alert: Alert) -> discord.PartialMessage | None:
        """The alert's message where send_alert said it is (``channel/message`` ids), reached
        without asking Discord; None for an alert from before SafeBot kept it."""
        channel_id, _, message_id = (alert.posted or "").partition("/")
        if not (channel_id.isdigit() and message_id.isdigit()):
            return None
        channel = self.client.get_partial_messageable(int(channel_id))
        return channel.get_partial_message(int(message_id))

    async def _alert_message(
        self, channel: discord.abc.Messageable, alert: Alert
    ) -> discord.Message | discord.PartialMessage | None:
        return self._posted(alert) or await self._find_alert(channel, alert.key)

    async def _find_alert(
        self, channel: discord.abc.Messageable, key: str
    ) -> discord.Message | None:
        footer = f"{ALERT_FOOTER_PREFIX}{key}"
        me = self.client.user
        try:
            async for message in channel.history(limit=_HISTORY_SCAN):
                if me is not None and message.author.id != me.id:
                    continue
                if any(e.footer.text == footer for e in message.embeds):
                    return message
        except discord.Forbidden:
            return None  # no history permission: fall back on the nonce
        return None

    async def _alert_view(
        self, community: CommunityId, alert: Alert, locale: str | None = None
    ) -> discord.ui.View | None:
        if alert.resolved:
            return None
        view = discord.ui.View(timeout=None)
        for choice in alert.actions:
            view.add_item(ModButton(choice.id, alert.reference, choice.label))
        member_id = self._offender_id(alert.offender)
        if member_id is not None and not await self._is_member(int(community.id), member_id):
            member_id = None  # not a member (any more): no timeout or ban
        if member_id is not None:
            timeout = self.t("discord.timeout", locale)
            view.add_item(ModActionButton("timeout", alert.reference, member_id, timeout))
            ban = self.t("discord.ban", locale)
            view.add_item(ModActionButton("ban", alert.reference, member_id, ban))
        block = self.t("discord.block_reporter", locale)
        view.add_item(ModButton("block", alert.reference, block))
        view.add_item(ModButton("note", alert.reference, self.t("discord.case_note", locale)))
        return view

    @staticmethod
    def _offender_id(text: str | None) -> int | None:
        match = _MEMBER_REF.search(text or "")
        if match is None:
            return None
        return int(match.group(1) or match.group(2))

    async def send_alert(self, config: CommunityConfig, alert: Alert) -> str:
        channel = await self._channel(config)
        found = await self._find_alert(channel, alert.key)
        if found is not None:
            return _where(found)  # already posted before a crash: moderators see it once
        role, alert = await self._alert_ping(config, alert)
        with delivery_errors(IN_MODERATOR_CHANNEL):
            sent = await channel.send(
                self._ping(config, role).strip() or None,
                embed=alert_embed(alert),
                view=await self._alert_view(config.community, alert, config.locale),  # type: ignore[arg-type]
                allowed_mentions=self._mentions(config, role),
                nonce=alert_nonce(alert.key),
            )
        return _where(sent)

    async def update_alert(self, config: CommunityConfig, alert: Alert, key: str) -> None:
        channel = await self._channel(config)
        message = await self._alert_message(channel, alert)
        with delivery_errors(IN_MODERATOR_CHANNEL):
            if message is not None:
                _, alert = await self._alert_ping(config, alert)  # keep the warning, if any
                try:
                    await message.edit(
                        embed=alert_embed(alert),
                        view=await self._alert_view(config.community, alert, config.locale),
                        allowed_mentions=NO_MENTIONS,
                    )
                    return
                except discord.NotFound:
                    pass  # a moderator deleted the alert: the status goes in a line instead
            status = f"{alert.reference}: {alert.status}"
            await channel.send(status, allowed_mentions=NO_MENTIONS, nonce=alert_nonce(key))

    async def reply_to_alert(
        self,
        config: CommunityConfig,
        alert: Alert,
        message: Message,
        key: str,
        *,
        ping: bool,
        escalate: bool = False,
    ) -> None:
        """A reply to the alert; with ``ping``, the moderator role is pinged again (never a
        role the reported member holds: then nobody, as for the alert itself)."""
        channel = await self._channel(config)
        role: str | None = None
        text = text_of(message.spans)
        if ping:
            target = config
            if escalate and config.escalate_to and config.escalate_to != config.community.id:
                target = replace(config, mention=config.escalate_to)  # the second role
            role, checked = await self._alert_ping(target, alert)
            text = self._ping(config, role) + text
            if checked.warning:
                text += f"\n{checked.warning}"
        original = await self._alert_message(channel, alert)
        with delivery_errors(IN_MODERATOR_CHANNEL):
            await channel.send(
                text[:2000],
                allowed_mentions=self._mentions(config, role),
                reference=original.to_reference(fail_if_not_exists=False) if original else None,  # type: ignore[arg-type]
                nonce=alert_nonce(key),
            )

    async def send_private(self, person: PersonId, message: Message, key: str) -> None:
        with delivery_errors(TO_PERSON, gone_for_good=True):
            user = await self.client.fetch_user(int(person.id))
            for index, chunk in enumerate(split_text(text_of(message.spans))):
                nonce = alert_nonce(f"{key}#{index}")
                await user.send(chunk, allowed_mentions=NO_MENTIONS, nonce=nonce)
