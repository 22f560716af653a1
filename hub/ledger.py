"""The ledger (DynamoDB): incidents, decisions, released findings and the breaker, in one table.

Schema (docs/ledger.md is the reference the hub stack template follows):

====================================  ===========================  ==================================
pk                                    sk                           what
====================================  ===========================  ==================================
``INSTANCE#<acct>#<region>#<i-id>``   ``CURRENT``                  the instance's incident (lock,
                                                                   pre-state, findings, steps)
``INSTANCE#<acct>#<region>#<i-id>``   ``INCIDENT#<incident id>``   an earlier, closed incident
``FINDING#<acct>#<region>#<id>``      ``DECISION#<iso>#<delivery>``  one per finding delivery (TTL)
``FINDING#<acct>#<region>#<id>``      ``RELEASED``                 the finding's incident was released
``EVENT#<event id>``                  ``DECISION#<iso>#<delivery>``  a rejected event with no finding
``BREAKER``                           ``ORG``                      isolations in the rolling window
====================================  ===========================  ==================================

GSI ``gsi1`` (``gsi1pk``, ``gsi1sk``, projection ALL) lists current incidents: ``gsi1pk =
"INCIDENT"``, ``gsi1sk = "<i-id>#<acct>#<region>"``. TTL attribute: ``expires_at`` (decision records).

Concurrency: the ``CURRENT`` item is the lock. It is created (or replaces a released one) in a
single TransactWriteItems together with the breaker update (version-conditioned) and a check that
the finding was not released, so at most one containment per instance runs at a time and the
breaker can never be overshot. ``lease_expires`` bounds how long a crashed holder keeps the lock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from hub.breaker import BREAKER_PK, BREAKER_SK, BreakerState
from spoke.models import PreState

CURRENT = "CURRENT"
RELEASED_SK = "RELEASED"
GSI = "gsi1"
GSI_PK = "INCIDENT"
DECISION_TTL_DAYS = 400  # a year and a bit: incident reviews and audits ask about last year

# Incident statuses.
CONTAINING = "containing"  # locked: network change under way, or a failed attempt to resume
ISOLATED = "isolated"
RELEASING = "releasing"
RELEASED = "released"
GONE = "gone"
OPEN_STATUSES = frozenset({CONTAINING, ISOLATED, RELEASING})
CLOSED_STATUSES = frozenset({RELEASED, GONE})


def instance_pk(account_id: str, region: str, instance_id: str) -> str:
    return f"INSTANCE#{account_id}#{region}#{instance_id}"


def finding_pk(account_id: str, region: str, finding_id: str) -> str:
    return f"FINDING#{account_id}#{region}#{finding_id}"


def iso(ts: float | None = None) -> str:
    moment = datetime.now(UTC) if ts is None else datetime.fromtimestamp(ts, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- attribute value helpers (low-level client: no float/Decimal surprises) --------------------


def _s(value: str) -> dict[str, Any]:
    return {"S": value}


def _n(value: float) -> dict[str, Any]:
    return {"N": repr(int(value)) if float(value).is_integer() else repr(float(value))}


def _get_s(item: Mapping[str, Any], key: str) -> str | None:
    value = item.get(key)
    return str(value["S"]) if value and "S" in value else None


def _get_n(item: Mapping[str, Any], key: str, default: float = 0.0) -> float:
    value = item.get(key)
    return float(value["N"]) if value and "N" in value else default


@dataclass(frozen=True)
class Incident:
    """One instance's containment: the lock, the authoritative pre-state and what was done."""

    account_id: str
    region: str
    instance_id: str
    incident_id: str
    status: str
    first_finding_id: str
    finding_ids: tuple[str, ...] = ()
    opened_at: str = ""
    updated_at: str = ""
    lease_owner: str = ""
    lease_expires: float = 0.0
    attempts: int = 0
    pre_state: PreState | None = None
    pre_state_complete: bool = False
    steps: tuple[dict[str, Any], ...] = ()
    quarantine_group_id: str | None = None
    snapshot_ids: tuple[str, ...] = ()
    network_isolated_at: str | None = None
    trigger: str = "finding"  # finding | manual
    caller: str | None = None
    reason: str = ""
    last_error: str | None = None
    released_at: str | None = None
    released_by: str | None = None
    release_reason: str | None = None
    finding_type: str | None = None
    severity: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pk(self) -> str:
        return instance_pk(self.account_id, self.region, self.instance_id)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def lease_valid(self, now: float) -> bool:
        return self.lease_expires > now

    def to_item(self, sk: str = CURRENT) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": _s(self.pk),
            "sk": _s(sk),
            "kind": _s("incident"),
            "account_id": _s(self.account_id),
            "region": _s(self.region),
            "instance_id": _s(self.instance_id),
            "incident_id": _s(self.incident_id),
            "status": _s(self.status),
            "first_finding_id": _s(self.first_finding_id),
            "opened_at": _s(self.opened_at),
            "updated_at": _s(self.updated_at),
            "lease_owner": _s(self.lease_owner),
            "lease_expires": _n(self.lease_expires),
            "attempts": _n(self.attempts),
            "pre_state_complete": {"BOOL": self.pre_state_complete},
            "steps": _s(json.dumps(list(self.steps))),
            "trigger": _s(self.trigger),
            "reason": _s(self.reason),
        }
        if self.finding_ids:
            item["finding_ids"] = {"SS": sorted(set(self.finding_ids))}
        if self.pre_state is not None:
            item["pre_state"] = _s(self.pre_state.model_dump_json())
        if self.snapshot_ids:
            item["snapshot_ids"] = {"SS": sorted(set(self.snapshot_ids))}
        if self.severity is not None:
            item["severity"] = _n(self.severity)
        for key in (
            "quarantine_group_id",
            "network_isolated_at",
            "caller",
            "last_error",
            "released_at",
            "released_by",
            "release_reason",
            "finding_type",
        ):
            value = getattr(self, key)
            if value is not None:
                item[key] = _s(str(value))
        if sk == CURRENT:
            item["gsi1pk"] = _s(GSI_PK)
            item["gsi1sk"] = _s(f"{self.instance_id}#{self.account_id}#{self.region}")
        return item

    @classmethod
    def opened(
        cls,
        account_id: str,
        region: str,
        pre_state: PreState,
        *,
        finding_id: str,
        owner: str,
        now: float,
        lease_seconds: float,
        **details: Any,
    ) -> Incident:
        """A new incident on ``pre_state``'s instance, locked by ``owner`` for ``lease_seconds``;
        ``details`` are the other fields (``trigger``, ``reason``, ``caller``, ``severity``...)."""
        instance_id = pre_state.instance_id
        return cls(
            account_id=account_id,
            region=region,
            instance_id=instance_id,
            incident_id=f"{instance_id}-{int(now * 1000)}",
            status=CONTAINING,
            first_finding_id=finding_id,
            finding_ids=(finding_id,),
            opened_at=iso(now),
            updated_at=iso(now),
            lease_owner=owner,
            lease_expires=now + lease_seconds,
            attempts=1,
            pre_state=pre_state,
            **details,
        )

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Incident:
        pre = _get_s(item, "pre_state")
        steps = _get_s(item, "steps")
        severity = item.get("severity")
        return cls(
            account_id=_get_s(item, "account_id") or "",
            region=_get_s(item, "region") or "",
            instance_id=_get_s(item, "instance_id") or "",
            incident_id=_get_s(item, "incident_id") or "",
            status=_get_s(item, "status") or "",
            first_finding_id=_get_s(item, "first_finding_id") or "",
            finding_ids=tuple(sorted(item.get("finding_ids", {}).get("SS", []))),
            opened_at=_get_s(item, "opened_at") or "",
            updated_at=_get_s(item, "updated_at") or "",
            lease_owner=_get_s(item, "lease_owner") or "",
            lease_expires=_get_n(item, "lease_expires"),
            attempts=int(_get_n(item, "attempts")),
            pre_state=PreState.model_validate_json(pre) if pre else None,
            pre_state_complete=bool(item.get("pre_state_complete", {}).get("BOOL", False)),
            steps=tuple(json.loads(steps)) if steps else (),
            quarantine_group_id=_get_s(item, "quarantine_group_id"),
            snapshot_ids=tuple(sorted(item.get("snapshot_ids", {}).get("SS", []))),
            network_isolated_at=_get_s(item, "network_isolated_at"),
            trigger=_get_s(item, "trigger") or "finding",
            caller=_get_s(item, "caller"),
            reason=_get_s(item, "reason") or "",
            last_error=_get_s(item, "last_error"),
            released_at=_get_s(item, "released_at"),
            released_by=_get_s(item, "released_by"),
            release_reason=_get_s(item, "release_reason"),
            finding_type=_get_s(item, "finding_type"),
            severity=float(severity["N"]) if severity else None,
        )

    def public(self) -> dict[str, Any]:
        """A JSON-ready view (for `orgcontain status --json`, notifications and result events)."""
        return {
            "incident_id": self.incident_id,
            "account_id": self.account_id,
            "region": self.region,
            "instance_id": self.instance_id,
            "status": self.status,
            "finding_ids": list(self.finding_ids),
            "first_finding_id": self.first_finding_id,
            "finding_type": self.finding_type,
            "severity": self.severity,
            "opened_at": self.opened_at,
            "updated_at": self.updated_at,
            "trigger": self.trigger,
            "caller": self.caller,
            "reason": self.reason,
            "attempts": self.attempts,
            "network_isolated_at": self.network_isolated_at,
            "quarantine_group_id": self.quarantine_group_id,
            "snapshot_ids": list(self.snapshot_ids),
            "steps": list(self.steps),
            "last_error": self.last_error,
            "released_at": self.released_at,
            "released_by": self.released_by,
            "release_reason": self.release_reason,
            "pre_state": self.pre_state.model_dump(mode="json") if self.pre_state else None,
            "pre_state_complete": self.pre_state_complete,
        }


