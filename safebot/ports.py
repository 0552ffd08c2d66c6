"""What a platform adapter must provide to the core: the outbound operations (alerts, status
messages, membership checks). Inbound, adapters call :class:`safebot.service.SafeBot`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from safebot.messages import Measure, Message, plain_length
from safebot.model import Community, CommunityConfig, CommunityId, PersonId
from safebot.moderation import Alert

__all__ = ["Capabilities", "DeliveryError", "MembershipCheck", "PlatformPort"]


class DeliveryError(Exception):
    """A delivery did not happen. ``permanent`` parks the item at once (it can never work).
    ``reason`` is logged and shown to moderators in the backlog: it says what failed (a status,
    a missing permission), never what the message said."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class Capabilities:
    """What a platform can carry, so the core shapes what it sends to fit (the defaults: a
    plain text platform with no limits).

    ``max_length`` is the longest message the platform takes, as ``measure`` counts it once
    the platform has rendered it (escapes, entities and markup included). The core cuts
    longer messages into parts before they reach the port (``safebot.messages.fit``), so no
    adapter splits text itself and nothing is cut inside an escape.

    ``step_ids`` and ``choice_ids`` are patterns that every step id and every choice id must
    match in full where a tapped choice carries them back (Discord's custom ids). The flow
    and the content are checked against them when the bot is put together, so an id the
    platform could not carry stops the start instead of leaving a button that does nothing.
    """

    max_length: int | None = None
    measure: Measure = plain_length
    step_ids: str | None = None
    choice_ids: str | None = None


class PlatformPort(Protocol):
    """The adapter side of the core. Every method may raise DeliveryError.

    Sends must be idempotent per ``key``/``alert.key`` where the platform allows it: the core
    delivers at least once and passes the same key on a redelivery.
    """

    platform: str
    capabilities: Capabilities

    async def shared_communities(self, person: PersonId) -> Sequence[Community]:
        """Communities where both the bot and the person are members (checked, not assumed)."""
        ...

    async def send_alert(self, config: CommunityConfig, alert: Alert) -> str | None:
        """Post a new moderator alert to the community's moderator destination (once per
        ``alert.key``, also when called again after a crash). Returns where it is: a reference
        the platform can reach the message by (kept by the outbox and passed back as
        ``Alert.posted`` to ``update_alert`` and ``reply_to_alert``, so they never search a
        channel's history), or None if the platform has none."""
        ...

    async def update_alert(self, config: CommunityConfig, alert: Alert, key: str) -> str | None:
        """Show the new status of the alert ``alert.key``, posted at ``alert.posted`` (edit
        it, or reply to it); ``key`` identifies this update. Returns where the alert is now
        if this posted it anew (Matrix takes a forgotten reporter's name off that way), so the
        outbox keeps the new place for later updates and replies; else None."""
        ...

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
        """Post ``message`` under ``alert``: as a reply to it, or in its thread, where the
        platform can. A reminder that nobody has acknowledged it pings the moderators again
        (``ping``; never the reported person); a note from the reporter does not. The last
        reminder (``escalate``) also reaches ``config.escalate_to`` when one is set (a second
        role, a second room). Untrusted spans are shown inert. Idempotent per ``key``."""
        ...

    async def send_private(self, person: PersonId, message: Message, key: str) -> None:
        """Send a private message (status update) to a person."""
        ...


@runtime_checkable
class MembershipCheck(Protocol):
    """Optional, for a platform where asking about one community is cheaper than listing
    them all: the core then checks only the chosen community when a report is submitted."""

    async def is_member(self, person: PersonId, community: CommunityId) -> bool:
        """Whether the person is a member of the community now (asked of the platform, never
        from a cache)."""
        ...
