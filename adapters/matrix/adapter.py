"""The Matrix adapter (matrix-nio, end-to-end encryption).

This module holds the adapter: its login and session, the sync loop, the inbox and the person
side. Beside it: outbound.py (sending, and the core's port: alerts and status DMs),
moderators.py (the moderator room's commands and reactions), render.py, privacy.py, inbox.py.

People talk to the bot in DM rooms (encrypted or not). Moderators link a private moderator
room to a community room with ``!safebot link #room:server``; alerts go there, and they act
with ``!safebot ack|claim|resolve R-XXXX`` or by reacting to the alert, and can stop the
sender of a report from reporting again with ``!safebot block R-XXXX`` (``unblock`` undoes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from nio import (
    AsyncClient,
    AsyncClientConfig,
    BadEvent,
    ForwardedRoomKeyEvent,
    InviteMemberEvent,
    KeysUploadResponse,
    LocalProtocolError,
    LoginResponse,
    MatrixRoom,
    MegolmEvent,
    ReactionEvent,
    RoomEncryptedMedia,
    RoomKeyEvent,
    RoomMessageMedia,
    RoomMessageText,
    StickerEvent,
    SyncError,
    SyncResponse,
    WhoamiResponse,
)
from nio.crypto import ENCRYPTION_ENABLED
from nio.exceptions import EncryptionError

from safebot.adapters.matrix.ids import PLATFORM, person_of
from safebot.adapters.matrix.inbox import REPLAY, Inbound, Inbox, Replay, replay_token
from safebot.adapters.matrix.keys import (
    publish_fallback_key,
    tolerate_empty_key_query,
    top_up_one_time_keys,
)
from safebot.adapters.matrix.moderators import ModeratorRoom
from safebot.adapters.matrix.outbound import MatrixOutbound
from safebot.adapters.matrix.platform import matrix_settings
from safebot.adapters.matrix.privacy import RedirectLimiter, names_bot, private_room
from safebot.adapters.matrix.render import MAX_EVENT, event_size, message_content
from safebot.adapters.matrix.session import (
    SIGNED_OUT_MESSAGE,
    SignedOut,
    is_signed_out,
    keep_private,
    prepare_store,
)
from safebot.content import Content
from safebot.events import CommandInvoked, Event, TextReceived
from safebot.messages import Message
from safebot.model import Community, CommunityConfig, PersonId
from safebot.moderation import Alert
from safebot.platforms import PlatformError
from safebot.ports import Capabilities, DeliveryError
from safebot.service import SafeBot
from safebot.settings import Settings
from safebot.store.base import Store

__all__ = ["PLATFORM", "MatrixAdapter", "MatrixLoginError"]

log = logging.getLogger(__name__)

PREFIX = "!safebot"
_COMMAND_ALIASES = {"forget-me": "forget"}
"""Other names people may type for a command of content/flows.toml (which owns the list)."""
MOD_COMMANDS = frozenset(
    {
        "link",
        "unlink",
        "status",
        "ack",
        "claim",
        "resolve",
        "block",
        "unblock",
        "note",
        "export",
        "report-server",
        "ban",
        "policy",
        "escalate",
        "help",
    }
)
# "help" and "block" are the person's commands in a DM and moderator commands in any other
# room ("block R-XXXX" stops the sender of that report from reporting again).
_SHARED_COMMANDS = frozenset({"help", "block"})
_SYNC_TIMEOUT_MS = 30_000
_ANSWER_TRIES = 5
# Back from downtime, a sync returns at most this many events per room (Synapse's default
# is 10, and a limited timeline silently skips the older ones).
_SYNC_FILTER = {"room": {"timeline": {"limit": 500}}}


class MatrixLoginError(PlatformError):
    """The bot could not log in or restore its device (``safebot run matrix`` exits 1)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=1)


def _private_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


