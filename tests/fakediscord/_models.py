"""Plain data model of the fake Discord: users, guilds, roles, channels, members, messages.

Everything here is independent of discord.py: the objects only know how to render themselves
as Discord API v10 JSON payloads (``.payload()``), which is what the fake server sends over
the wire.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Literal

DISCORD_EPOCH_MS = 1_420_070_400_000

# --- permission bits (https://discord.com/developers/docs/topics/permissions) ---------------
CREATE_INSTANT_INVITE = 1 << 0
KICK_MEMBERS = 1 << 1
BAN_MEMBERS = 1 << 2
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_AUDIT_LOG = 1 << 7
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
USE_EXTERNAL_EMOJIS = 1 << 18
CONNECT = 1 << 20
SPEAK = 1 << 21
CHANGE_NICKNAME = 1 << 26
MANAGE_NICKNAMES = 1 << 27
MANAGE_ROLES = 1 << 28
USE_APPLICATION_COMMANDS = 1 << 31
SEND_MESSAGES_IN_THREADS = 1 << 38
MODERATE_MEMBERS = 1 << 40
ALL_PERMISSIONS = (1 << 51) - 1

#: What @everyone gets in a freshly created guild (roughly Discord's default).
DEFAULT_EVERYONE_PERMISSIONS = (
    CREATE_INSTANT_INVITE
    | ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | CONNECT
    | SPEAK
    | CHANGE_NICKNAME
    | USE_APPLICATION_COMMANDS
    | SEND_MESSAGES_IN_THREADS
)

#: Permissions of the bot's managed role unless ``add_guild(bot_permissions=...)`` says otherwise.
DEFAULT_BOT_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | SEND_MESSAGES_IN_THREADS
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | MANAGE_MESSAGES
    | KICK_MEMBERS
    | BAN_MEMBERS
    | MODERATE_MEMBERS
    | USE_APPLICATION_COMMANDS
)

#: Permissions Discord reports as ``app_permissions`` / member permissions in a DM.
DM_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | USE_EXTERNAL_EMOJIS
    | USE_APPLICATION_COMMANDS
)

# --- gateway intents ---------------------------------------------------------------------------
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_MODERATION = 1 << 2
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_GUILD_MESSAGE_REACTIONS = 1 << 10
INTENT_GUILD_MESSAGE_TYPING = 1 << 11
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_DIRECT_MESSAGE_REACTIONS = 1 << 13
INTENT_DIRECT_MESSAGE_TYPING = 1 << 14
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

# channel types
GUILD_TEXT = 0
DM = 1
GUILD_VOICE = 2
GUILD_CATEGORY = 4

# message flags
EPHEMERAL = 1 << 6
LOADING = 1 << 7


def utcnow_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat()


def snowflake_time(snowflake: int) -> _dt.datetime:
    ms = (snowflake >> 22) + DISCORD_EPOCH_MS
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.UTC)


class SnowflakeGenerator:
    """Strictly increasing snowflakes whose timestamp part is the current time."""

    def __init__(self) -> None:
        self._last = 0
        self._inc = itertools.count()

    def __call__(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        candidate = (ms << 22) | (1 << 17) | (next(self._inc) & 0xFFF)
        self._last = max(self._last + 1, candidate)
        return self._last


def as_id(obj: Any) -> int:
    """Accept a model object, a discord.py object, a snowflake int or a numeric string."""
    if isinstance(obj, FakeMember):
        return obj.user.id
    if hasattr(obj, "id"):
        return int(obj.id)
    return int(obj)


def as_permissions(value: Any) -> int:
    if hasattr(value, "value"):  # discord.Permissions
        return int(value.value)
    return int(value)


@dataclass(eq=False)
class FakeUser:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    avatar: str | None = None
    discriminator: str = "0"
    dm_closed: bool = False

    @property
    def name(self) -> str:
        return self.username

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": self.discriminator,
            "global_name": self.global_name,
            "avatar": self.avatar,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "primary_guild": None,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass(eq=False)
class FakeRole:
    id: int
    guild_id: int
    name: str
    permissions: int = 0
    position: int = 0
    color: int = 0
    hoist: bool = False
    mentionable: bool = False
    managed: bool = False
    bot_id: int | None = None

    @property
    def mention(self) -> str:
        return f"<@&{self.id}>"

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "color": self.color,
            "colors": {
                "primary_color": self.color,
                "secondary_color": None,
                "tertiary_color": None,
            },
            "hoist": self.hoist,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": self.mentionable,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass(eq=False)
class FakeChannel:
    id: int
    type: int
    name: str | None = None
    guild_id: int | None = None
    position: int = 0
    overwrites: list[dict[str, Any]] = field(default_factory=list)
    topic: str | None = None
    parent_id: int | None = None
    nsfw: bool = False
    recipient: FakeUser | None = None  # DM channels only
    last_message_id: int | None = None

    @property
    def is_dm(self) -> bool:
        return self.type == DM

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def payload(self) -> dict[str, Any]:
        if self.type == DM:
            assert self.recipient is not None
            return {
                "id": str(self.id),
                "type": DM,
                "last_message_id": _opt_str(self.last_message_id),
                "recipients": [self.recipient.payload()],
                "flags": 0,
            }
        return {
            "id": str(self.id),
            "type": self.type,
            "guild_id": _opt_str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [dict(o) for o in self.overwrites],
            "parent_id": _opt_str(self.parent_id),
            "topic": self.topic,
            "nsfw": self.nsfw,
            "rate_limit_per_user": 0,
            "last_message_id": _opt_str(self.last_message_id),
            "flags": 0,
        }


@dataclass(eq=False)
class FakeMember:
    user: FakeUser
    guild_id: int
    role_ids: list[int] = field(default_factory=list)
    joined_at: str = field(default_factory=utcnow_iso)
    nick: str | None = None
    communication_disabled_until: str | None = None
    flags: int = 0
    pending: bool = False

    @property
    def id(self) -> int:
        return self.user.id

    def payload(self, *, with_user: bool = True, permissions: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.role_ids],
            "joined_at": self.joined_at,
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": self.pending,
            "flags": self.flags,
            "communication_disabled_until": self.communication_disabled_until,
        }
        if with_user:
            data["user"] = self.user.payload()
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass(eq=False)
class FakeGuild:
    id: int
    name: str
    owner_id: int
    roles: dict[int, FakeRole] = field(default_factory=dict)
    channels: dict[int, FakeChannel] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)
    bans: dict[int, dict[str, Any]] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)
    preferred_locale: str = "en-US"

    @property
    def everyone(self) -> FakeRole:
        return self.roles[self.id]

    @property
    def text_channels(self) -> list[FakeChannel]:
        return sorted(
            (c for c in self.channels.values() if c.type == GUILD_TEXT), key=lambda c: c.position
        )

    def channel(self, name: str) -> FakeChannel:
        for c in self.channels.values():
            if c.name == name:
                return c
        raise KeyError(f"no channel named {name!r} in guild {self.name!r}")

    def role(self, name: str) -> FakeRole:
        for r in self.roles.values():
            if r.name == name:
                return r
        raise KeyError(f"no role named {name!r} in guild {self.name!r}")

    def member(self, user: Any) -> FakeMember:
        return self.members[as_id(user)]

    # --- permission computation (Discord's documented algorithm) ------------------------------
    def base_permissions(self, user_id: int) -> int:
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        member = self.members.get(user_id)
        perms = self.everyone.permissions
        if member is not None:
            for rid in member.role_ids:
                role = self.roles.get(rid)
                if role is not None:
                    perms |= role.permissions
        if perms & ADMINISTRATOR:
            return ALL_PERMISSIONS
        return perms

    def permissions_for(self, user_id: int, channel: FakeChannel | None = None) -> int:
        perms = self.base_permissions(user_id)
        if channel is None or perms & ADMINISTRATOR or user_id == self.owner_id:
            return perms
        by_id = {int(o["id"]): o for o in channel.overwrites}
        everyone = by_id.get(self.id)
        if everyone is not None:
            perms &= ~int(everyone["deny"])
            perms |= int(everyone["allow"])
        member = self.members.get(user_id)
        role_ids = member.role_ids if member is not None else []
        allow = deny = 0
        for o in channel.overwrites:
            if int(o["type"]) == 0 and int(o["id"]) in role_ids:
                allow |= int(o["allow"])
                deny |= int(o["deny"])
        perms &= ~deny
        perms |= allow
        mine = by_id.get(user_id)
        if mine is not None and int(mine["type"]) == 1:
            perms &= ~int(mine["deny"])
            perms |= int(mine["allow"])
        if not perms & VIEW_CHANNEL:
            return 0
        return perms

    def top_role_position(self, user_id: int) -> int:
        if user_id == self.owner_id:
            return 1 << 30
        member = self.members.get(user_id)
        if member is None:
            return 0
        return max((self.roles[r].position for r in member.role_ids if r in self.roles), default=0)

    # --- payloads -----------------------------------------------------------------------------
    def _common(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "icon_hash": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "widget_enabled": False,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [r.payload() for r in sorted(self.roles.values(), key=lambda r: r.position)],
            "emojis": [],
            "stickers": [],
            "features": list(self.features),
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": self.preferred_locale,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
        }

    def rest_payload(self, *, with_counts: bool = False) -> dict[str, Any]:
        data = self._common()
        if with_counts:
            data["approximate_member_count"] = len(self.members)
            data["approximate_presence_count"] = 0
        return data

    def gateway_payload(
        self, *, joined_at: str, include_all_members: bool, bot_id: int
    ) -> dict[str, Any]:
        data = self._common()
        members = [
            m.payload() for m in self.members.values() if include_all_members or m.user.id == bot_id
        ]
        data.update(
            {
                "joined_at": joined_at,
                "large": len(self.members) >= 250,
                "unavailable": False,
                "member_count": len(self.members),
                "members": members,
                "channels": [
                    {k: v for k, v in c.payload().items() if k != "guild_id"}
                    for c in sorted(self.channels.values(), key=lambda c: c.position)
                ],
                "threads": [],
                "presences": [],
                "voice_states": [],
                "stage_instances": [],
                "guild_scheduled_events": [],
                "soundboard_sounds": [],
                "lazy": True,
            }
        )
        return data


@dataclass(eq=False)
class FakeMessage:
    """A message stored by the fake, authored by a user (test-driven) or by the bot.

    ``payload`` is the Discord message object exactly as the fake serves it; ``body`` is the JSON
    the bot sent to create it (``None`` for user-authored messages). Item access is delegated to
    ``payload`` so ``msg["content"]`` works too.
    """

    payload: dict[str, Any]
    by_bot: bool
    via: Literal["user", "rest", "interaction", "followup", "webhook"] = "rest"
    body: dict[str, Any] | None = None
    files: list[tuple[str, bytes]] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False
    interaction_id: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self.payload[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.payload.get(key, default)

    @property
    def id(self) -> int:
        return int(self.payload["id"])

    @property
    def channel_id(self) -> int:
        return int(self.payload["channel_id"])

    @property
    def guild_id(self) -> int | None:
        g = self.payload.get("guild_id")
        return None if g is None else int(g)

    @property
    def author_id(self) -> int:
        return int(self.payload["author"]["id"])

    @property
    def content(self) -> str:
        return str(self.payload.get("content", ""))

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return list(self.payload.get("embeds", []))

    @property
    def components(self) -> list[dict[str, Any]]:
        return list(self.payload.get("components", []))

    @property
    def flags(self) -> int:
        return int(self.payload.get("flags", 0))

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def attachments(self) -> list[dict[str, Any]]:
        return list(self.payload.get("attachments", []))

    @property
    def allowed_mentions(self) -> dict[str, Any] | None:
        return None if self.body is None else self.body.get("allowed_mentions")

    @property
    def nonce(self) -> Any:
        return None if self.body is None else self.body.get("nonce")

    def custom_ids(self) -> list[str]:
        """Every custom_id of the message's components, depth first."""
        return [c["custom_id"] for c in iter_components(self.components) if "custom_id" in c]

    def __repr__(self) -> str:
        return (
            f"<FakeMessage id={self.id} channel={self.channel_id} by_bot={self.by_bot} "
            f"via={self.via} content={self.content!r} flags={self.flags}>"
        )


def iter_components(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten a component tree (action rows, containers, sections, labels)."""
    out: list[dict[str, Any]] = []
    for c in components:
        out.append(c)
        if "components" in c:
            out.extend(iter_components(c["components"]))
        if "component" in c:
            out.extend(iter_components([c["component"]]))
        if "accessory" in c:
            out.extend(iter_components([c["accessory"]]))
    return out


def number_components(components: list[dict[str, Any]]) -> None:
    """Discord assigns a numeric ``id`` to every component that has none."""
    used = {c["id"] for c in iter_components(components) if c.get("id") is not None}
    counter = itertools.count(1)
    for c in iter_components(components):
        if c.get("id") is None:
            n = next(counter)
            while n in used:
                n = next(counter)
            c["id"] = n


def _opt_str(value: int | None) -> str | None:
    return None if value is None else str(value)
