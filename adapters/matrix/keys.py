"""One-time keys and the fallback key of the bot's device.

Everyone who starts an encrypted DM claims one of the bot's one-time keys to set up an Olm
session. matrix-nio publishes 50 and tops them up only one sync late; in a burst of new
people they run out, and a message encrypted without a key can never be read. So the count
the server reports is checked on every sync and the keys are topped up at once, and a
fallback key is published as well: the server hands it out when the one-time keys are gone.
"""

from __future__ import annotations

import contextlib
import logging

from nio import (
    AsyncClient,
    KeysQueryError,
    KeysQueryResponse,
    KeysUploadResponse,
    LocalProtocolError,
    SyncResponse,
)
from nio.api import Api

__all__ = ["publish_fallback_key", "tolerate_empty_key_query", "top_up_one_time_keys"]

log = logging.getLogger(__name__)


def tolerate_empty_key_query(client: AsyncClient) -> None:
    """nio's sync loop schedules a device-key query as a task. When another query (the one
    made before an encrypted send) answered it first, nio's raises LocalProtocolError inside
    ``sync_forever`` and the sync loop ends, silently: nobody would be heard again. A query
    with nothing left to ask answers with an error response instead, which nio only logs."""
    query = client.keys_query

    async def keys_query() -> KeysQueryResponse | KeysQueryError:
        if not client.users_for_key_query:
            return KeysQueryError("no key query required")
        return await query()

    client.keys_query = keys_query


async def top_up_one_time_keys(client: AsyncClient, response: SyncResponse) -> None:
    """Trust the server's count (nio ignores a count of 0) and upload what was claimed."""
    if client.olm is None:
        return
    count = response.device_key_count.signed_curve25519
    if count is None:
        return
    client.olm.uploaded_key_count = count
    if client.should_upload_keys:
        with contextlib.suppress(LocalProtocolError):  # nio's own upload got there first
            upload = await client.keys_upload()
            if not isinstance(upload, KeysUploadResponse):
                log.warning("topping up one-time keys failed")


async def publish_fallback_key(client: AsyncClient) -> object:
    """Generate, sign and upload a new fallback key (the previous one keeps working for
    messages already on their way). Returns the server's answer: a KeysUploadResponse when it
    took the key, else the error (or None without a crypto account)."""
    olm = client.olm
    if olm is None:
        return None
    account = olm.account._account  # the vodozemac account; nio has no fallback key API
    account.generate_fallback_key()
    keys = {}
    for key_id, key in account.fallback_key.items():
        signed = {"key": key.to_base64(), "fallback": True}
        signature = olm.sign_json(signed)
        signed["signatures"] = {client.user_id: {f"ed25519:{client.device_id}": signature}}
        keys[f"signed_curve25519:{key_id}"] = signed
    method, path, data = Api.keys_upload(client.access_token, {"fallback_keys": keys})
    response = await client._send(KeysUploadResponse, method, path, data)
    if not isinstance(response, KeysUploadResponse):
        log.warning("publishing the fallback key failed")
    return response  # on success nio marked the keys published and saved the account
