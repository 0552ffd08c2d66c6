"""E2EE-capable matrix-nio clients for tests, a sync-loop runner and room helpers.

The pitfalls worked around here are listed in /work/shared/reference/matrix-synapse.md:
persistent store + fixed device id + real pickle key, keys uploaded before anyone
encrypts to the device, the one-time-key count fix, key query before encrypting,
``ignore_unverified_devices=True``, ``full_state=True`` on (re)start, retrying
undecryptable Megolm events when their room key arrives, short retry backoff so a
homeserver restart is survived quickly, and handlers run outside the sync loop.
"""

# Timeouts are explicit parameters on purpose: every wait in a test must fail fast.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias, TypeVar
from urllib.parse import quote
from uuid import uuid4

import aiohttp
from nio import (
    Api,
    AsyncClient,
    AsyncClientConfig,
    Event,
    ForwardedRoomKeyEvent,
    InviteMemberEvent,
    JoinError,
    KeysUploadResponse,
    LocalProtocolError,
    MatrixRoom,
    MegolmEvent,
    RoomCreateResponse,
    RoomKeyEvent,
    RoomMessageNotice,
    RoomMessageText,
    RoomPreset,
    RoomSendResponse,
    SyncError,
    SyncResponse,
    ToDeviceEvent,
)
from nio.exceptions import EncryptionError

from safebot.adapters.matrix.keys import tolerate_empty_key_query

from .server import RegisteredUser

log = logging.getLogger(__name__)

MEGOLM = "m.megolm.v1.aes-sha2"
TextMessage: TypeAlias = RoomMessageText | RoomMessageNotice
MessageHandler: TypeAlias = Callable[["ClientRunner", MatrixRoom, TextMessage], Awaitable[None]]
ClientLike: TypeAlias = "AsyncClient | ClientRunner"
T = TypeVar("T")

# Room versions in which the creator is listed in m.room.power_levels ``users``
# (room version 12 gives creators unlimited power outside that map).
_LEGACY_ROOM_VERSIONS = frozenset(str(v) for v in range(1, 12))


class MatrixHarnessError(RuntimeError):
    """A Matrix request made by the test harness failed."""


def _as_client(target: ClientLike) -> AsyncClient:
    return target.client if isinstance(target, ClientRunner) else target


# --------------------------------------------------------------------------------------
# Clients


def _prepare_store(store_dir: Path) -> str:
    """Create the store directory; return its pickle key (random, created once, kept
    next to the store: nio's default key is a constant)."""
    store_dir.mkdir(parents=True, exist_ok=True)
    path = store_dir / "pickle.key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key


async def make_client(
    user: RegisteredUser,
    store_dir: Path | str,
    *,
    encrypted: bool = True,
    homeserver: str | None = None,
    max_retry_wait: float = 2.0,
    request_timeout: float = 30.0,
) -> AsyncClient:
    """An nio ``AsyncClient`` logged in as ``user`` with a persistent crypto store.

    Calling it again with the same ``store_dir`` (after the previous client is closed)
    restores the same device: Olm account, Megolm sessions and the sync token.
    """
    homeserver = homeserver or user.homeserver
    if not homeserver:
        raise ValueError("no homeserver URL: pass homeserver= or a RegisteredUser with one")
    store = Path(store_dir)
    pickle_key = _prepare_store(store)
    config = AsyncClientConfig(
        store_sync_tokens=True,
        encryption_enabled=encrypted,
        pickle_key=pickle_key,
        # nio retries a lost homeserver forever with exponential backoff capped by this
        # (default 60 s); the config is frozen, so it has to be set here.
        max_timeout_retry_wait_time=max_retry_wait,
        request_timeout=request_timeout,
    )
    client = AsyncClient(
        homeserver,
        user.user_id,
        device_id=user.device_id,
        store_path=str(store),
        config=config,
    )
    tolerate_empty_key_query(client)  # (the bot's own guard, see adapters/matrix/keys.py)
    client.restore_login(user.user_id, user.device_id, user.access_token)
    client.load_store()  # no-op if restore_login already loaded it
    if encrypted:
        if client.olm is None:
            await client.close()
            raise MatrixHarnessError("encryption requested but the nio crypto store is missing")
        if client.should_upload_keys:
            # Before anyone encrypts to this device: a message encrypted to a device
            # without published keys is lost for good.
            resp = await client.keys_upload()
            if not isinstance(resp, KeysUploadResponse):
                await client.close()
                raise MatrixHarnessError(f"keys_upload failed for {user.user_id}: {resp}")
    return client


