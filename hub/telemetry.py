"""Metrics: Powertools EMF metrics in the Lambda, an in-memory tally everywhere (CLI, tests).

Metric names (namespace ``OrgContain``): FindingsReceived, Isolated, AlreadyIsolated, Notified,
DryRun, Skipped, Rejected, Failed, BreakerOpen, AssumeRoleFailed, ConfigInvalid,
ConfigUnavailable, NotificationsFailed, ResultEventsFailed, SecondsToNetworkIsolation.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from hub.models import Decision

DECISION_METRIC = {
    Decision.ISOLATED: "Isolated",
    Decision.ALREADY_ISOLATED: "AlreadyIsolated",
    Decision.NOTIFIED: "Notified",
    Decision.DRY_RUN: "DryRun",
    Decision.SKIPPED: "Skipped",
    Decision.REJECTED: "Rejected",
    Decision.FAILED: "Failed",
}


class Telemetry:
    """Thread-safe metric sink. ``metrics`` is a Powertools ``Metrics`` (or None)."""

    def __init__(self, metrics: Any = None) -> None:
        self.metrics = metrics
        self.counts: Counter[str] = Counter()
        self.observations: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def count(self, name: str, value: int = 1) -> None:
        with self._lock:
            self.counts[name] += value
            if self.metrics is not None:
                self.metrics.add_metric(name=name, unit="Count", value=value)

    def seconds(self, name: str, value: float) -> None:
        with self._lock:
            self.observations.setdefault(name, []).append(value)
            if self.metrics is not None:
                self.metrics.add_metric(name=name, unit="Seconds", value=value)

    def decision(self, decision: Decision) -> None:
        self.count(DECISION_METRIC[decision])
