"""A throwaway Synapse homeserver for tests: config, subprocess, registration.

Everything here is synchronous (subprocess + blocking ``urllib``), so the pytest fixture
that owns the server works with any event-loop scope. Only ``SynapseServer.register``
is async (it runs the blocking helper in a thread).

Note on the package name: this package lives in ``tests/synapse/``. When pytest imports
test modules in its default "prepend" mode and ``tests/`` has no ``__init__.py``, the
``tests/`` directory is put on ``sys.path`` and *this* package becomes importable as
``synapse``, shadowing the real homeserver package inside the pytest process. That is
harmless because the homeserver always runs in a subprocess whose ``sys.path`` does not
contain ``tests/`` (see ``_subprocess_env``), and ``real_synapse_available`` looks the real
package up while skipping this directory.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import hashlib
import hmac
import importlib.machinery
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Directory that contains this package (``.../tests``); it must never be on the
# homeserver subprocess's import path.
_TESTS_DIR = Path(__file__).resolve().parent.parent

SERVER_NAME = "localhost"
DEFAULT_PASSWORD = "correct horse battery staple"

# Rate limits that bite in tests (see /work/shared/reference/matrix-synapse.md); each one is
# relaxed to 10000/s with a burst of 10000.
_RELAXED = {"per_second": 10000, "burst_count": 10000}
_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _RELAXED,
    "rc_registration": _RELAXED,
    "rc_registration_token_validity": _RELAXED,
    "rc_login": {"address": _RELAXED, "account": _RELAXED, "failed_attempts": _RELAXED},
    "rc_joins": {"local": _RELAXED, "remote": _RELAXED},
    "rc_joins_per_room": _RELAXED,
    "rc_invites": {"per_room": _RELAXED, "per_user": _RELAXED, "per_issuer": _RELAXED},
    "rc_third_party_invite": _RELAXED,
    "rc_room_creation": _RELAXED,
    "rc_key_requests": _RELAXED,
    "rc_reports": _RELAXED,
    "rc_presence": {"per_user": _RELAXED},
    "rc_media_create": _RELAXED,
    "rc_profile": _RELAXED,
    "rc_admin_redaction": _RELAXED,
    "rc_3pid_validation": _RELAXED,
    "rc_delayed_event_mgmt": _RELAXED,
    "rc_user_directory": _RELAXED,
}


class SynapseError(RuntimeError):
    """The homeserver failed to start, stop or answer."""


@dataclass(frozen=True)
class RegisteredUser:
    """A user registered through the shared-secret admin API.

    The registration reply already carries an access token and a device id, so a client
    only needs ``restore_login`` (no separate password login, no extra device).
    """

    user_id: str
    access_token: str
    device_id: str
    password: str
    homeserver: str = field(repr=False, default="")

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]


def real_synapse_available() -> bool:
    """True if the real ``synapse`` homeserver package is importable by a subprocess.

    ``importlib.util.find_spec("synapse")`` would be fooled by this very package (see the
    module docstring), so search ``sys.path`` without the ``tests/`` directory.
    """
    paths = [p for p in sys.path if _resolve(p) != _TESTS_DIR]
    spec = importlib.machinery.PathFinder.find_spec("synapse", paths)
    if spec is None or not spec.submodule_search_locations:
        return False
    return any(
        (Path(loc) / "app" / "homeserver.py").is_file() for loc in spec.submodule_search_locations
    )


def _resolve(path: str) -> Path:
    try:
        return Path(path or os.getcwd()).resolve()
    except OSError:
        return Path(path)


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    pythonpath = env.pop("PYTHONPATH", "")
    kept = [p for p in pythonpath.split(os.pathsep) if p and _resolve(p) != _TESTS_DIR]
    if kept:
        env["PYTHONPATH"] = os.pathsep.join(kept)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _yaml_dump(data: dict[str, Any]) -> str:
    # JSON is valid YAML 1.2, and Synapse reads its config with a YAML 1.1 loader that
    # accepts it as well; this avoids depending on PyYAML in the test process.
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"<{path.name}: not written>"
    return "\n".join(text.splitlines()[-lines:]) or f"<{path.name}: empty>"


class SynapseServer:
    """One throwaway homeserver on 127.0.0.1 with its database in ``workdir``.

    >>> server = SynapseServer()
    >>> server.start(tmp_path)          # writes homeserver.yaml, waits for /versions
    >>> user = server.register_sync("alice")
    >>> server.restart()                # same port, same database
    >>> server.stop()
    """

    def __init__(self, *, host: str = "127.0.0.1", startup_timeout: float = 30.0) -> None:
        self.host = host
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.workdir: Path | None = None
        self.registration_shared_secret = secrets.token_hex(16)
        self.proc: subprocess.Popen[bytes] | None = None
        # Wall-clock seconds of every start (first entry: fresh database).
        self.start_durations: list[float] = []
        self._stdout: Any = None
        self._atexit_registered = False

    # -- properties -------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise SynapseError("server was never started")
        return f"http://{self.host}:{self.port}"

    @property
    def server_name(self) -> str:
        return SERVER_NAME

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def config_path(self) -> Path:
        return self._dir / "homeserver.yaml"

    @property
    def log_path(self) -> Path:
        return self._dir / "homeserver.log"

    @property
    def stdout_path(self) -> Path:
        return self._dir / "stdout.log"

    @property
    def _dir(self) -> Path:
        if self.workdir is None:
            raise SynapseError("server was never started")
        return self.workdir

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{SERVER_NAME}"

    # -- lifecycle --------------------------------------------------------------------

    def start(self, workdir: Path | str | None = None) -> None:
        """Write the config (first start only) and launch the homeserver.

        Without ``workdir`` this restarts in the previous directory on the previous port,
        reusing the database.
        """
        if self.running:
            raise SynapseError("server already running")
        if workdir is not None:
            self.workdir = Path(workdir)
            self.workdir.mkdir(parents=True, exist_ok=True)
        fresh = not self.config_path.exists()
        if not fresh:
            # Reuse an existing server directory (possibly written by another instance).
            config = json.loads(self.config_path.read_text())
            self.registration_shared_secret = config["registration_shared_secret"]
            self.port = int(config["listeners"][0]["port"])
        attempts = 3 if fresh else 1
        for attempt in range(attempts):
            if fresh:
                self.port = free_port(self.host)
                self._write_config()
            try:
                self._launch()
                return
            except SynapseError as exc:
                # Another process may have grabbed the free port between probe and bind.
                if attempt + 1 < attempts and "Address already in use" in str(exc):
                    self.config_path.unlink()
                    continue
                raise

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the homeserver's process group, wait, SIGKILL if it does not exit."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            self._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=10)
        else:
            # The leader is gone; make sure nothing it spawned lingers.
            self._signal_group(proc, signal.SIGKILL)
        self.proc = None
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None

    def restart(self) -> float:
        """Stop and start again on the same port and database; returns the start time."""
        self.stop()
        self.start()
        return self.start_durations[-1]

    def __enter__(self) -> SynapseServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- registration -----------------------------------------------------------------

    def register_sync(
        self, username: str, password: str | None = None, *, admin: bool = False
    ) -> RegisteredUser:
        """Register ``username`` with the shared-secret admin API (blocking)."""
        password = password or DEFAULT_PASSWORD
        path = "/_synapse/admin/v1/register"
        nonce = self._request("GET", path)["nonce"]
        mac = hmac.new(
            self.registration_shared_secret.encode(),
            b"\0".join(
                [
                    nonce.encode(),
                    username.encode(),
                    password.encode(),
                    b"admin" if admin else b"notadmin",
                ]
            ),
            hashlib.sha1,
        ).hexdigest()
        reply = self._request(
            "POST",
            path,
            {
                "nonce": nonce,
                "username": username,
                "password": password,
                "admin": admin,
                "mac": mac,
            },
        )
        return RegisteredUser(
            user_id=reply["user_id"],
            access_token=reply["access_token"],
            device_id=reply["device_id"],
            password=password,
            homeserver=self.url,
        )

    async def register(
        self, username: str, password: str | None = None, *, admin: bool = False
    ) -> RegisteredUser:
        """Async wrapper of ``register_sync`` (runs in a worker thread)."""
        return await asyncio.to_thread(self.register_sync, username, password, admin=admin)

    def versions(self) -> dict[str, Any]:
        return self._request("GET", "/_matrix/client/versions")

    def admin_request(
        self, method: str, path: str, access_token: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Blocking client/admin API call with a bearer token (for test setup)."""
        return self._request(method, path, body, access_token=access_token)

    # -- internals --------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        access_token: str | None = None,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if access_token:
            req.add_header("Authorization", f"Bearer {access_token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                result: dict[str, Any] = json.loads(resp.read() or b"{}")
                return result
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise SynapseError(f"{method} {path} -> HTTP {exc.code}: {detail}") from exc

    def _write_config(self) -> None:
        workdir = self._dir
        key_path = workdir / "signing.key"
        if not key_path.exists():
            seed = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
            key_path.write_text(f"ed25519 a_test {seed}\n")
        (workdir / "media_store").mkdir(exist_ok=True)
        log_config = {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "precise": {
                    "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                    "%(request)s - %(message)s"
                }
            },
            "filters": {"context": {"()": "synapse.logging.context.LoggingContextFilter"}},
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filters": ["context"],
                    "filename": str(self.log_path),
                    "level": "WARNING",
                    "encoding": "utf8",
                }
            },
            "root": {"level": "WARNING", "handlers": ["file"]},
        }
        (workdir / "log.config").write_text(_yaml_dump(log_config))
        config: dict[str, Any] = {
            "server_name": SERVER_NAME,
            "public_baseurl": f"http://{self.host}:{self.port}/",
            "pid_file": str(workdir / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": [self.host],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {
                "name": "sqlite3",
                "args": {"database": str(workdir / "homeserver.db")},
            },
            "log_config": str(workdir / "log.config"),
            "media_store_path": str(workdir / "media_store"),
            "signing_key_path": str(key_path),
            "registration_shared_secret": self.registration_shared_secret,
            "macaroon_secret_key": secrets.token_hex(32),
            "form_secret": secrets.token_hex(32),
            "report_stats": False,
            "enable_registration": False,
            "enable_metrics": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            "bcrypt_rounds": 4,
            **_RATE_LIMITS,
        }
        self.config_path.write_text(_yaml_dump(config))

    def _launch(self) -> None:
        workdir = self._dir
        if self._stdout is not None:
            self._stdout.close()
        self._stdout = self.stdout_path.open("ab")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
            cwd=workdir,
            env=_subprocess_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if not self._atexit_registered:
            # Last resort if the test process dies without running fixture teardown.
            atexit.register(self.stop)
            self._atexit_registered = True
        deadline = started + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise SynapseError(
                    f"Synapse exited with code {code} during startup.\n"
                    f"--- {self.stdout_path} ---\n{_tail(self.stdout_path)}\n"
                    f"--- {self.log_path} ---\n{_tail(self.log_path)}"
                )
            try:
                with urllib.request.urlopen(
                    self.url + "/_matrix/client/versions", timeout=2
                ) as resp:
                    if resp.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SynapseError(
                    f"Synapse did not answer /_matrix/client/versions within "
                    f"{self.startup_timeout:.0f} s.\n"
                    f"--- {self.stdout_path} ---\n{_tail(self.stdout_path)}\n"
                    f"--- {self.log_path} ---\n{_tail(self.log_path)}"
                )
            time.sleep(0.05)
        self.start_durations.append(time.monotonic() - started)

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
