"""State, builders, gateway sessions/dispatch and waiting helpers shared by the fake's parts."""

# ruff: noqa: ASYNC109  -- the wait helpers take `timeout=` by design (test ergonomics)
from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from ._models import (
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    DM,
    EPHEMERAL,
    GUILD_TEXT,
    INTENT_DIRECT_MESSAGE_REACTIONS,
    INTENT_DIRECT_MESSAGE_TYPING,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_MESSAGE_REACTIONS,
    INTENT_GUILD_MESSAGE_TYPING,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILD_MODERATION,
    INTENT_GUILD_PRESENCES,
    INTENT_GUILDS,
    INTENT_MESSAGE_CONTENT,
    PRIVILEGED_INTENTS,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    SnowflakeGenerator,
    as_id,
    as_permissions,
    utcnow_iso,
)
from ._nonce import NonceMemory
from ._records import (
    ClientCrashed,
    ClientLoggedError,
    FailureRule,
    FakeInteraction,
    RecordedRequest,
)

T = TypeVar("T")
log = logging.getLogger("fakediscord")

_MESSAGE_EVENTS = {"MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK"}
_REACTION_EVENTS = {
    "MESSAGE_REACTION_ADD",
    "MESSAGE_REACTION_REMOVE",
    "MESSAGE_REACTION_REMOVE_ALL",
    "MESSAGE_REACTION_REMOVE_EMOJI",
}
_GUILDS_EVENTS = {
    "GUILD_CREATE",
    "GUILD_UPDATE",
    "GUILD_DELETE",
    "GUILD_ROLE_CREATE",
    "GUILD_ROLE_UPDATE",
    "GUILD_ROLE_DELETE",
    "CHANNEL_CREATE",
    "CHANNEL_UPDATE",
    "CHANNEL_DELETE",
    "CHANNEL_PINS_UPDATE",
    "THREAD_CREATE",
    "THREAD_UPDATE",
    "THREAD_DELETE",
    "THREAD_LIST_SYNC",
    "THREAD_MEMBER_UPDATE",
}
_MEMBER_EVENTS = {
    "GUILD_MEMBER_ADD",
    "GUILD_MEMBER_UPDATE",
    "GUILD_MEMBER_REMOVE",
    "THREAD_MEMBERS_UPDATE",
}
_MODERATION_EVENTS = {"GUILD_BAN_ADD", "GUILD_BAN_REMOVE", "GUILD_AUDIT_LOG_ENTRY_CREATE"}


def required_intent(event: str, data: Mapping[str, Any]) -> int | None:
    """The intent a session needs to receive ``event`` (None: always delivered)."""
    in_guild = data.get("guild_id") is not None
    if event in _MESSAGE_EVENTS:
        return INTENT_GUILD_MESSAGES if in_guild else INTENT_DIRECT_MESSAGES
    if event in _REACTION_EVENTS:
        return INTENT_GUILD_MESSAGE_REACTIONS if in_guild else INTENT_DIRECT_MESSAGE_REACTIONS
    if event == "TYPING_START":
        return INTENT_GUILD_MESSAGE_TYPING if in_guild else INTENT_DIRECT_MESSAGE_TYPING
    if event in _GUILDS_EVENTS:
        return INTENT_GUILDS
    if event in _MEMBER_EVENTS:
        return INTENT_GUILD_MEMBERS
    if event in _MODERATION_EVENTS:
        return INTENT_GUILD_MODERATION
    if event == "PRESENCE_UPDATE":
        return INTENT_GUILD_PRESENCES
    return None


class Flushed:
    """Awaitable returned by ``dispatch``: completes once the frames were written."""

    def __init__(self, futures: Iterable[asyncio.Future[None] | None]) -> None:
        self._futures = [f for f in futures if f is not None]

    def __await__(self) -> Generator[Any, None, None]:
        if self._futures:
            yield from asyncio.gather(*self._futures).__await__()

    def done(self) -> bool:
        return all(f.done() for f in self._futures)


