"""REST resource: the application's commands, global and per guild, and their validation."""

from __future__ import annotations

import copy
import re
from typing import Any

from aiohttp import web

from ._records import ApiError, form_error
from ._rest import Req, RestResource, json_response, no_content, route

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


class CommandResource(RestResource):
    """``/applications/{app_id}/commands`` and the same under ``/guilds/{guild_id}``."""

    def _check_app(self, req: Req) -> None:
        if req.int_param("app_id") != self.fake.application_id:
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
            "id": prev["id"] if prev else str(self.fake.snowflake()),
            "application_id": str(self.fake.application_id),
            "version": str(self.fake.snowflake()),
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
        return json_response(copy.deepcopy(self.fake.commands.get(self._command_scope(req), [])))

    @route("GET", "/applications/{app_id}/guilds/{guild_id}/commands")
    async def r_get_guild_commands(self, req: Req) -> web.StreamResponse:
        return await self.r_get_global_commands(req)

    @route("PUT", "/applications/{app_id}/commands")
    async def r_put_global_commands(self, req: Req) -> web.StreamResponse:
        scope = self._command_scope(req)
        body = req.body if isinstance(req.body, list) else []
        validate_commands(body)
        existing = self.fake.commands.get(scope, [])
        self.fake.commands[scope] = [self._store_command(scope, c, existing) for c in body]
        return json_response(copy.deepcopy(self.fake.commands[scope]))

    @route("PUT", "/applications/{app_id}/guilds/{guild_id}/commands")
    async def r_put_guild_commands(self, req: Req) -> web.StreamResponse:
        return await self.r_put_global_commands(req)

    @route("POST", "/applications/{app_id}/commands")
    async def r_upsert_global_command(self, req: Req) -> web.StreamResponse:
        scope = self._command_scope(req)
        body = req.body if isinstance(req.body, dict) else {}
        validate_commands([body])
        existing = self.fake.commands.setdefault(scope, [])
        stored = self._store_command(scope, body, existing)
        self.fake.commands[scope] = [c for c in existing if c["id"] != stored["id"]] + [stored]
        return json_response(copy.deepcopy(stored), 201)

    @route("POST", "/applications/{app_id}/guilds/{guild_id}/commands")
    async def r_upsert_guild_command(self, req: Req) -> web.StreamResponse:
        return await self.r_upsert_global_command(req)

    def _find_command_by_id(self, req: Req) -> tuple[int | None, dict[str, Any]]:
        scope = self._command_scope(req)
        for c in self.fake.commands.get(scope, []):
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
        self.fake.commands[scope] = [c for c in self.fake.commands[scope] if c is not cmd]
        return no_content()

    @route("DELETE", "/applications/{app_id}/guilds/{guild_id}/commands/{command_id}")
    async def r_delete_guild_command(self, req: Req) -> web.StreamResponse:
        return await self.r_delete_command(req)
