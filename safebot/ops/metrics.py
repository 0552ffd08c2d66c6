"""One small in-process metrics registry, rendered in the Prometheus text format.

The service counts what happens (messages handled, reports filed, deliveries and their
latency, errors by kind); the adapter says whether it is connected; the outbox backlog is
read from the store when someone scrapes. Labels only ever hold fixed words from this module:
never an id, a name or anything a person typed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from safebot.store.base import Backlog

__all__ = ["DELIVERY_KINDS", "ERROR_KINDS", "LATENCY_BUCKETS", "Metrics", "render"]

# Every kind of error the service counts. A kind not listed here is a programming error.
ERROR_KINDS = ("delivery_retry", "delivery_parked", "outbox_pass", "retention_purge")
DELIVERY_KINDS = ("alert", "status", "alert_update", "note")
LATENCY_BUCKETS = (1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, math.inf)


class Metrics:
    """Counters and the connection flag for one bot process."""

    def __init__(self) -> None:
        self._connected = False
        self._connected_until: float | None = None
        self.disconnects = 0
        self.messages_handled = 0
        self.reports_filed = 0
        self.escalations = 0
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.delivered = dict.fromkeys(DELIVERY_KINDS, 0)
        self._latency_buckets = {kind: [0] * len(LATENCY_BUCKETS) for kind in DELIVERY_KINDS}
        self._latency_sum = dict.fromkeys(DELIVERY_KINDS, 0.0)

    @property
    def connected(self) -> bool:
        if self._connected_until is not None and time.monotonic() > self._connected_until:
            return False
        return self._connected

    def set_connected(self, connected: bool, *, for_seconds: float | None = None) -> None:
        """Connected or not; with ``for_seconds`` the "connected" goes stale unless repeated
        within that time (for platforms that only show they are alive by answering)."""
        if self._connected and not connected:
            self.disconnects += 1
        self._connected = connected
        self._connected_until = None if for_seconds is None else time.monotonic() + for_seconds

    def message_handled(self) -> None:
        self.messages_handled += 1

    def report_filed(self) -> None:
        self.reports_filed += 1

    def escalated(self) -> None:
        """An alert nobody had acknowledged was posted again with a fresh ping."""
        self.escalations += 1

    def error(self, kind: str) -> None:
        if kind not in self.errors:
            raise ValueError(f"unknown error kind {kind!r}")
        self.errors[kind] += 1

    def delivered_after(self, kind: str, seconds: float) -> None:
        """An outbox item of ``kind`` was delivered ``seconds`` after it was queued."""
        if kind not in self.delivered:
            raise ValueError(f"unknown delivery kind {kind!r}")
        seconds = max(0.0, seconds)
        self.delivered[kind] += 1
        self._latency_sum[kind] += seconds
        buckets = self._latency_buckets[kind]
        for index, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                buckets[index] += 1

    def latency(self, kind: str) -> tuple[tuple[int, ...], float]:
        """Cumulative bucket counts and the sum, for ``kind``."""
        return tuple(self._latency_buckets[kind]), self._latency_sum[kind]


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _family(name: str, kind: str, helptext: str, samples: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {helptext}", f"# TYPE {name} {kind}", *samples]


def render(metrics: Metrics, backlog: Backlog | None, now: float) -> str:
    """The Prometheus text exposition (format 0.0.4). ``backlog`` is None when the store did
    not answer: the backlog figures are left out rather than shown as zero."""
    lines: list[str] = []
    lines += _family(
        "safebot_connected",
        "gauge",
        "1 when the bot is connected to its chat platform.",
        [f"safebot_connected {int(metrics.connected)}"],
    )
    lines += _family(
        "safebot_disconnects_total",
        "counter",
        "Times the connection to the chat platform was lost.",
        [f"safebot_disconnects_total {metrics.disconnects}"],
    )
    lines += _family(
        "safebot_store_up",
        "gauge",
        "1 when the database answered this scrape.",
        [f"safebot_store_up {int(backlog is not None)}"],
    )
    if backlog is not None:
        oldest = 0.0 if backlog.oldest_created_at is None else now - backlog.oldest_created_at
        lines += _family(
            "safebot_outbox_waiting",
            "gauge",
            "Alerts and status updates waiting to be delivered (not parked).",
            [f"safebot_outbox_waiting {backlog.waiting}"],
        )
        lines += _family(
            "safebot_outbox_parked",
            "gauge",
            "Alerts and status updates given up on after their last try.",
            [f"safebot_outbox_parked {backlog.parked}"],
        )
        lines += _family(
            "safebot_outbox_oldest_waiting_seconds",
            "gauge",
            "Age of the oldest undelivered item (0 when none waits).",
            [f"safebot_outbox_oldest_waiting_seconds {_number(round(max(0.0, oldest), 3))}"],
        )
    lines += _family(
        "safebot_messages_handled_total",
        "counter",
        "Messages, choices and commands from people that the bot handled.",
        [f"safebot_messages_handled_total {metrics.messages_handled}"],
    )
    lines += _family(
        "safebot_reports_filed_total",
        "counter",
        "Reports stored for moderators.",
        [f"safebot_reports_filed_total {metrics.reports_filed}"],
    )
    lines += _family(
        "safebot_escalations_total",
        "counter",
        "Reminders posted under alerts nobody had acknowledged in time.",
        [f"safebot_escalations_total {metrics.escalations}"],
    )
    latency: list[str] = []
    for kind in DELIVERY_KINDS:
        buckets, total = metrics.latency(kind)
        for bound, count in zip(LATENCY_BUCKETS, buckets, strict=True):
            le = _number(bound)
            latency.append(
                f'safebot_delivery_latency_seconds_bucket{{kind="{kind}",le="{le}"}} {count}'
            )
        latency.append(
            f'safebot_delivery_latency_seconds_sum{{kind="{kind}"}} {_number(round(total, 3))}'
        )
        latency.append(
            f'safebot_delivery_latency_seconds_count{{kind="{kind}"}} {metrics.delivered[kind]}'
        )
    lines += _family(
        "safebot_delivery_latency_seconds",
        "histogram",
        "Time from queueing an alert or status update to delivering it.",
        latency,
    )
    lines += _family(
        "safebot_errors_total",
        "counter",
        "Errors by kind.",
        [f'safebot_errors_total{{kind="{k}"}} {v}' for k, v in metrics.errors.items()],
    )
    return "\n".join(lines) + "\n"
