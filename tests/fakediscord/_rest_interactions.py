"""REST resource: interaction callbacks, followups and the interaction webhook's messages."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from aiohttp import web

from ._core import FakeDiscordCore
from ._models import (
    EPHEMERAL,
    LOADING,
    FakeChannel,
    FakeMessage,
    iter_components,
    number_components,
)
from ._records import ApiError, FakeInteraction, form_error
from ._rest import Req, RestResource, json_response, no_content, route, truthy
from ._rest_messages import MessageWriter, check_len

# Interaction response (callback) types allowed per interaction type.
_ALLOWED_CALLBACKS = {
    1: {1},  # PING -> PONG
    2: {4, 5, 9, 10, 12},  # application command
    3: {4, 5, 6, 7, 9, 10, 12},  # message component
    4: {8},  # autocomplete
    5: {4, 5, 6, 7, 10, 12},  # modal submit
}


def validate_modal(data: dict[str, Any]) -> None:
    check_len("data.title", data.get("title"), 45)
    if not data.get("title"):
        raise form_error("data.title", "BASE_TYPE_REQUIRED", "This field is required")
    check_len("data.custom_id", data.get("custom_id"), 100)
    comps = data.get("components") or []
    if not 1 <= len(comps) <= 5:
        raise form_error(
            "data.components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."
        )
    for c in iter_components(comps):
        if c.get("type") == 4:
            check_len("data.components.label", c.get("label"), 45)
            check_len("data.components.custom_id", c.get("custom_id"), 100)
        if c.get("type") == 18:
            check_len("data.components.label", c.get("label"), 45)


class InteractionResource(RestResource):
    """``/interactions/{interaction_id}/{token}/callback`` and ``/webhooks/{app_id}/{token}``."""

    def __init__(self, fake: FakeDiscordCore, writer: MessageWriter) -> None:
        super().__init__(fake)
        self.writer = writer

    def _interaction_for(self, interaction_id: int, token: str) -> FakeInteraction:
        inter = self.fake.interactions.get(interaction_id)
        if inter is None or inter.token != token:
            raise ApiError(404, 10062, "Unknown interaction")
        return inter

    def _interaction_by_token(self, app_id: int, token: str) -> FakeInteraction:
        if app_id != self.fake.application_id:
            raise ApiError(404, 10015, "Unknown Webhook")
        for inter in self.fake.interactions.values():
            if inter.token == token:
                if not inter.acknowledged:
                    raise ApiError(404, 10015, "Unknown Webhook")
                return inter
        raise ApiError(404, 10015, "Unknown Webhook")

    def _interaction_channel(self, inter: FakeInteraction) -> FakeChannel:
        ch = self.fake.channels.get(inter.channel_id)
        if ch is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return ch

    @route("POST", "/interactions/{interaction_id}/{token}/callback")
    async def r_callback(self, req: Req) -> web.StreamResponse:
        inter = self._interaction_for(req.int_param("interaction_id"), req.params["token"])
        body = req.body if isinstance(req.body, dict) else {}
        loop = asyncio.get_running_loop()
        if inter.acknowledged:
            inter.rejected_callbacks.append(body)
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if loop.time() - inter.created > self.fake.interaction_timeout:
            inter.rejected_callbacks.append(body)
            raise ApiError(404, 10062, "Unknown interaction")
        rtype = int(body.get("type", 0))
        if rtype not in _ALLOWED_CALLBACKS.get(inter.type, set()) or (
            rtype in (6, 7) and inter.message is None
        ):
            inter.rejected_callbacks.append(body)
            raise form_error(
                "type", "INTERACTION_RESPONSE_TYPE_INVALID", "Interaction response type is invalid"
            )
        data = body.get("data") or {}
        channel = self._interaction_channel(inter)
        message: FakeMessage | None = None
        if rtype == 4:
            mtype = 0
            if inter.type == 2:
                mtype = 20 if (inter.payload.get("data") or {}).get("type", 1) == 1 else 23
            message = self.writer.create_bot_message(
                channel, data, req.uploads, via="interaction", mtype=mtype, interaction=inter
            )
            inter.original = message
        elif rtype == 5:
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            mtype = 20 if inter.type == 2 else 0
            payload = self.fake._new_message_payload(
                channel, self.fake.bot, mtype=mtype, flags=flags
            )
            payload["webhook_id"] = str(self.fake.application_id)
            payload["application_id"] = str(self.fake.application_id)
            message = self.fake._store_message(
                channel,
                payload,
                by_bot=True,
                via="interaction",
                body=copy.deepcopy(body),
                interaction_id=inter.id,
            )
            inter.original = message
        elif rtype == 6:
            message = inter.original = self.fake.message(inter.message)
        elif rtype == 7:
            message = self.writer.edit_bot_message(
                self.fake.message(inter.message), data, req.uploads
            )
            inter.original = message
        elif rtype == 8:
            inter.choices = list(data.get("choices") or [])
        elif rtype == 9:
            validate_modal(data)
            inter.modal = copy.deepcopy(data)
            number_components(inter.modal.get("components") or [])
        inter.callbacks.append(copy.deepcopy(body))
        self.fake._notify()
        if not truthy(req.query.get("with_response")):
            return no_content()
        info: dict[str, Any] = {"id": str(inter.id), "type": inter.type}
        resource: dict[str, Any] = {"type": rtype}
        if message is not None:
            info.update(
                {
                    "response_message_id": str(message.id),
                    "response_message_loading": bool(message.flags & LOADING),
                    "response_message_ephemeral": message.ephemeral,
                }
            )
            resource["message"] = message.payload
        return json_response({"interaction": info, "resource": resource})

    @route("POST", "/webhooks/{app_id}/{token}")
    async def r_followup(self, req: Req) -> web.StreamResponse:
        inter = self._interaction_by_token(req.int_param("app_id"), req.params["token"])
        body = req.body if isinstance(req.body, dict) else {}
        channel = self._interaction_channel(inter)
        msg = self.writer.create_bot_message(
            channel, body, req.uploads, via="followup", interaction=inter
        )
        inter.followups.append(msg)
        self.fake._notify()
        if truthy(req.query.get("wait")):
            return json_response(msg.payload)
        return no_content()

    def _webhook_message(self, req: Req) -> tuple[FakeInteraction, FakeMessage]:
        inter = self._interaction_by_token(req.int_param("app_id"), req.params["token"])
        mid = req.params["message_id"]
        if mid == "@original":
            if inter.original is None or inter.original.deleted:
                raise ApiError(404, 10008, "Unknown Message")
            return inter, inter.original
        for msg in inter.followups:
            if msg.id == int(mid) and not msg.deleted:
                return inter, msg
        if (
            inter.original is not None
            and inter.original.id == int(mid)
            and not inter.original.deleted
        ):
            return inter, inter.original
        raise ApiError(404, 10008, "Unknown Message")

    @route("GET", r"/webhooks/{app_id}/{token}/messages/(?P<message_id>@original|\d+)")
    async def r_webhook_get(self, req: Req) -> web.StreamResponse:
        return json_response(self._webhook_message(req)[1].payload)

    @route("PATCH", r"/webhooks/{app_id}/{token}/messages/(?P<message_id>@original|\d+)")
    async def r_webhook_edit(self, req: Req) -> web.StreamResponse:
        inter, msg = self._webhook_message(req)
        body = req.body if isinstance(req.body, dict) else {}
        self.writer.edit_bot_message(msg, body, req.uploads)
        if msg is inter.original:
            inter.original_edits.append(copy.deepcopy(body))
        self.fake._notify()
        return json_response(msg.payload)

    @route("DELETE", r"/webhooks/{app_id}/{token}/messages/(?P<message_id>@original|\d+)")
    async def r_webhook_delete(self, req: Req) -> web.StreamResponse:
        _inter, msg = self._webhook_message(req)
        self.writer.delete_message(msg)
        return no_content()
