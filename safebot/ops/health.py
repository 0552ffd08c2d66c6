"""``/healthz`` and ``/metrics`` over plain HTTP/1.1 on a local port (asyncio only).

Off unless ``[monitoring] port`` is set. ``/healthz`` answers 200 only when the adapter is
connected and the database answers within ``store_timeout`` seconds, 503 otherwise.
``/metrics`` is the Prometheus text format. Each connection gets one answer and is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from safebot.ops.metrics import Metrics, render
from safebot.settings import MonitoringSettings
from safebot.store.base import Backlog, Store

__all__ = ["HealthServer", "MonitoringError", "start_monitoring"]

log = logging.getLogger(__name__)

_REQUEST_TIMEOUT = 5.0  # seconds a client gets to send its request line and headers
_MAX_HEADER_LINES = 100
_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS[503] = "Service Unavailable"


class MonitoringError(Exception):
    """The health and metrics port cannot be served (in use, not allowed, bad address)."""


class HealthServer:
    def __init__(
        self,
        metrics: Metrics,
        store: Store,
        *,
        store_timeout: float = 2.0,
        request_timeout: float = _REQUEST_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.store = store
        self.store_timeout = store_timeout
        self.request_timeout = request_timeout
        self.clock = clock
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)
        log.info("health and metrics on http://%s:%d/", host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _backlog(self) -> Backlog | None:
        try:
            return await asyncio.wait_for(self.store.backlog(), self.store_timeout)
        except Exception as exc:  # the store is down, locked or too slow: not healthy
            log.warning("health check: the database did not answer (%s)", type(exc).__name__)
            return None

    async def answer(self, method: str, path: str) -> tuple[int, str, str]:
        """Status, content type and body for one request."""
        path = path.split("?", 1)[0]
        if path not in ("/healthz", "/metrics"):
            return 404, "text/plain; charset=utf-8", "not found\n"
        if method not in ("GET", "HEAD"):
            return 405, "text/plain; charset=utf-8", "only GET\n"
        backlog = await self._backlog()
        if path == "/metrics":
            return 200, _PROMETHEUS, render(self.metrics, backlog, self.clock())
        problems = []
        if not self.metrics.connected:
            problems.append("not connected")
        if backlog is None:
            problems.append("database not answering")
        if problems:
            return 503, "text/plain; charset=utf-8", "; ".join(problems) + "\n"
        return 200, "text/plain; charset=utf-8", "ok\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path = await asyncio.wait_for(_read_request(reader), self.request_timeout)
            if method:
                status, ctype, body = await self.answer(method, path)
            else:
                status, ctype, body = 400, "text/plain; charset=utf-8", "bad request\n"
            data = body.encode()
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (b"" if method == "HEAD" else data))
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # a client that went away or sent nonsense gets nothing more
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    """The method and path of one request; headers are read and ignored. ("", "") when the
    request line is malformed."""
    line = (await reader.readuntil(b"\n")).decode("latin-1").strip()
    for _ in range(_MAX_HEADER_LINES):
        if (await reader.readuntil(b"\n")).strip() == b"":
            break
    else:
        return "", ""
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return "", ""
    return parts[0], parts[1]


async def start_monitoring(
    settings: MonitoringSettings, metrics: Metrics, store: Store
) -> HealthServer | None:
    """Serve health and metrics when ``settings.port`` is set (0, the default: nothing).
    The caller closes the server it gets back."""
    if not settings.port:
        return None
    server = HealthServer(metrics, store)
    try:
        await server.start(settings.host, settings.port)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = f"{settings.host}:{settings.port}"
        raise MonitoringError(f"cannot serve health and metrics on {where}: {reason}") from None
    return server
