"""REST half of the fake: routing, recording, failure injection and the route handlers."""

from __future__ import annotations

import asyncio
import copy
import datetime as _dt
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from ._core import FakeDiscordCore
from ._models import (
    ADMINISTRATOR,
    ATTACH_FILES,
    BAN_MEMBERS,
    EPHEMERAL,
    KICK_MEMBERS,
    LOADING,
    MANAGE_MESSAGES,
    MANAGE_NICKNAMES,
    MANAGE_ROLES,
    MODERATE_MEMBERS,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    FakeChannel,
    FakeGuild,
    FakeMessage,
    iter_components,
    number_components,
    utcnow_iso,
)
from ._records import ApiError, FakeInteraction, RecordedRequest, form_error

JSON_HEADERS = {"Content-Type": "application/json"}
_RECORDED_HEADERS = ("Authorization", "Content-Type", "User-Agent", "X-Audit-Log-Reason")

# Interaction response (callback) types allowed per interaction type.
_ALLOWED_CALLBACKS = {
    1: {1},  # PING -> PONG
    2: {4, 5, 9, 10, 12},  # application command
    3: {4, 5, 6, 7, 9, 10, 12},  # message component
    4: {8},  # autocomplete
    5: {4, 5, 6, 7, 10, 12},  # modal submit
}


@dataclass
class Upload:
    index: int
    filename: str
    data: bytes
    content_type: str | None


@dataclass
class Req:
    request: web.Request
    params: dict[str, str]
    body: Any
    uploads: list[Upload] = field(default_factory=list)
    record: RecordedRequest | None = None

    @property
    def query(self) -> Any:
        return self.request.query

    @property
    def reason(self) -> str | None:
        raw = self.request.headers.get("X-Audit-Log-Reason")
        return None if raw is None else unquote(raw)

    def int_param(self, name: str) -> int:
        return int(self.params[name])


Handler = Callable[["RestMixin", Req], Awaitable[web.StreamResponse]]


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    # NB: exactly "application/json" -- aiohttp's json_response adds "; charset=utf-8", which
    # makes discord.py treat the body as text.
    hdrs = dict(JSON_HEADERS)
    if headers:
        hdrs.update(headers)
    return web.Response(body=json.dumps(data).encode(), status=status, headers=hdrs)


def no_content() -> web.Response:
    return web.Response(status=204)


def _bucket_key(path: str) -> str:
    return re.sub(r"\d{15,}", "{id}", path)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


