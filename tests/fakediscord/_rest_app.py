"""REST resource: the bot's own user and application, the gateway URL, users and DM channels."""

from __future__ import annotations

from aiohttp import web

from ._records import ApiError, form_error
from ._rest import Req, RestResource, json_response, route


class AppResource(RestResource):
    """``/users``, ``/oauth2/applications/@me``, ``/applications/@me``, ``/gateway``."""

    @route("GET", "/users/@me")
    async def r_get_me(self, req: Req) -> web.StreamResponse:
        data = self.fake.bot.payload()
        data.update({"verified": True, "mfa_enabled": False, "locale": "en-US", "email": None})
        return json_response(data)

    @route("GET", "/oauth2/applications/@me")
    async def r_get_app(self, req: Req) -> web.StreamResponse:
        data = dict(self.fake.application)
        data["bot"] = self.fake.bot.payload()
        data["approximate_guild_count"] = sum(
            1 for g in self.fake.guilds.values() if self.fake.bot.id in g.members
        )
        return json_response(data)

    @route("GET", "/applications/@me")
    async def r_get_app2(self, req: Req) -> web.StreamResponse:
        return await self.r_get_app(req)

    @route("GET", "/gateway")
    async def r_gateway(self, req: Req) -> web.StreamResponse:
        return json_response({"url": self.fake.gateway_url})

    @route("GET", "/gateway/bot")
    async def r_gateway_bot(self, req: Req) -> web.StreamResponse:
        return json_response(
            {
                "url": self.fake.gateway_url,
                "shards": self.fake.gateway_shards,
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
        user = self.fake.users.get(req.int_param("user_id"))
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
        if uid not in self.fake.users:
            raise ApiError(400, 50033, "Invalid Recipient(s)")
        return json_response(self.fake.dm_channel(uid).payload())
