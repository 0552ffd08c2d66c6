"""REST resource: channels, typing, message history, the bot's messages and its reactions."""

from __future__ import annotations

from urllib.parse import unquote

from aiohttp import web

from ._core import FakeDiscordCore
from ._models import ATTACH_FILES, MANAGE_MESSAGES, READ_MESSAGE_HISTORY, SEND_MESSAGES
from ._records import ApiError
from ._rest import Req, RestResource, json_response, no_content, route
from ._rest_messages import MessageWriter


class ChannelResource(RestResource):
    """``/channels/{channel_id}`` and the messages and reactions under it."""

    def __init__(self, fake: FakeDiscordCore, writer: MessageWriter) -> None:
        super().__init__(fake)
        self.writer = writer

    @route("GET", "/channels/{channel_id}")
    async def r_get_channel(self, req: Req) -> web.StreamResponse:
        return json_response(self._get_channel(req.int_param("channel_id")).payload())

    @route("DELETE", "/channels/{channel_id}")
    async def r_delete_channel(self, req: Req) -> web.StreamResponse:
        ch = self._get_channel(req.int_param("channel_id"))
        if ch.guild_id is not None:
            self._require(self.fake.guilds[ch.guild_id], 1 << 4, ch)  # MANAGE_CHANNELS
            self.fake.delete_channel(ch)
        return json_response(ch.payload())

    @route("POST", "/channels/{channel_id}/typing")
    async def r_typing(self, req: Req) -> web.StreamResponse:
        ch = self._get_channel(req.int_param("channel_id"))
        self.fake.typing.append(ch.id)
        return no_content()

    @route("GET", "/channels/{channel_id}/messages")
    async def r_history(self, req: Req) -> web.StreamResponse:
        ch = self._get_channel(req.int_param("channel_id"))
        if (
            ch.guild_id is not None
            and self.fake.enforce_permissions
            and not self.fake.guilds[ch.guild_id].permissions_for(self.fake.bot.id, ch)
            & READ_MESSAGE_HISTORY
        ):
            return json_response([])
        limit = max(1, min(100, int(req.query.get("limit", 50))))
        msgs = sorted((m for m in self.fake.channel_messages(ch)), key=lambda m: m.id)
        before, after, around = (req.query.get(k) for k in ("before", "after", "around"))
        if around is not None:
            pivot = int(around)
            older = [m for m in msgs if m.id <= pivot][-((limit + 1) // 2) :]
            newer = [m for m in msgs if m.id > pivot][: limit - len(older)]
            picked = older + newer
        elif after is not None:
            picked = [m for m in msgs if m.id > int(after)][:limit]
        else:
            if before is not None:
                msgs = [m for m in msgs if m.id < int(before)]
            picked = msgs[-limit:]
        return json_response(
            [self.fake._rest_message(m) for m in sorted(picked, key=lambda m: m.id, reverse=True)]
        )

    @route("POST", "/channels/{channel_id}/messages")
    async def r_create_message(self, req: Req) -> web.StreamResponse:
        ch = self._get_channel(req.int_param("channel_id"))
        body = req.body if isinstance(req.body, dict) else {}
        if ch.is_dm:
            assert ch.recipient is not None
            if ch.recipient.dm_closed:
                raise ApiError(403, 50007, "Cannot send messages to this user")
        else:
            guild = self.fake.guilds[ch.guild_id]  # type: ignore[index]
            self._require(guild, SEND_MESSAGES, ch)
            if req.uploads:
                self._require(guild, ATTACH_FILES, ch)
        nonce = body.get("nonce") if body.get("enforce_nonce") else None
        if nonce is not None:
            earlier = self.fake.nonces.find(ch.id, self.fake.bot.id, nonce)
            if earlier is not None and not self.fake.message_index[earlier].deleted:
                return json_response(self.fake.message_index[earlier].payload)
        msg = self.writer.create_bot_message(ch, body, req.uploads, via="rest")
        if nonce is not None:
            self.fake.nonces.remember(ch.id, self.fake.bot.id, nonce, msg.id)
        return json_response(msg.payload)

    @route("GET", "/channels/{channel_id}/messages/{message_id}")
    async def r_get_message(self, req: Req) -> web.StreamResponse:
        ch = self._get_channel(req.int_param("channel_id"))
        return json_response(
            self.fake._rest_message(self._get_message(ch, req.int_param("message_id")))
        )

    @route("PATCH", "/channels/{channel_id}/messages/{message_id}")
    async def r_edit_message(self, req: Req) -> web.StreamResponse:
        ch = self._get_channel(req.int_param("channel_id"))
        msg = self._get_message(ch, req.int_param("message_id"))
        if not msg.by_bot:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        body = req.body if isinstance(req.body, dict) else {}
        return json_response(self.writer.edit_bot_message(msg, body, req.uploads).payload)

    @route("DELETE", "/channels/{channel_id}/messages/{message_id}")
    async def r_delete_message(self, req: Req) -> web.StreamResponse:
        ch = self._get_channel(req.int_param("channel_id"))
        msg = self._get_message(ch, req.int_param("message_id"))
        if not msg.by_bot:
            if ch.is_dm:
                raise ApiError(403, 50003, "Cannot execute action on a DM channel")
            self._require(self.fake.guilds[ch.guild_id], MANAGE_MESSAGES, ch)  # type: ignore[index]
        self.writer.delete_message(msg)
        return no_content()

    @route("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me")
    async def r_add_reaction(self, req: Req) -> web.StreamResponse:
        ch = self._get_channel(req.int_param("channel_id"))
        msg = self._get_message(ch, req.int_param("message_id"))
        self.fake.reactions.append(
            {"message_id": msg.id, "emoji": unquote(req.params["emoji"]), "added": True}
        )
        return no_content()

    @route("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me")
    async def r_remove_reaction(self, req: Req) -> web.StreamResponse:
        ch = self._get_channel(req.int_param("channel_id"))
        msg = self._get_message(ch, req.int_param("message_id"))
        self.fake.reactions.append(
            {"message_id": msg.id, "emoji": unquote(req.params["emoji"]), "added": False}
        )
        return no_content()
