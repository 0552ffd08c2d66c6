"""How the bot's messages are written, for every resource that writes them (channel messages,
interaction responses and followups): validation of a message body and :class:`MessageWriter`."""

from __future__ import annotations

import copy
from typing import Any

from ._core import FakeDiscordCore
from ._models import (
    EPHEMERAL,
    LOADING,
    FakeChannel,
    FakeMessage,
    iter_components,
    number_components,
    utcnow_iso,
)
from ._records import ApiError, FakeInteraction, form_error
from ._rest import Upload


# ---------------------------------------------------------------------------- validation
def check_len(path: str, value: Any, limit: int) -> None:
    if value is not None and len(str(value)) > limit:
        raise form_error(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def validate_embeds(embeds: list[dict[str, Any]], prefix: str = "embeds") -> None:
    if len(embeds) > 10:
        raise form_error(prefix, "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    for i, e in enumerate(embeds):
        p = f"{prefix}.{i}"
        total = 0
        check_len(f"{p}.title", e.get("title"), 256)
        check_len(f"{p}.description", e.get("description"), 4096)
        fields = e.get("fields") or []
        if len(fields) > 25:
            raise form_error(
                f"{p}.fields", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
            )
        for j, f in enumerate(fields):
            check_len(f"{p}.fields.{j}.name", f.get("name"), 256)
            check_len(f"{p}.fields.{j}.value", f.get("value"), 1024)
            if not f.get("name") or not f.get("value"):
                raise form_error(f"{p}.fields.{j}", "BASE_TYPE_REQUIRED", "This field is required")
            total += len(str(f.get("name"))) + len(str(f.get("value")))
        footer = e.get("footer") or {}
        author = e.get("author") or {}
        check_len(f"{p}.footer.text", footer.get("text"), 2048)
        check_len(f"{p}.author.name", author.get("name"), 256)
        for v in (e.get("title"), e.get("description"), footer.get("text"), author.get("name")):
            total += len(str(v)) if v else 0
        if total > 6000:
            raise form_error(p, "EMBED_SIZE_TOO_LARGE", "Embed size exceeds maximum size of 6000")


def validate_components(components: list[dict[str, Any]], flags: int) -> None:
    v2 = bool(flags & (1 << 15))
    if not v2 and len(components) > 5:
        raise form_error("components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
    seen: set[str] = set()
    for i, row in enumerate(components):
        if not v2:
            if row.get("type") != 1:
                raise form_error(
                    f"components.{i}.type",
                    "UNION_TYPE_CHOICES",
                    'Value of field "type" must be one of (1,).',
                )
            children = row.get("components") or []
            if not 1 <= len(children) <= 5:
                raise form_error(
                    f"components.{i}.components",
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 5 in length.",
                )
            if any(c.get("type") != 2 for c in children) and len(children) > 1:
                raise form_error(
                    f"components.{i}.components",
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                )
    for c in iter_components(components):
        cid = c.get("custom_id")
        if cid is not None:
            check_len("components.custom_id", cid, 100)
            if cid in seen:
                raise form_error(
                    "components",
                    "COMPONENT_CUSTOM_ID_DUPLICATED",
                    "Component custom id cannot be duplicated",
                )
            seen.add(cid)
        if c.get("type") == 2:
            check_len("components.label", c.get("label"), 80)
            if c.get("style") == 5:
                if not c.get("url"):
                    raise form_error(
                        "components.url", "BASE_TYPE_REQUIRED", "This field is required"
                    )
            elif c.get("style") != 6 and cid is None:
                raise form_error(
                    "components.custom_id", "BASE_TYPE_REQUIRED", "This field is required"
                )


def validate_message_body(body: dict[str, Any], *, uploads: int = 0, creating: bool = True) -> None:
    content = body.get("content")
    if content is not None:
        check_len("content", content, 2000)
    embeds = body.get("embeds") or []
    validate_embeds(embeds)
    components = body.get("components") or []
    validate_components(components, int(body.get("flags") or 0))
    if creating and not (
        content
        or embeds
        or components
        or uploads
        or body.get("sticker_ids")
        or body.get("poll")
        or body.get("attachments")
    ):
        raise ApiError(400, 50006, "Cannot send an empty message")


class MessageWriter:
    """Creates, edits and deletes the bot's messages in the fake's state (``self.fake``); one
    instance is shared by the channel and the interaction resources."""

    def __init__(self, fake: FakeDiscordCore) -> None:
        self.fake = fake

    def _build_attachments(
        self, channel_id: int, body: dict[str, Any], uploads: list[Upload]
    ) -> list[dict[str, Any]]:
        meta = {
            int(a["id"]): a for a in body.get("attachments") or [] if str(a.get("id", "")).isdigit()
        }
        out = []
        for up in uploads:
            info = meta.get(up.index, {})
            out.append(
                self.fake._attachment_payload(
                    channel_id,
                    info.get("filename") or up.filename,
                    up.data,
                    up.content_type,
                    description=info.get("description"),
                    title=info.get("title"),
                )
            )
        return out

    def _apply_message_body(
        self,
        msg_payload: dict[str, Any],
        body: dict[str, Any],
        channel: FakeChannel,
        new_attachments: list[dict[str, Any]],
        *,
        creating: bool,
    ) -> None:
        if "content" in body:
            msg_payload["content"] = body["content"] or ""
        if "embeds" in body:
            embeds = copy.deepcopy(body["embeds"] or [])
            for e in embeds:
                e.setdefault("type", "rich")
                e.setdefault("content_scan_version", 0)
            msg_payload["embeds"] = embeds
        if "components" in body:
            comps = copy.deepcopy(body["components"] or [])
            number_components(comps)
            msg_payload["components"] = comps
        if "flags" in body and body["flags"] is not None:
            keep = msg_payload.get("flags", 0) & EPHEMERAL
            new = int(body["flags"])
            msg_payload["flags"] = (new if creating else (new & ~EPHEMERAL) | keep) & ~LOADING
        if "tts" in body:
            msg_payload["tts"] = bool(body["tts"])
        if body.get("nonce") is not None:
            msg_payload["nonce"] = body["nonce"]
        if body.get("poll") is not None:
            msg_payload["poll"] = copy.deepcopy(body["poll"])
        if creating:
            msg_payload["attachments"] = new_attachments
        elif "attachments" in body or new_attachments:
            keep_ids = {str(a.get("id")) for a in body.get("attachments") or []}
            kept = [a for a in msg_payload.get("attachments", []) if a["id"] in keep_ids]
            msg_payload["attachments"] = kept + new_attachments
        ref = body.get("message_reference")
        if creating and ref:
            target = self.fake.message_index.get(int(ref.get("message_id", 0) or 0))
            if target is None or target.deleted:
                if ref.get("fail_if_not_exists", True):
                    raise form_error(
                        "message_reference",
                        "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                        "Unknown message",
                    )
            else:
                msg_payload["message_reference"] = {
                    "type": int(ref.get("type", 0)),
                    "message_id": str(target.id),
                    "channel_id": str(target.channel_id),
                    **({"guild_id": str(target.guild_id)} if target.guild_id else {}),
                }
                msg_payload["referenced_message"] = copy.deepcopy(target.payload)
                msg_payload["referenced_message"].pop("referenced_message", None)
                msg_payload["type"] = 19
        self.fake._refresh_mentions(msg_payload, channel)

    def create_bot_message(
        self,
        channel: FakeChannel,
        body: dict[str, Any],
        uploads: list[Upload],
        *,
        via: Any,
        mtype: int = 0,
        interaction: FakeInteraction | None = None,
    ) -> FakeMessage:
        validate_message_body(body, uploads=len(uploads))
        payload = self.fake._new_message_payload(channel, self.fake.bot, mtype=mtype)
        attachments = self._build_attachments(channel.id, body, uploads)
        self._apply_message_body(payload, body, channel, attachments, creating=True)
        if interaction is not None:
            payload["webhook_id"] = str(self.fake.application_id)
            payload["application_id"] = str(self.fake.application_id)
            meta: dict[str, Any] = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": self.fake.users[interaction.user_id].payload(),
                "authorizing_integration_owners": interaction.payload.get(
                    "authorizing_integration_owners", {}
                ),
            }
            if interaction.message is not None:
                meta["interacted_message_id"] = str(interaction.message.id)
            if via == "followup" and interaction.original is not None:
                meta["original_response_message_id"] = str(interaction.original.id)
            if interaction.type == 2:
                meta["name"] = (interaction.payload.get("data") or {}).get("name")
            payload["interaction_metadata"] = meta
        return self.fake._store_message(
            channel,
            payload,
            by_bot=True,
            via=via,
            body=copy.deepcopy(body),
            files=[(u.filename, u.data) for u in uploads],
            interaction_id=None if interaction is None else interaction.id,
        )

    def edit_bot_message(
        self, msg: FakeMessage, body: dict[str, Any], uploads: list[Upload]
    ) -> FakeMessage:
        validate_message_body(body, uploads=len(uploads), creating=False)
        channel = self.fake.channels.get(msg.channel_id)
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        attachments = self._build_attachments(msg.channel_id, body, uploads)
        self._apply_message_body(msg.payload, body, channel, attachments, creating=False)
        msg.payload["flags"] = msg.payload.get("flags", 0) & ~LOADING
        msg.payload["edited_timestamp"] = utcnow_iso()
        msg.edits.append(copy.deepcopy(body))
        self.fake._dispatch_message_update(msg)
        return msg

    def delete_message(self, msg: FakeMessage) -> None:
        msg.deleted = True
        self.fake.deleted_messages.append(msg)
        data: dict[str, Any] = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
        if not msg.ephemeral:
            self.fake.dispatch("MESSAGE_DELETE", data)
        self.fake._notify()