@dataclass(eq=False)
class GatewayConnection:
    ws: web.WebSocketResponse
    session: GatewaySession | None = None
    queue: asyncio.Queue[tuple[str, asyncio.Future[None]] | None] = field(
        default_factory=asyncio.Queue
    )
    writer: asyncio.Task[None] | None = None
    server_closed: bool = False
    received: list[dict[str, Any]] = field(default_factory=list)

    def send(self, text: str) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.ws.closed:
            fut.set_result(None)
        else:
            self.queue.put_nowait((text, fut))
        return fut

    async def run_writer(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            text, fut = item
            try:
                if not self.ws.closed:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError) as exc:  # peer went away mid-write
                log.debug("gateway write failed: %r", exc)
            finally:
                if not fut.done():
                    fut.set_result(None)

    def stop_writer(self) -> None:
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if item is not None and not item[1].done():
                item[1].set_result(None)
        self.queue.put_nowait(None)


@dataclass(eq=False)
class GatewaySession:
    id: str
    shard_id: int
    shard_count: int
    sharded: bool  # whether IDENTIFY carried a "shard" field
    intents: int
    identify: dict[str, Any]
    seq: int = 0
    buffer: list[tuple[int, str]] = field(default_factory=list)
    conn: GatewayConnection | None = None


