"""Test harness: one throwaway Synapse per test session and E2EE matrix-nio clients.

See ``fixtures.py`` for the pytest fixtures and ``tests/test_synapse_harness.py`` for
usage. Read /work/shared/reference/matrix-synapse.md for the pitfalls handled here.
"""

from __future__ import annotations

from .clients import (
    ClientRunner,
    InviteInfo,
    MatrixHarnessError,
    TextMessage,
    create_dm,
    create_room,
    echo_handler,
    fix_one_time_key_count,
    make_client,
    mark_direct,
    round_trip,
    send_notice,
    send_reaction,
    send_text,
)
from .harness import MatrixHarness, unique_localpart
from .server import RegisteredUser, SynapseError, SynapseServer, real_synapse_available

__all__ = [
    "ClientRunner",
    "InviteInfo",
    "MatrixHarness",
    "MatrixHarnessError",
    "RegisteredUser",
    "SynapseError",
    "SynapseServer",
    "TextMessage",
    "create_dm",
    "create_room",
    "echo_handler",
    "fix_one_time_key_count",
    "make_client",
    "mark_direct",
    "real_synapse_available",
    "round_trip",
    "send_notice",
    "send_reaction",
    "send_text",
    "unique_localpart",
]