# ---------------------------------------------------------------------------- validation
def _check_len(path: str, value: Any, limit: int) -> None:
    if value is not None and len(str(value)) > limit:
        raise form_error(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def validate_embeds(embeds: list[dict[str, Any]], prefix: str = "embeds") -> None:
    if len(embeds) > 10:
        raise form_error(prefix, "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    for i, e in enumerate(embeds):
        p = f"{prefix}.{i}"
        total = 0
        _check_len(f"{p}.title", e.get("title"), 256)
        _check_len(f"{p}.description", e.get("description"), 4096)
        fields = e.get("fields") or []
        if len(fields) > 25:
            raise form_error(
                f"{p}.fields", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
            )
        for j, f in enumerate(fields):
            _check_len(f"{p}.fields.{j}.name", f.get("name"), 256)
            _check_len(f"{p}.fields.{j}.value", f.get("value"), 1024)
            if not f.get("name") or not f.get("value"):
                raise form_error(f"{p}.fields.{j}", "BASE_TYPE_REQUIRED", "This field is required")
            total += len(str(f.get("name"))) + len(str(f.get("value")))
        footer = e.get("footer") or {}
        author = e.get("author") or {}
        _check_len(f"{p}.footer.text", footer.get("text"), 2048)
        _check_len(f"{p}.author.name", author.get("name"), 256)
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
            _check_len("components.custom_id", cid, 100)
            if cid in seen:
                raise form_error(
                    "components",
                    "COMPONENT_CUSTOM_ID_DUPLICATED",
                    "Component custom id cannot be duplicated",
                )
            seen.add(cid)
        if c.get("type") == 2:
            _check_len("components.label", c.get("label"), 80)
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
        _check_len("content", content, 2000)
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


def validate_modal(data: dict[str, Any]) -> None:
    _check_len("data.title", data.get("title"), 45)
    if not data.get("title"):
        raise form_error("data.title", "BASE_TYPE_REQUIRED", "This field is required")
    _check_len("data.custom_id", data.get("custom_id"), 100)
    comps = data.get("components") or []
    if not 1 <= len(comps) <= 5:
        raise form_error(
            "data.components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."
        )
    for c in iter_components(comps):
        if c.get("type") == 4:
            _check_len("data.components.label", c.get("label"), 45)
            _check_len("data.components.custom_id", c.get("custom_id"), 100)
        if c.get("type") == 18:
            _check_len("data.components.label", c.get("label"), 45)


_COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")


def validate_commands(commands: list[dict[str, Any]]) -> None:
    if len(commands) > 100:
        raise form_error("_errors", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
    seen: set[tuple[str, int]] = set()
    for i, cmd in enumerate(commands):
        ctype = int(cmd.get("type", 1))
        name = cmd.get("name") or ""
        if ctype == 1:
            if not _COMMAND_NAME.match(name) or name != name.lower():
                raise form_error(
                    f"{i}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                )
            desc = cmd.get("description") or ""
            if not 1 <= len(desc) <= 100:
                raise form_error(
                    f"{i}.description",
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )
        elif not 1 <= len(name) <= 32:
            raise form_error(
                f"{i}.name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length."
            )
        if (name, ctype) in seen:
            raise form_error(
                f"{i}.name",
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                "Application command names must be unique",
            )
        seen.add((name, ctype))
        if len(cmd.get("options") or []) > 25:
            raise form_error(
                f"{i}.options", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
            )


# ---------------------------------------------------------------------------- routing
ROUTES: list[tuple[str, re.Pattern[str], str]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    rx = (
        pattern.replace("{channel_id}", r"(?P<channel_id>\d+)")
        .replace("{message_id}", r"(?P<message_id>\d+)")
        .replace("{guild_id}", r"(?P<guild_id>\d+)")
        .replace("{user_id}", r"(?P<user_id>\d+)")
        .replace("{role_id}", r"(?P<role_id>\d+)")
        .replace("{app_id}", r"(?P<app_id>\d+)")
        .replace("{command_id}", r"(?P<command_id>\d+)")
        .replace("{interaction_id}", r"(?P<interaction_id>\d+)")
        .replace("{token}", r"(?P<token>[^/]+)")
        .replace("{emoji}", r"(?P<emoji>[^/]+)")
    )

    def deco(fn: Handler) -> Handler:
        ROUTES.append((method, re.compile(rx + "$"), fn.__name__))
        return fn

    return deco


class RestMixin(FakeDiscordCore):
    # ------------------------------------------------------------ entry point
    async def _rest_entry(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body, uploads = await self._read_body(request)
        headers = {k: request.headers[k] for k in _RECORDED_HEADERS if k in request.headers}
        if "X-Audit-Log-Reason" in headers:
            headers["X-Audit-Log-Reason"] = unquote(headers["X-Audit-Log-Reason"])
        record = RecordedRequest(
            method=request.method,
            path=path,
            query=dict(request.query),
            json=body,
            headers=headers,
            files=[(u.filename, u.data) for u in uploads],
        )
        self.requests.append(record)
        try:
            response = await self._route(request, path, body, uploads, record)
        except ApiError as err:
            response = json_response(err.body(), err.status)
            record.response = err.body()
        record.status = response.status
        if self.ratelimit_headers and not record.injected and response.status != 429:
            # Consistent set (discord.py needs Reset-After whenever Remaining is present);
            # the bucket never runs dry, so it never makes discord.py wait.
            response.headers.update(
                {
                    "X-RateLimit-Limit": "50",
                    "X-RateLimit-Remaining": "49",
                    "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
                    "X-RateLimit-Reset-After": "1.000",
                    "X-RateLimit-Bucket": hashlib.sha1(
                        f"{request.method} {_bucket_key(path)}".encode()
                    ).hexdigest()[:16],
                }
            )
        self._notify()
        return response

    async def _route(
        self,
        request: web.Request,
        path: str,
        body: Any,
        uploads: list[Upload],
        record: RecordedRequest,
    ) -> web.StreamResponse:
        for rule in self._failures:
            if rule.matches(request.method, path):
                rule.times -= 1
                rule.hits += 1
                record.injected = True
                record.response = rule.json
                return json_response(rule.json, rule.status, rule.headers)
        handler_name: str | None = None
        params: dict[str, str] = {}
        method_mismatch = False
        for method, rx, name in ROUTES:
            m = rx.match(path)
            if m is None:
                continue
            if method != request.method:
                method_mismatch = True
                continue
            handler_name, params = name, m.groupdict()
            break
        if handler_name is None:
            self.unknown_requests.append(record)
            if method_mismatch:
                raise ApiError(405, 0, "405: Method Not Allowed")
            raise ApiError(404, 0, "404: Not Found")
        public = path.startswith(("/interactions/", "/webhooks/"))
        if not public and request.headers.get("Authorization") != f"Bot {self.token}":
            raise ApiError(401, 0, "401: Unauthorized")
        handler: Callable[[Req], Awaitable[web.StreamResponse]] = getattr(self, handler_name)
        response = await handler(Req(request, params, body, uploads, record))
        if isinstance(response, web.Response) and response.body is not None:
            try:
                record.response = json.loads(response.body)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                record.response = None
        return response

    async def _read_body(self, request: web.Request) -> tuple[Any, list[Upload]]:
        ctype = request.headers.get("Content-Type", "")
        if ctype.startswith("multipart/"):
            payload: Any = None
            uploads: list[Upload] = []
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                name = getattr(part, "name", None) or ""
                data = await part.read()  # type: ignore[union-attr]
                if name == "payload_json":
                    payload = json.loads(bytes(data).decode())
                else:
                    m = re.match(r"files\[(\d+)\]", name)
                    index = int(m.group(1)) if m else len(uploads)
                    uploads.append(
                        Upload(
                            index=index,
                            filename=getattr(part, "filename", None) or name,
                            data=bytes(data),
                            content_type=part.headers.get("Content-Type"),
                        )
                    )
            return payload, uploads
        raw = await request.read()
        if not raw:
            return None, []
        try:
            return json.loads(raw), []
        except ValueError:
            return raw.decode(errors="replace"), []

    async def _cdn_entry(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.cdn_requests.append(path)
        self._notify()
        item = self._cdn.get(path)
        if item is None:
            return web.Response(status=404, text="Not Found")
        data, ctype = item
        return web.Response(body=data, headers={"Content-Type": ctype})

    # ------------------------------------------------------------ helpers
    def _get_channel(self, channel_id: int) -> FakeChannel:
        ch = self.channels.get(channel_id)
        if ch is None:
            raise ApiError(404, 10003, "Unknown Channel")
        if ch.guild_id is not None:
            guild = self.guilds[ch.guild_id]
            if self.bot.id not in guild.members:
                raise ApiError(403, 50001, "Missing Access")
            if (
                self.enforce_permissions
                and not guild.permissions_for(self.bot.id, ch) & VIEW_CHANNEL
            ):
                raise ApiError(403, 50001, "Missing Access")
        return ch

    def _get_guild(self, guild_id: int) -> FakeGuild:
        guild = self.guilds.get(guild_id)
        if guild is None or self.bot.id not in guild.members:
            raise ApiError(404, 10004, "Unknown Guild")
        return guild

    def _require(self, guild: FakeGuild, perm: int, channel: FakeChannel | None = None) -> None:
        if self.enforce_permissions and not guild.permissions_for(self.bot.id, channel) & perm:
            raise ApiError(403, 50013, "Missing Permissions")

    def _require_hierarchy(self, guild: FakeGuild, target_id: int) -> None:
        if not self.enforce_permissions:
            return
        if target_id == guild.owner_id or guild.top_role_position(
            target_id
        ) >= guild.top_role_position(self.bot.id):
            raise ApiError(403, 50013, "Missing Permissions")

    def _get_message(self, channel: FakeChannel, message_id: int) -> FakeMessage:
        msg = self.message_index.get(message_id)
        if msg is None or msg.deleted or msg.channel_id != channel.id or msg.ephemeral:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

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
                self._attachment_payload(
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
            target = self.message_index.get(int(ref.get("message_id", 0) or 0))
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
        self._refresh_mentions(msg_payload, channel)

    def _create_bot_message(
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
        payload = self._new_message_payload(channel, self.bot, mtype=mtype)
        attachments = self._build_attachments(channel.id, body, uploads)
        self._apply_message_body(payload, body, channel, attachments, creating=True)
        if interaction is not None:
            payload["webhook_id"] = str(self.application_id)
            payload["application_id"] = str(self.application_id)
            meta: dict[str, Any] = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": self.users[interaction.user_id].payload(),
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
        return self._store_message(
            channel,
            payload,
            by_bot=True,
            via=via,
            body=copy.deepcopy(body),
            files=[(u.filename, u.data) for u in uploads],
            interaction_id=None if interaction is None else interaction.id,
        )

    def _edit_bot_message(
        self, msg: FakeMessage, body: dict[str, Any], uploads: list[Upload]
    ) -> FakeMessage:
        validate_message_body(body, uploads=len(uploads), creating=False)
        channel = self.channels.get(msg.channel_id)
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        attachments = self._build_attachments(msg.channel_id, body, uploads)
        self._apply_message_body(msg.payload, body, channel, attachments, creating=False)
        msg.payload["flags"] = msg.payload.get("flags", 0) & ~LOADING
        msg.payload["edited_timestamp"] = utcnow_iso()
        msg.edits.append(copy.deepcopy(body))
        self._dispatch_message_update(msg)
        return msg

    def _delete_message(self, msg: FakeMessage) -> None:
        msg.deleted = True
        self.deleted_messages.append(msg)
        data: dict[str, Any] = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
        if not msg.ephemeral:
            self.dispatch("MESSAGE_DELETE", data)
        self._notify()

    # ============================================================ routes: users / app / gateway
    @route("GET", "/users/@me")
    async def r_get_me(self, req: Req) -> web.StreamResponse:
        data = self.bot.payload()
        data.update({"verified": True, "mfa_enabled": False, "locale": "en-US", "email": None})
        return json_response(data)

    @route("GET", "/oauth2/applications/@me")
    async def r_get_app(self, req: Req) -> web.StreamResponse:
        data = dict(self.application)
        data["bot"] = self.bot.payload()
        data["approximate_guild_count"] = sum(
            1 for g in self.guilds.values() if self.bot.id in g.members
        )
        return json_response(data)

    @route("GET", "/applications/@me")
    async def r_get_app2(self, req: Req) -> web.StreamResponse:
        return await self.r_get_app(req)

    @route("GET", "/gateway")
    async def r_gateway(self, req: Req) -> web.StreamResponse:
        return json_response({"url": self.gateway_url})

    @route("GET", "/gateway/bot")
    async def r_gateway_bot(self, req: Req) -> web.StreamResponse:
        return json_response(
            {
                "url": self.gateway_url,
                "shards": self.gateway_shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    @route("GET", "/users/{user_id}")
    async def r_get_user(self, req: Req) -> web.StreamResponse:
        user = self.users.get(req.int_param("user_id"))
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return json_response(user.payload())

    @route("POST", "/users/@me/channels")
    async def r_create_dm(self, req: Req) -> web.StreamResponse:
        body = req.body or {}
        try:
            uid = int(body["recipient_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise form_error(
                "recipient_id", "BASE_TYPE_REQUIRED", "This field is required"
            ) from exc
        if uid not in self.users:
            raise ApiError(400, 50033, "Invalid Recipient(s)")
        return json_response(self.dm_channel(uid).payload())

    # ============================================================ routes: channels / messages
    @route("GET", "/channels/{channel_id}")
    async def r_get_channel(self, req: Req) -> web.StreamResponse:
        return json_response(self._get_channel(req.int_param("channel_id")).payload())

    @route("DELETE", "/channels/{channel_id}")
    async def r_delete_channel(self, req: Req) -> web.StreamResponse:
        ch = self._get_channel(req.int_param("channel_id"))
        if ch.guild_id is not None:
            self._require(self.guilds[ch.guild_id], 1 << 4, ch)  # MANAGE_CHANNELS
            self.delete_channel(ch)
        return json_response(ch.payload())

    @route("POST", "/channels/{channel_id}/typing")
    async def r_typing(self, req: Req) -> web.StreamResponse:
        ch = self._get_channel(req.int_param("channel_id"))
        self.typing.append(ch.id)
        return no_content()

    @route("GET", "/channels/{channel_id}/messages")
    async def r_history(self, req: Req) -> web.StreamResponse:
        ch = self._get_channel(req.int_param("channel_id"))
        if (
            ch.guild_id is not None
            and self.enforce_permissions
            and not self.guilds[ch.guild_id].permissions_for(self.bot.id, ch) & READ_MESSAGE_HISTORY
        ):
            return json_response([])
        limit = max(1, min(100, int(req.query.get("limit", 50))))
        msgs = sorted((m for m in self.channel_messages(ch)), key=lambda m: m.id)
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
            [self._rest_message(m) for m in sorted(picked, key=lambda m: m.id, reverse=True)]
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
            guild = self.guilds[ch.guild_id]  # type: ignore[index]
            self._require(guild, SEND_MESSAGES, ch)
            if req.uploads:
                self._require(guild, ATTACH_FILES, ch)
        nonce = body.get("nonce") if body.get("enforce_nonce") else None
        if nonce is not None:
            earlier = self.nonces.find(ch.id, self.bot.id, nonce)
            if earlier is not None and not self.message_index[earlier].deleted:
                return json_response(self.message_index[earlier].payload)
        msg = self._create_bot_message(ch, body, req.uploads, via="rest")
        if nonce is not None:
            self.nonces.remember(ch.id, self.bot.id, nonce, msg.id)
        return json_response(msg.payload)

    @route("GET", "/channels/{channel_id}/messages/{message_id}")
    async def r_get_message(self, req: Req) -> web.StreamResponse:
        ch = self._get_channel(req.int_param("channel_id"))
        return json_response(self._rest_message(self._get_message(ch, req.int_param("message_id"))))

    @route("PATCH", "/channels/{channel_id}/messages/{message_id}")
    async def r_edit_message(self, req: Req) -> web.StreamResponse:
        ch = self._get_channel(req.int_param("channel_id"))
        msg = self._get_message(ch, req.int_param("message_id"))
        if not msg.by_bot:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        body = req.body if isinstance(req.body, dict) else {}
        return json_response(self._edit_bot_message(msg, body, req.uploads).payload)

    @route("DELETE", "/channels/{channel_id}/messages/{message_id}")
    async def r_delete_message(self, req: Req) -> web.StreamResponse:
        ch = self._get_channel(req.int_param("channel_id"))
        msg = self._get_message(ch, req.int_param("message_id"))
        if not msg.by_bot:
            if ch.is_dm:
                raise ApiError(403, 50003, "Cannot execute action on a DM channel")
            self._require(self.guilds[ch.guild_id], MANAGE_MESSAGES, ch)  # type: ignore[index]
        self._delete_message(msg)
        return no_content()

    @route("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me")
    async def r_add_reaction(self, req: Req) -> web.StreamResponse:
        ch = self._get_channel(req.int_param("channel_id"))
        msg = self._get_message(ch, req.int_param("message_id"))
        self.reactions.append(
            {"message_id": msg.id, "emoji": unquote(req.params["emoji"]), "added": True}
        )
        return no_content()

    @route("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me")
    async def r_remove_reaction(self, req: Req) -> web.StreamResponse:
        ch = self._get_channel(req.int_param("channel_id"))
        msg = self._get_message(ch, req.int_param("message_id"))
        self.reactions.append(
            {"message_id": msg.id, "emoji": unquote(req.params["emoji"]), "added": False}
        )
        return no_content()

    # ============================================================ routes: guilds
    @route("GET", "/guilds/{guild_id}")
    async def r_get_guild(self, req: Req) -> web.StreamResponse:
        guild = self._get_guild(req.int_param("guild_id"))
        return json_response(guild.rest_payload(with_counts=_truthy(req.query.get("with_counts"))))

    @route("GET", "/guilds/{guild_id}/roles")
    async def r_get_roles(self, req: Req) -> web.StreamResponse:
        guild = self._get_guild(req.int_param("guild_id"))
        return json_response([r.payload() for r in guild.roles.values()])

    @route("GET", "/guilds/{guild_id}/roles/member-counts")
    async def r_role_member_counts(self, req: Req) -> web.StreamResponse:
        """How many members hold each role (not @everyone); needs Manage Roles."""
        guild = self._get_guild(req.int_param("guild_id"))
        self._require(guild, MANAGE_ROLES)
        counts = {rid: 0 for rid in guild.roles if rid != guild.id}
        for member in guild.members.values():
            for rid in member.role_ids:
                if rid in counts:
                    counts[rid] += 1
        return json_response({str(rid): n for rid, n in counts.items()})

    @route("GET", "/guilds/{guild_id}/channels")
    async def r_get_guild_channels(self, req: Req) -> web.StreamResponse:
        guild = self._get_guild(req.int_param("guild_id"))
        return json_response([c.payload() for c in guild.channels.values()])

    @route("GET", "/guilds/{guild_id}/members")
    async def r_list_members(self, req: Req) -> web.StreamResponse:
        guild = self._get_guild(req.int_param("guild_id"))
        limit = max(1, min(1000, int(req.query.get("limit", 1))))
        after = int(req.query.get("after", 0))
        members = sorted(
            (m for m in guild.members.values() if m.user.id > after), key=lambda m: m.user.id
        )
        return json_response([m.payload() for m in members[:limit]])

    @route("GET", "/guilds/{guild_id}/members/{user_id}")
    async def r_get_member(self, req: Req) -> web.StreamResponse:
        guild = self._get_guild(req.int_param("guild_id"))
        member = guild.members.get(req.int_param("user_id"))
        if member is None:
            raise ApiError(404, 10007, "Unknown Member")
        return json_response(member.payload())

    @route("PATCH", "/guilds/{guild_id}/members/{user_id}")
    async def r_edit_member(self, req: Req) -> web.StreamResponse:
        guild = self._get_guild(req.int_param("guild_id"))
        uid = req.int_param("user_id")
        member = guild.members.get(uid)
        if member is None:
            raise ApiError(404, 10007, "Unknown Member")
        body = req.body if isinstance(req.body, dict) else {}
        if "communication_disabled_until" in body:
            self._require(guild, MODERATE_MEMBERS)
            self._require_hierarchy(guild, uid)
            if self.enforce_permissions and guild.base_permissions(uid) & ADMINISTRATOR:
                raise ApiError(403, 50013, "Missing Permissions")
            until = body["communication_disabled_until"]
            if until is not None:
                when = _dt.datetime.fromisoformat(until)
                if when - _dt.datetime.now(_dt.UTC) > _dt.timedelta(days=28, minutes=1):
                    raise form_error(
                        "communication_disabled_until",
                        "COMMUNICATION_DISABLED_TIMESTAMP_TOO_LONG",
                        "Timeouts can only be up to 28 days",
                    )
            member.communication_disabled_until = until
            self.audit_log.append(
                {
                    "action": "timeout",
                    "guild_id": guild.id,
                    "user_id": uid,
                    "until": until,
                    "reason": req.reason,
                }
            )
        if "nick" in body:
            if uid != self.bot.id:
                self._require(guild, MANAGE_NICKNAMES)
                self._require_hierarchy(guild, uid)
            member.nick = body["nick"]
        if "roles" in body:
            self._require(guild, MANAGE_ROLES)
            member.role_ids = [int(r) for r in body["roles"]]
        if set(body) - {"communication_disabled_until"}:
            self.audit_log.append(
                {
                    "action": "member_update",
                    "guild_id": guild.id,
                    "user_id": uid,
                    "changes": body,
                    "reason": req.reason,
                }
            )
        self.dispatch("GUILD_MEMBER_UPDATE", {**member.payload(), "guild_id": str(guild.id)})
        return json_response(member.payload())

    @route("DELETE", "/guilds/{guild_id}/members/{user_id}")
    async def r_kick(self, req: Req) -> web.StreamResponse:
        guild = self._get_guild(req.int_param("guild_id"))
        uid = req.int_param("user_id")
        member = guild.members.get(uid)
        if member is None:
            raise ApiError(404, 10007, "Unknown Member")
        self._require(guild, KICK_MEMBERS)
        self._require_hierarchy(guild, uid)
        del guild.members[uid]
        self.audit_log.append(
            {"action": "kick", "guild_id": guild.id, "user_id": uid, "reason": req.reason}
        )
        self.dispatch(
            "GUILD_MEMBER_REMOVE", {"guild_id": str(guild.id), "user": member.user.payload()}
        )
        return no_content()

    @route("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}")
    async def r_add_role(self, req: Req) -> web.StreamResponse:
        return self._change_role(req, add=True)

    @route("DELETE", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}")
    async def r_remove_role(self, req: Req) -> web.StreamResponse:
        return self._change_role(req, add=False)

    def _change_role(self, req: Req, *, add: bool) -> web.StreamResponse:
        guild = self._get_guild(req.int_param("guild_id"))
        member = guild.members.get(req.int_param("user_id"))
        if member is None:
            raise ApiError(404, 10007, "Unknown Member")
        rid = req.int_param("role_id")
        if rid not in guild.roles:
            raise ApiError(404, 10011, "Unknown Role")
        self._require(guild, MANAGE_ROLES)
        if self.enforce_permissions and guild.roles[rid].position >= guild.top_role_position(
            self.bot.id
        ):
            raise ApiError(403, 50013, "Missing Permissions")
        if add and rid not in member.role_ids:
            member.role_ids.append(rid)
        if not add and rid in member.role_ids:
            member.role_ids.remove(rid)
        self.audit_log.append(
            {
                "action": "role_add" if add else "role_remove",
                "guild_id": guild.id,
                "user_id": member.id,
                "role_id": rid,
                "reason": req.reason,
            }
        )
        self.dispatch("GUILD_MEMBER_UPDATE", {**member.payload(), "guild_id": str(guild.id)})
        return no_content()

    @route("GET", "/guilds/{guild_id}/bans")
    async def r_list_bans(self, req: Req) -> web.StreamResponse:
        guild = self._get_guild(req.int_param("guild_id"))
        self._require(guild, BAN_MEMBERS)
        return json_response(list(guild.bans.values()))

    @route("GET", "/guilds/{guild_id}/bans/{user_id}")
    async def r_get_ban(self, req: Req) -> web.StreamResponse:
        guild = self._get_guild(req.int_param("guild_id"))
        self._require(guild, BAN_MEMBERS)
        ban = guild.bans.get(req.int_param("user_id"))
        if ban is None:
            raise ApiError(404, 10026, "Unknown Ban")
        return json_response(ban)

    @route("PUT", "/guilds/{guild_id}/bans/{user_id}")
    async def r_ban(self, req: Req) -> web.StreamResponse:
        guild = self._get_guild(req.int_param("guild_id"))
        uid = req.int_param("user_id")
        user = self.users.get(uid)
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        self._require(guild, BAN_MEMBERS)
        if uid in guild.members:
            self._require_hierarchy(guild, uid)
        body = req.body if isinstance(req.body, dict) else {}
        guild.bans[uid] = {"user": user.payload(), "reason": req.reason}
        self.audit_log.append(
            {
                "action": "ban",
                "guild_id": guild.id,
                "user_id": uid,
                "reason": req.reason,
                "delete_message_seconds": _int_or_none(
                    req.query.get("delete_message_seconds", body.get("delete_message_seconds"))
                ),
            }
        )
        self.dispatch("GUILD_BAN_ADD", {"guild_id": str(guild.id), "user": user.payload()})
        if guild.members.pop(uid, None) is not None:
            self.dispatch(
                "GUILD_MEMBER_REMOVE", {"guild_id": str(guild.id), "user": user.payload()}
            )
        return no_content()

    @route("DELETE", "/guilds/{guild_id}/bans/{user_id}")
    async def r_unban(self, req: Req) -> web.StreamResponse:
        guild = self._get_guild(req.int_param("guild_id"))
        uid = req.int_param("user_id")
        self._require(guild, BAN_MEMBERS)
        ban = guild.bans.pop(uid, None)
        if ban is None:
            raise ApiError(404, 10026, "Unknown Ban")
        self.audit_log.append(
            {"action": "unban", "guild_id": guild.id, "user_id": uid, "reason": req.reason}
        )
        self.dispatch("GUILD_BAN_REMOVE", {"guild_id": str(guild.id), "user": ban["user"]})
        return no_content()

    # ============================================================ routes: application commands
    def _check_app(self, req: Req) -> None:
        if req.int_param("app_id") != self.application_id:
            raise ApiError(403, 50001, "Missing Access")

    def _command_scope(self, req: Req) -> int | None:
        self._check_app(req)
        if "guild_id" in req.params:
            return self._get_guild(req.int_param("guild_id")).id
        return None

    def _store_command(
        self, scope: int | None, cmd: dict[str, Any], existing: list[dict[str, Any]]
    ) -> dict[str, Any]:
        ctype = int(cmd.get("type", 1))
        prev = next(
            (c for c in existing if c["name"] == cmd.get("name") and c["type"] == ctype), None
        )
        stored = {
            "id": prev["id"] if prev else str(self.snowflake()),
            "application_id": str(self.application_id),
            "version": str(self.snowflake()),
            "type": ctype,
            "name": cmd["name"],
            "name_localizations": cmd.get("name_localizations"),
            "description": cmd.get("description", "") if ctype == 1 else "",
            "description_localizations": cmd.get("description_localizations"),
            "options": copy.deepcopy(cmd.get("options") or []),
            "default_member_permissions": cmd.get("default_member_permissions"),
            "dm_permission": cmd.get("dm_permission", True) if scope is None else None,
            "contexts": cmd.get("contexts"),
            "integration_types": cmd.get("integration_types") or [0],
            "nsfw": bool(cmd.get("nsfw", False)),
        }
        if scope is not None:
            stored["guild_id"] = str(scope)
        return stored

    @route("GET", "/applications/{app_id}/commands")
    async def r_get_global_commands(self, req: Req) -> web.StreamResponse:
        return json_response(copy.deepcopy(self.commands.get(self._command_scope(req), [])))

    @route("GET", "/applications/{app_id}/guilds/{guild_id}/commands")
    async def r_get_guild_commands(self, req: Req) -> web.StreamResponse:
        return await self.r_get_global_commands(req)

    @route("PUT", "/applications/{app_id}/commands")
    async def r_put_global_commands(self, req: Req) -> web.StreamResponse:
        scope = self._command_scope(req)
        body = req.body if isinstance(req.body, list) else []
        validate_commands(body)
        existing = self.commands.get(scope, [])
        self.commands[scope] = [self._store_command(scope, c, existing) for c in body]
        return json_response(copy.deepcopy(self.commands[scope]))

    @route("PUT", "/applications/{app_id}/guilds/{guild_id}/commands")
    async def r_put_guild_commands(self, req: Req) -> web.StreamResponse:
        return await self.r_put_global_commands(req)

    @route("POST", "/applications/{app_id}/commands")
    async def r_upsert_global_command(self, req: Req) -> web.StreamResponse:
        scope = self._command_scope(req)
        body = req.body if isinstance(req.body, dict) else {}
        validate_commands([body])
        existing = self.commands.setdefault(scope, [])
        stored = self._store_command(scope, body, existing)
        self.commands[scope] = [c for c in existing if c["id"] != stored["id"]] + [stored]
        return json_response(copy.deepcopy(stored), 201)

    @route("POST", "/applications/{app_id}/guilds/{guild_id}/commands")
    async def r_upsert_guild_command(self, req: Req) -> web.StreamResponse:
        return await self.r_upsert_global_command(req)

    def _find_command_by_id(self, req: Req) -> tuple[int | None, dict[str, Any]]:
        scope = self._command_scope(req)
        for c in self.commands.get(scope, []):
            if c["id"] == req.params["command_id"]:
                return scope, c
        raise ApiError(404, 10063, "Unknown application command")

    @route("GET", "/applications/{app_id}/commands/{command_id}")
    async def r_get_command(self, req: Req) -> web.StreamResponse:
        return json_response(copy.deepcopy(self._find_command_by_id(req)[1]))

    @route("GET", "/applications/{app_id}/guilds/{guild_id}/commands/{command_id}")
    async def r_get_guild_command(self, req: Req) -> web.StreamResponse:
        return await self.r_get_command(req)

    @route("DELETE", "/applications/{app_id}/commands/{command_id}")
    async def r_delete_command(self, req: Req) -> web.StreamResponse:
        scope, cmd = self._find_command_by_id(req)
        self.commands[scope] = [c for c in self.commands[scope] if c is not cmd]
        return no_content()

    @route("DELETE", "/applications/{app_id}/guilds/{guild_id}/commands/{command_id}")
    async def r_delete_guild_command(self, req: Req) -> web.StreamResponse:
        return await self.r_delete_command(req)

    # ============================================================ routes: interactions / webhooks
    def _interaction_for(self, interaction_id: int, token: str) -> FakeInteraction:
        inter = self.interactions.get(interaction_id)
        if inter is None or inter.token != token:
            raise ApiError(404, 10062, "Unknown interaction")
        return inter

    def _interaction_by_token(self, app_id: int, token: str) -> FakeInteraction:
        if app_id != self.application_id:
            raise ApiError(404, 10015, "Unknown Webhook")
        for inter in self.interactions.values():
            if inter.token == token:
                if not inter.acknowledged:
                    raise ApiError(404, 10015, "Unknown Webhook")
                return inter
        raise ApiError(404, 10015, "Unknown Webhook")

    def _interaction_channel(self, inter: FakeInteraction) -> FakeChannel:
        ch = self.channels.get(inter.channel_id)
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
        if loop.time() - inter.created > self.interaction_timeout:
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
            message = self._create_bot_message(
                channel, data, req.uploads, via="interaction", mtype=mtype, interaction=inter
            )
            inter.original = message
        elif rtype == 5:
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            mtype = 20 if inter.type == 2 else 0
            payload = self._new_message_payload(channel, self.bot, mtype=mtype, flags=flags)
            payload["webhook_id"] = str(self.application_id)
            payload["application_id"] = str(self.application_id)
            message = self._store_message(
                channel,
                payload,
                by_bot=True,
                via="interaction",
                body=copy.deepcopy(body),
                interaction_id=inter.id,
            )
            inter.original = message
        elif rtype == 6:
            message = inter.original = self.message(inter.message)
        elif rtype == 7:
            message = self._edit_bot_message(self.message(inter.message), data, req.uploads)
            inter.original = message
        elif rtype == 8:
            inter.choices = list(data.get("choices") or [])
        elif rtype == 9:
            validate_modal(data)
            inter.modal = copy.deepcopy(data)
            number_components(inter.modal.get("components") or [])
        inter.callbacks.append(copy.deepcopy(body))
        self._notify()
        if not _truthy(req.query.get("with_response")):
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
        msg = self._create_bot_message(
            channel, body, req.uploads, via="followup", interaction=inter
        )
        inter.followups.append(msg)
        self._notify()
        if _truthy(req.query.get("wait")):
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
        self._edit_bot_message(msg, body, req.uploads)
        if msg is inter.original:
            inter.original_edits.append(copy.deepcopy(body))
        self._notify()
        return json_response(msg.payload)

    @route("DELETE", r"/webhooks/{app_id}/{token}/messages/(?P<message_id>@original|\d+)")
    async def r_webhook_delete(self, req: Req) -> web.StreamResponse:
        _inter, msg = self._webhook_message(req)
        self._delete_message(msg)
        return no_content()
