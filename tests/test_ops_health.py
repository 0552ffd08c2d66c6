"""/healthz and /metrics, scraped over HTTP the way Prometheus and a load balancer would.

The core figures come from a whole bot on the memory platform (memory and SQLite stores);
the connection state comes from the real Discord adapter on the fake Discord; the console
run is scraped as a real ``safebot console`` process.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import test_discord_adapter as base
from conftest import Clock
from fakediscord import run_client
from test_discord_adapter import World, make_adapter, report_by_dm, setup_server
from test_service import report

from safebot.adapters.memory import MemoryBot
from safebot.conversation import Engine
from safebot.ops.health import HealthServer
from safebot.ops.metrics import Metrics
from safebot.settings import OutboxSettings, Settings
from safebot.store import open_store
from safebot.store.base import Store

REPO = Path(__file__).resolve().parents[1]
world = base.world
SAMPLE = re.compile(r'^([a-z_]+)(\{(?:[a-z_]+="[^"]*",?)*\})? (\S+)$')


async def scrape(server: HealthServer, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.port}{path}") as response,
    ):
        return response.status, await response.text()


def parse(text: str) -> dict[str, float]:
    """Samples by ``name{labels}``. Every sample must belong to a family with HELP and TYPE."""
    typed: set[str] = set()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, line
        name = match.group(1)
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or family in typed, line
        samples[name + (match.group(2) or "")] = float(match.group(3))
    return samples


async def figures(server: HealthServer) -> dict[str, float]:
    status, text = await scrape(server, "/metrics")
    assert status == 200
    return parse(text)


async def test_core_figures_from_a_report_and_its_delivery(bot: MemoryBot, clock: Clock) -> None:
    server = HealthServer(bot.service.metrics, bot.service.store, clock=clock)
    await server.start("127.0.0.1", 0)
    try:
        assert (await scrape(server, "/healthz"))[0] == 503  # not connected yet
        bot.service.metrics.set_connected(True)
        assert await scrape(server, "/healthz") == (200, "ok\n")
        home = await bot.setup_community("g1", "Home Secret Name")
        alice = bot.person("alice-4242")
        bot.platform.join(alice, home)
        reference = await report(bot, alice, home)
        clock.advance(42.0)
        seen = await figures(server)
        assert seen["safebot_reports_filed_total"] == 1
        assert seen["safebot_messages_handled_total"] >= 10
        assert seen["safebot_outbox_waiting"] == 1
        assert seen["safebot_outbox_parked"] == 0
        assert seen["safebot_outbox_oldest_waiting_seconds"] == 42
        bot.platform.down.add("mods")  # the moderator channel is unreachable for a while
        assert await bot.deliver() == 0
        bot.platform.down.clear()
        clock.advance(60.0)
        assert await bot.deliver() == 1
        seen = await figures(server)
        assert seen["safebot_outbox_waiting"] == 0
        assert seen["safebot_outbox_oldest_waiting_seconds"] == 0
        assert seen['safebot_errors_total{kind="delivery_retry"}'] == 1
        assert seen['safebot_delivery_latency_seconds_count{kind="alert"}'] == 1
        assert seen['safebot_delivery_latency_seconds_sum{kind="alert"}'] == 102
        assert seen['safebot_delivery_latency_seconds_bucket{kind="alert",le="60"}'] == 0
        assert seen['safebot_delivery_latency_seconds_bucket{kind="alert",le="300"}'] == 1
        assert seen["safebot_escalations_total"] == 0
        clock.advance(15 * 60.0)  # nobody acknowledged it: a reminder with a fresh ping
        await bot.deliver()
        assert (await figures(server))["safebot_escalations_total"] == 1
        assert seen["safebot_outbox_waiting"] == 0  # the reminders waiting are not alerts
        bot.platform.forbidden.add("mods")  # then the bot is thrown out: parked at once
        assert (await bot.moderate(home, reference, "ack")).ok
        await bot.deliver()
        seen = await figures(server)
        assert seen["safebot_outbox_parked"] == 1
        assert seen['safebot_errors_total{kind="delivery_parked"}'] == 1
        _, text = await scrape(server, "/metrics")
        for private in (reference, "alice-4242", "Home Secret Name", "someone#1234", "photos"):
            assert private not in text
    finally:
        await server.close()


async def test_unhealthy_when_the_database_does_not_answer(
    engine: Engine, settings: Settings
) -> None:
    store = await open_store(settings.database_url)
    bot = MemoryBot(engine, store, settings)
    bot.service.metrics.set_connected(True)
    server = HealthServer(bot.service.metrics, store)
    await server.start("127.0.0.1", 0)
    try:
        assert (await scrape(server, "/healthz"))[0] == 200
        await store.close()
        status, text = await scrape(server, "/healthz")
        assert (status, text) == (503, "database not answering\n")
        seen = await figures(server)
        assert seen["safebot_store_up"] == 0 and "safebot_outbox_waiting" not in seen
        assert (await scrape(server, "/nothing"))[0] == 404
    finally:
        await server.close()


async def test_slow_or_broken_clients_get_nothing_and_block_nobody(bot: MemoryBot) -> None:
    bot.service.metrics.set_connected(True)
    server = HealthServer(bot.service.metrics, bot.service.store, request_timeout=0.3)
    await server.start("127.0.0.1", 0)
    try:
        silent = await asyncio.open_connection("127.0.0.1", server.port)  # sends nothing
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"garbage\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 400 ")
        writer.close()
        assert await scrape(server, "/healthz") == (200, "ok\n")  # the silent one blocks nobody
        # The silent client is hung up on once its time is up, so idle sockets don't pile up.
        assert await asyncio.wait_for(silent[0].read(), 3) == b""
        silent[1].close()
    finally:
        await server.close()


async def test_discord_connection_state_and_figures_over_the_wire(
    world: World, engine: Engine, tmp_path: Path
) -> None:
    outbox = OutboxSettings(max_attempts=4, base_delay=0.05, max_delay=0.2)
    settings = Settings(database_url=str(tmp_path / "d.db"), outbox=outbox)
    store: Store = await open_store(settings.database_url)
    adapter = make_adapter(engine, store, settings)
    server = HealthServer(adapter.bot.metrics, store)
    await server.start("127.0.0.1", 0)
    try:
        assert (await scrape(server, "/healthz"))[0] == 503  # not connected before login
        async with run_client(world.fake, adapter.client):
            assert await scrape(server, "/healthz") == (200, "ok\n")
            await setup_server(world)
            await report_by_dm(world, offender="x", details="y", evidence="skip")
            await world.fake.wait_for_message(channel_id=world.safety, timeout=5)
            seen = await figures(server)
            assert seen["safebot_reports_filed_total"] == 1
            for _ in range(50):  # the delivery is counted right after Discord accepted it
                if seen['safebot_delivery_latency_seconds_count{kind="alert"}'] == 1:
                    break
                await asyncio.sleep(0.05)
                seen = await figures(server)
            assert seen['safebot_delivery_latency_seconds_count{kind="alert"}'] == 1
            await world.fake.disconnect_all(code=4000)  # the gateway drops; discord.py resumes
            await world.fake.wait_for_sessions(1, timeout=5)
            for _ in range(100):
                seen = await figures(server)
                if seen["safebot_disconnects_total"] == 1 and seen["safebot_connected"] == 1:
                    break
                await asyncio.sleep(0.05)
            assert seen["safebot_disconnects_total"] == 1
            assert seen["safebot_connected"] == 1
        await adapter.close()
        assert (await scrape(server, "/healthz"))[0] == 503  # stopped: not healthy
    finally:
        await adapter.close()
        await server.close()
        await store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_console_run_serves_health_and_metrics(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "safebot.toml"
    config.write_text(f'database_url = "{tmp_path / "c.db"}"\n\n[monitoring]\nport = {port}\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "safebot.cli", "console", "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write("hi\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 20
        body = ""
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                    body = b"".join(iter(lambda: sock.recv(65536), b"")).decode()
                if "safebot_messages_handled_total 1" in body.splitlines():
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert body.startswith("HTTP/1.1 200 OK\r\n"), body
        lines = body.splitlines()
        assert "safebot_connected 1" in lines and "safebot_messages_handled_total 1" in lines
        proc.stdin.close()
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_connection_proved_by_answers_goes_stale() -> None:
    """Matrix says "connected" after each sync, for a while: no sync, no health."""
    metrics = Metrics()
    metrics.set_connected(True, for_seconds=0.05)
    assert metrics.connected
    time.sleep(0.1)
    assert not metrics.connected
    metrics.set_connected(True)  # without a time limit (Discord, console) it stays
    time.sleep(0.1)
    assert metrics.connected and metrics.disconnects == 0
    metrics.set_connected(False)
    assert metrics.disconnects == 1


@pytest.mark.parametrize("command", [["console"], ["run", "discord"]])
def test_a_port_in_use_is_a_one_line_error(tmp_path: Path, command: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "safebot.toml"
        config.write_text(
            f'database_url = "{tmp_path / "c.db"}"\nlog_level = "WARNING"\n'
            f"[monitoring]\nport = {port}\n"
        )
        result = subprocess.run(
            [sys.executable, "-m", "safebot.cli", *command, "--config", str(config)],
            input="hi\n",
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), "SAFEBOT_DISCORD_TOKEN": "not-used"},
        )
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]  # (discord.py may warn about voice first)
    where = f"127.0.0.1:{port}"
    assert line.startswith(
        f"safebot {' '.join(command)}: cannot serve health and metrics on {where}"
    )
    assert "already in use" in line
    assert "Traceback" not in result.stderr