class FakeDiscordCore:
    """State + plumbing. See :class:`fakediscord.FakeDiscord` for the public API."""

    def __init__(
        self,
        *,
        bot_name: str = "SafeBot",
        token: str = "fake-bot-token",
        owner_name: str = "app-owner",
        gateway_shards: int = 1,
        heartbeat_interval: int = 41250,
        interaction_timeout: float = 3.0,
        enforce_permissions: bool = True,
        emulate_message_content_intent: bool = True,
        require_registered_commands: bool = True,
        allowed_privileged_intents: int = PRIVILEGED_INTENTS,
        echo_bot_messages: bool = True,
        ratelimit_headers: bool = False,
    ) -> None:
        self.snowflake = SnowflakeGenerator()
        self.token = token
        self.gateway_shards = gateway_shards
        self.heartbeat_interval = heartbeat_interval
        self.interaction_timeout = interaction_timeout
        self.enforce_permissions = enforce_permissions
        self.emulate_message_content_intent = emulate_message_content_intent
        self.require_registered_commands = require_registered_commands
        self.allowed_privileged_intents = allowed_privileged_intents
        self.echo_bot_messages = echo_bot_messages
        self.ratelimit_headers = ratelimit_headers

        # --- world state ---
        self.users: dict[int, FakeUser] = {}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.dm_channels: dict[int, FakeChannel] = {}  # user id -> DM channel with the bot
        self.messages: dict[int, list[FakeMessage]] = {}  # channel id -> visible messages
        self.message_index: dict[int, FakeMessage] = {}
        self.commands: dict[int | None, list[dict[str, Any]]] = {None: []}  # None = global
        self.owner = self.add_user(owner_name)
        self.bot = self.add_user(bot_name, bot=True)
        self.application: dict[str, Any] = {
            "id": str(self.bot.id),
            "name": bot_name,
            "icon": None,
            "description": f"{bot_name} (fake)",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": secrets.token_hex(32),
            "flags": 0,
            "owner": self.owner.payload(),
            "team": None,
            "rpc_origins": [],
            "interactions_endpoint_url": None,
            "tags": [],
            "redirect_uris": [],
            "approximate_guild_count": 0,
        }

        # --- what the bot did ---
        self.requests: list[RecordedRequest] = []
        self.unknown_requests: list[RecordedRequest] = []
        self.cdn_requests: list[str] = []
        self.sent_messages: list[FakeMessage] = []
        self.deleted_messages: list[FakeMessage] = []
        self.reactions: list[dict[str, Any]] = []
        self.typing: list[int] = []  # channel ids the bot triggered typing in
        self.audit_log: list[dict[str, Any]] = []
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.presence_updates: list[dict[str, Any]] = []
        self.gateway_received: list[dict[str, Any]] = []  # every frame a client sent (no tokens)
        self.interactions: dict[int, FakeInteraction] = {}
        self.client_errors: list[logging.LogRecord] = []
        self.fail_on_client_error = True

        # --- plumbing ---
        self._failures: list[FailureRule] = []
        self.nonces = NonceMemory()  # enforce_nonce on message creates
        self._cdn: dict[str, tuple[bytes, str]] = {}
        self._sessions: dict[str, GatewaySession] = {}
        self._connections: set[GatewayConnection] = set()
        self._changed = asyncio.Event()
        self._watched: set[asyncio.Task[Any]] = set()
        self._consumed: set[int] = set()
        self._action_cursor = 0
        self._request_cursor = 0
        self.last_dispatch = Flushed(())
        self.port = 0

    # ------------------------------------------------------------------ urls
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def application_id(self) -> int:
        return self.bot.id

    # ------------------------------------------------------------------ builders
    def add_user(self, name: str, *, bot: bool = False, global_name: str | None = None) -> FakeUser:
        user = FakeUser(id=self.snowflake(), username=name, global_name=global_name, bot=bot)
        self.users[user.id] = user
        return user

    def add_guild(
        self,
        name: str,
        owner_id: Any = None,
        *,
        with_bot: bool = True,
        bot_permissions: Any = DEFAULT_BOT_PERMISSIONS,
        everyone_permissions: Any = DEFAULT_EVERYONE_PERMISSIONS,
        channels: Iterable[str] = ("general",),
    ) -> FakeGuild:
        """Create a guild (owner defaults to the app owner) with @everyone, text channels and,
        unless ``with_bot=False``, the bot as a member holding a managed role. If a client is
        connected, the bot "joins" it: GUILD_CREATE is dispatched."""
        owner = self.owner if owner_id is None else self.users[as_id(owner_id)]
        gid = self.snowflake()
        guild = FakeGuild(id=gid, name=name, owner_id=owner.id)
        guild.roles[gid] = FakeRole(
            id=gid,
            guild_id=gid,
            name="@everyone",
            permissions=as_permissions(everyone_permissions),
            position=0,
        )
        self.guilds[gid] = guild
        guild.members[owner.id] = FakeMember(user=owner, guild_id=gid)
        for ch in channels:
            self.add_channel(guild, ch, _dispatch=False)
        if with_bot:
            role = FakeRole(
                id=self.snowflake(),
                guild_id=gid,
                name=self.bot.username,
                permissions=as_permissions(bot_permissions),
                position=1,
                managed=True,
                bot_id=self.bot.id,
            )
            guild.roles[role.id] = role
            guild.members[self.bot.id] = FakeMember(user=self.bot, guild_id=gid, role_ids=[role.id])
            self._dispatch_guild_create(guild)
        return guild

    def bot_role(self, guild: Any) -> FakeRole:
        g = self.guild(guild)
        return next(r for r in g.roles.values() if r.bot_id == self.bot.id)

    def add_bot_to_guild(self, guild: Any, *, permissions: Any = DEFAULT_BOT_PERMISSIONS) -> None:
        g = self.guild(guild)
        role = FakeRole(
            id=self.snowflake(),
            guild_id=g.id,
            name=self.bot.username,
            permissions=as_permissions(permissions),
            position=max(r.position for r in g.roles.values()) + 1,
            managed=True,
            bot_id=self.bot.id,
        )
        g.roles[role.id] = role
        g.members[self.bot.id] = FakeMember(user=self.bot, guild_id=g.id, role_ids=[role.id])
        self._dispatch_guild_create(g)

    def add_role(
        self,
        guild: Any,
        name: str,
        permissions: Any = 0,
        *,
        position: int | None = None,
        hoist: bool = False,
        mentionable: bool = False,
    ) -> FakeRole:
        """Add a role. Default position: just below the bot's role (so the bot can moderate
        members holding it); pass a higher ``position`` to out-rank the bot."""
        g = self.guild(guild)
        if position is None:
            bot_pos = g.top_role_position(self.bot.id)
            position = max(bot_pos, 1)
            for r in g.roles.values():  # shift the bot's role (and above) up by one
                if r.position >= position and r.id != g.id:
                    r.position += 1
        role = FakeRole(
            id=self.snowflake(),
            guild_id=g.id,
            name=name,
            permissions=as_permissions(permissions),
            position=position,
            hoist=hoist,
            mentionable=mentionable,
        )
        g.roles[role.id] = role
        self.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(g.id), "role": role.payload()})
        return role

    def add_member(
        self,
        guild: Any,
        user: Any,
        roles: Iterable[Any] = (),
        *,
        nick: str | None = None,
        joined_at: str | None = None,
    ) -> FakeMember:
        g = self.guild(guild)
        u = self.user(user)
        member = FakeMember(
            user=u,
            guild_id=g.id,
            role_ids=[as_id(r) for r in roles],
            nick=nick,
            joined_at=joined_at or utcnow_iso(),
        )
        g.members[u.id] = member
        self.dispatch("GUILD_MEMBER_ADD", {**member.payload(), "guild_id": str(g.id)})
        return member

    def remove_member(self, guild: Any, user: Any) -> None:
        g = self.guild(guild)
        u = self.user(user)
        g.members.pop(u.id, None)
        self.dispatch("GUILD_MEMBER_REMOVE", {"guild_id": str(g.id), "user": u.payload()})

    def add_channel(
        self,
        guild: Any,
        name: str,
        *,
        overwrites: Mapping[Any, tuple[Any, Any]] | Iterable[Mapping[str, Any]] = (),
        type: int = GUILD_TEXT,
        topic: str | None = None,
        parent: Any = None,
        _dispatch: bool = True,
    ) -> FakeChannel:
        """Add a guild channel. ``overwrites`` maps a FakeRole/FakeUser/FakeMember (or raw dicts
        ``{"id", "type": 0 role|1 member, "allow", "deny"}``) to ``(allow, deny)`` bitfields."""
        g = self.guild(guild)
        channel = FakeChannel(
            id=self.snowflake(),
            type=type,
            name=name,
            guild_id=g.id,
            position=len(g.channels),
            overwrites=self._normalize_overwrites(overwrites),
            topic=topic,
            parent_id=None if parent is None else as_id(parent),
        )
        g.channels[channel.id] = channel
        self.channels[channel.id] = channel
        self.messages[channel.id] = []
        if _dispatch:
            self.dispatch("CHANNEL_CREATE", channel.payload())
        return channel

    def set_overwrites(
        self,
        channel: Any,
        overwrites: Mapping[Any, tuple[Any, Any]] | Iterable[Mapping[str, Any]],
    ) -> None:
        ch = self.channel(channel)
        ch.overwrites = self._normalize_overwrites(overwrites)
        self.dispatch("CHANNEL_UPDATE", ch.payload())

    def _normalize_overwrites(
        self, overwrites: Mapping[Any, tuple[Any, Any]] | Iterable[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if isinstance(overwrites, Mapping):
            for target, (allow, deny) in overwrites.items():
                kind = 0 if isinstance(target, FakeRole) else 1
                out.append(
                    {
                        "id": str(as_id(target)),
                        "type": kind,
                        "allow": str(as_permissions(allow)),
                        "deny": str(as_permissions(deny)),
                    }
                )
        else:
            for o in overwrites:
                out.append(
                    {
                        "id": str(o["id"]),
                        "type": int(o["type"]),
                        "allow": str(as_permissions(o.get("allow", 0))),
                        "deny": str(as_permissions(o.get("deny", 0))),
                    }
                )
        return out

    def delete_channel(self, channel: Any) -> None:
        ch = self.channel(channel)
        self.channels.pop(ch.id, None)
        if ch.guild_id is not None:
            self.guilds[ch.guild_id].channels.pop(ch.id, None)
            self.dispatch("CHANNEL_DELETE", ch.payload())

    def set_dm_closed(self, user: Any, closed: bool = True) -> None:
        """While closed, the bot's POSTs into this user's DM fail with 403 / 50007."""
        self.user(user).dm_closed = closed

    def dm_channel(self, user: Any) -> FakeChannel:
        """The DM channel between ``user`` and the bot (created on first use)."""
        u = self.user(user)
        ch = self.dm_channels.get(u.id)
        if ch is None:
            ch = FakeChannel(id=self.snowflake(), type=DM, recipient=u)
            self.dm_channels[u.id] = ch
            self.channels[ch.id] = ch
            self.messages[ch.id] = []
        return ch

    # --------------------------------------------------------------- lookups
    def user(self, user: Any) -> FakeUser:
        if isinstance(user, FakeUser):
            return user
        if isinstance(user, FakeMember):
            return user.user
        return self.users[as_id(user)]

    def guild(self, guild: Any) -> FakeGuild:
        if isinstance(guild, FakeGuild):
            return guild
        return self.guilds[as_id(guild)]

    def channel(self, channel: Any) -> FakeChannel:
        if isinstance(channel, FakeChannel):
            return channel
        return self.channels[as_id(channel)]

    def message(self, message: Any) -> FakeMessage:
        """Latest version of a stored message (accepts FakeMessage, payload dict or id)."""
        if isinstance(message, FakeMessage):
            return self.message_index[message.id]
        if isinstance(message, Mapping):
            return self.message_index[int(message["id"])]
        return self.message_index[as_id(message)]

    def channel_messages(self, channel: Any) -> list[FakeMessage]:
        return [m for m in self.messages.get(self.channel(channel).id, []) if not m.deleted]

    @property
    def global_commands(self) -> list[dict[str, Any]]:
        return self.commands[None]

    def guild_commands(self, guild: Any) -> list[dict[str, Any]]:
        return self.commands.get(self.guild(guild).id, [])

    def shard_for(self, guild_id: int | None, shard_count: int) -> int:
        if guild_id is None:
            return 0
        return (guild_id >> 22) % shard_count

    # ------------------------------------------------------------ failures
    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int = 500,
        *,
        times: int = 1,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float = 0.01,
        code: int | None = None,
    ) -> FailureRule:
        """Answer the next ``times`` matching REST calls with ``status`` instead of handling
        them. ``path_regex`` is searched in the path relative to /api/v10 (e.g.
        ``r"/channels/\\d+/messages$"``); ``method`` may be "*".

        Defaults: 429 -> ``{"retry_after": retry_after, "global": false}`` + ``Via`` header (so
        discord.py retries); 403 -> code 50013 Missing Permissions; 5xx -> ``{"code": 0}``.
        Note discord.py sleeps ``1 + 2*try`` seconds before retrying a 5xx.
        """
        hdrs = dict(headers or {})
        body = json
        if body is None:
            if status == 429:
                body = {
                    "message": "You are being rate limited.",
                    "retry_after": retry_after,
                    "global": False,
                    "code": 0,
                }
                hdrs.setdefault("Via", "1.1 google")
                hdrs.setdefault("Retry-After", str(max(1, round(retry_after))))
                hdrs.setdefault("X-RateLimit-Scope", "user")
            elif status == 403:
                body = {"message": "Missing Permissions", "code": 50013 if code is None else code}
            elif status == 404:
                body = {"message": "404: Not Found", "code": 0 if code is None else code}
            elif status == 400:
                body = {"message": "400: Bad Request", "code": 0 if code is None else code}
            else:
                body = {"message": f"{status}: Server Error", "code": 0 if code is None else code}
        rule = FailureRule(
            method=method.upper(),
            path_regex=re.compile(path_regex),
            status=status,
            times=times,
            json=body,
            headers=hdrs,
        )
        self._failures.append(rule)
        return rule

    # ------------------------------------------------------------ gateway dispatch
    def _active_sessions(self) -> list[GatewaySession]:
        return list(self._sessions.values())

    def _strip_content(self, session: GatewaySession, event: str, data: dict[str, Any]) -> Any:
        if event not in ("MESSAGE_CREATE", "MESSAGE_UPDATE"):
            return data
        return self._content_view(data, bool(session.intents & INTENT_MESSAGE_CONTENT))

    def _content_view(self, data: dict[str, Any], has_intent: bool) -> dict[str, Any]:
        """What an app without the MESSAGE_CONTENT intent sees of a guild message: no content,
        embeds, attachments, components or poll -- unless it authored it or is mentioned."""
        if not self.emulate_message_content_intent or has_intent or data.get("guild_id") is None:
            return data
        author = data.get("author") or {}
        mentioned = any(str(m.get("id")) == str(self.bot.id) for m in data.get("mentions", []))
        if str(author.get("id")) == str(self.bot.id) or mentioned:
            return data
        stripped = dict(data)
        stripped.update({"content": "", "embeds": [], "attachments": [], "components": []})
        stripped.pop("poll", None)
        return stripped

    def _rest_message(self, msg: FakeMessage) -> dict[str, Any]:
        """REST views of messages honour the app's (portal) MESSAGE_CONTENT setting."""
        return self._content_view(
            msg.payload, bool(self.allowed_privileged_intents & INTENT_MESSAGE_CONTENT)
        )

    def dispatch(
        self,
        event: str,
        data: Mapping[str, Any],
        *,
        shard_id: int | None = None,
        ignore_intents: bool = False,
    ) -> Flushed:
        """Push a gateway DISPATCH to every session that should get it (guild events go to the
        guild's shard, guild-less ones to shard 0; intents are honoured unless
        ``ignore_intents``). Returns a future, done when the frames were written (awaiting it
        is optional). Sessions that are disconnected buffer the event for RESUME."""
        data = dict(data)
        guild_id_raw = data.get("guild_id")
        if guild_id_raw is None and event in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"):
            guild_id_raw = data.get("id")
        guild_id = None if guild_id_raw is None else int(guild_id_raw)
        futures: list[asyncio.Future[None] | None] = []
        needed = None if ignore_intents else required_intent(event, data)
        for session in self._active_sessions():
            target = (
                shard_id if shard_id is not None else self.shard_for(guild_id, session.shard_count)
            )
            if session.shard_id != target:
                continue
            if needed is not None and not session.intents & needed:
                continue
            futures.append(
                self._send_dispatch(session, event, self._strip_content(session, event, data))
            )
        self._notify()
        self.last_dispatch = Flushed(futures)
        return self.last_dispatch

    def _send_dispatch(
        self, session: GatewaySession, event: str, data: Any
    ) -> asyncio.Future[None] | None:
        session.seq += 1
        frame = json.dumps({"op": 0, "t": event, "s": session.seq, "d": data})
        session.buffer.append((session.seq, frame))
        if len(session.buffer) > 2000:
            del session.buffer[:1000]
        if session.conn is not None:
            return session.conn.send(frame)
        return None

    def _dispatch_guild_create(self, guild: FakeGuild) -> None:
        for session in self._active_sessions():
            if session.shard_id != self.shard_for(guild.id, session.shard_count):
                continue
            self._send_dispatch(session, "GUILD_CREATE", self._guild_create_payload(guild, session))
        self._notify()

    def _guild_create_payload(self, guild: FakeGuild, session: GatewaySession) -> dict[str, Any]:
        me = guild.members[self.bot.id]
        return guild.gateway_payload(
            joined_at=me.joined_at,
            include_all_members=bool(session.intents & INTENT_GUILD_MEMBERS),
            bot_id=self.bot.id,
        )

    # ------------------------------------------------------------ messages
    def _mentions(self, content: str, guild: FakeGuild | None) -> tuple[list[Any], list[str]]:
        users: list[Any] = []
        seen: set[int] = set()
        for m in re.finditer(r"<@!?(\d+)>", content):
            uid = int(m.group(1))
            if uid in seen or uid not in self.users:
                continue
            seen.add(uid)
            data = self.users[uid].payload()
            if guild is not None and uid in guild.members:
                data["member"] = guild.members[uid].payload(with_user=False)
            users.append(data)
        roles = [m.group(1) for m in re.finditer(r"<@&(\d+)>", content)]
        if guild is not None:
            roles = [r for r in roles if int(r) in guild.roles]
        return users, roles

    def _new_message_payload(
        self,
        channel: FakeChannel,
        author: FakeUser,
        *,
        content: str = "",
        mtype: int = 0,
        flags: int = 0,
    ) -> dict[str, Any]:
        guild = self.guilds.get(channel.guild_id) if channel.guild_id is not None else None
        payload: dict[str, Any] = {
            "id": str(self.snowflake()),
            "channel_id": str(channel.id),
            "author": author.payload(),
            "content": content,
            "timestamp": utcnow_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": False,
            "type": mtype,
            "flags": flags,
        }
        if guild is not None:
            payload["guild_id"] = str(guild.id)
            if author.id in guild.members:
                payload["member"] = guild.members[author.id].payload(with_user=False)
        self._refresh_mentions(payload, channel)
        return payload

    def _refresh_mentions(self, payload: dict[str, Any], channel: FakeChannel) -> None:
        guild = self.guilds.get(channel.guild_id) if channel.guild_id is not None else None
        users, roles = self._mentions(payload.get("content") or "", guild)
        payload["mentions"] = users
        payload["mention_roles"] = roles

    def _store_message(
        self,
        channel: FakeChannel,
        payload: dict[str, Any],
        *,
        by_bot: bool,
        via: Any,
        body: dict[str, Any] | None = None,
        files: list[tuple[str, bytes]] | None = None,
        interaction_id: int | None = None,
    ) -> FakeMessage:
        msg = FakeMessage(
            payload=payload,
            by_bot=by_bot,
            via=via,
            body=body,
            files=files or [],
            interaction_id=interaction_id,
        )
        self.message_index[msg.id] = msg
        if by_bot:
            self.sent_messages.append(msg)
        if not msg.ephemeral:
            self.messages.setdefault(channel.id, []).append(msg)
            channel.last_message_id = msg.id
            if not by_bot or self.echo_bot_messages:
                self.dispatch("MESSAGE_CREATE", copy.deepcopy(payload))
        self._notify()
        return msg

    def _dispatch_message_update(self, msg: FakeMessage) -> None:
        if not msg.ephemeral:
            self.dispatch("MESSAGE_UPDATE", copy.deepcopy(msg.payload))
        self._notify()

    def _add_cdn_file(
        self, channel_id: int, attachment_id: int, filename: str, data: bytes, ctype: str
    ) -> str:
        path = f"/attachments/{channel_id}/{attachment_id}/{filename}"
        self._cdn[path] = (data, ctype)
        return f"{self.base_url}{path}"

    def _attachment_payload(
        self, channel_id: int, filename: str, data: bytes, content_type: str | None, **extra: Any
    ) -> dict[str, Any]:
        aid = self.snowflake()
        ctype = content_type or _guess_type(filename)
        url = self._add_cdn_file(channel_id, aid, filename, data, ctype)
        payload = {
            "id": str(aid),
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": ctype,
            "ephemeral": False,
            "flags": 0,
        }
        if ctype.startswith("image/"):
            payload.update({"width": 1, "height": 1})
        payload.update({k: v for k, v in extra.items() if v is not None})
        return payload

    # ------------------------------------------------------------ waiting
    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def watch(self, task: asyncio.Task[Any]) -> None:
        """Make every wait of this fake fail fast (ClientCrashed) if ``task`` ends."""
        self._watched.add(task)
        task.add_done_callback(lambda _t: self._notify())

    def unwatch(self, task: asyncio.Task[Any]) -> None:
        self._watched.discard(task)

    def record_client_error(self, record: logging.LogRecord) -> None:
        self.client_errors.append(record)
        self._notify()

    def raise_if_client_failed(self) -> None:
        for task in list(self._watched):
            if not task.done():
                continue
            if task.cancelled():
                raise ClientCrashed(f"client task {task.get_name()} was cancelled")
            exc = task.exception()
            if exc is not None:
                raise ClientCrashed(f"client task died: {exc!r}") from exc
            raise ClientCrashed(f"client task {task.get_name()} exited while the test was waiting")
        if self.fail_on_client_error and self.client_errors:
            rec = self.client_errors[0]
            exc_info = rec.exc_info[1] if rec.exc_info else None
            raise ClientLoggedError(f"discord.py logged an error: {rec.getMessage()}") from exc_info

    async def wait_until(
        self, check: Callable[[], T | None], *, timeout: float = 2.0, what: str = "condition"
    ) -> T:
        """Re-evaluate ``check`` whenever the fake's state changes until it returns non-None.
        Fails fast if a watched client dies; raises TimeoutError after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self.raise_if_client_failed()
            result = check()
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"timed out after {timeout}s waiting for {what}; {self._context()}"
                )
            event = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    async def wait_for_coro(
        self, aw: Awaitable[T], *, timeout: float = 5.0, what: str = "coroutine"
    ) -> T:
        """Await ``aw`` but fail fast if a watched client dies meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        task = asyncio.ensure_future(aw)
        try:
            while not task.done():
                self.raise_if_client_failed()
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(
                        f"timed out after {timeout}s waiting for {what}; {self._context()}"
                    )
                waiter = asyncio.ensure_future(self._changed.wait())
                await asyncio.wait(
                    {task, waiter}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                waiter.cancel()
            return task.result()
        finally:
            if not task.done():
                task.cancel()

    def _context(self) -> str:
        last = ", ".join(repr(r) for r in self.requests[-6:])
        extra = f" unknown routes: {self.unknown_requests!r};" if self.unknown_requests else ""
        return f"last requests: [{last}];{extra} sessions: {len(self._sessions)}"

    def mark(self) -> None:
        """Make wait_for_message / wait_for_request only consider what happens from now on."""
        self._action_cursor = len(self.sent_messages)
        self._request_cursor = len(self.requests)

    async def wait_for_message(
        self,
        channel_id: Any = None,
        predicate: Callable[[FakeMessage], bool] | None = None,
        *,
        timeout: float = 2.0,
        include_ephemeral: bool = False,
    ) -> FakeMessage:
        """The next message the bot created (REST POST, interaction response or followup) since
        the last test-driving action (send_dm, slash, click, ... or ``mark()``), optionally in
        ``channel_id`` (id, FakeChannel or FakeUser for their DM) and matching ``predicate``.
        Each message is returned at most once. Ephemeral messages are skipped unless asked."""
        cid: int | None = None
        if channel_id is not None:
            cid = (
                self.dm_channel(channel_id).id
                if isinstance(channel_id, FakeUser)
                else self.channel(channel_id).id
                if isinstance(channel_id, FakeChannel)
                else as_id(channel_id)
            )

        def check() -> FakeMessage | None:
            for msg in self.sent_messages[self._action_cursor :]:
                if msg.id in self._consumed:
                    continue
                if cid is not None and msg.channel_id != cid:
                    continue
                if msg.ephemeral and not include_ephemeral:
                    continue
                if predicate is not None and not predicate(msg):
                    continue
                self._consumed.add(msg.id)
                return msg
            return None

        return await self.wait_until(check, timeout=timeout, what=f"a bot message (channel={cid})")

    async def wait_for_request(
        self,
        method: str,
        path_regex: str,
        *,
        timeout: float = 2.0,
        predicate: Callable[[RecordedRequest], bool] | None = None,
    ) -> RecordedRequest:
        """The first request since the last action / ``mark()`` matching method+path regex."""
        rx = re.compile(path_regex)

        def check() -> RecordedRequest | None:
            for req in self.requests[self._request_cursor :]:
                if req.status == 0:  # still being handled
                    continue
                if method not in ("*", req.method) or not rx.search(req.path):
                    continue
                if predicate is None or predicate(req):
                    return req
            return None

        return await self.wait_until(check, timeout=timeout, what=f"request {method} {path_regex}")

    def assert_no_unknown_requests(self) -> None:
        assert not self.unknown_requests, (
            f"bot called routes the fake does not know: {self.unknown_requests}"
        )


_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".pdf": "application/pdf",
    ".mp4": "video/mp4",
}


def _guess_type(filename: str) -> str:
    lower = filename.lower()
    for ext, ctype in _TYPES.items():
        if lower.endswith(ext):
            return ctype
    return "application/octet-stream"


__all__ = ["EPHEMERAL", "FakeDiscordCore", "Flushed", "GatewayConnection", "GatewaySession"]
