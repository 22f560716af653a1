"""Telling people and machines: the SNS message and the result event on the orgcontain bus.

The SNS message is for a person first (what, where, why, what was done, how to release), with the
full JSON record after it, and message attributes (``decision``, ``account``, ``severity``,
``region``, ``reason``) for subscription filter policies.

Delivery failures never lose the decision: it is already in the ledger when we publish. A failed
publish is logged, counted (``NotificationsFailed`` metric, alarmable) and noted on the decision
record (``notification = failed``); the finding is NOT retried for it, because a retry would find
the incident already isolated and would not re-send the message anyway, and retrying a
containment to repeat an e-mail would be the wrong trade. SNS and the bus are independent: one
failing does not stop the other.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from hub.models import Decision
from hub.outcome import Outcome

RESULT_SOURCE = "orgcontain"
RESULT_DETAIL_TYPE = "OrgContain Containment Result"
SUBJECT_MAX = 99  # SNS: fewer than 100 characters, ASCII, no line breaks
SNS_MAX_BYTES = 250_000  # SNS allows 256 KiB including attributes
EVENT_MAX_BYTES = 240_000  # EventBridge: 256 KiB per entry

log = logging.getLogger(__name__)

_SUBJECT_UNSAFE = re.compile(r"[^\x20-\x7e]")


def severity_label(severity: float | None) -> str:
    if severity is None:
        return "unknown"
    if severity >= 9.0:
        return "Critical"
    if severity >= 7.0:
        return "High"
    if severity >= 4.0:
        return "Medium"
    return "Low"


@dataclass(frozen=True)
class Message:
    subject: str
    body: str
    attributes: dict[str, dict[str, str]]


def subject_for(outcome: Outcome) -> str:
    what = {
        Decision.ISOLATED: "ISOLATED",
        Decision.ALREADY_ISOLATED: "already isolated",
        Decision.NOTIFIED: "NOTICE",
        Decision.DRY_RUN: "DRY-RUN would isolate",
        Decision.FAILED: "FAILED to contain",
        Decision.SKIPPED: "skipped",
        Decision.REJECTED: "REJECTED event",
    }[outcome.decision]
    if outcome.action == "release":
        what = "RELEASED" if outcome.decision is not Decision.FAILED else "FAILED to release"
    target = outcome.instance_id or (outcome.finding_type or "finding")
    where = f"{outcome.account_id or '?'}/{outcome.region or '?'}"
    tail = f" ({outcome.reason})" if outcome.decision in (Decision.NOTIFIED, Decision.FAILED) else ""
    subject = f"orgcontain {what} {target} in {where}{tail}"
    subject = _SUBJECT_UNSAFE.sub("?", subject)
    return subject if len(subject) <= SUBJECT_MAX else subject[: SUBJECT_MAX - 3] + "..."


def release_command(outcome: Outcome) -> str | None:
    if not (outcome.account_id and outcome.region and outcome.instance_id):
        return None
    return (
        f"orgcontain release {outcome.account_id} {outcome.region} {outcome.instance_id} "
        '--reason "<why it is safe to release>"'
    )


def _steps_text(outcome: Outcome) -> list[str]:
    lines: list[str] = []
    steps = outcome.result.steps if outcome.result is not None else ()
    if outcome.release is not None:
        steps = outcome.release.steps
    for step in steps:
        code = f" [{step.error_code}]" if step.error_code else ""
        detail = f": {step.detail}" if step.detail else ""
        lines.append(f"  - {step.step}: {step.status.value}{code}{detail}")
    return lines


def _summary(outcome: Outcome) -> str:
    d = outcome.decision
    if outcome.action == "release":
        return (
            "An operator released an instance from quarantine."
            if d is not Decision.FAILED
            else ("An operator's release did not complete.")
        )
    if d is Decision.ISOLATED:
        return "orgcontain isolated an EC2 instance: its network interfaces are on the quarantine group."
    if d is Decision.DRY_RUN:
        return "orgcontain would isolate this instance (dry-run: nothing was changed)."
    if d is Decision.FAILED:
        return "orgcontain could NOT complete the response to this finding; it will retry (then the DLQ)."
    if d is Decision.NOTIFIED:
        return "orgcontain did not isolate automatically; a person should look at this finding."
    return f"orgcontain decision: {d.value}."


def body_for(outcome: Outcome, full: dict[str, Any]) -> str:
    finding = outcome.finding
    lines = [_summary(outcome), ""]
    if finding is not None:
        lines.append(
            f"What:    {finding.type} (severity {finding.severity:g}, {severity_label(finding.severity)}"
            f"{', resource role ' + finding.resource_role if finding.resource_role else ''})"
        )
        if finding.title:
            lines.append(f"         {finding.title}")
    where = [f"account {outcome.account_id}", f"region {outcome.region}"]
    if outcome.instance_id:
        where.append(f"instance {outcome.instance_id}")
    elif outcome.instance_ids:
        where.append("instances " + ", ".join(outcome.instance_ids))
    lines.append("Where:   " + ", ".join(where))
    why = f"decision {outcome.decision.value}, reason {outcome.reason}"
    if outcome.mode:
        why += f", mode {outcome.mode}"
        if outcome.mode_source:
            why += f" (from {outcome.mode_source})"
    lines.append("Why:     " + why)
    if outcome.detail:
        lines.append(f"         {outcome.detail}")
    if outcome.caller or outcome.operator_reason:
        lines.append(f"Who:     {outcome.caller or 'unknown caller'}: {outcome.operator_reason or ''}")
    steps = _steps_text(outcome)
    if steps:
        lines.append("Done:")
        lines.extend(steps)
    if outcome.result is not None and outcome.result.snapshot_ids:
        lines.append("Evidence snapshots: " + ", ".join(outcome.result.snapshot_ids))
    ids = []
    if outcome.finding_id:
        ids.append(f"finding {outcome.finding_id}")
    if outcome.incident is not None:
        ids.append(f"incident {outcome.incident.incident_id}")
    if ids:
        lines.append("Ids:     " + ", ".join(ids))
    command = release_command(outcome)
    if command and outcome.decision in (Decision.ISOLATED, Decision.FAILED) and outcome.action != "release":
        lines += ["", "To release it once the investigation allows:", f"  {command}"]
    if outcome.decision is Decision.NOTIFIED and outcome.instance_id and outcome.account_id:
        lines += [
            "",
            "To isolate it by hand:",
            f"  orgcontain isolate {outcome.account_id} {outcome.region} {outcome.instance_id} "
            '--reason "<why>"',
        ]
    lines += ["", "Full record (JSON):", json.dumps(full, indent=2, sort_keys=True, default=str)]
    return "\n".join(lines)


def compose(outcome: Outcome) -> Message:
    full = outcome.to_json()
    body = body_for(outcome, full)
    if len(body.encode()) > SNS_MAX_BYTES:
        # The pre-state of a many-ENI instance can be large; the ledger keeps it whole.
        full.get("incident", {}).pop("pre_state", None)
        full.pop("isolation", None)
        full["truncated"] = "isolation detail and pre-state omitted: see `orgcontain status`"
        body = body_for(outcome, full)[:SNS_MAX_BYTES]
    attributes = {
        "decision": {"DataType": "String", "StringValue": outcome.decision.value},
        "reason": {"DataType": "String", "StringValue": outcome.reason or "none"},
        "account": {"DataType": "String", "StringValue": outcome.account_id or "unknown"},
        "region": {"DataType": "String", "StringValue": outcome.region or "unknown"},
        "action": {"DataType": "String", "StringValue": outcome.action},
    }
    if outcome.severity is not None:
        attributes["severity"] = {"DataType": "Number", "StringValue": f"{outcome.severity:g}"}
    return Message(subject_for(outcome), body, attributes)


def result_event(outcome: Outcome, bus: str) -> dict[str, Any]:
    detail = outcome.to_json()
    text = json.dumps(detail, default=str)
    if len(text.encode()) > EVENT_MAX_BYTES:
        detail.get("incident", {}).pop("pre_state", None)
        detail.pop("isolation", None)
        detail["truncated"] = True
        text = json.dumps(detail, default=str)
    entry: dict[str, Any] = {
        "Source": RESULT_SOURCE,
        "DetailType": RESULT_DETAIL_TYPE,
        "Detail": text,
        "EventBusName": bus,
    }
    if outcome.account_id and outcome.region and outcome.instance_id:
        entry["Resources"] = [
            f"arn:aws:ec2:{outcome.region}:{outcome.account_id}:instance/{outcome.instance_id}"
        ]
    return entry


class Notifier:
    """Publishes to SNS and the result bus; clients made on first use."""

    def __init__(
        self,
        *,
        topic_arn: str | None,
        bus: str | None,
        client_factory: Callable[[str], Any],
    ) -> None:
        self.topic_arn = topic_arn
        self.bus = bus
        self._factory = client_factory
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._factory(service)
            return self._clients[service]

    def publish(self, outcome: Outcome) -> tuple[bool, bool]:
        """(sns_ok, event_ok). Never raises for AWS errors: they are logged and reported."""
        sns_ok = event_ok = True
        if self.topic_arn and outcome.worth_telling:
            message = compose(outcome)
            try:
                self._client("sns").publish(
                    TopicArn=self.topic_arn,
                    Subject=message.subject,
                    Message=message.body,
                    MessageAttributes=message.attributes,
                )
            except (ClientError, BotoCoreError) as exc:
                sns_ok = False
                log.error("SNS publish failed for %s: %s", outcome.finding_id or outcome.delivery_id, exc)
        if self.bus and outcome.decision not in (Decision.SKIPPED, Decision.REJECTED):
            try:
                resp = self._client("events").put_events(Entries=[result_event(outcome, self.bus)])
                if resp.get("FailedEntryCount"):
                    event_ok = False
                    entry = resp.get("Entries", [{}])[0]
                    log.error(
                        "result event rejected: %s %s", entry.get("ErrorCode"), entry.get("ErrorMessage")
                    )
            except (ClientError, BotoCoreError) as exc:
                event_ok = False
                log.error("result event failed for %s: %s", outcome.finding_id or outcome.delivery_id, exc)
        return sns_ok, event_ok
