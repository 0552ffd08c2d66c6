"""REST routing of the fake: the entry point, recording, failure injection, rate-limit headers,
the route table and :class:`RestResource`, the base of the composed per-resource handler groups.

Each resource module (``_rest_app``, ``_rest_channels``, ``_rest_guilds``, ``_rest_commands``,
``_rest_interactions``) holds one plain class whose handlers are marked with :func:`route`; a
:class:`RestRouter` built on a list of such objects matches a request to ``(method, path
regex)`` and calls the bound handler of the object that owns the route.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote

from aiohttp import web

from ._core import FakeDiscordCore
from ._models import VIEW_CHANNEL, FakeChannel, FakeGuild, FakeMessage
from ._records import ApiError, RecordedRequest

JSON_HEADERS = {"Content-Type": "application/json"}
_RECORDED_HEADERS = ("Authorization", "Content-Type", "User-Agent", "X-Audit-Log-Reason")


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


def truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


# ---------------------------------------------------------------------------- route table
BoundHandler = Callable[[Req], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])

#: Attribute :func:`route` sets on a handler function: its ``(method, compiled regex)`` list.
_ROUTES_ATTR = "__fake_routes__"


def route(method: str, pattern: str) -> Callable[[H], H]:
    """Mark a :class:`RestResource` method as the handler of ``method`` + ``pattern`` (a path
    under ``/api/v10`` with ``{channel_id}``-style placeholders, anchored at both ends)."""
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

    def deco(fn: H) -> H:
        routes: list[tuple[str, re.Pattern[str]]] = getattr(fn, _ROUTES_ATTR, [])
        setattr(fn, _ROUTES_ATTR, [*routes, (method, re.compile(rx + "$"))])
        return fn

    return deco


@dataclass(frozen=True)
class Route:
    method: str
    regex: re.Pattern[str]
    resource: RestResource
    name: str  # the handler's method name on ``resource``

    @property
    def handler(self) -> BoundHandler:
        handler: BoundHandler = getattr(self.resource, self.name)
        return handler


def routes_of(resource: RestResource) -> list[Route]:
    """The routes ``resource``'s class (and its bases) declare, in definition order."""
    return [
        Route(method, rx, resource, name)
        for klass in reversed(type(resource).__mro__)
        for name, fn in vars(klass).items()
        for method, rx in getattr(fn, _ROUTES_ATTR, ())
    ]


# ---------------------------------------------------------------------------- resources
class RestResource:
    """One group of REST handlers (a resource), composed into the fake's :class:`RestRouter`
    and reading and changing the shared state of the fake it belongs to (``self.fake``).

    Holds the lookups and permission checks every resource shares (one copy)."""

    def __init__(self, fake: FakeDiscordCore) -> None:
        self.fake = fake

    def _get_channel(self, channel_id: int) -> FakeChannel:
        fake = self.fake
        ch = fake.channels.get(channel_id)
        if ch is None:
            raise ApiError(404, 10003, "Unknown Channel")
        if ch.guild_id is not None:
            guild = fake.guilds[ch.guild_id]
            if fake.bot.id not in guild.members:
                raise ApiError(403, 50001, "Missing Access")
            if (
                fake.enforce_permissions
                and not guild.permissions_for(fake.bot.id, ch) & VIEW_CHANNEL
            ):
                raise ApiError(403, 50001, "Missing Access")
        return ch

    def _get_guild(self, guild_id: int) -> FakeGuild:
        guild = self.fake.guilds.get(guild_id)
        if guild is None or self.fake.bot.id not in guild.members:
            raise ApiError(404, 10004, "Unknown Guild")
        return guild

    def _require(self, guild: FakeGuild, perm: int, channel: FakeChannel | None = None) -> None:
        fake = self.fake
        if fake.enforce_permissions and not guild.permissions_for(fake.bot.id, channel) & perm:
            raise ApiError(403, 50013, "Missing Permissions")

    def _require_hierarchy(self, guild: FakeGuild, target_id: int) -> None:
        if not self.fake.enforce_permissions:
            return
        if target_id == guild.owner_id or guild.top_role_position(
            target_id
        ) >= guild.top_role_position(self.fake.bot.id):
            raise ApiError(403, 50013, "Missing Permissions")

    def _get_message(self, channel: FakeChannel, message_id: int) -> FakeMessage:
        msg = self.fake.message_index.get(message_id)
        if msg is None or msg.deleted or msg.channel_id != channel.id or msg.ephemeral:
            raise ApiError(404, 10008, "Unknown Message")
        return msg


# ---------------------------------------------------------------------------- router
class RestRouter:
    """The fake's REST server side: records each request, applies injected failures and the
    bot-token check, and dispatches to the resource object that owns the matching route."""

    def __init__(self, fake: FakeDiscordCore, resources: Iterable[RestResource]) -> None:
        self.fake = fake
        self.resources = list(resources)
        self.routes: list[Route] = []
        for resource in self.resources:
            self.routes.extend(routes_of(resource))
        counts = Counter((r.method, r.regex.pattern) for r in self.routes)
        dupes = [key for key, n in counts.items() if n > 1]
        if dupes:
            raise ValueError(f"fakediscord: routes declared twice: {sorted(dupes)}")

    async def _rest_entry(self, request: web.Request) -> web.StreamResponse:
        fake = self.fake
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
        fake.requests.append(record)
        try:
            response = await self._route(request, path, body, uploads, record)
        except ApiError as err:
            response = json_response(err.body(), err.status)
            record.response = err.body()
        record.status = response.status
        if fake.ratelimit_headers and not record.injected and response.status != 429:
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
        fake._notify()
        return response

    async def _route(
        self,
        request: web.Request,
        path: str,
        body: Any,
        uploads: list[Upload],
        record: RecordedRequest,
    ) -> web.StreamResponse:
        fake = self.fake
        for rule in fake._failures:
            if rule.matches(request.method, path):
                rule.times -= 1
                rule.hits += 1
                record.injected = True
                record.response = rule.json
                return json_response(rule.json, rule.status, rule.headers)
        matched: Route | None = None
        params: dict[str, str] = {}
        method_mismatch = False
        for candidate in self.routes:
            m = candidate.regex.match(path)
            if m is None:
                continue
            if candidate.method != request.method:
                method_mismatch = True
                continue
            matched, params = candidate, m.groupdict()
            break
        if matched is None:
            fake.unknown_requests.append(record)
            if method_mismatch:
                raise ApiError(405, 0, "405: Method Not Allowed")
            raise ApiError(404, 0, "404: Not Found")
        public = path.startswith(("/interactions/", "/webhooks/"))
        if not public and request.headers.get("Authorization") != f"Bot {fake.token}":
            raise ApiError(401, 0, "401: Unauthorized")
        response = await matched.handler(Req(request, params, body, uploads, record))
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
        fake = self.fake
        path = request.path
        fake.cdn_requests.append(path)
        fake._notify()
        item = fake._cdn.get(path)
        if item is None:
            return web.Response(status=404, text="Not Found")
        data, ctype = item
        return web.Response(body=data, headers={"Content-Type": ctype})
