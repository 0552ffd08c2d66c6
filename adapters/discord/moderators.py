"""The Discord adapter's moderator side: setup, status and test alert, the buttons and forms
on alerts (acknowledge, claim, resolve, block the reporter, timeout and ban, case notes) and
the evidence pack. Every action is checked against Discord's permissions first."""

from __future__ import annotations

import datetime
import io
import logging
from typing import TYPE_CHECKING, Any

import discord

from safebot.adapters.discord.hierarchy import Refusal, rank_of, refusal
from safebot.adapters.discord.ids import community_of, moderator_role
from safebot.adapters.discord.items import CaseNoteModal, ModButton
from safebot.adapters.discord.outbound import DiscordOutbound, _Part
from safebot.adapters.discord.render import NO_MENTIONS, alert_embed, text_of
from safebot.adapters.discord.setup_checks import channel_warning, role_problem
from safebot.model import CommunityConfig
from safebot.moderation import build_alert
from safebot.ports import DeliveryError

if TYPE_CHECKING:
    from safebot.adapters.discord.adapter import DiscordAdapter

__all__ = ["ModeratorDesk"]

log = logging.getLogger(__name__)

TIMEOUT = datetime.timedelta(days=7)


class ModeratorDesk(_Part):
    """What moderators do on Discord, on behalf of the adapter."""

    def __init__(self, adapter: DiscordAdapter, outbound: DiscordOutbound) -> None:
        super().__init__(adapter)
        self.outbound = outbound

    def is_moderator(
        self, interaction: discord.Interaction[Any], config: CommunityConfig | None
    ) -> bool:
        perms = interaction.permissions
        if perms.administrator or perms.manage_guild or perms.moderate_members:
            return True
        if perms.ban_members or perms.kick_members:
            return True
        user = interaction.user
        roles = {str(r.id) for r in getattr(user, "roles", [])}
        role = moderator_role(config)
        return role is not None and role in roles

    async def private(self, interaction: discord.Interaction[Any], text: str) -> None:
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
        locale = config.locale if config else self.adapter.locale_of(interaction)
        if guild is None or config is None or not self.is_moderator(interaction, config):
            await self.private(interaction, self.t("discord.not_moderator", locale))
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
            await interaction.response.send_modal(
                CaseNoteModal(self.adapter, reference, title, prompt)
            )
            return
        if action in ("block", "unblock"):
            await self._block_reporter(interaction, guild, reference, who, action == "block")
            return
        result = await self.bot.moderator_action(community_of(guild).id, reference, action, who)
        if result.ok and result.report is not None and interaction.message is not None:
            alert = build_alert(self.content, result.report, f"alert:{reference}", locale)
            _, alert = await self.outbound.alert_ping(config, alert)  # keep the warning, if any
            await interaction.response.edit_message(
                embed=alert_embed(alert),
                view=await self.outbound.alert_view(community_of(guild).id, alert, locale),
            )
        await self.private(interaction, text_of(result.message.spans))

    async def on_case_note(
        self, interaction: discord.Interaction[Any], reference: str, text: str
    ) -> None:
        here = await self._moderator_here(interaction)
        if here is None:
            return
        guild, _config, _locale, who = here
        result = await self.bot.add_case_note(community_of(guild).id, reference, who, text)
        await self.private(interaction, text_of(result.message.spans))

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
            await self.private(interaction, text_of(unknown))
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
            or self.outbound.offender_id(report.offender) != user_id
        ):
            await self.private(interaction, self.t("discord.not_allowed_action", locale))
            return
        try:
            refused = await self._refusal(guild.id, action, interaction.user.id, user_id)
        except discord.NotFound:
            await self.private(interaction, self.t("discord.member_gone", locale))
            return
        except discord.HTTPException:
            log.warning("rank check failed for a %s click", action)
            await self.private(interaction, self.t("error.sorry", locale))
            return
        if refused is not None:
            key = (
                "discord.bot_cannot" if refused is Refusal.BOT else f"discord.rank.{refused.value}"
            )
            await self.private(interaction, self.t(key, locale))
            return
        reason = f"SafeBot report {reference}"
        try:
            if action == "timeout":
                member = await guild.fetch_member(user_id)
                await member.timeout(TIMEOUT, reason=reason)
            else:
                await guild.ban(discord.Object(user_id), reason=reason, delete_message_seconds=0)
        except discord.NotFound:
            await self.private(interaction, self.t("discord.member_gone", locale))
            return
        except discord.Forbidden:
            await self.private(interaction, self.t("discord.bot_cannot", locale))
            return
        actor = f"{interaction.user.display_name} ({interaction.user.id})"
        await self.bot.record(actor, action, reference, community_of(guild).id)
        await self.private(
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
        locale = self.adapter.locale_of(interaction)
        if interaction.guild is None:
            await self.private(interaction, self.t("discord.server_only", locale))
            return
        if not (interaction.permissions.manage_guild or interaction.permissions.administrator):
            await self.private(interaction, self.t("discord.need_manage_server", locale))
            return
        guild = interaction.guild
        for checked in (role, escalate_role):
            if checked is None:
                continue
            holds = guild.me is not None and checked in guild.me.roles
            problem = await role_problem(self.client.http, guild.id, checked, holds)
            if problem is not None:
                await self.private(interaction, self.t(problem, locale, role=checked.name))
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
        await self.private(interaction, text)

    async def status_command(self, interaction: discord.Interaction[Any]) -> None:
        locale = self.adapter.locale_of(interaction)
        guild = interaction.guild
        if guild is None:
            await self.private(interaction, self.t("discord.server_only", locale))
            return
        config = await self.store.get_community(community_of(guild).id)
        if not self.is_moderator(interaction, config):
            await self.private(interaction, self.t("discord.not_moderator", locale))
            return
        if config is None:
            await self.private(interaction, self.t("discord.status_unset", locale))
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
        await self.private(interaction, "\n".join(lines))

    async def test_alert_command(self, interaction: discord.Interaction[Any]) -> None:
        locale = self.adapter.locale_of(interaction)
        guild = interaction.guild
        if guild is None:
            await self.private(interaction, self.t("discord.server_only", locale))
            return
        if not (interaction.permissions.manage_guild or interaction.permissions.administrator):
            await self.private(interaction, self.t("discord.need_manage_server", locale))
            return
        config = await self.store.get_community(community_of(guild).id)
        if config is None:
            await self.private(interaction, self.t("discord.status_unset", locale))
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = self.t("discord.test_alert", config.locale)
        try:
            channel = await self.outbound.channel(config)
            await channel.send(
                self.outbound.ping(config) + text,
                allowed_mentions=self.outbound.mentions(config),
            )
        except DeliveryError as exc:
            await self.private(
                interaction, self.t("discord.test_failed", locale, reason=exc.reason)
            )
            return
        await self.private(interaction, self.t("discord.test_sent", locale))
