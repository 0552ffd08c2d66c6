"""pytest fixtures for tests against a real Synapse.

Import them into ``tests/conftest.py`` (or a test module)::

    from tests.synapse.fixtures import matrix, matrix_user, running_synapse, synapse  # noqa: F401

The server is a singleton per pytest session even if these fixtures are imported in
several places (it is kept on ``request.config``).

* ``synapse`` (session, synchronous): one homeserver for the whole run. Skipped only if
  the real ``synapse`` package is not installed.
* ``running_synapse`` (function): ``synapse``, restarted first if a test left it stopped.
* ``matrix_user`` (function): ``matrix_user("alice", admin=False) -> RegisteredUser``
  with a unique, uuid-suffixed localpart.
* ``matrix`` (function, async): a ``MatrixHarness`` (users, E2EE clients, sync runners)
  whose clients are stopped and closed after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import pytest_asyncio

from .harness import MatrixHarness, unique_localpart
from .server import RegisteredUser, SynapseServer, real_synapse_available

# The server is stored on the pytest config so that it stays a singleton even if this
# module is imported under two names (``synapse.fixtures`` / ``tests.synapse.fixtures``)
# or the fixtures are imported into several modules.
_CONFIG_ATTR = "_safebot_synapse_server"

UserFactory = Callable[..., RegisteredUser]


@pytest.fixture(scope="session")
def synapse(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SynapseServer]:
    existing: SynapseServer | None = getattr(request.config, _CONFIG_ATTR, None)
    if existing is not None:
        yield existing
        return
    if not real_synapse_available():
        pytest.skip("matrix-synapse is not installed (pip install 'matrix-synapse>=1.160')")
    server = SynapseServer()
    server.start(tmp_path_factory.mktemp("synapse"))
    setattr(request.config, _CONFIG_ATTR, server)
    try:
        yield server
    finally:
        delattr(request.config, _CONFIG_ATTR)
        server.stop()


@pytest.fixture
def running_synapse(synapse: SynapseServer) -> SynapseServer:
    """``synapse``, restarted first if an earlier test left it stopped."""
    if not synapse.running:
        synapse.start()
    return synapse


@pytest.fixture
def matrix_user(running_synapse: SynapseServer) -> UserFactory:
    def register(
        prefix: str = "user", *, admin: bool = False, password: str | None = None
    ) -> RegisteredUser:
        return running_synapse.register_sync(unique_localpart(prefix), password, admin=admin)

    return register


@pytest_asyncio.fixture
async def matrix(
    running_synapse: SynapseServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MatrixHarness]:
    harness = MatrixHarness(running_synapse, tmp_path_factory.mktemp("matrix-stores"))
    try:
        yield harness
    finally:
        await harness.aclose()
