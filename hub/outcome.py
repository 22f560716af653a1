"""What the hub did about one finding (or one operator action): the input to the ledger's decision
record, the SNS message, the result event and the metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hub.models import Decision

if TYPE_CHECKING:
    from hub.ledger import Incident
    from hub.models import Finding
    from spoke.models import IsolationResult, ReleaseResult

# Decisions a person should hear about (SNS). Rejected/skipped go to the ledger, log and metrics.
TELL = frozenset({Decision.ISOLATED, Decision.NOTIFIED, Decision.FAILED, Decision.DRY_RUN})


@dataclass
class Outcome:
    decision: Decision
    reason: str
    delivery_id: str
    detail: str = ""
    action: str = "finding"  # finding | isolate | release (the last two: operator break-glass)
    account_id: str | None = None
    region: str | None = None
    instance_id: str | None = None
    instance_ids: tuple[str, ...] = ()
    finding: Finding | None = None
    finding_id: str | None = None
    event_id: str | None = None
    event_account: str | None = None
    mode: str | None = None
    mode_source: str | None = None
    incident: Incident | None = None
    result: IsolationResult | None = None
    release: ReleaseResult | None = None
    caller: str | None = None
    operator_reason: str | None = None
    attempt: int = 1
    decided_at: float = field(default_factory=time.time)
    seconds_to_network_isolation: float | None = None
    notification: str | None = None

    @property
    def retry(self) -> bool:
        return self.decision is Decision.FAILED

    @property
    def worth_telling(self) -> bool:
        return self.decision in TELL or self.action == "release"

    @property
    def finding_type(self) -> str | None:
        return self.finding.type if self.finding is not None else None

    @property
    def severity(self) -> float | None:
        return self.finding.severity if self.finding is not None else None

    def to_json(self) -> dict[str, Any]:
        """The full, machine-readable record (SNS body tail, result event detail)."""
        finding = self.finding
        data: dict[str, Any] = {
            "decision": self.decision.value,
            "reason": self.reason,
            "detail": self.detail,
            "action": self.action,
            "account_id": self.account_id,
            "region": self.region,
            "instance_id": self.instance_id,
            "instance_ids": list(self.instance_ids),
            "finding_id": self.finding_id,
            "finding_type": self.finding_type,
            "severity": self.severity,
            "mode": self.mode,
            "mode_source": self.mode_source,
            "delivery_id": self.delivery_id,
            "event_id": self.event_id,
            "attempt": self.attempt,
            "decided_at": _iso(self.decided_at),
            "seconds_to_network_isolation": self.seconds_to_network_isolation,
        }
        if finding is not None:
            data["finding"] = {
                "title": finding.title,
                "resource_type": finding.resource_type,
                "resource_role": finding.resource_role,
                "count": finding.count,
                "updated_at": finding.updated_at,
                "arn": finding.arn,
            }
        if self.caller or self.operator_reason:
            data["operator"] = {"caller": self.caller, "reason": self.operator_reason}
        if self.incident is not None:
            incident = self.incident.public()
            if self.result is not None or self.release is not None:
                # The steps and pre-state are in "isolation"/"release" already; keep one copy.
                incident.pop("steps", None)
                if self.result is not None and self.result.pre_state is not None:
                    incident.pop("pre_state", None)
            data["incident"] = incident
        if self.result is not None:
            data["isolation"] = self.result.model_dump(mode="json")
        if self.release is not None:
            data["release"] = self.release.model_dump(mode="json")
        return data


def _iso(ts: float) -> str:
    from hub.ledger import iso

    return iso(ts)
