"""The Discord adapter's gateway client and its command tree: discord.py events in, handed
to the adapter; the /safety commands and the message menu, described from content/."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from safebot.adapters.discord.items import DYNAMIC_ITEMS
from safebot.adapters.discord.render import NO_MENTIONS
from safebot.content import Content

if TYPE_CHECKING:
    from safebot.adapters.discord.adapter import DiscordAdapter

__all__ = ["ContentTranslator", "SafeBotClient", "register_commands"]


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
        register_commands(self.tree, self.adapter)
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


def register_commands(tree: app_commands.CommandTree[Any], adapter: DiscordAdapter) -> None:
    """The /safety group and the "report this message" menu, for people and moderators."""
    desk = adapter.desk

    def s(key: str) -> app_commands.locale_str:
        return app_commands.locale_str(adapter.t(key), key=key)

    group = app_commands.Group(
        name="safety",
        description=s("discord.cmd.group"),
        allowed_contexts=app_commands.AppCommandContext(
            guild=True, dm_channel=True, private_channel=True
        ),
        allowed_installs=app_commands.AppInstallationType(guild=True, user=False),
    )

    def simple(name: str, key: str, core: str) -> None:
        async def callback(interaction: discord.Interaction[Any]) -> None:
            await adapter.command(interaction, core)

        group.add_command(app_commands.Command(name=name, description=s(key), callback=callback))

    simple("help", "discord.cmd.help", "help")
    simple("block", "discord.cmd.block", "block")
    simple("report", "discord.cmd.report", "report")
    simple("resources", "discord.cmd.resources", "resources")
    simple("my-reports", "discord.cmd.my_reports", "my-reports")
    simple("forget-me", "discord.cmd.forget", "forget")

    content = adapter.content
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
        await desk.setup_command(interaction, channel, role, region, escalate_role)

    @group.command(name="status", description=s("discord.cmd.status"))
    async def status(interaction: discord.Interaction[Any]) -> None:
        await desk.status_command(interaction)

    @group.command(name="export", description=s("discord.cmd.export"))
    @app_commands.describe(reference=s("discord.cmd.export.reference"))
    async def export(interaction: discord.Interaction[Any], reference: str) -> None:
        await desk.export_command(interaction, reference)

    @group.command(name="test-alert", description=s("discord.cmd.test_alert"))
    async def test_alert(interaction: discord.Interaction[Any]) -> None:
        await desk.test_alert_command(interaction)

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