@dataclass(frozen=True)
class DecisionRecord:
    """One finding delivery's decision."""

    decision: str
    reason: str
    delivery_id: str
    decided_at: float
    account_id: str | None = None
    region: str | None = None
    finding_id: str | None = None
    event_id: str | None = None
    instance_id: str | None = None
    mode: str | None = None
    finding_type: str | None = None
    severity: float | None = None
    incident_id: str | None = None
    detail: str = ""
    notification: str | None = None  # failed | event-failed (absent: sent or nothing to send)
    action: str = "finding"  # finding | isolate | release
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def pk(self) -> str:
        if self.account_id and self.region and self.finding_id:
            return finding_pk(self.account_id, self.region, self.finding_id)
        return f"EVENT#{self.event_id or self.delivery_id}"

    @property
    def sk(self) -> str:
        return f"DECISION#{iso(self.decided_at)}#{self.delivery_id}"

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": _s(self.pk),
            "sk": _s(self.sk),
            "kind": _s("decision"),
            "decision": _s(self.decision),
            "reason": _s(self.reason),
            "delivery_id": _s(self.delivery_id),
            "decided_at": _s(iso(self.decided_at)),
            "detail": _s(self.detail[:2000]),
            "expires_at": _n(int(self.decided_at + DECISION_TTL_DAYS * 86400)),
        }
        for key in (
            "account_id",
            "region",
            "finding_id",
            "event_id",
            "instance_id",
            "mode",
            "finding_type",
            "incident_id",
            "notification",
            "action",
        ):
            value = getattr(self, key)
            if value is not None:
                item[key] = _s(str(value))
        if self.severity is not None:
            item["severity"] = _n(self.severity)
        if self.data:
            item["data"] = _s(_bounded_json(self.data))
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> DecisionRecord:
        data = _get_s(item, "data")
        decided = _get_s(item, "decided_at") or ""
        severity = item.get("severity")
        return cls(
            decision=_get_s(item, "decision") or "",
            reason=_get_s(item, "reason") or "",
            delivery_id=_get_s(item, "delivery_id") or "",
            decided_at=datetime.fromisoformat(decided.replace("Z", "+00:00")).timestamp() if decided else 0.0,
            account_id=_get_s(item, "account_id"),
            region=_get_s(item, "region"),
            finding_id=_get_s(item, "finding_id"),
            event_id=_get_s(item, "event_id"),
            instance_id=_get_s(item, "instance_id"),
            mode=_get_s(item, "mode"),
            finding_type=_get_s(item, "finding_type"),
            severity=float(severity["N"]) if severity else None,
            incident_id=_get_s(item, "incident_id"),
            detail=_get_s(item, "detail") or "",
            notification=_get_s(item, "notification"),
            action=_get_s(item, "action") or "finding",
            data=json.loads(data) if data else {},
        )


