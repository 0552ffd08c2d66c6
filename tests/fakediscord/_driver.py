"""Test-driving API: make users talk to the bot (messages, slash commands, clicks, modals)."""

from __future__ import annotations

import asyncio
import copy
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._core import FakeDiscordCore
from ._models import (
    DM_PERMISSIONS,
    EPHEMERAL,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    as_id,
    iter_components,
)
from ._records import FakeInteraction

AttachmentSpec = str | tuple[str, bytes] | tuple[str, bytes, str] | Mapping[str, Any]

ATTACHMENT_SIZE_LIMIT = 26_214_400
_OPTION_TYPES = {"sub_command": 1, "sub_command_group": 2}


class DriverMixin(FakeDiscordCore):
    # ------------------------------------------------------------ plain messages
    def _attachments_from_specs(
        self, channel_id: int, specs: Iterable[AttachmentSpec]
    ) -> list[dict[str, Any]]:
        out = []
        for spec in specs:
            if isinstance(spec, str):
                out.append(self._attachment_payload(channel_id, spec, b"fake-bytes", None))
            elif isinstance(spec, tuple):
                ctype = spec[2] if len(spec) > 2 else None
                out.append(self._attachment_payload(channel_id, spec[0], spec[1], ctype))
            else:
                data = spec.get("data", b"fake-bytes")
                out.append(
                    self._attachment_payload(
                        channel_id,
                        spec["filename"],
                        data,
                        spec.get("content_type"),
                        **{
                            k: v
                            for k, v in spec.items()
                            if k not in ("filename", "data", "content_type")
                        },
                    )
                )
        return out

    async def send_dm(
        self,
        user: Any,
        content: str = "",
        *,
        attachments: Sequence[AttachmentSpec] = (),
        embeds: Sequence[Mapping[str, Any]] = (),
    ) -> FakeMessage:
        """``user`` DMs the bot: MESSAGE_CREATE in their DM channel (no guild_id). Attachments
        may be filenames, ``(filename, bytes[, content_type])`` or attachment dicts; their
        bytes are served by the fake's CDN (``fake.cdn_requests`` records downloads)."""
        u = self.user(user)
        ch = self.dm_channel(u)
        return await self._user_message(ch, u, content, attachments, embeds)

    async def send_guild_message(
        self,
        channel: Any,
        user: Any,
        content: str = "",
        *,
        attachments: Sequence[AttachmentSpec] = (),
        embeds: Sequence[Mapping[str, Any]] = (),
    ) -> FakeMessage:
        ch = self.channel(channel)
        u = self.user(user)
        if ch.guild_id is None:
            raise ValueError("send_guild_message needs a guild channel; use send_dm for DMs")
        if u.id not in self.guilds[ch.guild_id].members:
            raise ValueError(f"{u.username} is not a member of the channel's guild")
        return await self._user_message(ch, u, content, attachments, embeds)

    async def _user_message(
        self,
        ch: FakeChannel,
        u: FakeUser,
        content: str,
        attachments: Sequence[AttachmentSpec],
        embeds: Sequence[Mapping[str, Any]],
    ) -> FakeMessage:
        self.mark()
        payload = self._new_message_payload(ch, u, content=content)
        payload["attachments"] = self._attachments_from_specs(ch.id, attachments)
        payload["embeds"] = [dict(e) for e in embeds]
        msg = self._store_message(ch, payload, by_bot=False, via="user")
        await self.last_dispatch  # return once MESSAGE_CREATE is on the wire
        return msg

    async def add_reaction(self, message: Any, user: Any, emoji: str) -> None:
        """``user`` reacts to ``message`` with a unicode ``emoji`` (MESSAGE_REACTION_ADD)."""
        self.mark()
        msg = self.message(message)
        u = self.user(user)
        data: dict[str, Any] = {
            "user_id": str(u.id),
            "channel_id": str(msg.channel_id),
            "message_id": str(msg.id),
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
            "message_author_id": str(msg.author_id),
        }
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
            data["member"] = self.guilds[msg.guild_id].members[u.id].payload()
        await self.dispatch("MESSAGE_REACTION_ADD", data)

    # ------------------------------------------------------------ interactions: common
    def _interaction_payload(
        self, itype: int, user: FakeUser, guild: FakeGuild | None, channel: FakeChannel
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": str(self.snowflake()),
            "application_id": str(self.application_id),
            "type": itype,
            "token": "fake-interaction-" + secrets.token_urlsafe(32),
            "version": 1,
            "locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
            "channel_id": str(channel.id),
        }
        if guild is not None:
            if user.id not in guild.members:
                raise ValueError(f"{user.username} is not a member of guild {guild.name!r}")
            member = guild.members[user.id]
            payload.update(
                {
                    "guild_id": str(guild.id),
                    "guild": {
                        "id": str(guild.id),
                        "locale": guild.preferred_locale,
                        "features": list(guild.features),
                    },
                    "guild_locale": guild.preferred_locale,
                    "member": member.payload(permissions=guild.permissions_for(user.id, channel)),
                    "app_permissions": str(guild.permissions_for(self.bot.id, channel)),
                    "authorizing_integration_owners": {"0": str(guild.id)},
                    "context": 0,
                }
            )
            chp = channel.payload()
            chp["permissions"] = str(guild.permissions_for(user.id, channel))
            payload["channel"] = chp
        else:
            payload.update(
                {
                    "user": user.payload(),
                    "app_permissions": str(DM_PERMISSIONS),
                    "authorizing_integration_owners": {"0": "0"},
                    "context": 1,
                    "channel": channel.payload(),
                }
            )
        return payload

    async def _dispatch_interaction(
        self, payload: dict[str, Any], message: FakeMessage | None = None
    ) -> FakeInteraction:
        if not self._sessions:
            raise RuntimeError("no discord.py client is connected to the fake gateway")
        self.mark()
        inter = FakeInteraction(
            self, payload, created=asyncio.get_running_loop().time(), message=message
        )
        self.interactions[inter.id] = inter
        await self.dispatch("INTERACTION_CREATE", copy.deepcopy(payload))
        return inter

    def _where(
        self, user: FakeUser, guild: Any, channel: Any
    ) -> tuple[FakeGuild | None, FakeChannel]:
        if channel is not None:
            ch = self.channel(channel)
            g = self.guilds[ch.guild_id] if ch.guild_id is not None else None
            if guild is not None and (g is None or g.id != self.guild(guild).id):
                raise ValueError("channel is not in the given guild")
            return g, ch
        if guild is not None:
            g = self.guild(guild)
            if not g.text_channels:
                raise ValueError(f"guild {g.name!r} has no text channel")
            return g, g.text_channels[0]
        return None, self.dm_channel(user)

    def _find_command(
        self, name: str, ctype: int, guild: FakeGuild | None
    ) -> dict[str, Any] | None:
        if guild is not None:
            for c in self.commands.get(guild.id, []):
                if c["name"] == name and c["type"] == ctype:
                    return c
        for c in self.commands[None]:
            if c["name"] == name and c["type"] == ctype:
                contexts = c.get("contexts")
                ctx = 0 if guild is not None else 1
                if contexts is not None and ctx not in contexts:
                    raise ValueError(
                        f"command {name!r} is not available in context {ctx} (contexts={contexts})"
                    )
                if guild is None and contexts is None and c.get("dm_permission") is False:
                    raise ValueError(f"command {name!r} has dm_permission=false")
                return c
        if self.require_registered_commands:
            raise LookupError(
                f"command {name!r} (type {ctype}) is not registered "
                f"{'in guild ' + guild.name + ' or ' if guild else ''}globally; "
                "did the bot sync its tree?"
            )
        return None

    # ------------------------------------------------------------ option conversion
    def _resolve_value(
        self,
        otype: int,
        value: Any,
        resolved: dict[str, dict[str, Any]],
        guild: FakeGuild | None,
        channel: FakeChannel,
    ) -> Any:
        if otype in (6, 9) and isinstance(value, FakeUser | FakeMember):
            u = self.user(value)
            resolved.setdefault("users", {})[str(u.id)] = u.payload()
            if guild is not None and u.id in guild.members:
                resolved.setdefault("members", {})[str(u.id)] = guild.members[u.id].payload(
                    with_user=False, permissions=guild.permissions_for(u.id, channel)
                )
            return str(u.id)
        if otype in (8, 9) and isinstance(value, FakeRole):
            resolved.setdefault("roles", {})[str(value.id)] = value.payload()
            return str(value.id)
        if otype == 7 and isinstance(value, FakeChannel):
            data = {
                "id": str(value.id),
                "type": value.type,
                "name": value.name,
                "parent_id": None if value.parent_id is None else str(value.parent_id),
                "permissions": str(
                    guild.permissions_for(self.bot.id, value) if guild else DM_PERMISSIONS
                ),
                "nsfw": value.nsfw,
                "flags": 0,
            }
            resolved.setdefault("channels", {})[str(value.id)] = data
            return str(value.id)
        if otype == 11:
            att = self._attachments_from_specs(channel.id, [value])[0]
            resolved.setdefault("attachments", {})[att["id"]] = att
            return att["id"]
        if otype in (6, 7, 8, 9):
            raise TypeError(
                f"option type {otype} needs a FakeUser/FakeMember/FakeRole/FakeChannel, "
                f"got {value!r}"
            )
        if otype == 3:
            return str(value)
        if otype == 4:
            return int(value)
        if otype == 5:
            return bool(value)
        if otype == 10:
            return float(value)
        return value

    @staticmethod
    def _infer_type(value: Any) -> int:
        if isinstance(value, bool):
            return 5
        if isinstance(value, int):
            return 4
        if isinstance(value, float):
            return 10
        if isinstance(value, FakeUser | FakeMember):
            return 6
        if isinstance(value, FakeRole):
            return 8
        if isinstance(value, FakeChannel):
            return 7
        if isinstance(value, tuple | Mapping):
            return 11
        return 3

    def _build_options(
        self,
        schema: list[dict[str, Any]] | None,
        options: Mapping[str, Any],
        resolved: dict[str, dict[str, Any]],
        guild: FakeGuild | None,
        channel: FakeChannel,
    ) -> list[dict[str, Any]]:
        out = []
        by_name = {o["name"]: o for o in schema or []}
        for name, value in options.items():
            if schema is not None and name not in by_name:
                raise ValueError(f"unknown option {name!r}; registered: {sorted(by_name)}")
            otype = int(by_name[name]["type"]) if schema is not None else self._infer_type(value)
            out.append(
                {
                    "name": name,
                    "type": otype,
                    "value": self._resolve_value(otype, value, resolved, guild, channel),
                }
            )
        if schema is not None:
            missing = [o["name"] for o in schema if o.get("required") and o["name"] not in options]
            if missing:
                raise ValueError(f"missing required options {missing}")
        return out

    # ------------------------------------------------------------ slash / context menus
    async def slash(
        self,
        user: Any,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        guild: Any = None,
        channel: Any = None,
        subcommand: str | None = None,
        group: str | None = None,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """``user`` runs ``/name [group] [subcommand] options...`` in ``channel`` (default: the
        guild's first text channel, or the user's DM with the bot when no guild is given).
        Option values are plain Python values; users/members/roles/channels as fake objects
        (they end up in ``data.resolved``); attachments as ``(filename, bytes)``."""
        u = self.user(user)
        g, ch = self._where(u, guild, channel)
        cmd = self._find_command(name, 1, g)
        schema: list[dict[str, Any]] | None = (
            None if cmd is None else list(cmd.get("options") or [])
        )
        resolved: dict[str, dict[str, Any]] = {}
        inner = self._build_options_for_path(
            schema, group, subcommand, options or {}, resolved, g, ch
        )
        data: dict[str, Any] = {
            "id": cmd["id"] if cmd else str(self.snowflake()),
            "name": name,
            "type": 1,
            "options": inner,
        }
        if cmd is not None and cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        if resolved:
            data["resolved"] = resolved
        payload = self._interaction_payload(2, u, g, ch)
        payload["locale"] = locale
        payload["data"] = data
        return await self._dispatch_interaction(payload)

    def _build_options_for_path(
        self,
        schema: list[dict[str, Any]] | None,
        group: str | None,
        subcommand: str | None,
        options: Mapping[str, Any],
        resolved: dict[str, dict[str, Any]],
        guild: FakeGuild | None,
        channel: FakeChannel,
    ) -> list[dict[str, Any]]:
        def child(
            sch: list[dict[str, Any]] | None, name: str, otype: int
        ) -> list[dict[str, Any]] | None:
            if sch is None:
                return None
            for o in sch:
                if o["name"] == name and int(o["type"]) == otype:
                    return list(o.get("options") or [])
            raise ValueError(f"no {'group' if otype == 2 else 'subcommand'} named {name!r}")

        if group is not None and subcommand is None:
            raise ValueError("a subcommand group needs a subcommand")
        if group is not None:
            gsch = child(schema, group, 2)
            ssch = child(gsch, subcommand, 1)  # type: ignore[arg-type]
            leaf = self._build_options(ssch, options, resolved, guild, channel)
            return [
                {
                    "name": group,
                    "type": 2,
                    "options": [{"name": subcommand, "type": 1, "options": leaf}],
                }
            ]
        if subcommand is not None:
            ssch = child(schema, subcommand, 1)
            leaf = self._build_options(ssch, options, resolved, guild, channel)
            return [{"name": subcommand, "type": 1, "options": leaf}]
        if schema is not None and any(int(o["type"]) in (1, 2) for o in schema):
            raise ValueError("this command has subcommands; pass subcommand=... (and group=...)")
        return self._build_options(schema, options, resolved, guild, channel)

    async def autocomplete(
        self,
        user: Any,
        name: str,
        options: Mapping[str, Any],
        focused: str,
        *,
        guild: Any = None,
        channel: Any = None,
        subcommand: str | None = None,
    ) -> FakeInteraction:
        """Type 4 APPLICATION_COMMAND_AUTOCOMPLETE; the bot answers with callback type 8
        (``inter.choices``)."""
        u = self.user(user)
        g, ch = self._where(u, guild, channel)
        cmd = self._find_command(name, 1, g)
        schema = None if cmd is None else list(cmd.get("options") or [])
        inner = self._build_options_for_path(schema, None, subcommand, options, {}, g, ch)
        leaf = inner[0]["options"] if subcommand else inner
        for o in leaf:
            if o["name"] == focused:
                o["focused"] = True
                o["value"] = str(o["value"])
        data: dict[str, Any] = {
            "id": cmd["id"] if cmd else str(self.snowflake()),
            "name": name,
            "type": 1,
            "options": inner,
        }
        if cmd is not None and cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        payload = self._interaction_payload(4, u, g, ch)
        payload["data"] = data
        return await self._dispatch_interaction(payload)

    async def context_menu(
        self, user: Any, message: Any, name: str, *, guild: Any = None
    ) -> FakeInteraction:
        """``user`` runs the MESSAGE context-menu command ``name`` on ``message``."""
        u = self.user(user)
        msg = self.message(message)
        g, ch = self._where(u, guild, msg.channel_id)
        cmd = self._find_command(name, 3, g)
        data: dict[str, Any] = {
            "id": cmd["id"] if cmd else str(self.snowflake()),
            "name": name,
            "type": 3,
            "target_id": str(msg.id),
            "resolved": {"messages": {str(msg.id): copy.deepcopy(msg.payload)}},
        }
        if cmd is not None and cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        payload = self._interaction_payload(2, u, g, ch)
        payload["data"] = data
        return await self._dispatch_interaction(payload)

    async def user_context_menu(
        self, user: Any, target: Any, name: str, *, guild: Any = None, channel: Any = None
    ) -> FakeInteraction:
        """``user`` runs the USER context-menu command ``name`` on ``target``."""
        u = self.user(user)
        t = self.user(target)
        g, ch = self._where(u, guild, channel)
        cmd = self._find_command(name, 2, g)
        resolved: dict[str, dict[str, Any]] = {}
        self._resolve_value(6, t, resolved, g, ch)
        data: dict[str, Any] = {
            "id": cmd["id"] if cmd else str(self.snowflake()),
            "name": name,
            "type": 2,
            "target_id": str(t.id),
            "resolved": resolved,
        }
        if cmd is not None and cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        payload = self._interaction_payload(2, u, g, ch)
        payload["data"] = data
        return await self._dispatch_interaction(payload)

    # ------------------------------------------------------------ components / modals
    async def click(
        self,
        user: Any,
        message: Any,
        custom_id: str,
        values: Sequence[Any] | None = None,
    ) -> FakeInteraction:
        """``user`` clicks the button / picks ``values`` in the select ``custom_id`` of a bot
        ``message`` (FakeMessage, payload dict or id; the latest stored version is used).
        Raises LookupError if the message has no such (enabled) component."""
        msg = self.message(message)
        if not msg.by_bot:
            raise ValueError("components can only be clicked on messages the bot sent")
        if msg.deleted:
            raise LookupError(f"message {msg.id} was deleted")
        comp = next(
            (c for c in iter_components(msg.components) if c.get("custom_id") == custom_id), None
        )
        if comp is None:
            raise LookupError(
                f"message {msg.id} has no component {custom_id!r}; it has {msg.custom_ids()}"
            )
        if comp.get("disabled"):
            raise LookupError(f"component {custom_id!r} is disabled")
        u = self.user(user)
        ch = self.channel(msg.channel_id)
        g = self.guilds[ch.guild_id] if ch.guild_id is not None else None
        ctype = int(comp["type"])
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": ctype}
        if comp.get("id") is not None:
            data["id"] = comp["id"]
        if ctype in (3, 5, 6, 7, 8):
            vals = list(values or [])
            if ctype == 3:
                allowed = {o["value"] for o in comp.get("options", [])}
                bad = [v for v in vals if v not in allowed]
                if bad:
                    raise ValueError(f"values {bad} are not options of select {custom_id!r}")
                data["values"] = [str(v) for v in vals]
            else:
                resolved: dict[str, dict[str, Any]] = {}
                otype = {5: 6, 6: 8, 7: 9, 8: 7}[ctype]
                data["values"] = [self._resolve_value(otype, v, resolved, g, ch) for v in vals]
                data["resolved"] = resolved
            lo, hi = int(comp.get("min_values", 1)), int(comp.get("max_values", 1))
            if not lo <= len(vals) <= hi:
                raise ValueError(f"select {custom_id!r} needs {lo}..{hi} values, got {len(vals)}")
        elif values:
            raise ValueError("values are only for select menus")
        payload = self._interaction_payload(3, u, g, ch)
        payload["data"] = data
        payload["message"] = copy.deepcopy(msg.payload)
        return await self._dispatch_interaction(payload, message=msg)

    async def submit_modal(
        self,
        user: Any,
        custom_id: str | FakeInteraction,
        fields: Mapping[str, str | Sequence[str]],
        *,
        guild: Any = None,
        channel: Any = None,
    ) -> FakeInteraction:
        """``user`` submits a modal. Pass the FakeInteraction the bot answered with a modal
        (callback type 9) to reuse its custom_id, channel and component layout (action rows or
        labels); or a raw custom_id (then ``guild``/``channel`` say where, and the fields are
        sent as text inputs in action rows). ``fields`` maps text-input custom_id -> value
        (a list of values for selects inside the modal)."""
        u = self.user(user)
        source: FakeInteraction | None = None
        message: FakeMessage | None = None
        if isinstance(custom_id, FakeInteraction):
            source = custom_id
            if source.modal is None:
                raise LookupError(f"interaction {source.id} was not answered with a modal")
            modal = source.modal
            mid = str(modal["custom_id"])
            ch = self.channel(source.channel_id)
            g = self.guilds[ch.guild_id] if ch.guild_id is not None else None
            components = self._modal_submit_components(modal["components"], fields)
            message = source.message
        else:
            mid = custom_id
            g, ch = self._where(u, guild, channel)
            components = [
                {"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]}
                for k, v in fields.items()
            ]
        payload = self._interaction_payload(5, u, g, ch)
        payload["data"] = {"custom_id": mid, "components": components}
        if message is not None:
            payload["message"] = copy.deepcopy(self.message(message).payload)
        return await self._dispatch_interaction(payload, message=message)

    def _modal_submit_components(
        self, layout: list[dict[str, Any]], fields: Mapping[str, str | Sequence[str]]
    ) -> list[dict[str, Any]]:
        remaining = dict(fields)

        def convert(c: dict[str, Any]) -> dict[str, Any] | None:
            t = c.get("type")
            if t == 1:
                kids = [k for k in (convert(x) for x in c.get("components", [])) if k is not None]
                return {"type": 1, "id": c.get("id"), "components": kids}
            if t == 18:
                inner = convert(c["component"])
                return (
                    None if inner is None else {"type": 18, "id": c.get("id"), "component": inner}
                )
            if t == 4:
                value = remaining.pop(c["custom_id"], c.get("value") or "")
                if c.get("required", True) and not value:
                    raise ValueError(f"text input {c['custom_id']!r} is required")
                _max = c.get("max_length")
                if _max is not None and len(str(value)) > int(_max):
                    raise ValueError(
                        f"text input {c['custom_id']!r} allows at most {_max} characters"
                    )
                return {
                    "type": 4,
                    "id": c.get("id"),
                    "custom_id": c["custom_id"],
                    "value": str(value),
                }
            if t in (3, 5, 6, 7, 8):
                vals = remaining.pop(c["custom_id"], [])
                return {
                    "type": t,
                    "id": c.get("id"),
                    "custom_id": c["custom_id"],
                    "values": [vals] if isinstance(vals, str) else list(vals),
                }
            return None  # text displays etc. are not submitted

        out = [_drop_none(x) for x in (convert(c) for c in layout) if x is not None]
        if remaining:
            raise ValueError(f"modal has no inputs named {sorted(remaining)}")
        return out

    # ------------------------------------------------------------ misc helpers
    def ephemeral_messages(self) -> list[FakeMessage]:
        return [m for m in self.sent_messages if m.flags & EPHEMERAL]

    def member_of(self, guild: Any, user: Any) -> FakeMember:
        return self.guild(guild).members[as_id(user)]


def _drop_none(component: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in component.items() if v is not None}
    if "components" in out:
        out["components"] = [_drop_none(c) for c in out["components"]]
    if "component" in out:
        out["component"] = _drop_none(out["component"])
    return out
