"""REST resource: guilds, their roles and channels, members (edit, timeout, kick, roles), bans."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from aiohttp import web

from ._models import (
    ADMINISTRATOR,
    BAN_MEMBERS,
    KICK_MEMBERS,
    MANAGE_NICKNAMES,
    MANAGE_ROLES,
    MODERATE_MEMBERS,
)
from ._records import ApiError, form_error
from ._rest import Req, RestResource, json_response, no_content, route, truthy


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


class GuildResource(RestResource):
    """``/guilds/{guild_id}`` and the roles, channels, members and bans under it."""

    @route("GET", "/guilds/{guild_id}")
    async def r_get_guild(self, req: Req) -> web.StreamResponse:
        guild = self._get_guild(req.int_param("guild_id"))
        return json_response(guild.rest_payload(with_counts=truthy(req.query.get("with_counts"))))

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
            if self.fake.enforce_permissions and guild.base_permissions(uid) & ADMINISTRATOR:
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
            self.fake.audit_log.append(
                {
                    "action": "timeout",
                    "guild_id": guild.id,
                    "user_id": uid,
                    "until": until,
                    "reason": req.reason,
                }
            )
        if "nick" in body:
            if uid != self.fake.bot.id:
                self._require(guild, MANAGE_NICKNAMES)
                self._require_hierarchy(guild, uid)
            member.nick = body["nick"]
        if "roles" in body:
            self._require(guild, MANAGE_ROLES)
            member.role_ids = [int(r) for r in body["roles"]]
        if set(body) - {"communication_disabled_until"}:
            self.fake.audit_log.append(
                {
                    "action": "member_update",
                    "guild_id": guild.id,
                    "user_id": uid,
                    "changes": body,
                    "reason": req.reason,
                }
            )
        self.fake.dispatch("GUILD_MEMBER_UPDATE", {**member.payload(), "guild_id": str(guild.id)})
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
        self.fake.audit_log.append(
            {"action": "kick", "guild_id": guild.id, "user_id": uid, "reason": req.reason}
        )
        self.fake.dispatch(
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
        if self.fake.enforce_permissions and guild.roles[rid].position >= guild.top_role_position(
            self.fake.bot.id
        ):
            raise ApiError(403, 50013, "Missing Permissions")
        if add and rid not in member.role_ids:
            member.role_ids.append(rid)
        if not add and rid in member.role_ids:
            member.role_ids.remove(rid)
        self.fake.audit_log.append(
            {
                "action": "role_add" if add else "role_remove",
                "guild_id": guild.id,
                "user_id": member.id,
                "role_id": rid,
                "reason": req.reason,
            }
        )
        self.fake.dispatch("GUILD_MEMBER_UPDATE", {**member.payload(), "guild_id": str(guild.id)})
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
        user = self.fake.users.get(uid)
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        self._require(guild, BAN_MEMBERS)
        if uid in guild.members:
            self._require_hierarchy(guild, uid)
        body = req.body if isinstance(req.body, dict) else {}
        guild.bans[uid] = {"user": user.payload(), "reason": req.reason}
        self.fake.audit_log.append(
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
        self.fake.dispatch("GUILD_BAN_ADD", {"guild_id": str(guild.id), "user": user.payload()})
        if guild.members.pop(uid, None) is not None:
            self.fake.dispatch(
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
        self.fake.audit_log.append(
            {"action": "unban", "guild_id": guild.id, "user_id": uid, "reason": req.reason}
        )
        self.fake.dispatch("GUILD_BAN_REMOVE", {"guild_id": str(guild.id), "user": ban["user"]})
        return no_content()
