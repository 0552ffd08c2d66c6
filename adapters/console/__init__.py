"""The console adapter: the local run. One simulated community with a moderator channel.

Works interactively and with piped stdin (one message per line, replies on stdout), so a
whole conversation can be scripted: ``printf 'hi\\n6\\n' | safebot console``. Lines starting
with ``:`` are console commands, e.g. ``:mod ack R-7K3Q`` to act as a moderator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TextIO

from safebot.adapters.console.platform import console_settings
from safebot.content import Content
from safebot.conversation import is_reference
from safebot.events import TextReceived
from safebot.messages import Message, clean_text, join_spans
from safebot.model import Community, CommunityConfig, CommunityId, PersonId
from safebot.moderation import Alert
from safebot.ports import Capabilities
from safebot.service import SafeBot
from safebot.settings import Settings

__all__ = ["ConsoleApp", "ConsolePlatform", "render"]

PLATFORM = "console"
COMMUNITY_ID = "demo"
_RULE = "=" * 64


def clean(text: str) -> str:
    """Drop terminal control characters (escape sequences could repaint the screen)."""
    return clean_text(text).replace("\r", "")


def render(message: Message) -> str:
    body = join_spans(message.spans, untrusted=clean)
    lines = [body] if body else []
    for number, choice in enumerate(message.choices, 1):
        lines.append(f"  {number}) {clean(choice.label)}")
    return "\n".join(lines)


class ConsolePlatform:
    """PlatformPort for the console: prints alerts in a visibly separate moderator box."""

    platform = PLATFORM
    capabilities = Capabilities()  # a terminal takes any length

    def __init__(
        self,
        settings: Settings,
        content: Content,
        out: TextIO,
        *,
        stdin: TextIO | None = None,
        locale: str | None = None,
    ) -> None:
        """Build with ``safebot.app.assemble`` (or ``serve``), which attaches the service.
        ``run`` reads ``stdin`` line by line, starting in ``locale``."""
        self.settings = settings
        self.options = console_settings(settings)
        self.content = content
        self.out = out
        self.stdin = stdin
        self.locale = locale
        self.community = Community(CommunityId(PLATFORM, COMMUNITY_ID), self.options.community)
        self.bot: SafeBot  # set by attach()
        self._printed: set[str] = set()

    def attach(self, bot: SafeBot) -> None:
        self.bot = bot
        bot.metrics.set_connected(True)  # the terminal is always there

    def reference_tokens(self) -> None:
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """The conversation on ``stdin`` until it ends, ``:quit``, or ``stop``."""
        assert self.stdin is not None, "ConsolePlatform.run needs stdin"
        stdin = self.stdin
        app = ConsoleApp(self.bot, self, self.locale)
        await app.setup()
        interactive = stdin.isatty()
        app.note("console.intro")
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            if interactive:
                print("\n> ", end="", file=self.out, flush=True)
            raw = await loop.run_in_executor(None, stdin.readline)
            if not raw:
                break
            text = raw.rstrip("\r\n")
            if not interactive:
                print(f"\n> {clean(text)}", file=self.out, flush=True)
            if not await app.line(text):
                break
        await self.bot.deliver_due()

    async def close(self) -> None:
        self.bot.metrics.set_connected(False)

    def _once(self, key: str) -> bool:
        if key in self._printed:
            return False
        self._printed.add(key)
        return True

    def box(self, lines: Sequence[str]) -> None:
        channel = self.options.moderator_channel
        title = f"== {channel} · {self.community.name} "
        print(title + "=" * max(4, len(_RULE) - len(title)), file=self.out)
        for line in "\n".join(lines).splitlines():
            print(f"| {line}", file=self.out)
        print(_RULE, file=self.out, flush=True)

    async def shared_communities(self, person: PersonId) -> Sequence[Community]:
        # The demo community has one member: the person at the terminal.
        return [self.community] if person == PersonId(PLATFORM, self.options.person) else []

    async def send_alert(self, config: CommunityConfig, alert: Alert) -> str | None:
        if not self._once(alert.key):
            return None
        text = render(alert.as_message()).split("\n  1)")[0]
        hint = self.content.text(config.locale, "console.mod_hint").replace(
            "{reference}", alert.reference
        )
        self.box([text, "", hint])
        return None  # a terminal has no message ids

    async def update_alert(self, config: CommunityConfig, alert: Alert, key: str) -> None:
        if self._once(key):
            status = f"{alert.status} {clean(alert.handled_by or '')}".strip()
            self.box([f"{alert.reference}: {status}"])

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
        if self._once(key):
            who = f"@{self.options.moderator} " if ping else ""
            self.box([f"{who}{render(message)}"])

    async def send_private(self, person: PersonId, message: Message, key: str) -> None:
        if self._once(key):
            print(f"\nSafeBot: {render(message)}\n", file=self.out, flush=True)


class ConsoleApp:
    def __init__(self, bot: SafeBot, platform: ConsolePlatform, locale: str | None) -> None:
        self.bot = bot
        self.platform = platform
        self.content = bot.content
        self.settings = bot.settings
        self.options = platform.options
        self.person = PersonId(PLATFORM, self.options.person)
        self.locale = locale
        self.out = platform.out

    def say(self, message: Message) -> None:
        print(f"\nSafeBot: {render(message)}", file=self.out, flush=True)

    def note(self, key: str) -> None:
        locale = self.locale or self.content.default_locale
        print(self.content.text(locale, key), file=self.out, flush=True)

    async def setup(self) -> None:
        community = self.platform.community
        if await self.bot.store.get_community(community.id) is None:
            config = CommunityConfig(
                community.id,
                community.name,
                self.options.moderator_channel,
                locale=self.locale or self.content.default_locale,
            )
            await self.bot.configure_community(config, actor="console")
        await self.bot.purge_expired()

    async def line(self, text: str) -> bool:
        """Handle one input line; False means quit."""
        if text.startswith(":"):
            return await self.command(text[1:].split())
        replies = await self.bot.handle(TextReceived(self.person, text, locale_hint=self.locale))
        for reply in replies:
            self.say(reply)
        await self.bot.deliver_due()
        return True

    async def command(self, words: list[str]) -> bool:
        name = words[0].lower() if words else ""
        if name in ("quit", "q", "exit"):
            return False
        if name == "attach":
            replies = await self.bot.handle(
                TextReceived(
                    self.person, " ".join(words[1:]), attachments=1, locale_hint=self.locale
                )
            )
            for reply in replies:
                self.say(reply)
        elif name == "mod" and len(words) >= 3 and words[1].lower() == "note":
            community = self.platform.community.id
            moderator = self.options.moderator
            named = is_reference(words[2].upper())
            reference = words[2] if named else await self._newest(community)
            note = " ".join(words[3:] if named else words[2:])
            result = await self.bot.add_case_note(community, reference, moderator, note)
            self.platform.box([render(result.message)])
        elif name == "mod" and len(words) in (2, 3) and words[1].lower() == "export":
            community = self.platform.community.id
            reference = words[2] if len(words) == 3 else await self._newest(community)
            pack = await self.bot.evidence(community, reference, self.options.moderator)
            locale = self.locale or self.content.default_locale
            unknown = render(
                Message(self.content.spans(locale, "mod.unknown", reference=reference))
            )
            self.platform.box(pack.as_text().splitlines() if pack else [unknown])
        elif name == "mod" and len(words) in (2, 3) and words[1] != "list":
            community = self.platform.community.id
            action = words[1].lower()
            reference = words[2] if len(words) == 3 else await self._newest(community)
            moderator = self.options.moderator
            result = await self.bot.moderator_action(community, reference, action, moderator)
            self.platform.box([render(result.message)])
            await self.bot.deliver_due()
        elif name == "mod" and words[1:2] == ["list"]:
            reports = await self.bot.store.reports_for_community(self.platform.community.id)
            self.platform.box([f"{r.reference}  {r.status.value}" for r in reports] or ["-"])
        else:
            self.note("console.help")
        return True

    async def _newest(self, community: CommunityId) -> str:
        reports = await self.bot.store.reports_for_community(community)
        return reports[-1].reference if reports else "-"
