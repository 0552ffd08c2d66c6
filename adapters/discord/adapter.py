"""The Discord adapter: translates Discord events into core events and core output into
Discord messages. Everything a person sees is a DM or an ephemeral reply; alerts go only to the
community's configured moderator channel.

This module holds the adapter and its person side; the jobs around it live beside it:
client.py (the gateway client and the command tree), outbound.py (the core's port: alerts and
status DMs), moderators.py (what moderators do), items.py (buttons and forms), render.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import discord

from safebot.adapters.discord.client import SafeBotClient
from safebot.adapters.discord.ids import PLATFORM, community_of, person_of
from safebot.adapters.discord.items import CHOICE_ID, STEP_ID, TextModal, choices_view
from safebot.adapters.discord.logs import hide_payloads
from safebot.adapters.discord.membership import MembershipMemory
from safebot.adapters.discord.moderators import ModeratorDesk
from safebot.adapters.discord.outbound import DiscordOutbound
from safebot.adapters.discord.platform import discord_settings
from safebot.adapters.discord.render import MAX_CONTENT, NO_MENTIONS, rendered_length, text_of
from safebot.content import Content
from safebot.events import ChoiceSelected, CommandInvoked, Event, TextReceived
from safebot.messages import Message, Span
from safebot.model import Community, CommunityConfig, CommunityId, PersonId
from safebot.moderation import Alert
from safebot.ports import Capabilities
from safebot.service import SafeBot
from safebot.settings import Settings
from safebot.store.base import Store

__all__ = ["PLATFORM", "DiscordAdapter", "SafeBotClient"]

log = logging.getLogger(__name__)


Send = Callable[..., Awaitable[Any]]


class DiscordAdapter:
    """Discord for SafeBot: the person side is here (DMs, buttons, forms, /safety commands
    for people); the outbound port is DiscordOutbound, the moderator side ModeratorDesk and
    the gateway client SafeBotClient, each in its own module."""

    platform = PLATFORM
    capabilities = Capabilities(
        max_length=MAX_CONTENT, measure=rendered_length, step_ids=STEP_ID, choice_ids=CHOICE_ID
    )

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
        self.probes = asyncio.Semaphore(max(1, self.options.membership_checks_at_once))
        self.outbound = DiscordOutbound(self)
        self.desk = ModeratorDesk(self, self.outbound)
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

    def locale_of(self, interaction: discord.Interaction[Any]) -> str:
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
        await self._converse(event, message.channel.send, ephemeral=None)

    async def _converse(
        self, event: Event, send: Send, *, ephemeral: bool | None, locale_hint: str | None = None
    ) -> tuple[Message, ...]:
        """Handle one event and send the replies. They go out before the conversation's new
        state is saved (``before_save``): a reply is never lost behind a saved state, and the
        save is off the person's wait. If handling fails before anything was sent, the person
        gets an apology in their language."""
        sent: list[tuple[Message, ...]] = []

        async def deliver(replies: tuple[Message, ...]) -> None:
            if not sent:  # (sent once, even if another process forced a retry of the step)
                sent.append(await self._hinted(event.person, replies))
                await self._send_all(send, sent[0], ephemeral=ephemeral)

        try:
            replies = await self.bot.handle(event, before_save=deliver)
            if not sent:  # answered without a step (e.g. "slow down")
                await deliver(replies)
        except Exception:
            log.exception("handling a message failed")
            if not sent:
                sent.append((self.bot.sorry(event.person, locale_hint),))
                await self._send_all(send, sent[0], ephemeral=ephemeral)
        return sent[0]

    async def _send_all(
        self, send: Send, replies: Sequence[Message], *, ephemeral: bool | None
    ) -> None:
        """Send replies in order (the core has cut them to fit Discord's longest message)."""
        extra = {} if ephemeral is None else {"ephemeral": ephemeral}
        for reply in replies:
            write = self.t("discord.write", None) if reply.asks else None
            view = choices_view(reply.node, reply.choices, write)
            kwargs: dict[str, Any] = {"allowed_mentions": NO_MENTIONS, **extra}
            if view is not None:
                kwargs["view"] = view
            await send(text_of(reply.spans) or "\u200b", **kwargs)

    async def _answer(
        self, interaction: discord.Interaction[Any], event: Event, *, ephemeral: bool
    ) -> tuple[Message, ...]:
        """Acknowledge at once (well inside Discord's 3 s), then send the replies."""
        if not interaction.response.is_done():
            await interaction.response.defer(ephemeral=ephemeral, thinking=True)
        if interaction.guild_id is not None:
            # Before handling, never beside it: a "forget me" pressed here deletes this row too.
            await self.seen_in_guild(interaction.guild_id, interaction.user.id)
        replies = await self._converse(
            event,
            interaction.followup.send,
            ephemeral=ephemeral,
            locale_hint=str(interaction.locale.value),
        )
        if ephemeral and interaction.guild is not None and any(r.reported for r in replies):
            await self._check_dms(interaction)
        return replies

    async def _hinted(self, person: PersonId, replies: tuple[Message, ...]) -> tuple[Message, ...]:
        """The "no server" screen of a large deployment, which only asks about servers the
        person was seen in: add how to report from inside the server instead."""
        if not any(r.no_community for r in replies) or not await self._large():
            return replies
        session = await self.store.load_session(person)
        locale = session.locale if session is not None else self.content.default_locale
        hint = self.content.spans(locale, "discord.no_server")
        return tuple(
            replace(r, spans=(*r.spans, Span("\n\n"), *hint)) if r.no_community else r
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
        locale = self.locale_of(interaction)
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
                self.t("error.sorry", self.locale_of(interaction)),
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
            return
        field, limit = form
        locale = self.locale_of(interaction)
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

    # --- the moderator side (ItemHandler) ----------------------------------------------------
    async def on_mod_button(
        self, interaction: discord.Interaction[Any], action: str, reference: str
    ) -> None:
        await self.desk.on_mod_button(interaction, action, reference)

    async def on_case_note(
        self, interaction: discord.Interaction[Any], reference: str, text: str
    ) -> None:
        await self.desk.on_case_note(interaction, reference, text)

    async def on_member_action(
        self, interaction: discord.Interaction[Any], action: str, reference: str, user_id: int
    ) -> None:
        await self.desk.on_member_action(interaction, action, reference, user_id)

    # --- PlatformPort (the outbox's calls) ------------------------------------------------
    async def shared_communities(self, person: PersonId) -> Sequence[Community]:
        return await self.outbound.shared_communities(person)

    async def is_member(self, person: PersonId, community: CommunityId) -> bool:
        return await self.outbound.is_member(person, community)

    async def send_alert(self, config: CommunityConfig, alert: Alert) -> str:
        return await self.outbound.send_alert(config, alert)

    async def update_alert(self, config: CommunityConfig, alert: Alert, key: str) -> None:
        await self.outbound.update_alert(config, alert, key)

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
        await self.outbound.reply_to_alert(
            config, alert, message, key, ping=ping, escalate=escalate
        )

    async def send_private(self, person: PersonId, message: Message, key: str) -> None:
        await self.outbound.send_private(person, message, key)
