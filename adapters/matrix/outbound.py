"""The Matrix adapter's sending side: every event the bot sends (encrypted where the room
is, idempotent by transaction id), and the core's port: alerts in the moderator room and their
threads, and status DMs in a room that is still private."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from nio import (
    AsyncClient,
    JoinedMembersResponse,
    LocalProtocolError,
    RoomCreateResponse,
    RoomGetStateResponse,
    RoomRedactResponse,
    RoomSendResponse,
)
from nio.exceptions import EncryptionError

from safebot.adapters import AdapterPart
from safebot.adapters.matrix.history import find_own_event, own_events
from safebot.adapters.matrix.ids import PLATFORM
from safebot.adapters.matrix.inbox import replay_txn
from safebot.adapters.matrix.powers import RoomPowers
from safebot.adapters.matrix.render import (
    ALERT_KEY,
    alert_content,
    alert_reply_content,
    message_content,
    status_content,
)
from safebot.adapters.matrix.server_report import user_ids
from safebot.messages import Message, Span, plain_text
from safebot.model import Community, CommunityConfig, PersonId
from safebot.moderation import Alert
from safebot.ports import DeliveryError

if TYPE_CHECKING:
    from safebot.adapters.matrix.adapter import MatrixAdapter

__all__ = ["THREAD_ROOT_PAGES", "MatrixOutbound"]

log = logging.getLogger(__name__)

_HISTORY_SCAN = 50
THREAD_ROOT_PAGES = 20  # of _HISTORY_SCAN of the bot's own events: an old alert's thread
# How far back (pages of _HISTORY_SCAN of the bot's own events) "forget me" looks for alerts.
_REDACT_SCAN_PAGES = 20


class _Part(AdapterPart["MatrixAdapter"]):
    """A job of the Matrix adapter."""

    @property
    def client(self) -> AsyncClient | None:
        return self.adapter.client

    @property
    def user_id(self) -> str:
        return self.adapter.user_id


class MatrixOutbound(_Part):
    """Sending, and the PlatformPort half of the adapter."""

    def __init__(self, adapter: MatrixAdapter) -> None:
        super().__init__(adapter)
        self.alert_events: dict[str, str] = {}  # alert key -> event id

    async def powers(self, room_id: str) -> RoomPowers | None:
        assert self.client is not None
        response = await self.client.room_get_state(room_id)
        if not isinstance(response, RoomGetStateResponse):
            return None
        return RoomPowers.from_events(response.events)

    async def send(self, room_id: str, content: dict[str, Any], txn: str | None = None) -> str:
        """Send (encrypting where the room is encrypted). ``txn`` makes a retry idempotent:
        the homeserver returns the first event for a repeated transaction id."""
        assert self.client is not None
        client = self.client
        txn = txn or replay_txn()
        room = client.rooms.get(room_id)
        if room is not None and room.encrypted and client.olm is not None:
            # Query every member's devices first: nio marks a group session as shared even
            # if it reached nobody, and never re-shares it to devices learned about later.
            client.olm.update_tracked_users(room)
            if client.should_query_keys:
                with contextlib.suppress(LocalProtocolError):  # a concurrent query ran
                    await client.keys_query()
        try:
            response = await client.room_send(
                room_id, "m.room.message", content, tx_id=txn, ignore_unverified_devices=True
            )
        except (LocalProtocolError, EncryptionError) as exc:
            raise DeliveryError(f"cannot send to the room: {type(exc).__name__}") from None
        if not isinstance(response, RoomSendResponse):
            raise DeliveryError(f"send failed: {getattr(response, 'status_code', response)}")
        return str(response.event_id)

    async def shared_communities(self, person: PersonId) -> Sequence[Community]:
        """Linked community rooms the person is currently joined to (asked of the server)."""
        assert self.client is not None
        found: list[Community] = []
        for config in await self.store.list_communities(PLATFORM):
            response = await self.client.joined_members(config.community.id)
            if not isinstance(response, JoinedMembersResponse):
                continue
            if any(m.user_id == person.id for m in response.members):
                room = self.client.rooms.get(config.community.id)
                name = room.display_name if room is not None else config.name
                found.append(Community(config.community, name or config.name, config.region))
        return found

    def without_offender(
        self, alert: Alert, moderators: list[str], locale: str
    ) -> tuple[Alert, list[str]]:
        """The reported person is never mentioned: a moderator named in the report is left
        out of the mentions, and the alert warns the other moderators."""
        named = set(user_ids(alert.offender, limit=None))
        if not named & set(moderators):
            return alert, moderators
        warning = plain_text(self.content.spans(locale, "alert.offender_is_moderator"))
        return replace(alert, warning=warning), [m for m in moderators if m not in named]

    async def moderators(self, config: CommunityConfig) -> list[str]:
        powers = await self.powers(config.community.id)
        return powers.moderators(exclude=self.user_id) if powers else []

    async def find_alert(
        self, room_id: str, key: str, pages: int = 1, posted: str | None = None
    ) -> str | None:
        """The event id of an alert already in the moderator room: the one this process
        posted last, else where it was posted (``Alert.posted``, kept by the outbox), else
        found among the bot's last ``pages`` x 50 events there (alerts from before SafeBot
        kept it; one page finds an alert sent just before a crash)."""
        if key in self.alert_events:
            return self.alert_events[key]
        if posted:
            return posted
        assert self.client is not None
        found = await find_own_event(
            self.client,
            room_id,
            lambda content: content.get(ALERT_KEY) == key,
            pages=pages,
            page_size=_HISTORY_SCAN,
        )
        if found is not None:
            self.alert_events[key] = found
        return found

    async def _alert_copies(self, room_id: str, key: str, pages: int) -> list[str]:
        """Event ids of the bot's alerts carrying ``key`` in the latest ``pages`` pages of its
        own events in the room, newest first. A redacted alert has no content left, so no key."""
        assert self.client is not None
        events = own_events(
            self.client,
            room_id,
            lambda content: content.get(ALERT_KEY) == key,
            pages=pages,
            page_size=_HISTORY_SCAN,
        )
        return [event_id async for event_id in events]

    async def send_alert(self, config: CommunityConfig, alert: Alert) -> str:
        if self.client is None or config.destination not in self.client.rooms:
            raise DeliveryError("the bot is not in the moderator room")
        found = await self.find_alert(config.destination, alert.key)
        if found is not None:
            return found  # already posted before a crash: moderators see it once
        hint = plain_text(
            self.content.spans(config.locale, "matrix.mod.hint", reference=alert.reference)
        )
        alert, moderators = self.without_offender(
            alert, await self.moderators(config), config.locale
        )
        content = alert_content(alert, moderators, hint, alert.key)
        event_id = await self.send(config.destination, content, txn=_txn(alert.key))
        self.alert_events[alert.key] = event_id
        return event_id

    async def update_alert(self, config: CommunityConfig, alert: Alert, key: str) -> str | None:
        if self.client is None or config.destination not in self.client.rooms:
            raise DeliveryError("the bot is not in the moderator room")
        if alert.remove_name:
            return await self._replace_alert(config, alert, key)
        root = await self.find_alert(config.destination, alert.key, THREAD_ROOT_PAGES, alert.posted)
        await self.send(config.destination, status_content(alert, root), txn=_txn(key))
        return None

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
        if self.client is None or config.destination not in self.client.rooms:
            raise DeliveryError("the bot is not in the moderator room")
        moderators: list[str] = []
        if ping:
            checked, moderators = self.without_offender(
                alert, await self.moderators(config), config.locale
            )
            if checked.warning:  # the reported person is a moderator: say so again
                message = Message((*message.spans, Span(f" {checked.warning}")))
        root = await self.find_alert(config.destination, alert.key, THREAD_ROOT_PAGES, alert.posted)
        content = alert_reply_content(message, moderators, root, alert.reference)
        await self.send(config.destination, content, txn=_txn(key))
        if escalate and config.escalate_to and config.escalate_to in self.client.rooms:
            # The second room sees only that a report waits, never what it says.
            body = alert_reply_content(message, [], None, alert.reference)
            body["msgtype"] = "m.text"  # a notification, like any message in that room
            await self.send(config.escalate_to, body, txn=_txn(f"{key}:to"))

    async def _replace_alert(self, config: CommunityConfig, alert: Alert, key: str) -> str:
        """Take a forgotten reporter's name off their alert. An ``m.replace`` edit would not:
        the original event keeps its content, and clients show it ("edited", view source).
        So the name-free alert is posted anew (pinging nobody, with the same alert key, so
        later status lines thread under it) and then every earlier copy is redacted, which
        makes the server drop its content. Repeatable: the new post reuses its transaction
        id and copies already redacted carry no key."""
        assert self.client is not None
        room = config.destination
        earlier = set(await self._alert_copies(room, alert.key, pages=_REDACT_SCAN_PAGES))
        if alert.key in self.alert_events:
            earlier.add(self.alert_events[alert.key])
        hint = plain_text(
            self.content.spans(config.locale, "matrix.mod.hint", reference=alert.reference)
        )
        content = alert_content(alert, [], hint, alert.key)
        event_id = await self.send(room, content, txn=_txn(key))
        self.alert_events[alert.key] = event_id
        for old in sorted(earlier - {event_id}):
            response = await self.client.room_redact(room, old, tx_id=_txn(f"{key}:{old}"))
            if not isinstance(response, RoomRedactResponse):
                raise DeliveryError("could not redact the old alert")
        return event_id

    async def send_private(self, person: PersonId, message: Message, key: str) -> None:
        if self.client is None:
            raise DeliveryError("the Matrix client is not running")
        room_id = self.adapter.dm_rooms.get(person.id)
        if room_id is None or not await self.adapter.private(room_id, person.id):
            # Never into a room that stopped being 1:1 (or that the person left): a new DM.
            room_id = await self._open_dm(person.id)
        await self._synced_with(room_id, person.id)
        await self.send(room_id, message_content(message), txn=_txn(key))

    async def _open_dm(self, user_id: str) -> str:
        assert self.client is not None
        response = await self.client.room_create(
            is_direct=True,
            invite=[user_id],
            initial_state=[
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ],
        )
        if not isinstance(response, RoomCreateResponse):
            raise DeliveryError("could not open a DM with the person")
        self.adapter.remember_dm(user_id, response.room_id)
        return str(response.room_id)

    async def _synced_with(self, room_id: str, user_id: str) -> None:
        """Wait (a few seconds at most) until the synced room lists the person: a group
        session shared before that would reach nobody, and nio never shares it again."""
        assert self.client is not None
        for _ in range(50):
            room = self.client.rooms.get(room_id)
            if room is not None and user_id in room.users:
                return
            await asyncio.sleep(0.1)
        raise DeliveryError("the DM is not synced yet")


def _txn(key: str) -> str:
    return "safebot-" + re.sub(r"[^A-Za-z0-9._-]", "_", key)
