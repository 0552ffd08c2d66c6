"""The bot's device keys with real matrix-nio objects (no server needed for these)."""

from __future__ import annotations

from pathlib import Path

from nio import AsyncClient, AsyncClientConfig, KeysQueryError

from safebot.adapters.matrix.keys import tolerate_empty_key_query


async def test_a_key_query_with_nothing_to_ask_does_not_end_the_sync_loop(tmp_path: Path) -> None:
    """nio's sync loop schedules a device-key query as a task. When the query the bot makes
    before an encrypted send answered it first, nio's own raises LocalProtocolError inside
    sync_forever and the loop ends: the bot would stop hearing anyone. With nothing to ask,
    the query now answers with an error response, which the loop only logs."""
    client = AsyncClient(
        "http://127.0.0.1:9",
        "@bot:localhost",
        device_id="DEV",
        store_path=str(tmp_path),
        config=AsyncClientConfig(encryption_enabled=True),
    )
    client.restore_login("@bot:localhost", "DEV", "token")
    try:
        assert not client.users_for_key_query
        tolerate_empty_key_query(client)
        answer = await client.keys_query()
        assert isinstance(answer, KeysQueryError)
    finally:
        await client.close()
