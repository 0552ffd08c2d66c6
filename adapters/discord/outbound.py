"""The Discord adapter's outbound side, the core's PlatformPort: alerts in the moderator
channel (their buttons, pings and replies), status DMs, and which servers a person shares
with the bot. DiscordAdapter hands the outbox's calls to it."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import discord

from safebot.adapters import AdapterPart
from safebot.adapters.discord.delivery import IN_MODERATOR_CHANNEL, TO_PERSON, delivery_errors
from safebot.adapters.discord.ids import PLATFORM, community_of, moderator_role
from safebot.adapters.discord.items import ModActionButton, ModButton
from safebot.adapters.discord.render import (
    ALERT_FOOTER_PREFIX,
    MAX_CONTENT,
    NO_MENTIONS,
    alert_embed,
    alert_nonce,
    text_of,
)
from safebot.messages import Message
from safebot.model import Community, CommunityConfig, CommunityId, PersonId
from safebot.moderation import Alert
from safebot.ports import DeliveryError

if TYPE_CHECKING:
    from safebot.adapters.discord.adapter import DiscordAdapter  # noqa: F401 (the base class names it)
    from safebot.adapters.discord.client import SafeBotClient

__all__ = ["DiscordOutbound"]

log = logging.getLogger(__name__)

_MEMBER_REF = re.compile(r"<@!?(\d{15,20})>|^\s*(\d{15,20})\s*$")
_HISTORY_SCAN = 50  # recent moderator-channel messages searched for an alert already sent


def where(message: discord.Message) -> str:
    """A posted alert's reference as the outbox keeps it (``Alert.posted``)."""
    return f"{message.channel.id}/{message.id}"


class _Part(AdapterPart["DiscordAdapter"]):
    """A job of the Discord adapter."""

    @property
    def client(self) -> SafeBotClient:
        return self.adapter.client

    def t(self, key: str, locale: str | None = None, **values: str) -> str:
        return self.adapter.t(key, locale, **values)


class DiscordOutbound(_Part):
    """The PlatformPort half of the adapter."""

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
        if len(configs) > self.adapter.options.probe_all_up_to:
            tag = await self.bot.pseudonym(person)
            seen = {c.key for c in await self.store.known_communities(tag, PLATFORM)}
            configs = [
                c
                for c in configs
                if c.community.key in seen
                or self.adapter.members.recall(int(c.community.id), user_id) is True
            ]

        async def member(config: CommunityConfig) -> bool:
            guild_id = int(config.community.id)
            known = self.adapter.members.recall(guild_id, user_id)
            if known is not None:
                return known
            async with self.adapter.probes:
                return await self.member_of(guild_id, user_id)

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
        return await self.member_of(int(community.id), int(person.id))

    async def member_of(self, guild_id: int, user_id: int) -> bool:
        try:
            await self.client.http.get_member(guild_id, user_id)
        except (discord.NotFound, discord.Forbidden):
            self.adapter.members.learn(guild_id, user_id, False)
            return False  # not a member, or the bot is no longer in that server
        except discord.HTTPException:
            log.warning("member check failed for a guild; leaving it out")
            return False
        self.adapter.members.learn(guild_id, user_id, True)
        return True

    async def channel(self, config: CommunityConfig) -> discord.abc.Messageable:
        with delivery_errors(("no access to the moderator channel", IN_MODERATOR_CHANNEL[1])):
            channel = self.client.get_channel(int(config.destination))
            if channel is None:
                channel = await self.client.fetch_channel(int(config.destination))
        if not isinstance(channel, discord.abc.Messageable):
            raise DeliveryError("moderator destination is not a text channel")
        return channel

    @staticmethod
    def ping(config: CommunityConfig, role: str | None = "") -> str:
        """The role mention that starts an alert (``role``: the role to ping, default the
        moderator role; None: nobody)."""
        role = moderator_role(config) if role == "" else role
        return f"<@&{role}> " if role else ""

    @staticmethod
    def mentions(config: CommunityConfig, role: str | None = "") -> discord.AllowedMentions:
        role = moderator_role(config) if role == "" else role
        roles = [discord.Object(int(role))] if role else False
        return discord.AllowedMentions(everyone=False, users=False, roles=roles, replied_user=False)

    async def alert_ping(self, config: CommunityConfig, alert: Alert) -> tuple[str | None, Alert]:
        """The role to ping for ``alert`` and the alert to post. The reported person is never
        pinged: when they hold the moderator role, nobody is, and the alert warns the others."""
        role = moderator_role(config)
        member_id = self.offender_id(alert.offender)
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

    async def alert_view(
        self, community: CommunityId, alert: Alert, locale: str | None = None
    ) -> discord.ui.View | None:
        if alert.resolved:
            return None
        view = discord.ui.View(timeout=None)
        for choice in alert.actions:
            view.add_item(ModButton(choice.id, alert.reference, choice.label))
        member_id = self.offender_id(alert.offender)
        if member_id is not None and not await self.member_of(int(community.id), member_id):
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
    def offender_id(text: str | None) -> int | None:
        match = _MEMBER_REF.search(text or "")
        if match is None:
            return None
        return int(match.group(1) or match.group(2))

    async def send_alert(self, config: CommunityConfig, alert: Alert) -> str:
        channel = await self.channel(config)
        found = await self._find_alert(channel, alert.key)
        if found is not None:
            return where(found)  # already posted before a crash: moderators see it once
        role, alert = await self.alert_ping(config, alert)
        with delivery_errors(IN_MODERATOR_CHANNEL):
            sent = await channel.send(
                self.ping(config, role).strip() or None,
                embed=alert_embed(alert),
                view=await self.alert_view(config.community, alert, config.locale),  # type: ignore[arg-type]
                allowed_mentions=self.mentions(config, role),
                nonce=alert_nonce(alert.key),
            )
        return where(sent)

    async def update_alert(self, config: CommunityConfig, alert: Alert, key: str) -> None:
        channel = await self.channel(config)
        message = await self._alert_message(channel, alert)
        with delivery_errors(IN_MODERATOR_CHANNEL):
            if message is not None:
                _, alert = await self.alert_ping(config, alert)  # keep the warning, if any
                try:
                    await message.edit(
                        embed=alert_embed(alert),
                        view=await self.alert_view(config.community, alert, config.locale),
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
        channel = await self.channel(config)
        role: str | None = None
        text = text_of(message.spans)
        if ping:
            target = config
            if escalate and config.escalate_to and config.escalate_to != config.community.id:
                target = replace(config, mention=config.escalate_to)  # the second role
            role, checked = await self.alert_ping(target, alert)
            text = self.ping(config, role) + text
            if checked.warning:
                text += f"\n{checked.warning}"
        original = await self._alert_message(channel, alert)
        with delivery_errors(IN_MODERATOR_CHANNEL):
            await channel.send(
                text[:MAX_CONTENT],
                allowed_mentions=self.mentions(config, role),
                reference=original.to_reference(fail_if_not_exists=False) if original else None,  # type: ignore[arg-type]
                nonce=alert_nonce(key),
            )

    async def send_private(self, person: PersonId, message: Message, key: str) -> None:
        with delivery_errors(TO_PERSON, gone_for_good=True):
            user = await self.client.fetch_user(int(person.id))
            text = text_of(message.spans)
            await user.send(text, allowed_mentions=NO_MENTIONS, nonce=alert_nonce(key))
