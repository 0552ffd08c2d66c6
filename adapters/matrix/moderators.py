"""The Matrix adapter's moderator room: ``!safebot`` commands (link, unlink, status, ack,
claim, resolve, block, note, export, report-server, ban, policy, escalate) and reactions on
alerts, each checked against the community room's power levels first."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from nio import (
    MatrixRoom,
    MegolmEvent,
    ReactionEvent,
    RoomBanResponse,
    RoomGetEventResponse,
    RoomPutStateResponse,
    RoomResolveAliasResponse,
)
from nio.exceptions import EncryptionError

from safebot.adapters.matrix.ids import PLATFORM, community_id
from safebot.adapters.matrix.outbound import THREAD_ROOT_PAGES, MatrixOutbound, _Part
from safebot.adapters.matrix.render import (
    ALERT_KEY,
    REACTIONS,
    REFERENCE_KEY,
    notice,
    preformatted,
)
from safebot.adapters.matrix.server_report import message_links, report_to_server, user_ids
from safebot.adapters.matrix.threads import alert_key, in_thread
from safebot.conversation import is_reference
from safebot.messages import plain_text
from safebot.model import CommunityConfig, Report

if TYPE_CHECKING:
    from safebot.adapters.matrix.adapter import MatrixAdapter

__all__ = ["ModeratorRoom"]

log = logging.getLogger(__name__)


class ModeratorRoom(_Part):
    """What moderators do in their Matrix room, on behalf of the adapter."""

    def __init__(self, adapter: MatrixAdapter, outbound: MatrixOutbound) -> None:
        super().__init__(adapter)
        self.outbound = outbound

    async def is_configured_room(self, room_id: str) -> bool:
        configs = await self.store.list_communities(PLATFORM)
        return any(room_id in (c.community.id, c.destination) for c in configs)

    async def say(self, room_id: str, key: str, locale: str = "en", **values: str) -> None:
        text = plain_text(self.content.spans(locale, key, **values))
        await self.outbound.send(room_id, notice(text))

    async def _resolve(self, target: str) -> str | None:
        assert self.client is not None
        if target.startswith("!"):
            return target
        if target.startswith("#"):
            response = await self.client.room_resolve_alias(target)
            if isinstance(response, RoomResolveAliasResponse):
                return str(response.room_id)
        return None

    async def command(self, room: MatrixRoom, sender: str, words: list[str]) -> None:
        name = words[0].lower()
        args = words[1:]
        if name in ("ack", "claim", "resolve", "block", "unblock", "export", "report-server"):
            if len(args) != 1 or not is_reference(args[0].upper()):
                await self.say(room.room_id, "matrix.mod.help")
                return
            await self._act(room.room_id, sender, args[0].upper(), name)
        elif name == "ban" and len(args) in (1, 2) and is_reference(args[0].upper()):
            share = len(args) == 2 and args[1].lower() == "share"
            if len(args) == 2 and not share:
                await self.say(room.room_id, "matrix.mod.help")
                return
            await self._act(room.room_id, sender, args[0].upper(), "ban", share=share)
        elif name in ("policy", "escalate") and len(args) == 1:
            await self._second_room(room, sender, args[0], name)
        elif name == "note" and len(args) >= 2 and is_reference(args[0].upper()):
            await self._act(room.room_id, sender, args[0].upper(), name, note=" ".join(args[1:]))
        elif name == "link" and len(args) in (1, 2):
            await self._link(room, sender, args[0], args[1].upper() if len(args) == 2 else None)
        elif name == "unlink":
            await self._unlink(room, sender, args[0] if args else None)
        elif name == "status":
            await self._status(room.room_id)
        else:
            await self.say(room.room_id, "matrix.mod.help")

    async def _link(
        self, room: MatrixRoom, sender: str, target: str, region: str | None = None
    ) -> None:
        assert self.client is not None
        if region is not None and region not in self.content.regions:
            codes = ", ".join(sorted(self.content.regions))
            await self.say(room.room_id, "matrix.mod.unknown_region", regions=codes)
            return
        community_room = await self._resolve(target)
        if community_room is None:
            await self.say(room.room_id, "matrix.mod.unknown_room")
            return
        if community_room == room.room_id:
            await self.say(room.room_id, "matrix.mod.same_room")
            return
        if community_room not in self.client.rooms:
            await self.say(room.room_id, "matrix.mod.not_in_room")
            return
        powers = await self.outbound.powers(community_room)
        if powers is None or not powers.is_moderator(sender):
            await self.say(room.room_id, "matrix.mod.not_moderator")
            return
        name = self.client.rooms[community_room].display_name or community_room
        await self.bot.set_up_community(
            community_id(community_room),
            name=name,
            destination=room.room_id,
            actor=sender,
            locale=self.content.default_locale,
            region=region,
        )
        await self.say(room.room_id, "matrix.mod.linked", room=name)

    async def _unlink(self, room: MatrixRoom, sender: str, target: str | None) -> None:
        linked = [
            c for c in await self.store.list_communities(PLATFORM) if c.destination == room.room_id
        ]
        if target is not None:
            wanted = await self._resolve(target)
            linked = [c for c in linked if c.community.id == wanted]
        if len(linked) != 1:
            await self.say(room.room_id, "matrix.mod.which_room")
            return
        config = linked[0]
        powers = await self.outbound.powers(config.community.id)
        if powers is None or not powers.is_moderator(sender):
            await self.say(room.room_id, "matrix.mod.not_moderator")
            return
        await self.bot.unlink_community(config.community, actor=sender)
        await self.say(room.room_id, "matrix.mod.unlinked", room=config.name)

    async def _status(self, room_id: str) -> None:
        linked = [
            c for c in await self.store.list_communities(PLATFORM) if c.destination == room_id
        ]
        if not linked:
            await self.say(room_id, "matrix.mod.not_linked")
            return
        lines = [plain_text((await self.bot.backlog_status(c)).spans) for c in linked]
        await self.outbound.send(room_id, notice("\n".join(lines)))

    async def _act(
        self,
        room_id: str,
        sender: str,
        reference: str,
        action: str,
        root: str | None = None,
        *,
        note: str = "",
        share: bool = False,
    ) -> None:
        """A moderator action from a command or a reaction in a moderator room: only for
        reports of a community linked to this very room, by a moderator of that community
        (joined to it now). The answer goes into the alert's thread (``root``: the alert
        event, looked up if not given)."""
        report = await self.store.get_report(reference)
        config = await self.store.get_community(report.community) if report else None
        if report is None or config is None or config.destination != room_id:
            await self.say(room_id, "mod.unknown", reference=reference)
            return
        if root is None:
            root = await self.outbound.find_alert(room_id, alert_key(reference), THREAD_ROOT_PAGES)
        powers = await self.outbound.powers(config.community.id)
        if powers is None or not powers.is_moderator(sender):
            refused = self.content.spans(config.locale, "matrix.mod.not_moderator")
            await self.outbound.send(room_id, in_thread(notice(plain_text(refused)), root))
            return
        if action == "ban":
            text = await self._ban(config, report, sender, share=share)
            await self.outbound.send(room_id, in_thread(notice(text), root))
            return
        if action == "report-server":
            text = await self._report_to_server(config, report, sender)
            await self.outbound.send(room_id, in_thread(notice(text), root))
            return
        if action == "export":
            pack = await self.bot.evidence(config.community, reference, sender)
            if pack is not None:
                await self.outbound.send(room_id, in_thread(preformatted(pack.as_text()), root))
            return
        if action == "note":
            result = await self.bot.add_case_note(config.community, reference, sender, note)
        else:
            result = await self.bot.moderator_action(config.community, reference, action, sender)
        await self.outbound.send(room_id, in_thread(notice(plain_text(result.message.spans)), root))

    async def _report_to_server(
        self, config: CommunityConfig, report: Report, moderator: str
    ) -> str:
        """Report the user the report names, and the messages it links to, to the homeserver's
        admins; the answer for the moderators."""
        assert self.client is not None
        users = user_ids(report.offender)
        messages = message_links(report.evidence)
        values = {"reference": report.reference}
        if not users and not messages:
            return self._text(config.locale, "matrix.mod.server_nothing", **values)
        category = self.content.text(config.locale, f"alert.category.{report.category}")
        reason = self._text(
            config.locale,
            "matrix.server_report.reason",
            category=category,
            reference=report.reference,
            community=config.name,
        )
        done = await report_to_server(self.client, users, messages, reason)
        await self.bot.record(moderator, "server_report", report.reference, config.community)
        return self._text(
            config.locale,
            "matrix.mod.server_reported",
            users=", ".join(done.users) or "-",
            messages=str(done.messages),
            failed=str(done.failed),
            **values,
        )

    async def _ban(
        self, config: CommunityConfig, report: Report, moderator: str, *, share: bool
    ) -> str:
        """Ban the one user the report names from the community room, if the moderator could
        do it themselves and the bot is able to; with ``share``, also write the ban to the
        community's policy list as an m.policy.rule.user rule whose reason is the report's
        category (never its words)."""
        assert self.client is not None
        locale, values = config.locale, {"reference": report.reference}
        named = user_ids(report.offender)
        if len(named) != 1:
            return self._text(locale, "matrix.mod.ban_who", **values)
        target = named[0]
        room_id = config.community.id
        powers = await self.outbound.powers(room_id)
        if (
            powers is None
            or not powers.can_ban(moderator)
            or not powers.outranks(moderator, target)
        ):
            return self._text(locale, "matrix.mod.ban_not_allowed", user=target, **values)
        if not powers.can_ban(self.user_id) or not powers.outranks(self.user_id, target):
            return self._text(locale, "matrix.mod.ban_bot_cannot", user=target, **values)
        category = self.content.text(locale, f"alert.category.{report.category}")
        reason = f"{category} (SafeBot {report.reference})"
        response = await self.client.room_ban(room_id, target, reason=reason)
        if not isinstance(response, RoomBanResponse):
            return self._text(locale, "matrix.mod.ban_failed", user=target, **values)
        await self.bot.record(moderator, "ban", report.reference, config.community)
        text = self._text(locale, "matrix.mod.banned", user=target, **values)
        if not share:
            return text
        if not config.policy_room:
            return text + " " + self._text(locale, "matrix.mod.no_policy_room")
        rule = {"entity": target, "recommendation": "m.ban", "reason": category}
        key = "rule:" + hashlib.sha256(target.encode()).hexdigest()[:32]
        put = await self.client.room_put_state(
            config.policy_room, "m.policy.rule.user", rule, state_key=key
        )
        if not isinstance(put, RoomPutStateResponse):
            return text + " " + self._text(locale, "matrix.mod.policy_failed")
        await self.bot.record(moderator, "policy_rule", report.reference, config.community)
        return text + " " + self._text(locale, "matrix.mod.policy_shared")

    async def _second_room(self, room: MatrixRoom, sender: str, target: str, kind: str) -> None:
        """Set (or, with ``off``, clear) a room of the community linked here: its policy list
        (``policy``) or where the last reminder of a waiting alert goes too (``escalate``)."""
        linked = [
            c for c in await self.store.list_communities(PLATFORM) if c.destination == room.room_id
        ]
        if len(linked) != 1:
            await self.say(room.room_id, "matrix.mod.policy_which")
            return
        config = linked[0]
        powers = await self.outbound.powers(config.community.id)
        if powers is None or not powers.is_moderator(sender):
            await self.say(room.room_id, "matrix.mod.not_moderator", config.locale)
            return
        policy = ""
        if target.lower() != "off":
            resolved = await self._resolve(target)
            if resolved is None or self.client is None or resolved not in self.client.rooms:
                await self.say(room.room_id, "matrix.mod.not_in_room", config.locale)
                return
            policy = resolved
        if kind == "policy":
            changed = replace(config, policy_room=policy)
        else:
            changed = replace(config, escalate_to=policy)
        await self.bot.configure_community(changed, actor=sender)
        key = f"matrix.mod.{kind}_set" if policy else f"matrix.mod.{kind}_off"
        await self.say(room.room_id, key, config.locale)

    def _text(self, locale: str, key: str, **values: str) -> str:
        return plain_text(self.content.spans(locale, key, **values))

    async def on_reaction(self, room: MatrixRoom, event: ReactionEvent) -> None:
        if event.sender == self.user_id or not self.adapter.first_time(event.event_id):
            return
        action = REACTIONS.get(event.key)
        if action is None:
            return
        self.adapter.spawn(self._react(room.room_id, event.sender, event.reacts_to, action))

    async def _react(self, room_id: str, sender: str, target: str, action: str) -> None:
        found = await self._reference_of(room_id, target)
        if found is not None:
            reference, is_alert = found
            # A reaction on the alert itself names the thread root; on a status line (already
            # in the thread) the alert is looked up.
            await self._act(room_id, sender, reference, action, target if is_alert else None)

    async def _reference_of(self, room_id: str, event_id: str) -> tuple[str, bool] | None:
        """The report an event the bot itself sent is about, and whether it is the alert."""
        assert self.client is not None
        response = await self.client.room_get_event(room_id, event_id)
        if not isinstance(response, RoomGetEventResponse):
            return None
        event = response.event
        if isinstance(event, MegolmEvent):
            try:
                event = self.client.decrypt_event(event)
            except EncryptionError:
                return None
        if getattr(event, "sender", None) != self.user_id:
            return None
        content = event.source.get("content", {})
        reference = content.get(REFERENCE_KEY)
        return (reference, ALERT_KEY in content) if isinstance(reference, str) else None
