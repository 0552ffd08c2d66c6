"""The Matrix adapter (matrix-nio, end-to-end encryption).

People talk to the bot in DM rooms (encrypted or not). Moderators link a private moderator
room to a community room with ``!safebot link #room:server``; alerts go there, and they act
with ``!safebot ack|claim|resolve R-XXXX`` or by reacting to the alert, and can stop the
sender of a report from reporting again with ``!safebot block R-XXXX`` (``unblock`` undoes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from nio import (
    AsyncClient,
    AsyncClientConfig,
    BadEvent,
    ForwardedRoomKeyEvent,
    InviteMemberEvent,
    JoinedMembersResponse,
    KeysUploadResponse,
    LocalProtocolError,
    LoginResponse,
    MatrixRoom,
    MegolmEvent,
    ReactionEvent,
    RoomBanResponse,
    RoomCreateResponse,
    RoomEncryptedMedia,
    RoomGetEventResponse,
    RoomGetStateResponse,
    RoomKeyEvent,
    RoomMessageMedia,
    RoomMessageText,
    RoomPutStateResponse,
    RoomRedactResponse,
    RoomResolveAliasResponse,
    RoomSendResponse,
    StickerEvent,
    SyncError,
    SyncResponse,
    WhoamiResponse,
)
from nio.crypto import ENCRYPTION_ENABLED
from nio.exceptions import EncryptionError

from adapters.matrix.history import find_own_event, own_events
from adapters.matrix.inbox import REPLAY, Inbound, Inbox, Replay, replay_token, replay_txn
from adapters.matrix.keys import (
    publish_fallback_key,
    tolerate_empty_key_query,
    top_up_one_time_keys,
)
from adapters.matrix.platform import matrix_settings
from adapters.matrix.powers import RoomPowers
from adapters.matrix.privacy import RedirectLimiter, names_bot, private_room
from adapters.matrix.render import (
    ALERT_KEY,
    REACTIONS,
    REFERENCE_KEY,
    alert_content,
    alert_reply_content,
    message_content,
    notice,
    preformatted,
    status_content,
)
from adapters.matrix.server_report import message_links, report_to_server, user_ids
from adapters.matrix.session import (
    SIGNED_OUT_MESSAGE,
    SignedOut,
    is_signed_out,
    keep_private,
    prepare_store,
)
from adapters.matrix.threads import alert_key, in_thread
from safebot.content import Content
from safebot.conversation import is_reference
from safebot.events import CommandInvoked, Event, TextReceived
from safebot.messages import Message, Span, plain_text
from safebot.model import Community, CommunityConfig, CommunityId, PersonId, Report
from safebot.moderation import Alert
from safebot.platforms import PlatformError
from safebot.ports import DeliveryError
from safebot.service import SafeBot
from safebot.settings import Settings
from safebot.store.base import Store

__all__ = ["PLATFORM", "MatrixAdapter", "MatrixLoginError"]

log = logging.getLogger(__name__)

PLATFORM = "matrix"
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
_HISTORY_SCAN = 50
_THREAD_ROOT_PAGES = 20  # of _HISTORY_SCAN of the bot's own events: an old alert's thread
# How far back (pages of _HISTORY_SCAN of the bot's own events) "forget me" looks for alerts.
_REDACT_SCAN_PAGES = 20
_SYNC_TIMEOUT_MS = 30_000
_ANSWER_TRIES = 5
# Back from downtime, a sync returns at most this many events per room (Synapse's default
# is 10, and a limited timeline silently skips the older ones).
_SYNC_FILTER = {"room": {"timeline": {"limit": 500}}}


class MatrixLoginError(PlatformError):
    """The bot could not log in or restore its device (``safebot run matrix`` exits 1)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=1)


def person_of(user_id: str) -> PersonId:
    return PersonId(PLATFORM, user_id)


def community_id(room_id: str) -> CommunityId:
    return CommunityId(PLATFORM, room_id)


def _private_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


class MatrixAdapter:
    """PlatformPort for Matrix, plus every Matrix-facing handler."""

    platform = PLATFORM

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
        self._dm_rooms: dict[str, str] = {}  # person user id -> DM room id
        self._alert_events: dict[str, str] = {}  # alert key -> event id
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
        self._dm_rooms = self._load_dm_rooms()
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

    def _remember_dm(self, user_id: str, room_id: str) -> None:
        if self._dm_rooms.get(user_id) != room_id:
            self._dm_rooms[user_id] = room_id
            _private_write(self._dm_path, json.dumps(self._dm_rooms))

    def _install_callbacks(self, client: AsyncClient) -> None:
        client.add_response_callback(self._on_sync, SyncResponse)
        client.add_response_callback(self._on_sync_error, SyncError)
        client.add_event_callback(self._on_invite, InviteMemberEvent)
        client.add_event_callback(self._on_text, RoomMessageText)
        client.add_event_callback(
            self._on_media, (RoomMessageMedia, RoomEncryptedMedia, StickerEvent, BadEvent)
        )
        client.add_event_callback(self._on_reaction, ReactionEvent)
        client.add_event_callback(self._on_megolm, MegolmEvent)
        client.add_to_device_callback(
            self._on_room_key,
            (RoomKeyEvent, ForwardedRoomKeyEvent),
        )

    def _spawn(self, coro: Any) -> None:
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
                self._spawn(self._drain(item.sender))

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
            self._remember_dm(event.sender, room.room_id)
        self._spawn(self._join(room.room_id))

    async def _join(self, room_id: str) -> None:
        assert self.client is not None
        for attempt in range(5):
            response = await self.client.join(room_id)
            if getattr(response, "room_id", None):
                return
            await asyncio.sleep(0.2 * (attempt + 1))
        log.warning("could not join a room after an invite")

    def _is_dm(self, room: MatrixRoom, sender: str) -> bool:
        return bool(self._dm_rooms.get(sender) == room.room_id)

    async def _on_text(self, room: MatrixRoom, event: RoomMessageText) -> None:
        if event.sender == self.user_id or not self._first_time(event.event_id):
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
            if not bare_block or await self._is_configured_room(room.room_id):
                await self._mod_command(room, sender, words[1:])
                return
        if await self._is_configured_room(room.room_id):
            return  # the bot never answers people in community or moderator rooms
        if not await self._private(room.room_id, sender):
            named = names_bot(body, self.user_id, room.user_name(self.user_id))
            if dm or prefixed or named or room.member_count <= 2:  # meant for the bot
                await self._hint_private(room.room_id)
            return
        self._remember_dm(sender, room.room_id)  # also a DM from a client without is_direct
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
        if event.sender == self.user_id or not self._first_time(event.event_id):
            return
        if self._is_dm(room, event.sender) or room.member_count <= 2:
            self._collect(room, event, "media")

    async def _media_in(self, room_id: str, sender: str) -> None:
        if await self._is_configured_room(room_id):
            return
        if not await self._private(room_id, sender):
            await self._hint_private(room_id)
            return
        await self._converse(room_id, TextReceived(person_of(sender), "", 1))

    async def _private(self, room_id: str, person: str) -> bool:
        """Guidance for ``person`` may go into this room now (adapters/matrix/privacy.py)."""
        assert self.client is not None
        return await private_room(self.client, room_id, person)

    async def _hint_private(self, room_id: str) -> None:
        """One neutral line pointing to a private chat, at most once per room per period."""
        if self._hints.due(room_id, asyncio.get_running_loop().time()):
            await self._say(room_id, "matrix.private_only", self.content.default_locale)

    async def _converse(self, room_id: str, event: Event) -> None:
        """Run the conversation; its replies are sent before its new state is saved."""
        delivered = False

        async def deliver(replies: tuple[Message, ...]) -> None:
            nonlocal delivered
            for reply in replies:
                await self._send(room_id, message_content(reply))
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
                await self._send(room_id, message_content(reply))

    def _first_time(self, event_id: str) -> bool:
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
        self._spawn(self._request_key(event))
        if self._is_dm(room, event.sender):
            self._spawn(self._nudge_if_still_unreadable(room.room_id, event.event_id))

    async def _nudge_if_still_unreadable(self, room_id: str, event_id: str) -> None:
        await asyncio.sleep(self.undecryptable_wait)
        unread = self._undecryptable.get(event_id)
        if unread is not None and await self._private(room_id, unread[1].sender):
            await self._say(room_id, "matrix.undecryptable")

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
                if decrypted.sender != self.user_id and self._first_time(decrypted.event_id):
                    self._collect(room, decrypted, "text", decrypted.body)
            elif isinstance(decrypted, ReactionEvent):
                self._spawn(self._on_reaction(room, decrypted))

    # --- moderators ---------------------------------------------------------------------
    async def _is_configured_room(self, room_id: str) -> bool:
        configs = await self.store.list_communities(PLATFORM)
        return any(room_id in (c.community.id, c.destination) for c in configs)

    async def _powers(self, room_id: str) -> RoomPowers | None:
        assert self.client is not None
        response = await self.client.room_get_state(room_id)
        if not isinstance(response, RoomGetStateResponse):
            return None
        return RoomPowers.from_events(response.events)

    async def _say(self, room_id: str, key: str, locale: str = "en", **values: str) -> None:
        text = plain_text(self.content.spans(locale, key, **values))
        await self._send(room_id, notice(text))

    async def _resolve(self, target: str) -> str | None:
        assert self.client is not None
        if target.startswith("!"):
            return target
        if target.startswith("#"):
            response = await self.client.room_resolve_alias(target)
            if isinstance(response, RoomResolveAliasResponse):
                return str(response.room_id)
        return None

    async def _mod_command(self, room: MatrixRoom, sender: str, words: list[str]) -> None:
        name = words[0].lower()
        args = words[1:]
        if name in ("ack", "claim", "resolve", "block", "unblock", "export", "report-server"):
            if len(args) != 1 or not is_reference(args[0].upper()):
                await self._say(room.room_id, "matrix.mod.help")
                return
            await self._act(room.room_id, sender, args[0].upper(), name)
        elif name == "ban" and len(args) in (1, 2) and is_reference(args[0].upper()):
            share = len(args) == 2 and args[1].lower() == "share"
            if len(args) == 2 and not share:
                await self._say(room.room_id, "matrix.mod.help")
                return
            await self._act(room.room_id, sender, args[0].upper(), "ban", share=share)
        elif name in ("policy", "escalate") and len(args) == 1:
            await self._second_room(room, sender, args[0], name)
        elif name == "note" and len(args) >= 2 and is_reference(args[0].upper()):
            await self._act(room.room_id, sender, args[0].upper(), name, note=" ".join(args[1:]))
        elif name == "link" and len(args) in (1, 2):
            await self._link(room, sender, args[0], args[1].upper() if len(args) == 2 else None)
        elif name == "unlink":
            await self._unlink(room, sender, args[0] if args else None)
        elif name == "status":
            await self._status(room.room_id)
        else:
            await self._say(room.room_id, "matrix.mod.help")

    async def _link(
        self, room: MatrixRoom, sender: str, target: str, region: str | None = None
    ) -> None:
        assert self.client is not None
        if region is not None and region not in self.content.regions:
            codes = ", ".join(sorted(self.content.regions))
            await self._say(room.room_id, "matrix.mod.unknown_region", regions=codes)
            return
        community_room = await self._resolve(target)
        if community_room is None:
            await self._say(room.room_id, "matrix.mod.unknown_room")
            return
        if community_room == room.room_id:
            await self._say(room.room_id, "matrix.mod.same_room")
            return
        if community_room not in self.client.rooms:
            await self._say(room.room_id, "matrix.mod.not_in_room")
            return
        powers = await self._powers(community_room)
        if powers is None or not powers.is_moderator(sender):
            await self._say(room.room_id, "matrix.mod.not_moderator")
            return
        name = self.client.rooms[community_room].display_name or community_room
        await self.bot.set_up_community(
            community_id(community_room),
            name=name,
            destination=room.room_id,
            actor=sender,
            locale=self.content.default_locale,
            region=region,
        )
        await self._say(room.room_id, "matrix.mod.linked", room=name)

    async def _unlink(self, room: MatrixRoom, sender: str, target: str | None) -> None:
        linked = [
            c for c in await self.store.list_communities(PLATFORM) if c.destination == room.room_id
        ]
        if target is not None:
            wanted = await self._resolve(target)
            linked = [c for c in linked if c.community.id == wanted]
        if len(linked) != 1:
            await self._say(room.room_id, "matrix.mod.which_room")
            return
        config = linked[0]
        powers = await self._powers(config.community.id)
        if powers is None or not powers.is_moderator(sender):
            await self._say(room.room_id, "matrix.mod.not_moderator")
            return
        await self.bot.unlink_community(config.community, actor=sender)
        await self._say(room.room_id, "matrix.mod.unlinked", room=config.name)

    async def _status(self, room_id: str) -> None:
        linked = [
            c for c in await self.store.list_communities(PLATFORM) if c.destination == room_id
        ]
        if not linked:
            await self._say(room_id, "matrix.mod.not_linked")
            return
        lines = [plain_text((await self.bot.backlog_status(c)).spans) for c in linked]
        await self._send(room_id, notice("\n".join(lines)))

    async def _act(
        self,
        room_id: str,
        sender: str,
        reference: str,
        action: str,
        root: str | None = None,
        *,
        note: str = "",
        share: bool = False,
    ) -> None:
        """A moderator action from a command or a reaction in a moderator room: only for
        reports of a community linked to this very room, by a moderator of that community
        (joined to it now). The answer goes into the alert's thread (``root``: the alert
        event, looked up if not given)."""
        report = await self.store.get_report(reference)
        config = await self.store.get_community(report.community) if report else None
        if report is None or config is None or config.destination != room_id:
            await self._say(room_id, "mod.unknown", reference=reference)
            return
        if root is None:
            root = await self._find_alert(room_id, alert_key(reference), _THREAD_ROOT_PAGES)
        powers = await self._powers(config.community.id)
        if powers is None or not powers.is_moderator(sender):
            refused = self.content.spans(config.locale, "matrix.mod.not_moderator")
            await self._send(room_id, in_thread(notice(plain_text(refused)), root))
            return
        if action == "ban":
            text = await self._ban(config, report, sender, share=share)
            await self._send(room_id, in_thread(notice(text), root))
            return
        if action == "report-server":
            text = await self._report_to_server(config, report, sender)
            await self._send(room_id, in_thread(notice(text), root))
            return
        if action == "export":
            pack = await self.bot.evidence(config.community, reference, sender)
            if pack is not None:
                await self._send(room_id, in_thread(preformatted(pack.as_text()), root))
            return
        if action == "note":
            result = await self.bot.add_case_note(config.community, reference, sender, note)
        else:
            result = await self.bot.moderator_action(config.community, reference, action, sender)
        await self._send(room_id, in_thread(notice(plain_text(result.message.spans)), root))

    async def _report_to_server(
        self, config: CommunityConfig, report: Report, moderator: str
    ) -> str:
        """Report the user the report names, and the messages it links to, to the homeserver's
        admins; the answer for the moderators."""
        assert self.client is not None
        users = user_ids(report.offender)
        messages = message_links(report.evidence)
        values = {"reference": report.reference}
        if not users and not messages:
            return self._text(config.locale, "matrix.mod.server_nothing", **values)
        category = self.content.text(config.locale, f"alert.category.{report.category}")
        reason = self._text(
            config.locale,
            "matrix.server_report.reason",
            category=category,
            reference=report.reference,
            community=config.name,
        )
        done = await report_to_server(self.client, users, messages, reason)
        await self.bot.record(moderator, "server_report", report.reference, config.community)
        return self._text(
            config.locale,
            "matrix.mod.server_reported",
            users=", ".join(done.users) or "-",
            messages=str(done.messages),
            failed=str(done.failed),
            **values,
        )

    async def _ban(
        self, config: CommunityConfig, report: Report, moderator: str, *, share: bool
    ) -> str:
        """Ban the one user the report names from the community room, if the moderator could
        do it themselves and the bot is able to; with ``share``, also write the ban to the
        community's policy list as an m.policy.rule.user rule whose reason is the report's
        category (never its words)."""
        assert self.client is not None
        locale, values = config.locale, {"reference": report.reference}
        named = user_ids(report.offender)
        if len(named) != 1:
            return self._text(locale, "matrix.mod.ban_who", **values)
        target = named[0]
        room_id = config.community.id
        powers = await self._powers(room_id)
        if (
            powers is None
            or not powers.can_ban(moderator)
            or not powers.outranks(moderator, target)
        ):
            return self._text(locale, "matrix.mod.ban_not_allowed", user=target, **values)
        if not powers.can_ban(self.user_id) or not powers.outranks(self.user_id, target):
            return self._text(locale, "matrix.mod.ban_bot_cannot", user=target, **values)
        category = self.content.text(locale, f"alert.category.{report.category}")
        reason = f"{category} (SafeBot {report.reference})"
        response = await self.client.room_ban(room_id, target, reason=reason)
        if not isinstance(response, RoomBanResponse):
            return self._text(locale, "matrix.mod.ban_failed", user=target, **values)
        await self.bot.record(moderator, "ban", report.reference, config.community)
        text = self._text(locale, "matrix.mod.banned", user=target, **values)
        if not share:
            return text
        if not config.policy_room:
            return text + " " + self._text(locale, "matrix.mod.no_policy_room")
        rule = {"entity": target, "recommendation": "m.ban", "reason": category}
        key = "rule:" + hashlib.sha256(target.encode()).hexdigest()[:32]
        put = await self.client.room_put_state(
            config.policy_room, "m.policy.rule.user", rule, state_key=key
        )
        if not isinstance(put, RoomPutStateResponse):
            return text + " " + self._text(locale, "matrix.mod.policy_failed")
        await self.bot.record(moderator, "policy_rule", report.reference, config.community)
        return text + " " + self._text(locale, "matrix.mod.policy_shared")

    async def _second_room(self, room: MatrixRoom, sender: str, target: str, kind: str) -> None:
        """Set (or, with ``off``, clear) a room of the community linked here: its policy list
        (``policy``) or where the last reminder of a waiting alert goes too (``escalate``)."""
        linked = [
            c for c in await self.store.list_communities(PLATFORM) if c.destination == room.room_id
        ]
        if len(linked) != 1:
            await self._say(room.room_id, "matrix.mod.policy_which")
            return
        config = linked[0]
        powers = await self._powers(config.community.id)
        if powers is None or not powers.is_moderator(sender):
            await self._say(room.room_id, "matrix.mod.not_moderator", config.locale)
            return
        policy = ""
        if target.lower() != "off":
            resolved = await self._resolve(target)
            if resolved is None or self.client is None or resolved not in self.client.rooms:
                await self._say(room.room_id, "matrix.mod.not_in_room", config.locale)
                return
            policy = resolved
        if kind == "policy":
            changed = replace(config, policy_room=policy)
        else:
            changed = replace(config, escalate_to=policy)
        await self.bot.configure_community(changed, actor=sender)
        key = f"matrix.mod.{kind}_set" if policy else f"matrix.mod.{kind}_off"
        await self._say(room.room_id, key, config.locale)

    def _text(self, locale: str, key: str, **values: str) -> str:
        return plain_text(self.content.spans(locale, key, **values))

    async def _on_reaction(self, room: MatrixRoom, event: ReactionEvent) -> None:
        if event.sender == self.user_id or not self._first_time(event.event_id):
            return
        action = REACTIONS.get(event.key)
        if action is None:
            return
        self._spawn(self._react(room.room_id, event.sender, event.reacts_to, action))

    async def _react(self, room_id: str, sender: str, target: str, action: str) -> None:
        found = await self._reference_of(room_id, target)
        if found is not None:
            reference, is_alert = found
            # A reaction on the alert itself names the thread root; on a status line (already
            # in the thread) the alert is looked up.
            await self._act(room_id, sender, reference, action, target if is_alert else None)

    async def _reference_of(self, room_id: str, event_id: str) -> tuple[str, bool] | None:
        """The report an event the bot itself sent is about, and whether it is the alert."""
        assert self.client is not None
        response = await self.client.room_get_event(room_id, event_id)
        if not isinstance(response, RoomGetEventResponse):
            return None
        event = response.event
        if isinstance(event, MegolmEvent):
            try:
                event = self.client.decrypt_event(event)
            except EncryptionError:
                return None
        if getattr(event, "sender", None) != self.user_id:
            return None
        content = event.source.get("content", {})
        reference = content.get(REFERENCE_KEY)
        return (reference, ALERT_KEY in content) if isinstance(reference, str) else None

    # --- sending --------------------------------------------------------------------------
    async def _send(self, room_id: str, content: dict[str, Any], txn: str | None = None) -> str:
        """Send (encrypting where the room is encrypted). ``txn`` makes a retry idempotent:
        the homeserver returns the first event for a repeated transaction id."""
        assert self.client is not None
        client = self.client
        txn = txn or replay_txn()
        room = client.rooms.get(room_id)
        if room is not None and room.encrypted and client.olm is not None:
            # Query every member's devices first: nio marks a group session as shared even
            # if it reached nobody, and never re-shares it to devices learned about later.
            client.olm.update_tracked_users(room)
            if client.should_query_keys:
                with contextlib.suppress(LocalProtocolError):  # a concurrent query ran
                    await client.keys_query()
        try:
            response = await client.room_send(
                room_id, "m.room.message", content, tx_id=txn, ignore_unverified_devices=True
            )
        except (LocalProtocolError, EncryptionError) as exc:
            raise DeliveryError(f"cannot send to the room: {type(exc).__name__}") from None
        if not isinstance(response, RoomSendResponse):
            raise DeliveryError(f"send failed: {getattr(response, 'status_code', response)}")
        return str(response.event_id)

    # --- PlatformPort -------------------------------------------------------------------
    async def shared_communities(self, person: PersonId) -> Sequence[Community]:
        """Linked community rooms the person is currently joined to (asked of the server)."""
        assert self.client is not None
        found: list[Community] = []
        for config in await self.store.list_communities(PLATFORM):
            response = await self.client.joined_members(config.community.id)
            if not isinstance(response, JoinedMembersResponse):
                continue
            if any(m.user_id == person.id for m in response.members):
                room = self.client.rooms.get(config.community.id)
                name = room.display_name if room is not None else config.name
                found.append(Community(config.community, name or config.name, config.region))
        return found

    def _without_offender(
        self, alert: Alert, moderators: list[str], locale: str
    ) -> tuple[Alert, list[str]]:
        """The reported person is never mentioned: a moderator named in the report is left
        out of the mentions, and the alert warns the other moderators."""
        named = set(user_ids(alert.offender, limit=None))
        if not named & set(moderators):
            return alert, moderators
        warning = plain_text(self.content.spans(locale, "alert.offender_is_moderator"))
        return replace(alert, warning=warning), [m for m in moderators if m not in named]

    async def _moderators(self, config: CommunityConfig) -> list[str]:
        powers = await self._powers(config.community.id)
        return powers.moderators(exclude=self.user_id) if powers else []

    async def _find_alert(
        self, room_id: str, key: str, pages: int = 1, posted: str | None = None
    ) -> str | None:
        """The event id of an alert already in the moderator room: the one this process
        posted last, else where it was posted (``Alert.posted``, kept by the outbox), else
        found among the bot's last ``pages`` x 50 events there (alerts from before SafeBot
        kept it; one page finds an alert sent just before a crash)."""
        if key in self._alert_events:
            return self._alert_events[key]
        if posted:
            return posted
        assert self.client is not None
        found = await find_own_event(
            self.client,
            room_id,
            lambda content: content.get(ALERT_KEY) == key,
            pages=pages,
            page_size=_HISTORY_SCAN,
        )
        if found is not None:
            self._alert_events[key] = found
        return found

    async def _alert_copies(self, room_id: str, key: str, pages: int) -> list[str]:
        """Event ids of the bot's alerts carrying ``key`` in the latest ``pages`` pages of its
        own events in the room, newest first. A redacted alert has no content left, so no key."""
        assert self.client is not None
        events = own_events(
            self.client,
            room_id,
            lambda content: content.get(ALERT_KEY) == key,
            pages=pages,
            page_size=_HISTORY_SCAN,
        )
        return [event_id async for event_id in events]

    async def send_alert(self, config: CommunityConfig, alert: Alert) -> str:
        if self.client is None or config.destination not in self.client.rooms:
            raise DeliveryError("the bot is not in the moderator room")
        found = await self._find_alert(config.destination, alert.key)
        if found is not None:
            return found  # already posted before a crash: moderators see it once
        hint = plain_text(
            self.content.spans(config.locale, "matrix.mod.hint", reference=alert.reference)
        )
        alert, moderators = self._without_offender(
            alert, await self._moderators(config), config.locale
        )
        content = alert_content(alert, moderators, hint, alert.key)
        event_id = await self._send(config.destination, content, txn=_txn(alert.key))
        self._alert_events[alert.key] = event_id
        return event_id

    async def update_alert(self, config: CommunityConfig, alert: Alert, key: str) -> None:
        if self.client is None or config.destination not in self.client.rooms:
            raise DeliveryError("the bot is not in the moderator room")
        if alert.remove_name:
            await self._replace_alert(config, alert, key)
            return
        root = await self._find_alert(
            config.destination, alert.key, _THREAD_ROOT_PAGES, alert.posted
        )
        await self._send(config.destination, status_content(alert, root), txn=_txn(key))

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
        if self.client is None or config.destination not in self.client.rooms:
            raise DeliveryError("the bot is not in the moderator room")
        moderators: list[str] = []
        if ping:
            checked, moderators = self._without_offender(
                alert, await self._moderators(config), config.locale
            )
            if checked.warning:  # the reported person is a moderator: say so again
                message = Message((*message.spans, Span(f" {checked.warning}")))
        root = await self._find_alert(
            config.destination, alert.key, _THREAD_ROOT_PAGES, alert.posted
        )
        content = alert_reply_content(message, moderators, root, alert.reference)
        await self._send(config.destination, content, txn=_txn(key))
        if escalate and config.escalate_to and config.escalate_to in self.client.rooms:
            # The second room sees only that a report waits, never what it says.
            body = alert_reply_content(message, [], None, alert.reference)
            body["msgtype"] = "m.text"  # a notification, like any message in that room
            await self._send(config.escalate_to, body, txn=_txn(f"{key}:to"))

    async def _replace_alert(self, config: CommunityConfig, alert: Alert, key: str) -> None:
        """Take a forgotten reporter's name off their alert. An ``m.replace`` edit would not:
        the original event keeps its content, and clients show it ("edited", view source).
        So the name-free alert is posted anew (pinging nobody, with the same alert key, so
        later status lines thread under it) and then every earlier copy is redacted, which
        makes the server drop its content. Repeatable: the new post reuses its transaction
        id and copies already redacted carry no key."""
        assert self.client is not None
        room = config.destination
        earlier = set(await self._alert_copies(room, alert.key, pages=_REDACT_SCAN_PAGES))
        if alert.key in self._alert_events:
            earlier.add(self._alert_events[alert.key])
        hint = plain_text(
            self.content.spans(config.locale, "matrix.mod.hint", reference=alert.reference)
        )
        content = alert_content(alert, [], hint, alert.key)
        event_id = await self._send(room, content, txn=_txn(key))
        self._alert_events[alert.key] = event_id
        for old in sorted(earlier - {event_id}):
            response = await self.client.room_redact(room, old, tx_id=_txn(f"{key}:{old}"))
            if not isinstance(response, RoomRedactResponse):
                raise DeliveryError("could not redact the old alert")

    async def send_private(self, person: PersonId, message: Message, key: str) -> None:
        if self.client is None:
            raise DeliveryError("the Matrix client is not running")
        room_id = self._dm_rooms.get(person.id)
        if room_id is None or not await self._private(room_id, person.id):
            # Never into a room that stopped being 1:1 (or that the person left): a new DM.
            room_id = await self._open_dm(person.id)
        await self._synced_with(room_id, person.id)
        await self._send(room_id, message_content(message), txn=_txn(key))

    async def _open_dm(self, user_id: str) -> str:
        assert self.client is not None
        response = await self.client.room_create(
            is_direct=True,
            invite=[user_id],
            initial_state=[
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ],
        )
        if not isinstance(response, RoomCreateResponse):
            raise DeliveryError("could not open a DM with the person")
        self._remember_dm(user_id, response.room_id)
        return str(response.room_id)

    async def _synced_with(self, room_id: str, user_id: str) -> None:
        """Wait (a few seconds at most) until the synced room lists the person: a group
        session shared before that would reach nobody, and nio never shares it again."""
        assert self.client is not None
        for _ in range(50):
            room = self.client.rooms.get(room_id)
            if room is not None and user_id in room.users:
                return
            await asyncio.sleep(0.1)
        raise DeliveryError("the DM is not synced yet")


def _txn(key: str) -> str:
    return "safebot-" + re.sub(r"[^A-Za-z0-9._-]", "_", key)
