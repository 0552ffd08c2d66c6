"""Gateway half of the fake: HELLO / IDENTIFY / RESUME / heartbeats over plain JSON text frames."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import aiohttp
from aiohttp import web

from ._core import FakeDiscordCore, GatewayConnection, GatewaySession, log
from ._models import INTENT_GUILD_MEMBERS, PRIVILEGED_INTENTS

HELLO, HEARTBEAT, IDENTIFY, PRESENCE, VOICE_STATE = 10, 1, 2, 3, 4
RESUME, RECONNECT, REQUEST_MEMBERS, INVALID_SESSION, HEARTBEAT_ACK = 6, 7, 8, 9, 11


class GatewayMixin(FakeDiscordCore):
    async def _ws_entry(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0, timeout=2.0)
        await ws.prepare(request)
        conn = GatewayConnection(ws=ws)
        conn.writer = asyncio.create_task(conn.run_writer(), name="fakediscord-gateway-writer")
        self._connections.add(conn)
        try:
            if request.query.get("v", "10") != "10":
                await self._close(conn, 4012, "Invalid API version")
                return ws
            if request.query.get("encoding", "json") != "json":
                await self._close(conn, 4002, "Decode error")
                return ws
            conn.send(
                json.dumps({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval}})
            )
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    try:
                        frame = json.loads(msg.data)
                    except ValueError:
                        await self._close(conn, 4002, "Decode error")
                        break
                    await self._on_frame(conn, frame)
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    await self._close(conn, 4002, "Decode error")
                    break
        finally:
            self._connections.discard(conn)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                # A client-initiated 1000/1001 close ends the session (no RESUME possible).
                if not conn.server_closed and ws.close_code in (1000, 1001):
                    self._sessions.pop(session.id, None)
            conn.stop_writer()
            self._notify()
        return ws

    async def _close(self, conn: GatewayConnection, code: int, message: str = "") -> None:
        conn.server_closed = True
        conn.stop_writer()
        if conn.writer is not None:
            await asyncio.gather(conn.writer, return_exceptions=True)
        await conn.ws.close(code=code, message=message.encode())

    async def _on_frame(self, conn: GatewayConnection, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        d = frame.get("d")
        redacted = dict(frame)
        if isinstance(d, dict) and "token" in d:
            redacted["d"] = {k: v for k, v in d.items() if k != "token"}
        self.gateway_received.append(redacted)
        conn.received.append(redacted)
        if op == HEARTBEAT:
            conn.send(json.dumps({"op": HEARTBEAT_ACK}))
        elif op == IDENTIFY:
            await self._identify(conn, d or {})
        elif op == RESUME:
            await self._resume(conn, d or {})
        elif conn.session is None:
            await self._close(conn, 4003, "Not authenticated.")
        elif op == PRESENCE:
            self.presence_updates.append(d or {})
        elif op == REQUEST_MEMBERS:
            self._request_members(conn.session, d or {})
        elif op == VOICE_STATE:
            pass
        else:
            await self._close(conn, 4001, "Unknown opcode.")
        self._notify()

    async def _identify(self, conn: GatewayConnection, d: dict[str, Any]) -> None:
        if conn.session is not None:
            await self._close(conn, 4005, "Already authenticated.")
            return
        if d.get("token") != self.token:
            await self._close(conn, 4004, "Authentication failed.")
            return
        intents = d.get("intents")
        if not isinstance(intents, int):
            await self._close(conn, 4013, "Invalid intent(s).")
            return
        if intents & PRIVILEGED_INTENTS & ~self.allowed_privileged_intents:
            await self._close(conn, 4014, "Disallowed intent(s).")
            return
        shard = d.get("shard")
        shard_id, shard_count = (shard[0], shard[1]) if shard else (0, 1)
        if not 0 <= shard_id < shard_count:
            await self._close(conn, 4010, "Invalid shard.")
            return
        self.identifies.append({k: v for k, v in d.items() if k != "token"})
        session = GatewaySession(
            id=secrets.token_hex(16),
            shard_id=shard_id,
            shard_count=shard_count,
            sharded=shard is not None,
            intents=intents,
            identify=self.identifies[-1],
        )
        self._sessions[session.id] = session
        session.conn = conn
        conn.session = session
        guilds = [
            g
            for g in self.guilds.values()
            if self.bot.id in g.members and self.shard_for(g.id, shard_count) == shard_id
        ]
        user = self.bot.payload()
        user.update({"verified": True, "mfa_enabled": False, "email": None, "flags": 0})
        ready: dict[str, Any] = {
            "v": 10,
            "user": user,
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": self.application["flags"]},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "user_settings": {},
            "auth": {},
            "_trace": ['["fakediscord",{"micros":0}]'],
        }
        if session.sharded:
            ready["shard"] = [shard_id, shard_count]
        self._send_dispatch(session, "READY", ready)
        for guild in guilds:
            self._send_dispatch(session, "GUILD_CREATE", self._guild_create_payload(guild, session))

    async def _resume(self, conn: GatewayConnection, d: dict[str, Any]) -> None:
        session = self._sessions.get(str(d.get("session_id")))
        self.resumes.append({k: v for k, v in d.items() if k != "token"})
        if session is None or d.get("token") != self.token:
            conn.send(json.dumps({"op": INVALID_SESSION, "d": False}))
            return
        old = session.conn
        if old is not None and old is not conn:
            old.session = None
            await self._close(old, 4000, "Session resumed elsewhere")
        session.conn = conn
        conn.session = session
        last = d.get("seq")
        for seq, frame in session.buffer:
            if last is None or seq > int(last):
                conn.send(frame)
        self._send_dispatch(session, "RESUMED", {"_trace": ['["fakediscord",{"micros":0}]']})

    def _request_members(self, session: GatewaySession, d: dict[str, Any]) -> None:
        guild_ids = d.get("guild_id")
        for gid in guild_ids if isinstance(guild_ids, list) else [guild_ids]:
            guild = None if gid is None else self.guilds.get(int(gid))
            if guild is None:
                continue
            members = list(guild.members.values())
            if d.get("user_ids"):
                wanted = {int(u) for u in d["user_ids"]}
                members = [m for m in members if m.user.id in wanted]
            elif d.get("query"):
                q = str(d["query"]).lower()
                members = [m for m in members if m.user.username.lower().startswith(q)]
            if not session.intents & INTENT_GUILD_MEMBERS and not d.get("user_ids"):
                members = []
            limit = int(d.get("limit") or 0)
            if limit:
                members = members[:limit]
            chunk: dict[str, Any] = {
                "guild_id": str(guild.id),
                "members": [m.payload() for m in members],
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [],
            }
            if d.get("nonce"):
                chunk["nonce"] = d["nonce"]
            self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)

    # ------------------------------------------------------------ public gateway control
    async def disconnect_all(self, code: int = 4000, *, invalidate: bool = False) -> None:
        """Close every gateway websocket with ``code``. discord.py then RESUMEs (events sent
        meanwhile are buffered and replayed); with ``invalidate=True`` the sessions are dropped
        so the RESUME gets INVALID_SESSION and the client IDENTIFYs again."""
        conns = list(self._connections)
        if invalidate:
            self._sessions.clear()
        for conn in conns:
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
        await asyncio.gather(*(self._close(c, code, "fakediscord disconnect") for c in conns))
        self._notify()

    def send_reconnect(self) -> None:
        """Send op 7 RECONNECT on every connection (client closes and RESUMEs)."""
        for conn in list(self._connections):
            conn.send(json.dumps({"op": RECONNECT, "d": None}))

    def invalidate_sessions(self, *, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION on every connection."""
        for conn in list(self._connections):
            conn.send(json.dumps({"op": INVALID_SESSION, "d": resumable}))
            if not resumable and conn.session is not None:
                self._sessions.pop(conn.session.id, None)

    @property
    def connected_sessions(self) -> int:
        return sum(1 for s in self._sessions.values() if s.conn is not None)

    async def wait_for_sessions(self, count: int = 1, *, timeout: float = 2.0) -> None:  # noqa: ASYNC109
        """Wait until ``count`` gateway sessions are connected (e.g. after a RESUME)."""

        def check() -> bool | None:
            return True if self.connected_sessions >= count else None

        await self.wait_until(check, timeout=timeout, what=f"{count} connected gateway session(s)")

    async def _close_all_for_shutdown(self) -> None:
        conns = list(self._connections)
        await asyncio.gather(
            *(self._close(c, 1001, "fakediscord shutting down") for c in conns),
            return_exceptions=True,
        )
        log.debug("closed %d gateway connections", len(conns))