@dataclass(frozen=True)
class Prefetch:
    """What RT1 reads in one BatchGetItem: the instance's incident, the breaker, the released mark."""

    incident: Incident | None
    breaker: BreakerState
    finding_released: bool


# A DynamoDB item holds at most 400 KB; the decision's data (the step list, the pre-state) stays well
# under that, but a record must never fail to be written for its size.
DATA_MAX_CHARS = 300_000


def _bounded_json(data: Mapping[str, Any]) -> str:
    """``data`` as JSON, or, past DATA_MAX_CHARS, a valid JSON stand-in saying what was cut (a cut
    string would not parse, and the record could then never be read back)."""
    text = json.dumps(data, default=str)
    if len(text) <= DATA_MAX_CHARS:
        return text
    return json.dumps({"truncated": True, "chars": len(text), "head": text[: DATA_MAX_CHARS - 1000]})


class LockConflict(Exception):
    """A conditional write lost: ``kind`` is ``incident``, ``breaker`` or ``released``."""

    def __init__(self, kind: str, current: Incident | None = None) -> None:
        self.kind = kind
        self.current = current
        super().__init__(f"ledger condition failed: {kind}")


class Ledger:
    def __init__(self, table_name: str, client: Any) -> None:
        self.table = table_name
        self.client = client

    # ---- reads ------------------------------------------------------------------------------------
    def prefetch(self, account_id: str, region: str, instance_id: str, finding_id: str | None) -> Prefetch:
        keys = [
            {"pk": _s(instance_pk(account_id, region, instance_id)), "sk": _s(CURRENT)},
            {"pk": _s(BREAKER_PK), "sk": _s(BREAKER_SK)},
        ]
        if finding_id:
            keys.append({"pk": _s(finding_pk(account_id, region, finding_id)), "sk": _s(RELEASED_SK)})
        resp = self.client.batch_get_item(RequestItems={self.table: {"Keys": keys, "ConsistentRead": True}})
        items = list(resp.get("Responses", {}).get(self.table, []))
        unprocessed = resp.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
        for key in unprocessed:  # rare (throttling): read those directly, once
            got = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
            if got:
                items.append(got)
        incident: Incident | None = None
        breaker = BreakerState()
        released = False
        for item in items:
            pk, sk = item["pk"]["S"], item["sk"]["S"]
            if sk == CURRENT:
                incident = Incident.from_item(item)
            elif pk == BREAKER_PK:
                breaker = breaker_from_item(item)
            elif sk == RELEASED_SK:
                released = True
        return Prefetch(incident, breaker, released)

    def incident(self, account_id: str, region: str, instance_id: str) -> Incident | None:
        item = self.client.get_item(
            TableName=self.table,
            Key={"pk": _s(instance_pk(account_id, region, instance_id)), "sk": _s(CURRENT)},
            ConsistentRead=True,
        ).get("Item")
        return Incident.from_item(item) if item else None

    def history(self, account_id: str, region: str, instance_id: str) -> list[Incident]:
        """Every incident of the instance, the current one last."""
        items = self._query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _s(instance_pk(account_id, region, instance_id))},
        )
        closed = [Incident.from_item(i) for i in items if i["sk"]["S"].startswith("INCIDENT#")]
        current = [Incident.from_item(i) for i in items if i["sk"]["S"] == CURRENT]
        return sorted(closed, key=lambda i: i.opened_at) + current

    def current_incidents(self, instance_id: str | None = None) -> list[Incident]:
        """Current incidents of every instance (GSI), or of one instance id in any account/region."""
        values: dict[str, Any] = {":pk": _s(GSI_PK)}
        condition = "gsi1pk = :pk"
        if instance_id:
            condition += " AND begins_with(gsi1sk, :sk)"
            values[":sk"] = _s(f"{instance_id}#")
        items = self._query(IndexName=GSI, KeyConditionExpression=condition, ExpressionAttributeValues=values)
        return [Incident.from_item(i) for i in items]

    def open_incidents(self) -> list[Incident]:
        return [i for i in self.current_incidents() if i.is_open]

    def decisions(self, account_id: str, region: str, finding_id: str) -> list[DecisionRecord]:
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :d)",
            ExpressionAttributeValues={
                ":pk": _s(finding_pk(account_id, region, finding_id)),
                ":d": _s("DECISION#"),
            },
        )
        return [DecisionRecord.from_item(i) for i in items]

    def event_decisions(self, event_id: str) -> list[DecisionRecord]:
        items = self._query(
            KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": _s(f"EVENT#{event_id}")}
        )
        return [DecisionRecord.from_item(i) for i in items]

    def all_decisions(self) -> list[DecisionRecord]:
        """Every decision record (a Scan: for tests and small audits, not for the hot path)."""
        return [DecisionRecord.from_item(i) for i in self._scan() if _get_s(i, "kind") == "decision"]

    def is_released(self, account_id: str, region: str, finding_id: str) -> bool:
        item = self.client.get_item(
            TableName=self.table,
            Key={"pk": _s(finding_pk(account_id, region, finding_id)), "sk": _s(RELEASED_SK)},
            ConsistentRead=True,
        ).get("Item")
        return item is not None

    def breaker(self) -> BreakerState:
        item = self.client.get_item(
            TableName=self.table, Key={"pk": _s(BREAKER_PK), "sk": _s(BREAKER_SK)}, ConsistentRead=True
        ).get("Item")
        return breaker_from_item(item) if item else BreakerState()

    def _query(self, **kwargs: Any) -> list[dict[str, Any]]:
        return list(self._pages("query", **kwargs))

    def _scan(self) -> list[dict[str, Any]]:
        return list(self._pages("scan"))

    def _pages(self, op: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator(op)
        for page in paginator.paginate(TableName=self.table, **kwargs):
            yield from page.get("Items", [])

    # ---- writes -----------------------------------------------------------------------------------
    def open_incident(
        self,
        incident: Incident,
        *,
        replaces: Incident | None,
        breaker_from: BreakerState | None,
        breaker_to: BreakerState | None,
        check_not_released: str | None,
    ) -> None:
        """RT2: lock the instance (new CURRENT) + breaker update + finding-not-released, atomically.

        ``replaces`` is the closed (released/gone) incident read in the prefetch: it is archived as
        ``INCIDENT#<id>`` in the same transaction, conditioned on still being what was read.
        """
        items: list[dict[str, Any]] = []
        kinds: list[str] = []
        if replaces is None:
            cond: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            cond = {
                "ConditionExpression": "incident_id = :old AND #st IN (:released, :gone)",
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": {
                    ":old": _s(replaces.incident_id),
                    ":released": _s(RELEASED),
                    ":gone": _s(GONE),
                },
            }
        items.append(
            {
                "Put": {
                    "TableName": self.table,
                    "Item": incident.to_item(),
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    **cond,
                }
            }
        )
        kinds.append("incident")
        if replaces is not None:
            items.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": replaces.to_item(f"INCIDENT#{replaces.incident_id}"),
                    }
                }
            )
            kinds.append("archive")
        if breaker_to is not None and breaker_from is not None:
            items.append({"Put": breaker_put(self.table, breaker_from, breaker_to)})
            kinds.append("breaker")
        if check_not_released:
            items.append(
                {
                    "ConditionCheck": {
                        "TableName": self.table,
                        "Key": {
                            "pk": _s(finding_pk(incident.account_id, incident.region, check_not_released)),
                            "sk": _s(RELEASED_SK),
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
            kinds.append("released")
        self._transact(items, kinds)

    def take_over(self, incident: Incident, *, owner: str, lease_expires: float, finding_id: str) -> Incident:
        """Resume an incident whose holder crashed or failed: conditioned on the lease we saw."""
        now = time.time()
        try:
            resp = self.client.update_item(
                TableName=self.table,
                Key={"pk": _s(incident.pk), "sk": _s(CURRENT)},
                UpdateExpression=(
                    "SET lease_owner = :me, lease_expires = :exp, attempts = attempts + :one, "
                    "updated_at = :now ADD finding_ids :fid"
                ),
                ConditionExpression="incident_id = :id AND lease_expires = :seen AND #st = :containing",
                ExpressionAttributeNames={"#st": "status"},
                ExpressionAttributeValues={
                    ":me": _s(owner),
                    ":exp": _n(lease_expires),
                    ":one": _n(1),
                    ":now": _s(iso(now)),
                    ":fid": {"SS": [finding_id]},
                    ":id": _s(incident.incident_id),
                    ":seen": _n(incident.lease_expires),
                    ":containing": _s(CONTAINING),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            raise self._conflict(exc) from exc
        return Incident.from_item(resp["Attributes"])

    def attach(self, incident: Incident, finding_id: str) -> Incident:
        """Attach a finding to the instance's current incident (no second containment)."""
        resp = self.client.update_item(
            TableName=self.table,
            Key={"pk": _s(incident.pk), "sk": _s(CURRENT)},
            UpdateExpression="ADD finding_ids :fid SET updated_at = :now",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":fid": {"SS": [finding_id]}, ":now": _s(iso())},
            ReturnValues="ALL_NEW",
        )
        return Incident.from_item(resp["Attributes"])

    def checkpoint(self, incident: Incident, pre_state: PreState, owner: str) -> None:
        """Persist the complete pre-state (spoke calls this after the network step)."""
        self._update_owned(
            incident,
            owner,
            "SET pre_state = :pre, pre_state_complete = :t, updated_at = :now",
            {":pre": _s(pre_state.model_dump_json()), ":t": {"BOOL": True}, ":now": _s(iso())},
        )

    def finish(self, incident: Incident, owner: str) -> Incident:
        """Write the outcome of an attempt and drop the lease (so a retry may resume at once).

        An update of the fields this attempt owns, not a Put: findings attached meanwhile stay.
        """
        done = replace(incident, lease_owner="", lease_expires=0.0, updated_at=iso())
        try:
            resp = self.client.update_item(
                TableName=self.table,
                Key={"pk": _s(incident.pk), "sk": _s(CURRENT)},
                **_owned_update(done, owner),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            raise self._conflict(exc) from exc
        return Incident.from_item(resp["Attributes"])

    def claim_for_release(
        self, incident: Incident, *, owner: str, lease_expires: float, now: float
    ) -> Incident:
        """Lock an open incident for release (no containment may hold a live lease on it)."""
        try:
            resp = self.client.update_item(
                TableName=self.table,
                Key={"pk": _s(incident.pk), "sk": _s(CURRENT)},
                UpdateExpression=(
                    "SET #st = :releasing, lease_owner = :me, lease_expires = :exp, updated_at = :now"
                ),
                ConditionExpression="incident_id = :id AND #st IN (:isolated, :containing, :releasing) "
                "AND lease_expires < :nowts",
                ExpressionAttributeNames={"#st": "status"},
                ExpressionAttributeValues={
                    ":releasing": _s(RELEASING),
                    ":me": _s(owner),
                    ":exp": _n(lease_expires),
                    ":now": _s(iso(now)),
                    ":id": _s(incident.incident_id),
                    ":isolated": _s(ISOLATED),
                    ":containing": _s(CONTAINING),
                    ":nowts": _n(now),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            raise self._conflict(exc) from exc
        return Incident.from_item(resp["Attributes"])

    def mark_released(self, incident: Incident, owner: str) -> Incident:
        """Close the incident as released and mark every attached finding released, atomically
        (so a later update of any of them is skipped, while a new finding id isolates again)."""
        done = replace(incident, status=RELEASED, lease_owner="", lease_expires=0.0, updated_at=iso())
        findings = sorted(set(incident.finding_ids) | {incident.first_finding_id})
        head: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": {"pk": _s(incident.pk), "sk": _s(CURRENT)},
                    **_owned_update(done, owner),
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
        ]
        markers = [
            {"Put": {"TableName": self.table, "Item": released_marker(incident, f, done.updated_at)}}
            for f in findings
        ]
        # A transaction holds 100 items: markers beyond the first batch go in follow-up writes
        # (each idempotent), written BEFORE the incident closes so none can be missing after it.
        first, rest = markers[:99], markers[99:]
        for chunk in _chunks(rest, 25):
            self.client.batch_write_item(
                RequestItems={self.table: [{"PutRequest": {"Item": m["Put"]["Item"]}} for m in chunk]}
            )
        self._transact(head + first, ["incident"] + ["marker"] * len(first))
        return done

    def record_decision(self, record: DecisionRecord) -> None:
        self.client.put_item(TableName=self.table, Item=record.to_item())

    def set_notification(self, record: DecisionRecord, status: str) -> None:
        self.client.update_item(
            TableName=self.table,
            Key={"pk": _s(record.pk), "sk": _s(record.sk)},
            UpdateExpression="SET notification = :n",
            ExpressionAttributeValues={":n": _s(status)},
        )

    # ---- internals --------------------------------------------------------------------------------
    def _update_owned(self, incident: Incident, owner: str, expression: str, values: dict[str, Any]) -> None:
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": _s(incident.pk), "sk": _s(CURRENT)},
                UpdateExpression=expression,
                ConditionExpression="incident_id = :id AND lease_owner = :me",
                ExpressionAttributeValues={**values, ":id": _s(incident.incident_id), ":me": _s(owner)},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            raise self._conflict(exc) from exc

    def _conflict(self, exc: ClientError) -> Exception:
        code = exc.response.get("Error", {}).get("Code", "")
        if code != "ConditionalCheckFailedException":
            return exc
        item: Any = exc.response.get("Item")
        return LockConflict("incident", Incident.from_item(item) if item else None)

    def _transact(self, items: list[dict[str, Any]], kinds: Sequence[str]) -> None:
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or []
            for kind, why in zip(kinds, reasons, strict=False):
                if why.get("Code") == "ConditionalCheckFailed":
                    item = why.get("Item")
                    current = Incident.from_item(item) if kind == "incident" and item else None
                    raise LockConflict(kind, current) from exc
            raise


_OWNED_FIELDS = (
    "status",
    "updated_at",
    "lease_owner",
    "lease_expires",
    "steps",
    "pre_state",
    "pre_state_complete",
    "quarantine_group_id",
    "snapshot_ids",
    "network_isolated_at",
    "last_error",
    "released_at",
    "released_by",
    "release_reason",
)


def _owned_update(incident: Incident, owner: str) -> dict[str, Any]:
    """UpdateItem arguments setting the fields an attempt owns (others, e.g. finding_ids, stay)."""
    item = incident.to_item()
    sets: list[str] = []
    removes: list[str] = []
    names: dict[str, str] = {}
    values: dict[str, Any] = {":id": _s(incident.incident_id), ":me": _s(owner)}
    for i, name in enumerate(_OWNED_FIELDS):
        names[f"#f{i}"] = name
        if name in item:
            sets.append(f"#f{i} = :v{i}")
            values[f":v{i}"] = item[name]
        else:
            removes.append(f"#f{i}")
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    return {
        "UpdateExpression": expression,
        "ConditionExpression": "incident_id = :id AND lease_owner = :me",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def breaker_from_item(item: Mapping[str, Any]) -> BreakerState:
    stamps = tuple(float(v["N"]) for v in item.get("stamps", {}).get("L", []))
    return BreakerState(int(_get_n(item, "version")), stamps)


def breaker_put(table: str, before: BreakerState, after: BreakerState) -> dict[str, Any]:
    put: dict[str, Any] = {
        "TableName": table,
        "Item": {
            "pk": _s(BREAKER_PK),
            "sk": _s(BREAKER_SK),
            "kind": _s("breaker"),
            "version": _n(after.version),
            "stamps": {"L": [_n(s) for s in after.stamps]},
            "updated_at": _s(iso()),
        },
    }
    if before.version == 0:
        put["ConditionExpression"] = "attribute_not_exists(pk)"
    else:
        put["ConditionExpression"] = "version = :v"
        put["ExpressionAttributeValues"] = {":v": _n(before.version)}
    return put


def released_marker(incident: Incident, finding_id: str, at: str) -> dict[str, Any]:
    return {
        "pk": _s(finding_pk(incident.account_id, incident.region, finding_id)),
        "sk": _s(RELEASED_SK),
        "kind": _s("released"),
        "incident_id": _s(incident.incident_id),
        "instance_id": _s(incident.instance_id),
        "released_at": _s(at),
    }


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def table_definition(table_name: str) -> dict[str, Any]:
    """``create_table`` arguments for the ledger (tests; the hub template mirrors this)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "gsi1pk", "AttributeType": "S"},
            {"AttributeName": "gsi1sk", "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": GSI,
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }
