"""The Matrix adapter keeps going: private files, alerts shown once, signed-out sessions,
bursts of new encrypted DMs. Against a real Synapse (see tests/synapse/). The SIGKILL loop is
in tests/test_matrix_kill.py."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from safebot.adapters.matrix import MatrixLoginError
from safebot.adapters.matrix.render import ALERT_KEY
from safebot.conversation import Engine
from safebot.moderation import build_alert
from safebot.settings import OutboxSettings, Settings
from safebot.store.base import Store

try:  # ``python -m pytest`` from the repo root
    from tests.synapse import (
        ClientRunner,
        MatrixHarness,
        RegisteredUser,
        SynapseServer,
        create_dm,
        send_text,
    )
    from tests.test_matrix_adapter import (
        TIMEOUT,
        Bot,
        bot,
        community_with_mods,
        from_bot,
        matrix,
        matrix_user,
        person,
        running_synapse,
        say,
        store,
        synapse,
        walk_report,
    )
except ModuleNotFoundError as exc:  # plain ``pytest``: only tests/ is on sys.path
    if exc.name not in ("tests", "tests.synapse", "tests.test_matrix_adapter"):
        raise
    from synapse import (  # type: ignore[no-redef, unused-ignore]
        ClientRunner,
        MatrixHarness,
        RegisteredUser,
        SynapseServer,
        create_dm,
        send_text,
    )
    from test_matrix_adapter import (  # type: ignore[no-redef, unused-ignore]
        TIMEOUT,
        Bot,
        bot,
        community_with_mods,
        from_bot,
        matrix,
        matrix_user,
        person,
        running_synapse,
        say,
        store,
        synapse,
        walk_report,
    )

__all__ = ["bot", "matrix", "matrix_user", "running_synapse", "store", "synapse"]

ROOT = Path(__file__).resolve().parents[1]
# With CLAIMS, more than the 50 one-time keys nio publishes are claimed in a burst.
BURST = int(os.environ.get("SAFEBOT_MATRIX_BURST", "20"))
CLAIMS = 80  # one-time keys claimed by other new devices just before the burst


def delete_device(server: SynapseServer, admin: RegisteredUser, user_id: str, device: str) -> None:
    """What "Sign out" of that session does in Element (here through the admin API)."""
    server.admin_request(
        "DELETE", f"/_synapse/admin/v2/users/{user_id}/devices/{device}", admin.access_token
    )


def new_group_session(runner: ClientRunner, room: str) -> None:
    """Element shares its room key with a device that joined later; the harness's nio client
    never re-shares one, so it starts a new one to reach the bot's new device."""
    assert runner.client.olm is not None
    runner.client.olm.outbound_group_sessions.pop(room, None)


# Two of a test client's syncs: with nothing happening each is a 10 s long poll, so two can
# take over 20 s (TIMEOUT) on their own.
SYNCS_2 = 2 * 10.0 + TIMEOUT


class PasswordBot(Bot):
    """A bot configured with its password only (it logs in, and can log in again)."""

    def credentials(self) -> dict[str, str]:
        return {"password": self.user.password}


@pytest.fixture
async def password_bot(
    matrix: MatrixHarness, engine: Engine, store: Store, tmp_path: Path
) -> AsyncIterator[PasswordBot]:
    settings = Settings(
        database_url=str(tmp_path / "bot.db"),
        outbox=OutboxSettings(max_attempts=30, base_delay=0.2, max_delay=1.0),
    )
    holder = PasswordBot(matrix, engine, store, settings, tmp_path)
    await holder.start()
    try:
        yield holder
    finally:
        await holder.stop()


def modes(root: Path) -> dict[str, str]:
    found = {str(root): oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


async def test_every_file_the_bot_keeps_is_private(matrix: MatrixHarness, bot: Bot) -> None:
    alice, dm = await person(matrix, bot, "alice")
    await say(alice, dm, bot, "hi", "What would help right now")
    await bot.stop()
    await bot.start()  # a restart must not loosen anything either
    await say(alice, dm, bot, "menu", "What would help right now")
    found = modes(bot.data_dir)
    crypto = [name for name in found if name.startswith("crypto/") and ".db" in name]
    assert crypto, found  # the crypto store is there, and checked below
    assert "inbox.db" in found
    for name, mode in found.items():
        is_dir = (bot.data_dir / name).is_dir() if name != str(bot.data_dir) else True
        assert mode == ("0o700" if is_dir else "0o600"), (name, mode)


async def test_a_redelivered_alert_shows_once_also_after_a_restart(
    matrix: MatrixHarness, bot: Bot, engine: Engine
) -> None:
    alice, dm = await person(matrix, bot, "alice")
    owner, _community, mods = await community_with_mods(matrix, bot, [alice])
    reference = await walk_report(alice, dm, bot, "x", "y", "https://a.test/1")
    await from_bot(owner, mods, bot, lambda body: reference in body)
    report = await bot.store.get_report(reference)
    assert report is not None
    config = await bot.store.get_community(report.community)
    assert config is not None
    alert = build_alert(engine.content, report, f"alert:{reference}", config.locale)
    adapter = bot.adapter
    assert adapter is not None
    await adapter.send_alert(config, alert)  # the outbox delivers it again (a lost mark)
    await bot.stop()
    adapter = await bot.start()  # an empty in-memory cache
    await adapter.send_alert(config, alert)
    await say(owner, mods, bot, "!safebot status", "waiting")  # everything before has synced
    alerts = [m for m in owner.messages[mods] if ALERT_KEY in m.source["content"]]
    assert len(alerts) == 1, [m.body for m in alerts]


async def test_signed_out_while_running_logs_in_again_with_the_password(
    matrix: MatrixHarness, password_bot: PasswordBot, running_synapse: SynapseServer
) -> None:
    bot = password_bot
    alice, dm = await person(matrix, bot, "alice")
    await say(alice, dm, bot, "hi", "What would help right now")
    adapter = bot.adapter
    assert adapter is not None and adapter.client is not None
    first_device = adapter.client.device_id
    admin = matrix.user("admin", admin=True)
    delete_device(running_synapse, admin, bot.user.user_id, first_device)
    for _ in range(int(TIMEOUT * 10)):  # the bot notices at its next sync, and logs in again
        if adapter.client is not None and adapter.client.device_id != first_device:
            break
        await asyncio.sleep(0.1)
    assert adapter.client is not None and adapter.client.device_id != first_device
    new_group_session(alice, dm)
    await alice.wait_for_sync(2, timeout=SYNCS_2)  # its client learnt the new device
    await say(alice, dm, bot, "how do I block them", "Where is this person contacting you")
    assert not adapter.stopped.is_set()
    # Signed out again while it is down: the restart logs in once more, and answers.
    second_device = adapter.client.device_id
    await bot.stop()
    delete_device(running_synapse, admin, bot.user.user_id, second_device)
    adapter = await bot.start()
    assert adapter.client is not None and adapter.client.device_id not in (
        first_device,
        second_device,
    )
    new_group_session(alice, dm)
    await alice.wait_for_sync(2, timeout=SYNCS_2)  # its client learnt the new device
    await say(alice, dm, bot, "1", "computer or a phone")
    crypto = sorted(p.name for p in (bot.data_dir / "crypto").glob("*.db"))
    assert crypto == [f"{bot.user.user_id}_{adapter.client.device_id}.db"]  # dead keys gone


async def test_signed_out_without_a_password_stops_with_a_clear_message(
    matrix: MatrixHarness, bot: Bot, running_synapse: SynapseServer
) -> None:
    adapter = bot.adapter
    assert adapter is not None
    admin = matrix.user("admin", admin=True)
    delete_device(running_synapse, admin, bot.user.user_id, bot.user.device_id)
    await asyncio.wait_for(adapter.stopped.wait(), TIMEOUT)
    assert adapter.failure is not None and "signed out" in str(adapter.failure)
    await bot.stop()
    with pytest.raises(MatrixLoginError, match="signed out"):
        await bot.start()  # a restart does not reuse the dead token


def test_safebot_run_matrix_exits_non_zero_when_signed_out(
    matrix_user: object, running_synapse: SynapseServer, tmp_path: Path
) -> None:
    user = running_synapse.register_sync(f"deadbot{os.getpid()}{id(tmp_path) % 10000}")
    admin = running_synapse.register_sync(f"admin{os.getpid()}{id(tmp_path) % 10000}", admin=True)
    config = tmp_path / "safebot.toml"
    config.write_text(
        f'database_url = "{tmp_path / "bot.db"}"\n'
        "[matrix]\n"
        f'homeserver = "{running_synapse.url}"\n'
        f'user_id = "{user.user_id}"\n'
        f'device_id = "{user.device_id}"\n'
        f'data_dir = "{tmp_path / "matrix"}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEBOT_")}
    env |= {"PYTHONPATH": str(ROOT), "SAFEBOT_MATRIX_TOKEN": user.access_token}
    command = [sys.executable, "-m", "safebot.cli", "run", "matrix", "--config", str(config)]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(200):  # running: its inbox exists once it has logged in
            if (tmp_path / "matrix" / "inbox.db").exists() or proc.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        delete_device(running_synapse, admin, user.user_id, user.device_id)
        _, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, stderr
    assert "signed out" in stderr
    assert user.access_token not in stderr


async def test_a_burst_of_new_encrypted_dms_all_get_answers(
    matrix: MatrixHarness, bot: Bot
) -> None:
    """100 claims of the bot's one-time keys in a burst: 80 by new devices, then BURST new
    people (SAFEBOT_MATRIX_BURST) on new devices open encrypted DMs and write at once. Keys
    are topped up as they are claimed and a fallback key covers the gap, so every message is
    decrypted and answered."""
    people: list[tuple[ClientRunner, str]] = []
    semaphore = asyncio.Semaphore(12)

    async def newcomer(i: int) -> None:
        async with semaphore:
            runner = await matrix.runner(await matrix.auser(f"burst{i}"), auto_join=True)
            room = await create_dm(runner, bot.user.user_id, timeout=60.0)
            await runner.wait_for_room(room, joined=[bot.user.user_id], timeout=60.0)
            people.append((runner, room))

    await asyncio.gather(*(newcomer(i) for i in range(BURST)))
    # Other new devices took every one-time key a moment ago (the server does not wake the
    # bot's sync for that): the people below find none left unless a fallback key is there
    # or the keys were topped up.
    claimer = matrix.user("claimer")
    adapter = bot.adapter
    assert adapter is not None and adapter.client is not None
    device = adapter.client.device_id
    claimed = 0
    for _ in range(CLAIMS):
        reply = await asyncio.to_thread(
            matrix.server.admin_request,
            "POST",
            "/_matrix/client/v3/keys/claim",
            claimer.access_token,
            {"one_time_keys": {bot.user.user_id: {device: "signed_curve25519"}}},
        )
        claimed += bool(reply.get("one_time_keys", {}).get(bot.user.user_id))
    assert claimed >= 50  # every published one-time key was taken (and then the fallback)
    sending = asyncio.Semaphore(25)  # more at once only measures how slow 2 cores are

    async def first_message(runner: ClientRunner, room: str) -> None:
        async with sending:
            await send_text(runner, room, "menu", timeout=60.0)

    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(first_message(r, room) for r, room in people))
    print(f"{BURST} first messages sent in {loop.time() - started:.1f}s")
    deadline = loop.time() + 60.0
    for runner, room in people:
        while not any(
            m.sender == bot.user.user_id and "What would help" in m.body
            for m in runner.messages.get(room, [])
        ):
            assert loop.time() < deadline, f"{runner.user_id} got no answer"
            await asyncio.sleep(0.2)
    assert not adapter._undecryptable  # nothing is waiting for a key that will never come
