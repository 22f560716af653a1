"""Trust checks, before anything else: is this event a GuardDuty finding delivered by an account we
trust, about an active account of our organization, and well-formed where we read it?

Failing any check gives the decision ``rejected`` with one of these reasons (never retried):

=============================  ==================================================================
reason                         cause
=============================  ==================================================================
malformed-event                not JSON, not an EventBridge event (no source/detail-type/account)
untrusted-source               ``source`` is not ``aws.guardduty``
unexpected-detail-type         ``detail-type`` is not ``GuardDuty Finding``
untrusted-event-account        envelope ``account`` is not in ``trusted_event_accounts``
missing-account-id             ``detail.accountId`` absent / invalid-account-id: not 12 digits
missing-region                 ``detail.region`` absent / invalid-region: not a region name
invalid-severity               severity absent, not a number, NaN or outside 0-10
malformed-instance-id          an instance id that is not ``i-`` + 8 or 17 hex digits
missing-instance-id            ``resourceType`` Instance without an instance id
invalid-finding-id             finding id absent or outside ``[A-Za-z0-9._:-]``
malformed-finding              any other required field missing or of the wrong type
arn-mismatch                   the finding ARN's account/region/partition/id disagree with detail
account-not-in-organization    ``detail.accountId`` is not an account of the organization
account-not-active             the account is suspended or closing
=============================  ==================================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from hub.models import FINDING_DETAIL_TYPE, GUARDDUTY_SOURCE, EventEnvelope, Finding

if TYPE_CHECKING:
    from hub.config import OrgContainConfig
    from hub.orgview import OrgView


@dataclass(frozen=True)
class Rejection:
    reason: str
    detail: str


@dataclass(frozen=True)
class Checked:
    """Outcome of the structural checks: a trusted, valid finding, or a rejection."""

    envelope: EventEnvelope | None = None
    finding: Finding | None = None
    rejection: Rejection | None = None
    # What could be read even from a rejected event, for the decision record and the log.
    hints: dict[str, str] | None = None


_FIELD_REASONS = {
    "accountId": ("missing-account-id", "invalid-account-id"),
    "region": ("missing-region", "invalid-region"),
    "severity": ("invalid-severity", "invalid-severity"),
    "id": ("invalid-finding-id", "invalid-finding-id"),
}


def _finding_rejection(exc: ValidationError) -> Rejection:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(str(p) for p in first["loc"])
    text = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(detail)'}: {e['msg']}" for e in errors[:5])
    if len(errors) > 2:
        # Several required fields wrong at once: not a GuardDuty finding in the event shape at all
        # (e.g. PascalCase from get-findings, Security Hub ASFF), not one bad field.
        return Rejection(
            "malformed-finding", f"not a GuardDuty finding in the event (camelCase) shape: {text}"
        )
    if loc and loc[0] in _FIELD_REASONS:
        missing, invalid = _FIELD_REASONS[loc[0]]
        return Rejection(missing if first["type"] == "missing" else invalid, text)
    if "instanceId" in loc:
        return Rejection("malformed-instance-id", text)
    if loc == ("resource",) and "instanceId is missing" in first["msg"]:
        return Rejection("missing-instance-id", text)
    return Rejection("malformed-finding", text)


HINT_MAX = 128  # characters kept of an identifier read from an untrusted event
REGION_MAX = 25  # longest region name accepted ("ap-southeast-5", "us-isob-east-1": 14)


def _hints(raw: Any) -> dict[str, str]:
    """Identifiers readable from a possibly malformed event (strings only, truncated)."""
    hints: dict[str, str] = {}
    if not isinstance(raw, dict):
        return hints
    for key in ("id", "source", "account", "detail-type"):
        if isinstance(raw.get(key), str):
            hints[f"event_{key.replace('-', '_')}"] = raw[key][:HINT_MAX]
    detail = raw.get("detail")
    if isinstance(detail, dict):
        for key, name in (("id", "finding_id"), ("accountId", "account_id"), ("region", "region")):
            if isinstance(detail.get(key), str):
                hints[name] = detail[key][:HINT_MAX]
        resource = detail.get("resource")
        if isinstance(resource, dict) and isinstance(resource.get("instanceDetails"), dict):
            instance = resource["instanceDetails"].get("instanceId")
            if isinstance(instance, str):
                hints["instance_id"] = instance[:64]
    return hints


def check_event(raw: str | bytes | dict[str, Any], config: OrgContainConfig) -> Checked:
    """Structural trust checks (no AWS): envelope, source, detail-type, sender, finding shape, ARN."""
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # RecursionError: '[[[[...' nested too deep
            return Checked(rejection=Rejection("malformed-event", f"not JSON: {exc}"[:200]), hints={})
    hints = _hints(raw)
    if not isinstance(raw, dict):
        return Checked(rejection=Rejection("malformed-event", "the event is not a JSON object"), hints=hints)
    try:
        envelope = EventEnvelope.model_validate(raw)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors(include_url=False)[:5])
        return Checked(
            rejection=Rejection("malformed-event", f"not an EventBridge event: invalid or missing {fields}"),
            hints=hints,
        )
    if envelope.source != GUARDDUTY_SOURCE:
        return Checked(
            envelope,
            rejection=Rejection(
                "untrusted-source", f"source {envelope.source[:64]!r} is not {GUARDDUTY_SOURCE}"
            ),
            hints=hints,
        )
    if envelope.detail_type != FINDING_DETAIL_TYPE:
        return Checked(
            envelope,
            rejection=Rejection(
                "unexpected-detail-type",
                f"detail-type {envelope.detail_type[:64]!r} is not {FINDING_DETAIL_TYPE!r}",
            ),
            hints=hints,
        )
    if envelope.account not in config.trusted_event_accounts:
        return Checked(
            envelope,
            rejection=Rejection(
                "untrusted-event-account",
                f"delivered by account {envelope.account[:32]!r}, not one of trusted_event_accounts",
            ),
            hints=hints,
        )
    try:
        finding = Finding.model_validate(envelope.detail)
    except ValidationError as exc:
        return Checked(envelope, rejection=_finding_rejection(exc), hints=hints)
    if len(finding.region) > REGION_MAX:
        # The model's pattern bounds the shape, not the length: "us-<5000 letters>-1" would key a
        # decision record DynamoDB refuses (partition key over 2048 bytes) and be retried forever.
        return Checked(
            envelope,
            rejection=Rejection("invalid-region", f"region {finding.region[:32]!r}... is not a region name"),
            hints=hints,
        )
    mismatch = finding.arn_mismatch()
    if mismatch is not None:
        return Checked(envelope, finding, Rejection("arn-mismatch", mismatch), hints=hints)
    return Checked(envelope, finding, hints=hints)


def membership_rejection(account_id: str, status: str | None) -> Rejection | None:
    """``detail.accountId`` must be an ACTIVE account of the organization."""
    if status is None:
        return Rejection("account-not-in-organization", f"account {account_id} is not in the organization")
    if status != "ACTIVE":
        return Rejection("account-not-active", f"account {account_id} is {status}")
    return None


def check_membership(finding: Finding, org: OrgView) -> Rejection | None:
    """The same check with the (cached) Organizations lookup."""
    return membership_rejection(finding.account_id, org.account_status(finding.account_id))
