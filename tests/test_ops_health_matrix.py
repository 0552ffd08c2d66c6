"""/healthz with the real Matrix adapter on the test Synapse: healthy once a sync worked."""

from __future__ import annotations

import aiohttp
import test_matrix_adapter as mx

from safebot.ops.health import HealthServer

bot, store, matrix, matrix_user = mx.bot, mx.store, mx.matrix, mx.matrix_user
synapse, running_synapse = mx.synapse, mx.running_synapse


async def get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.text()


async def test_healthy_after_a_sync_and_figures_from_a_dm(
    matrix: mx.MatrixHarness, bot: mx.Bot
) -> None:
    adapter = bot.adapter
    assert adapter is not None
    server = HealthServer(adapter.bot.metrics, bot.store)
    await server.start("127.0.0.1", 0)
    try:
        assert await get(server.port, "/healthz") == (200, "ok\n")  # synced with Synapse
        alice, dm = await mx.person(matrix, bot, "alice")
        await mx.say(alice, dm, bot, "hi", "What would help right now")
        status, text = await get(server.port, "/metrics")
        assert status == 200
        lines = text.splitlines()
        assert "safebot_connected 1" in lines and "safebot_messages_handled_total 1" in lines
        await bot.stop()  # a stopped adapter is not healthy
        assert (await get(server.port, "/healthz"))[0] == 503
    finally:
        await server.close()