class MatrixAdapter:
    """Matrix for SafeBot: login, sync, the inbox and the person side are here; the outbound
    port is MatrixOutbound and the moderator room ModeratorRoom, each in its own module."""

    platform = PLATFORM
    capabilities = Capabilities(max_length=MAX_EVENT, measure=event_size)

    def __init__(
        self,
        settings: Settings,
        content: Content,
        *,
        homeserver: str,
        user_id: str,
        data_dir: Path,
        password: str | None = None,
        access_token: str | None = None,
        device_id: str | None = None,
        retry_wait: float = 5.0,
        sync_timeout_ms: int = _SYNC_TIMEOUT_MS,
        undecryptable_wait: float = 20.0,
    ) -> None:
        if not ENCRYPTION_ENABLED:
            raise MatrixLoginError("matrix-nio was installed without E2EE support ([e2e])")
        self.settings = settings
        self.content = content
        self.bot: SafeBot  # set by attach()
        self.store: Store
        self.homeserver = homeserver
        self.user_id = user_id
        self.data_dir = Path(data_dir)
        self.password = password
        self.access_token = access_token
        self.device_id = device_id
        self.retry_wait = retry_wait
        self.sync_timeout_ms = sync_timeout_ms
        self.undecryptable_wait = undecryptable_wait
        self.client: AsyncClient | None = None
        self.dm_rooms: dict[str, str] = {}  # person user id -> DM room id
        self._undecryptable: dict[str, tuple[MatrixRoom, MegolmEvent]] = {}
        self._handled: set[str] = set()
        self._hints = RedirectLimiter(matrix_settings(settings).private_hint_minutes * 60)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self._sync_task: asyncio.Task[None] | None = None
        self._background: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()
        self.inbox: Inbox | None = None
        self._batch: list[Inbound] = []  # this sync's messages, stored with its token
        self._queues: dict[str, list[Inbound]] = {}  # sender -> messages, oldest first
        self._recovered = False
        self._secret = b""
        self._signed_out = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self.stopped = asyncio.Event()  # set when the adapter gave up (see ``failure``)
        self.failure: MatrixLoginError | None = None
        self.outbound = MatrixOutbound(self)
        self.desk = ModeratorRoom(self, self.outbound)

    # --- lifecycle ------------------------------------------------------------------------
    def attach(self, bot: SafeBot) -> None:
        self.bot = bot
        self.store = bot.store

    def reference_tokens(self) -> Callable[[], str]:
        # A message replayed after a crash mints the same report reference (see inbox.py).
        return replay_token

    async def run(self, stop: asyncio.Event) -> None:
        """Start, then serve until ``stop`` is set or the session is lost for good (raised as
        MatrixLoginError)."""
        await self.start()
        stopping = asyncio.ensure_future(stop.wait())
        gave_up = asyncio.ensure_future(self.stopped.wait())
        try:
            await asyncio.wait({stopping, gave_up}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            gave_up.cancel()
        if self.failure is not None:
            raise self.failure

    @property
    def _credentials_path(self) -> Path:
        return self.data_dir / "credentials.json"

    @property
    def _dm_path(self) -> Path:
        return self.data_dir / "dm_rooms.json"

    def _pickle_key(self) -> str:
        path = self.data_dir / "pickle.key"
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_urlsafe(32)
        _private_write(path, key)
        return key

    async def start(self) -> None:
        """Log in (or restore the saved device), load the crypto store, sync once, then run
        the sync loop and outbox delivery in the background."""
        keep_private(self.data_dir)
        self.inbox = Inbox(self.data_dir / "inbox.db")
        self._secret = self._pickle_key().encode()
        await self._connect()
        self._supervisor = asyncio.create_task(self._supervise(), name="matrix session")
        self._background = asyncio.create_task(self.bot.run_background(self._stop))

    async def _connect(self, *, fresh: bool = False) -> None:
        """A logged-in client whose token works, then its sync loop."""
        try:
            client = await self._login(fresh=fresh)
        except SignedOut:
            if not self.password:
                raise MatrixLoginError(SIGNED_OUT_MESSAGE) from None
            log.warning("the saved Matrix session was signed out; logging in again")
            self._forget_device()
            client = await self._login(fresh=True)
        keep_private(self.data_dir)
        assert self.inbox is not None
        since = self.inbox.token() or client.loaded_sync_token
        if not since:
            # Skip history: one sync before any message handler exists. Its own filter keeps
            # Synapse from answering with a cached earlier initial sync of this device.
            first = await client.sync(
                timeout=0, full_state=True, sync_filter={"room": {"timeline": {"limit": 1}}}
            )
            if isinstance(first, SyncResponse):
                self.inbox.accept([], first.next_batch)
                for room_id, info in first.rooms.invite.items():  # invites are not history
                    room = client.invited_rooms.get(room_id)
                    for event in info.invite_state:
                        if room is not None and isinstance(event, InviteMemberEvent):
                            await self._on_invite(room, event)
        self._install_callbacks(client)
        self._sync_task = asyncio.create_task(
            client.sync_forever(
                timeout=self.sync_timeout_ms,
                full_state=True,
                since=self.inbox.token() or None,
                sync_filter=_SYNC_FILTER,
            ),
            name="matrix sync",
        )
        log.info("logged in; syncing")

    async def _login(self, *, fresh: bool) -> AsyncClient:
        store_dir = self.data_dir / "crypto"
        config = AsyncClientConfig(
            # The sync token is kept in the inbox, with the messages it covers.
            store_sync_tokens=False,
            encryption_enabled=True,
            pickle_key=self._pickle_key(),
            max_timeout_retry_wait_time=self.retry_wait,
            request_timeout=30,
        )
        saved = {} if fresh else self._load_credentials()
        device_id = None if fresh else self.device_id or saved.get("device_id")
        token = None if fresh else self.access_token or saved.get("access_token")
        store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if device_id:
            prepare_store(store_dir, self.user_id, device_id)
        client = AsyncClient(
            self.homeserver,
            self.user_id,
            device_id=device_id,
            store_path=str(store_dir),
            config=config,
        )
        tolerate_empty_key_query(client)
        self.client = client
        if token and device_id:
            client.restore_login(self.user_id, device_id, token)
            whoami = await client.whoami()
            if not isinstance(whoami, WhoamiResponse) and is_signed_out(whoami):
                await client.close()
                raise SignedOut()
        elif self.password:
            response = await client.login(self.password, device_name="SafeBot")
            if not isinstance(response, LoginResponse):
                await client.close()
                raise MatrixLoginError(f"login failed: {getattr(response, 'message', response)}")
            self._save_credentials(response.device_id, response.access_token)
        else:
            raise MatrixLoginError("no access token with a device id, and no password")
        if client.olm is None:
            client.load_store()
        if client.should_upload_keys:
            # Before anyone encrypts to this device: a message encrypted to a device with no
            # published keys is lost for good.
            upload = await client.keys_upload()
            if not isinstance(upload, KeysUploadResponse):
                await self._refused(client, upload, "uploading device keys failed")
        fallback = await publish_fallback_key(client)
        if not isinstance(fallback, KeysUploadResponse):
            await self._refused(client, fallback, "publishing the fallback key failed")
        self.dm_rooms = self._load_dm_rooms()
        return client

    @staticmethod
    async def _refused(client: AsyncClient, response: object, what: str) -> NoReturn:
        """A start-up request failed: the session was signed out meanwhile (the device was
        deleted after the token check), or something else went wrong."""
        await client.close()
        if is_signed_out(response):
            raise SignedOut()
        raise MatrixLoginError(f"{what}: {getattr(response, 'status_code', response)}")

    async def _supervise(self) -> None:
        """Log in again when the session is signed out while running, or give up cleanly."""
        while not self._stop.is_set():
            await self._signed_out.wait()
            self._signed_out.clear()
            old, task = self.client, self._sync_task
            if old is not None:
                old.stop_sync_forever()
            if task is not None:
                task.cancel()
                await asyncio.wait([task], timeout=5)
            if old is not None:
                await old.close()
            if not self.password:
                log.error("%s", SIGNED_OUT_MESSAGE)
                self._give_up(MatrixLoginError(SIGNED_OUT_MESSAGE))
                return
            log.warning("the Matrix session was signed out; logging in again")
            self._forget_device()
            try:
                await self._connect(fresh=True)
            except MatrixLoginError as exc:
                log.error("logging in again failed")
                self._give_up(exc)
                return

    def _forget_device(self) -> None:
        """Drop the dead device: its token, and its crypto store (keys nobody can use)."""
        dead = self.client.device_id if self.client is not None else None
        self.access_token = None  # a configured token died with the device
        self.device_id = None
        self._credentials_path.unlink(missing_ok=True)
        if dead:
            for path in (self.data_dir / "crypto").glob(f"{self.user_id}_{dead}.db*"):
                path.unlink(missing_ok=True)

    def _give_up(self, failure: MatrixLoginError) -> None:
        self.failure = failure
        self.stopped.set()

    async def close(self) -> None:
        self._stop.set()
        self.bot.metrics.set_connected(False)
        for task in (self._supervisor, self._sync_task, *self._tasks):
            if task is not None:
                task.cancel()
        pending = [
            t
            for t in (self._supervisor, self._sync_task, self._background, *self._tasks)
            if t is not None
        ]
        if pending:
            await asyncio.wait(pending, timeout=5)
        if self.client is not None:
            await self.client.close()
        if self.inbox is not None:
            self.inbox.close()
            self.inbox = None

    def _load_credentials(self) -> dict[str, str]:
        try:
            data = json.loads(self._credentials_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {k: str(v) for k, v in data.items() if data.get("user_id") == self.user_id}

    def _save_credentials(self, device_id: str, access_token: str) -> None:
        data = {"user_id": self.user_id, "device_id": device_id, "access_token": access_token}
        _private_write(self._credentials_path, json.dumps(data))

    def _load_dm_rooms(self) -> dict[str, str]:
        try:
            return {str(k): str(v) for k, v in json.loads(self._dm_path.read_text()).items()}
        except (FileNotFoundError, ValueError):
            return {}

    def remember_dm(self, user_id: str, room_id: str) -> None:
        if self.dm_rooms.get(user_id) != room_id:
            self.dm_rooms[user_id] = room_id
            _private_write(self._dm_path, json.dumps(self.dm_rooms))

    def _install_callbacks(self, client: AsyncClient) -> None:
        client.add_response_callback(self._on_sync, SyncResponse)
        client.add_response_callback(self._on_sync_error, SyncError)
        client.add_event_callback(self._on_invite, InviteMemberEvent)
        client.add_event_callback(self._on_text, RoomMessageText)
        client.add_event_callback(
            self._on_media, (RoomMessageMedia, RoomEncryptedMedia, StickerEvent, BadEvent)
        )
        client.add_event_callback(self.desk.on_reaction, ReactionEvent)
        client.add_event_callback(self._on_megolm, MegolmEvent)
        client.add_to_device_callback(
            self._on_room_key,
            (RoomKeyEvent, ForwardedRoomKeyEvent),
        )

    def spawn(self, coro: Any) -> None:
        """Callbacks run inside the sync loop: hand the work to a task so syncing goes on."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("matrix handler failed: %r", type(task.exception()).__name__)

    # --- sync callbacks -------------------------------------------------------------------
    async def _on_sync(self, response: SyncResponse) -> None:
        if self.client is not None:
            await top_up_one_time_keys(self.client, response)
        self._retry_undecryptable()
        # /healthz: the last sync worked; stale if no sync comes back for a while.
        self.bot.metrics.set_connected(True, for_seconds=self.sync_timeout_ms / 1000 + 60)
        self._take_in(response.next_batch)
        self.synced.set()

    async def _on_sync_error(self, response: SyncError) -> None:
        if is_signed_out(response):
            self._signed_out.set()
            await asyncio.sleep(self.retry_wait)  # the supervisor stops this loop
            return
        log.warning("sync failed (%s); retrying", getattr(response, "status_code", "?"))
        self.bot.metrics.set_connected(False)
        await asyncio.sleep(min(self.retry_wait, 2.0))

    # --- the inbox: every message answered once, in the order each person sent them ---------
    def _collect(self, room: MatrixRoom, event: Any, kind: str, body: str = "") -> None:
        self._batch.append(Inbound(0, event.event_id, room.room_id, event.sender, kind, body))

    def _take_in(self, token: str) -> None:
        """Store this sync's messages with the token after them, then hand them to each
        sender's queue (after a restart, everything not answered before it, first)."""
        if self.inbox is None:
            return
        batch, self._batch = self._batch, []
        stored = self.inbox.accept(batch, token)
        if not self._recovered:
            self._recovered = True
            stored = self.inbox.pending()
        for item in stored:
            queue = self._queues.setdefault(item.sender, [])
            queue.append(item)
            if len(queue) == 1:
                self.spawn(self._drain(item.sender))

    async def _drain(self, sender: str) -> None:
        queue = self._queues[sender]
        try:
            while queue:
                await self._answer(queue[0])
                queue.pop(0)
        finally:
            if not queue:
                self._queues.pop(sender, None)

    async def _answer(self, item: Inbound) -> None:
        """Handle one message (again, after a crash, unless it was handled and answered)."""
        assert self.inbox is not None
        person = person_of(item.sender)
        session = await self.store.load_session(person)
        version = session.version if session is not None else 0
        if item.before is not None and item.before != version:
            self.inbox.done(item.seq)  # its new state was saved, so it was answered
            return
        self.inbox.started(item.seq, version)
        room = self.client.rooms.get(item.room_id) if self.client is not None else None
        for attempt in range(1, _ANSWER_TRIES + 1):
            replay = REPLAY.set(Replay(item.event_id, self._secret))
            try:
                if room is None:
                    pass  # the bot left the room
                elif item.kind == "media":
                    await self._media_in(room.room_id, item.sender)
                else:
                    await self._route_text(room, item.sender, item.body)
                break
            except Exception as exc:
                log.warning("answering a message failed (%s), try %d", type(exc).__name__, attempt)
                await asyncio.sleep(self.retry_wait * attempt)
            finally:
                REPLAY.reset(replay)
        self.inbox.done(item.seq)

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        if event.state_key != self.user_id or event.membership != "invite":
            return
        if event.content.get("is_direct"):
            self.remember_dm(event.sender, room.room_id)
        self.spawn(self._join(room.room_id))

    async def _join(self, room_id: str) -> None:
        assert self.client is not None
        for attempt in range(5):
            response = await self.client.join(room_id)
            if getattr(response, "room_id", None):
                return
            await asyncio.sleep(0.2 * (attempt + 1))
        log.warning("could not join a room after an invite")

    def _is_dm(self, room: MatrixRoom, sender: str) -> bool:
        return bool(self.dm_rooms.get(sender) == room.room_id)

    async def _on_text(self, room: MatrixRoom, event: RoomMessageText) -> None:
        if event.sender == self.user_id or not self.first_time(event.event_id):
            return
        self._collect(room, event, "text", event.body)

    async def _route_text(self, room: MatrixRoom, sender: str, body: str) -> None:
        words = body.strip().split()
        prefixed = bool(words) and words[0].lower() == PREFIX
        sub = words[1].lower() if prefixed and len(words) > 1 else ""
        dm = self._is_dm(room, sender)
        if prefixed and sub in MOD_COMMANDS and (sub not in _SHARED_COMMANDS or not dm):
            # A bare "!safebot block" in an unmarked DM (a client without is_direct) is still
            # the person asking for help blocking someone.
            bare_block = sub == "block" and len(words) == 2
            if not bare_block or await self.desk.is_configured_room(room.room_id):
                await self.desk.command(room, sender, words[1:])
                return
        if await self.desk.is_configured_room(room.room_id):
            return  # the bot never answers people in community or moderator rooms
        if not await self.private(room.room_id, sender):
            named = names_bot(body, self.user_id, room.user_name(self.user_id))
            if dm or prefixed or named or room.member_count <= 2:  # meant for the bot
                await self._hint_private(room.room_id)
            return
        self.remember_dm(sender, room.room_id)  # also a DM from a client without is_direct
        event: Event
        command = _COMMAND_ALIASES.get(sub, sub)
        if command and self.bot.engine.has_command(command):
            event = CommandInvoked(person_of(sender), command)
        else:
            text = body.strip()[len(PREFIX) :].strip() if prefixed else body
            event = TextReceived(person_of(sender), text)
        await self._converse(room.room_id, event)

    async def _on_media(self, room: MatrixRoom, event: Any) -> None:
        """Images, files, stickers (or media nio could not parse): never downloaded, never
        forwarded; the person gets a gentle warning."""
        if isinstance(event, BadEvent):
            msgtype = event.source.get("content", {}).get("msgtype")
            if msgtype not in ("m.image", "m.video", "m.file", "m.audio"):
                return
        if event.sender == self.user_id or not self.first_time(event.event_id):
            return
        if self._is_dm(room, event.sender) or room.member_count <= 2:
            self._collect(room, event, "media")

    async def _media_in(self, room_id: str, sender: str) -> None:
        if await self.desk.is_configured_room(room_id):
            return
        if not await self.private(room_id, sender):
            await self._hint_private(room_id)
            return
        await self._converse(room_id, TextReceived(person_of(sender), "", 1))

    async def private(self, room_id: str, person: str) -> bool:
        """Guidance for ``person`` may go into this room now (adapters/matrix/privacy.py)."""
        assert self.client is not None
        return await private_room(self.client, room_id, person)

    async def _hint_private(self, room_id: str) -> None:
        """One neutral line pointing to a private chat, at most once per room per period."""
        if self._hints.due(room_id, asyncio.get_running_loop().time()):
            await self.desk.say(room_id, "matrix.private_only", self.content.default_locale)

    async def _converse(self, room_id: str, event: Event) -> None:
        """Run the conversation; its replies are sent before its new state is saved."""
        delivered = False

        async def deliver(replies: tuple[Message, ...]) -> None:
            nonlocal delivered
            for reply in replies:
                await self.outbound.send(room_id, message_content(reply))
            delivered = True

        try:
            replies = await self.bot.handle(event, before_save=deliver)
        except DeliveryError:
            raise  # nothing was saved: the inbox tries again, with the same transaction ids
        except Exception:
            log.exception("handling a message failed")
            replies, delivered = (self.bot.sorry(event.person),), False
        if not delivered:
            for reply in replies:
                await self.outbound.send(room_id, message_content(reply))

    def first_time(self, event_id: str) -> bool:
        if event_id in self._handled:
            return False
        self._handled.add(event_id)
        if len(self._handled) > 50_000:
            self._handled.clear()
        return True

    async def _on_megolm(self, room: MatrixRoom, event: MegolmEvent) -> None:
        """A message we cannot decrypt yet: ask for the key and retry when keys arrive."""
        if event.sender == self.user_id or self.client is None:
            return
        self._undecryptable[event.event_id] = (room, event)
        self.spawn(self._request_key(event))
        if self._is_dm(room, event.sender):
            self.spawn(self._nudge_if_still_unreadable(room.room_id, event.event_id))

    async def _nudge_if_still_unreadable(self, room_id: str, event_id: str) -> None:
        await asyncio.sleep(self.undecryptable_wait)
        unread = self._undecryptable.get(event_id)
        if unread is not None and await self.private(room_id, unread[1].sender):
            await self.desk.say(room_id, "matrix.undecryptable")

    async def _request_key(self, event: MegolmEvent) -> None:
        assert self.client is not None
        with contextlib.suppress(LocalProtocolError):  # already requested
            await self.client.request_room_key(event)

    async def _on_room_key(self, event: Any) -> None:
        self._retry_undecryptable()

    def _retry_undecryptable(self) -> None:
        if not self._undecryptable or self.client is None:
            return
        for event_id, (room, encrypted) in list(self._undecryptable.items()):
            try:
                decrypted = self.client.decrypt_event(encrypted)
            except EncryptionError:
                continue
            del self._undecryptable[event_id]
            if isinstance(decrypted, RoomMessageText):
                if decrypted.sender != self.user_id and self.first_time(decrypted.event_id):
                    self._collect(room, decrypted, "text", decrypted.body)
            elif isinstance(decrypted, ReactionEvent):
                self.spawn(self.desk.on_reaction(room, decrypted))

    # --- PlatformPort (the outbox's calls) ------------------------------------------------
    async def shared_communities(self, person: PersonId) -> Sequence[Community]:
        return await self.outbound.shared_communities(person)

    async def send_alert(self, config: CommunityConfig, alert: Alert) -> str:
        return await self.outbound.send_alert(config, alert)

    async def update_alert(self, config: CommunityConfig, alert: Alert, key: str) -> str | None:
        return await self.outbound.update_alert(config, alert, key)

    async def reply_to_alert(
        self,
        config: CommunityConfig,
        alert: Alert,
        message: Message,
        key: str,
        *,
        ping: bool,
        escalate: bool = False,
    ) -> None:
        await self.outbound.reply_to_alert(
            config, alert, message, key, ping=ping, escalate=escalate
        )

    async def send_private(self, person: PersonId, message: Message, key: str) -> None:
        await self.outbound.send_private(person, message, key)
