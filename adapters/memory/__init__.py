"""An in-process platform that records everything: used by tests and benchmarks.

``MemoryPlatform`` implements the core's PlatformPort. Moderators "see" each alert key once,
however often it is delivered, like a platform that deduplicates by idempotency key.
``MemoryBot`` wires a whole SafeBot around it for tests.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from safebot.app import assemble
from safebot.conversation import Engine
from safebot.events import ChoiceSelected, CommandInvoked, Event, TextReceived
from safebot.messages import Message
from safebot.model import Community, CommunityConfig, CommunityId, PersonId
from safebot.moderation import Alert
from safebot.ports import Capabilities, DeliveryError
from safebot.service import ModeratorReply, SafeBot
from safebot.settings import Settings
from safebot.store.base import Store

__all__ = ["MemoryBot", "MemoryPlatform", "Sent"]

PLATFORM = "memory"


@dataclass(frozen=True, slots=True)
class Sent:
    """One delivery as the platform received it."""

    kind: str  # "alert" | "update" | "reminder" | "reply" | "private"
    key: str
    to: str  # destination id or person key
    alert: Alert | None = None
    message: Message | None = None


@dataclass
class MemoryPlatform:
    platform: str = PLATFORM
    capabilities: Capabilities = field(default_factory=Capabilities)
    names: dict[CommunityId, str] = field(default_factory=dict)
    members: dict[CommunityId, set[PersonId]] = field(default_factory=lambda: defaultdict(set))
    down: set[str] = field(default_factory=set)  # destinations that fail (outage)
    forbidden: set[str] = field(default_factory=set)  # destinations that refuse for good
    deliveries: list[Sent] = field(default_factory=list)  # every attempt that got through
    seen: dict[str, Sent] = field(default_factory=dict)  # what moderators/persons see, by key
    posted: dict[str, str] = field(default_factory=dict)  # alert key -> its "message id"

    # --- lifecycle (safebot.app.Adapter) ---------------------------------------------------
    def attach(self, bot: SafeBot) -> None:
        return None  # tests hold the service (MemoryBot.service)

    def reference_tokens(self) -> None:
        return None

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()  # tests drive the service themselves

    async def close(self) -> None:
        return None

    # --- world building -------------------------------------------------------------------
    def add_community(self, ident: str, name: str) -> Community:
        cid = CommunityId(self.platform, ident)
        self.names[cid] = name
        return Community(cid, name)

    def join(self, person: PersonId, community: Community) -> None:
        self.members[community.id].add(person)

    def leave(self, person: PersonId, community: Community) -> None:
        self.members[community.id].discard(person)

    # --- what tests read ------------------------------------------------------------------
    def alerts(self, destination: str | None = None) -> list[Alert]:
        return [
            s.alert
            for s in self.seen.values()
            if s.kind == "alert" and s.alert and destination in (None, s.to)
        ]

    def reminders(self, destination: str | None = None) -> list[Sent]:
        """Reminders (with a ping) posted under unacknowledged alerts."""
        return [
            s for s in self.seen.values() if s.kind == "reminder" and destination in (None, s.to)
        ]

    def replies(self, destination: str | None = None) -> list[Sent]:
        """Messages posted under alerts without a ping (notes from the reporter)."""
        return [s for s in self.seen.values() if s.kind == "reply" and destination in (None, s.to)]

    def sent_to(self, destination: str) -> list[Sent]:
        """Everything delivered to ``destination``, in order."""
        return [s for s in self.seen.values() if s.to == destination]

    def private(self, person: PersonId) -> list[Message]:
        return [
            s.message
            for s in self.seen.values()
            if s.kind == "private" and s.message and s.to == person.key
        ]

    # --- PlatformPort ---------------------------------------------------------------------
    async def shared_communities(self, person: PersonId) -> Sequence[Community]:
        return [
            Community(cid, self.names[cid])
            for cid, people in self.members.items()
            if person in people and cid in self.names
        ]

    def _gate(self, destination: str) -> None:
        if destination in self.forbidden:
            raise DeliveryError("destination refuses the bot", permanent=True)
        if destination in self.down:
            raise DeliveryError("destination unreachable")

    def _record(self, sent: Sent) -> None:
        self.deliveries.append(sent)
        self.seen.setdefault(sent.key, sent)

    async def send_alert(self, config: CommunityConfig, alert: Alert) -> str:
        self._gate(config.destination)
        self._record(Sent("alert", alert.key, config.destination, alert=alert))
        # Like a platform's message id: one per alert, the same when it is sent again.
        return self.posted.setdefault(alert.key, f"{config.destination}/{len(self.posted) + 1}")

    async def update_alert(self, config: CommunityConfig, alert: Alert, key: str) -> None:
        self._gate(config.destination)
        self._record(Sent("update", key, config.destination, alert=alert))

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
        self._gate(config.destination)
        kind = "reminder" if ping else "reply"
        self._record(Sent(kind, key, config.destination, alert=alert, message=message))
        if escalate and config.escalate_to:
            self._record(Sent("escalation", f"{key}:to", config.escalate_to, alert, message))

    async def send_private(self, person: PersonId, message: Message, key: str) -> None:
        self._gate(person.key)
        self._record(Sent("private", key, person.key, message=message))


class MemoryBot:
    """A whole SafeBot on the memory platform, driven like a chat by tests."""

    def __init__(self, engine: Engine, store: Store, settings: Settings, **kwargs: object) -> None:
        self.platform = MemoryPlatform()
        self.service = assemble(engine, store, self.platform, settings, **kwargs)

    def person(self, ident: str) -> PersonId:
        return PersonId(PLATFORM, ident)

    async def setup_community(
        self, ident: str, name: str, destination: str = "mods", locale: str = "en"
    ) -> Community:
        community = self.platform.add_community(ident, name)
        await self.service.configure_community(
            CommunityConfig(community.id, name, destination, locale=locale), actor="admin"
        )
        return community

    async def send(self, event: Event) -> tuple[Message, ...]:
        return await self.service.handle(event)

    async def say(self, person: PersonId, text: str, **kw: object) -> tuple[Message, ...]:
        return await self.send(TextReceived(person, text, **kw))  # type: ignore[arg-type]

    async def press(
        self, person: PersonId, choice: str, node: str | None = None
    ) -> tuple[Message, ...]:
        return await self.send(ChoiceSelected(person, choice, node))

    async def command(self, person: PersonId, name: str, **kw: object) -> tuple[Message, ...]:
        return await self.send(CommandInvoked(person, name, **kw))  # type: ignore[arg-type]

    async def moderate(
        self, community: Community, reference: str, action: str, moderator: str = "mod"
    ) -> ModeratorReply:
        return await self.service.moderator_action(community.id, reference, action, moderator)

    async def deliver(self) -> int:
        return await self.service.deliver_due()