def fix_one_time_key_count(client: AsyncClient, response: SyncResponse) -> None:
    """nio only updates its uploaded one-time-key count when the server's count is
    non-zero (``if count:``), so once all 50 keys are claimed it never uploads more and
    new senders cannot start Olm sessions. Trust the server's count, zero included."""
    count = response.device_key_count.signed_curve25519
    if count is not None and client.olm is not None:
        client.olm.uploaded_key_count = count


# --------------------------------------------------------------------------------------
# Runner


@dataclass(frozen=True)
class InviteInfo:
    room_id: str
    inviter: str
    is_direct: bool


class ClientRunner:
    """Runs ``sync_forever`` for one client and records what it receives.

    * decrypted ``m.text``/``m.notice`` messages per room (``messages``) and every timeline
      event per room (``events``), own events excluded unless ``include_own``;
    * undecryptable Megolm events are kept and retried when a room key arrives;
    * invites are recorded (with ``is_direct``) and joined if ``auto_join``;
    * ``on_message`` (optional) runs in its own task per message, never inside the sync
      loop; its exceptions are collected in ``handler_errors``.

    Waiting helpers re-check their condition after every sync and raise ``TimeoutError``
    with a description, or ``MatrixHarnessError`` at once if the sync loop died.
    """

    def __init__(
        self,
        client: AsyncClient,
        *,
        auto_join: bool = False,
        on_message: MessageHandler | None = None,
        include_own: bool = False,
        sync_timeout_ms: int = 10_000,
        request_room_keys: bool = False,
    ) -> None:
        self.client = client
        self.auto_join = auto_join
        self.on_message = on_message
        self.include_own = include_own
        self.sync_timeout_ms = sync_timeout_ms
        self.request_room_keys = request_room_keys
        self.messages: dict[str, list[TextMessage]] = {}
        self.events: dict[str, list[Event]] = {}
        self.invites: dict[str, InviteInfo] = {}
        self.undecryptable: dict[str, MegolmEvent] = {}
        self.handler_errors: list[BaseException] = []
        self.sync_count = 0
        self.sync_errors: list[SyncError] = []
        self.error: BaseException | None = None
        self._consumed: set[str] = set()
        self._joining: set[str] = set()
        self._requested_sessions: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sync_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._callbacks_added = False

    @property
    def user_id(self) -> str:
        return str(self.client.user_id)

    @property
    def running(self) -> bool:
        return self._sync_task is not None and not self._sync_task.done()

    async def __aenter__(self) -> ClientRunner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- lifecycle --------------------------------------------------------------------

    async def start(self, *, timeout: float = 20.0) -> None:
        """Start syncing and wait for the first sync (rooms known, keys counted)."""
        if self.running:
            return
        if not self._callbacks_added:
            c = self.client
            c.add_response_callback(self._on_sync, SyncResponse)
            c.add_response_callback(self._on_sync_error, SyncError)
            c.add_event_callback(self._on_timeline_event, Event)
            c.add_event_callback(self._on_megolm, MegolmEvent)
            c.add_event_callback(self._on_invite, InviteMemberEvent)
            c.add_to_device_callback(self._on_room_key, (RoomKeyEvent, ForwardedRoomKeyEvent))
            self._callbacks_added = True
        self.error = None
        first = self.sync_count
        self._sync_task = asyncio.create_task(
            self.client.sync_forever(timeout=self.sync_timeout_ms, full_state=True),
            name=f"sync_forever {self.user_id}",
        )
        self._sync_task.add_done_callback(self._on_sync_task_done)
        await self.wait_until(lambda: self.sync_count > first, timeout, "the first sync")
        if self.auto_join:
            for room_id in list(self.client.invited_rooms):
                self._schedule_join(room_id)

    async def stop(self, *, close: bool = True) -> None:
        """Cancel the sync loop and handler tasks; close the HTTP session."""
        task, self._sync_task = self._sync_task, None
        tasks = [t for t in (task, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        if close:
            await self.client.close()

    # -- waiting ----------------------------------------------------------------------

    async def wait_until(
        self, condition: Callable[[], T | None], timeout: float = 10.0, what: str = "condition"
    ) -> T:
        """Return the first truthy value of ``condition()``, re-checked on every change."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed = self._changed
                    result = condition()
                    if result:
                        return result
                    self._raise_if_dead(what)
                    await changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"{self.user_id}: timed out after {timeout:.1f} s waiting for {what} "
                f"(syncs={self.sync_count}, undecryptable={len(self.undecryptable)}, "
                f"sync_errors={len(self.sync_errors)}, handler_errors={self.handler_errors!r})"
            ) from None

    async def wait_for_message(
        self,
        room_id: str,
        predicate: Callable[[TextMessage], bool] | None = None,
        timeout: float = 10.0,
    ) -> TextMessage:
        """The oldest not yet returned m.text/m.notice in ``room_id`` matching
        ``predicate``; each message is returned at most once per runner."""

        def find() -> TextMessage | None:
            for msg in self.messages.get(room_id, ()):
                if msg.event_id not in self._consumed and (predicate is None or predicate(msg)):
                    self._consumed.add(msg.event_id)
                    return msg
            return None

        return await self.wait_until(find, timeout, f"a message in {room_id}")

    async def wait_for_event(
        self, room_id: str, predicate: Callable[[Event], bool], timeout: float = 10.0
    ) -> Event:
        """The first timeline event in ``room_id`` (decrypted if possible) matching."""

        def find() -> Event | None:
            return next((e for e in self.events.get(room_id, ()) if predicate(e)), None)

        return await self.wait_until(find, timeout, f"an event in {room_id}")

    async def wait_for_invite(self, timeout: float = 10.0) -> InviteInfo:
        """The first recorded invite (joined or not)."""
        return await self.wait_until(
            lambda: next(iter(self.invites.values()), None), timeout, "an invite"
        )

    async def wait_for_room(
        self,
        room_id: str,
        *,
        members: Iterable[str] = (),
        joined: Iterable[str] = (),
        encrypted: bool | None = None,
        timeout: float = 10.0,
    ) -> MatrixRoom:
        """Wait until this client has joined ``room_id`` and knows the given members
        (invited or joined) / joined members and the encryption state."""
        members, joined = set(members), set(joined)

        def ready() -> MatrixRoom | None:
            room = self.client.rooms.get(room_id)
            if room is None or not members <= set(room.users):
                return None
            if joined - (set(room.users) - set(room.invited_users)):
                return None
            if encrypted is not None and room.encrypted != encrypted:
                return None
            return room

        return await self.wait_until(ready, timeout, f"room {room_id} to be ready")

    async def wait_for_sync(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait for ``count`` more completed syncs."""
        target = self.sync_count + count
        await self.wait_until(lambda: self.sync_count >= target, timeout, f"{count} sync(s)")

    # -- actions ----------------------------------------------------------------------

    async def join(self, room_id: str, *, attempts: int = 5) -> None:
        for attempt in range(attempts):
            resp = await self.client.join(room_id)
            if not isinstance(resp, JoinError):
                return
            if attempt + 1 == attempts:
                raise MatrixHarnessError(f"{self.user_id} could not join {room_id}: {resp}")
            await asyncio.sleep(0.2 * (attempt + 1))

    def spawn(self, coro: Awaitable[T], name: str | None = None) -> asyncio.Task[T]:
        """Run ``coro`` as a task owned by this runner (cancelled by ``stop``); its
        exception, if any, is recorded in ``handler_errors``."""

        async def wrapper() -> T:
            try:
                return await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("task %s of %s failed", name, self.user_id)
                self.handler_errors.append(exc)
                self._notify()
                raise

        task = asyncio.create_task(wrapper(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    # -- callbacks (run inside the sync loop: keep them short) -------------------------

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # mark retrieved; already recorded by the wrapper

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _raise_if_dead(self, what: str) -> None:
        if self.error is not None:
            raise MatrixHarnessError(
                f"{self.user_id}: sync loop died while waiting for {what}: {self.error!r}"
            ) from self.error
        if self._sync_task is None or self._sync_task.done():
            raise MatrixHarnessError(f"{self.user_id}: not syncing while waiting for {what}")

    def _on_sync_task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.error = task.exception()
            log.error("sync loop of %s died: %r", self.user_id, self.error)
        self._notify()

    async def _on_sync(self, response: SyncResponse) -> None:
        fix_one_time_key_count(self.client, response)
        self._retry_undecryptable()
        self.sync_count += 1
        self._notify()

    async def _on_sync_error(self, response: SyncError) -> None:
        # sync_forever retries a failed sync immediately; do not hammer the server.
        self.sync_errors.append(response)
        log.warning("sync error for %s: %s", self.user_id, response)
        await asyncio.sleep(0.5)

    async def _on_timeline_event(self, room: MatrixRoom, event: Event) -> None:
        self._record(room, event)

    def _record(self, room: MatrixRoom, event: Event) -> None:
        if event.sender == self.user_id and not self.include_own:
            return
        self.events.setdefault(room.room_id, []).append(event)
        if isinstance(event, RoomMessageText | RoomMessageNotice):
            self.messages.setdefault(room.room_id, []).append(event)
            if self.on_message is not None:
                self.spawn(self.on_message(self, room, event), name=f"on_message {event.event_id}")
        self._notify()

    async def _on_megolm(self, room: MatrixRoom, event: MegolmEvent) -> None:
        if not event.room_id:
            event.room_id = room.room_id
        self.undecryptable[event.event_id] = event
        if self.request_room_keys and event.session_id not in self._requested_sessions:
            self._requested_sessions.add(event.session_id)
            self.spawn(self.client.request_room_key(event), name="request_room_key")

    async def _on_room_key(self, event: ToDeviceEvent) -> None:
        self._retry_undecryptable()

    def _retry_undecryptable(self) -> None:
        for event_id, event in list(self.undecryptable.items()):
            room = self.client.rooms.get(event.room_id)
            if room is None:
                continue
            try:
                decrypted = self.client.decrypt_event(event)
            except EncryptionError:
                continue
            del self.undecryptable[event_id]
            if isinstance(decrypted, Event):
                self._record(room, decrypted)

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        if event.state_key != self.user_id or event.membership != "invite":
            return
        if room.room_id not in self.invites:
            self.invites[room.room_id] = InviteInfo(
                room.room_id, event.sender, bool(event.content.get("is_direct"))
            )
            self._notify()
        if self.auto_join:
            self._schedule_join(room.room_id)

    def _schedule_join(self, room_id: str) -> None:
        if room_id in self._joining or room_id in self.client.rooms:
            return
        self._joining.add(room_id)
        self.spawn(self.join(room_id), name=f"join {room_id}")


# --------------------------------------------------------------------------------------
# Rooms and messages


async def _api(
    client: AsyncClient, method: str, path: str, body: Mapping[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """A raw client-server API call with the client's token (for calls nio lacks)."""
    url = client.homeserver.rstrip("/") + path
    headers = {"Authorization": f"Bearer {client.access_token}"}
    timeout = aiohttp.ClientTimeout(total=15)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.request(method, url, json=body, headers=headers) as resp,
    ):
        data: dict[str, Any] = await resp.json(content_type=None)
        return resp.status, data


async def mark_direct(client: AsyncClient, other_user_id: str, room_id: str) -> None:
    """Add ``room_id`` to the ``m.direct`` account data, as Element does for DMs it
    creates or joins."""
    path = f"/_matrix/client/v3/user/{quote(client.user_id)}/account_data/m.direct"
    status, direct = await _api(client, "GET", path)
    if status != 200:
        direct = {}
    rooms = list(direct.get(other_user_id, []))
    if room_id not in rooms:
        rooms.append(room_id)
    direct[other_user_id] = rooms
    status, reply = await _api(client, "PUT", path, direct)
    if status != 200:
        raise MatrixHarnessError(f"setting m.direct failed: {status} {reply}")


async def create_dm(
    runner: ClientRunner,
    other_user_id: str,
    *,
    encrypted: bool = True,
    timeout: float = 10.0,
) -> str:
    """Create a DM the way Element does: ``is_direct``, preset trusted_private_chat, the
    other user invited, ``m.room.encryption`` (Megolm) in ``initial_state`` when encrypted,
    and the room added to the creator's ``m.direct``. Returns once the creator's client
    has the room with the invitee in its member list (so it can encrypt to them)."""
    client = runner.client
    initial_state = (
        [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}]
        if encrypted
        else []
    )
    async with asyncio.timeout(timeout):
        resp = await client.room_create(
            is_direct=True,
            preset=RoomPreset.trusted_private_chat,
            invite=[other_user_id],
            initial_state=initial_state,
        )
        if not isinstance(resp, RoomCreateResponse):
            raise MatrixHarnessError(f"creating a DM with {other_user_id} failed: {resp}")
        await mark_direct(client, other_user_id, resp.room_id)
    await runner.wait_for_room(
        resp.room_id, members=[other_user_id], encrypted=encrypted, timeout=timeout
    )
    return str(resp.room_id)


async def create_room(
    runner: ClientRunner,
    *,
    name: str | None = None,
    invite: Iterable[str] = (),
    power_levels: Mapping[str, int] | None = None,
    power_level_override: Mapping[str, Any] | None = None,
    encrypted: bool = False,
    preset: RoomPreset = RoomPreset.private_chat,
    room_version: str | None = None,
    timeout: float = 10.0,
) -> str:
    """Create a (community / moderator) room, e.g.
    ``create_room(owner, name="Mods", invite=[bot], power_levels={mod: 50, bot: 50})``.

    ``power_levels`` sets ``m.room.power_levels`` ``users``. In room version 12 (Synapse's
    default) the creator has unlimited power and must not be listed; for older versions
    the creator is added at 100. ``power_level_override`` is merged on top."""
    client = runner.client
    invite = list(invite)
    override: dict[str, Any] = dict(power_level_override or {})
    if power_levels is not None or (room_version in _LEGACY_ROOM_VERSIONS):
        users = dict(power_levels or {})
        if room_version in _LEGACY_ROOM_VERSIONS:
            users.setdefault(client.user_id, 100)
        override["users"] = {**users, **override.get("users", {})}
    initial_state = (
        [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}]
        if encrypted
        else []
    )
    async with asyncio.timeout(timeout):
        resp = await client.room_create(
            name=name,
            preset=preset,
            invite=invite,
            initial_state=initial_state,
            power_level_override=override or None,
            room_version=room_version,
        )
    if not isinstance(resp, RoomCreateResponse):
        raise MatrixHarnessError(f"creating room {name!r} failed: {resp}")
    await runner.wait_for_room(resp.room_id, members=invite, encrypted=encrypted, timeout=timeout)
    return str(resp.room_id)


async def _prepare_encryption(client: AsyncClient, room_id: str) -> None:
    """Make sure every member (invited ones included) has its device keys queried
    before a group session is shared: nio marks a session shared even if it reached
    nobody, and never re-shares it to devices it learns about later."""
    room = client.rooms.get(room_id)
    if room is None or not room.encrypted or client.olm is None:
        return
    client.olm.update_tracked_users(room)
    if client.should_query_keys:
        with contextlib.suppress(LocalProtocolError):  # a concurrent query emptied the set
            await client.keys_query()


async def send_text(
    target: ClientLike,
    room_id: str,
    body: str,
    *,
    msgtype: str = "m.text",
    extra_content: Mapping[str, Any] | None = None,
    timeout: float = 15.0,
) -> str:
    """Send a message (encrypted if the room is); returns the event id."""
    client = _as_client(target)
    content: dict[str, Any] = {"msgtype": msgtype, "body": body, **(extra_content or {})}
    async with asyncio.timeout(timeout):
        await _prepare_encryption(client, room_id)
        resp = await client.room_send(
            room_id, "m.room.message", content, ignore_unverified_devices=True
        )
    if not isinstance(resp, RoomSendResponse):
        raise MatrixHarnessError(f"{client.user_id} could not send to {room_id}: {resp}")
    return str(resp.event_id)


async def send_notice(target: ClientLike, room_id: str, body: str, **kwargs: Any) -> str:
    """Send an ``m.notice`` (what bots send; arrives as ``RoomMessageNotice``)."""
    return await send_text(target, room_id, body, msgtype="m.notice", **kwargs)


async def send_reaction(
    target: ClientLike,
    room_id: str,
    event_id: str,
    key: str,
    *,
    encrypt: bool | None = None,
    timeout: float = 15.0,
) -> str:
    """React to ``event_id`` with ``key`` (``m.annotation``). Like Element, the reaction
    is encrypted in encrypted rooms unless ``encrypt=False`` (nio's ``room_send`` never
    encrypts ``m.reaction``)."""
    client = _as_client(target)
    content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
    room = client.rooms.get(room_id)
    if encrypt is None:
        encrypt = bool(room is not None and room.encrypted)
    async with asyncio.timeout(timeout):
        if not encrypt:
            resp = await client.room_send(room_id, "m.reaction", content)
        else:
            await _prepare_encryption(client, room_id)
            if client.olm is None or room is None:
                raise MatrixHarnessError("cannot encrypt: no crypto store or unknown room")
            if not room.members_synced:
                await client.joined_members(room_id)
            if client.olm.should_share_group_session(room_id):
                await client.share_group_session(room_id, ignore_unverified_devices=True)
            message_type, encrypted = client.encrypt(room_id, "m.reaction", content)
            method, path, data = Api.room_send(
                client.access_token, room_id, message_type, encrypted, uuid4()
            )
            resp = await client._send(RoomSendResponse, method, path, data, (room_id,))
    if not isinstance(resp, RoomSendResponse):
        raise MatrixHarnessError(f"{client.user_id} could not react in {room_id}: {resp}")
    return str(resp.event_id)


async def echo_handler(runner: ClientRunner, room: MatrixRoom, message: TextMessage) -> None:
    """``on_message`` handler of a bare echo bot: replies ``echo: <body>`` as m.notice."""
    if isinstance(message, RoomMessageText):
        await send_notice(runner, room.room_id, f"echo: {message.body}")


async def round_trip(
    sender: ClientRunner,
    room_id: str,
    body: str,
    *,
    reply_from: str | None = None,
    timeout: float = 15.0,
) -> tuple[TextMessage, float]:
    """Send ``body`` and wait for the next message from ``reply_from`` (anyone but the
    sender if None) in the room. Returns the reply and the elapsed seconds."""
    started = time.monotonic()
    await send_text(sender, room_id, body, timeout=timeout)
    reply = await sender.wait_for_message(
        room_id,
        lambda m: m.sender == reply_from if reply_from else m.sender != sender.user_id,
        timeout=max(0.1, timeout - (time.monotonic() - started)),
    )
    return reply, time.monotonic() - started
