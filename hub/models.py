"""Event models: the EventBridge envelope and the GuardDuty finding in its camelCase event shape.

Only the fields orgcontain reads are modelled; everything else GuardDuty sends (now or later) is
ignored. The fields that are read are strict: an account id that is not 12 digits, a severity
outside 0-10 (or NaN), an instance id that is not ``i-`` + 8 or 17 hex digits makes the finding
invalid, and an invalid finding is never acted on.

``Finding.model_validate_json`` is the hot path of ``orgcontain simulate``: keep this model slim
(no datetimes parsed eagerly, no nested blocks nobody reads).
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Annotated, Any, NotRequired

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from typing_extensions import TypedDict

ACCOUNT_ID_PATTERN = r"^\d{12}$"
REGION_PATTERN = r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$"
INSTANCE_ID_PATTERN = r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$"
# GuardDuty finding ids are 32 hex digits; older samples use UUIDs. The id ends up in ledger keys,
# role session names and tag values, so the charset is pinned.
FINDING_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
PARTITION_PATTERN = r"^aws(-[a-z]+)*$"

GUARDDUTY_SOURCE = "aws.guardduty"
FINDING_DETAIL_TYPE = "GuardDuty Finding"
INSTANCE_RESOURCE = "Instance"
ATTACK_SEQUENCE_RESOURCE = "AttackSequence"
SAMPLE_TITLE_PREFIX = "[SAMPLE]"

_INSTANCE_IN_UID = re.compile(r"(?:^|[/:])(i-(?:[0-9a-f]{17}|[0-9a-f]{8}))$")

AccountId = Annotated[str, StringConstraints(pattern=ACCOUNT_ID_PATTERN)]
InstanceId = Annotated[str, StringConstraints(pattern=INSTANCE_ID_PATTERN)]


class Decision(StrEnum):
    """The one recorded outcome of every finding that reaches the hub (DESIGN "Decisions")."""

    ISOLATED = "isolated"
    ALREADY_ISOLATED = "already-isolated"
    NOTIFIED = "notified"
    DRY_RUN = "dry-run"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    FAILED = "failed"


class _Lenient(BaseModel):
    """GuardDuty adds fields over time: ignore unknown ones, never fail on them."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


# The nested blocks are TypedDicts, not models: validated just as strictly (unknown keys dropped),
# but about 1.5x faster to build, which is what simulate's throughput depends on.


class Tag(TypedDict):
    key: str
    value: NotRequired[str | None]


class InstanceDetails(TypedDict):
    instanceId: NotRequired[InstanceId | None]
    tags: NotRequired[list[Tag] | None]


class Resource(TypedDict):
    resourceType: Annotated[str, StringConstraints(min_length=1)]
    instanceDetails: NotRequired[InstanceDetails | None]


class AdditionalInfo(TypedDict, total=False):
    sample: Any
    value: Any


class SequenceResource(TypedDict):
    uid: str
    resourceType: NotRequired[str]


class Sequence(TypedDict, total=False):
    resources: list[SequenceResource]


class Detection(TypedDict, total=False):
    sequence: Sequence | None


class Service(TypedDict, total=False):
    archived: bool
    count: int | None
    resourceRole: str | None
    additionalInfo: AdditionalInfo | None
    detection: Detection | None


class Finding(_Lenient):
    """A GuardDuty finding (the EventBridge event's ``detail``), camelCase as GuardDuty sends it."""

    id: Annotated[str, StringConstraints(pattern=FINDING_ID_PATTERN)]
    account_id: AccountId = Field(alias="accountId")
    region: Annotated[str, StringConstraints(pattern=REGION_PATTERN)]
    partition: Annotated[str, StringConstraints(pattern=PARTITION_PATTERN)] = "aws"
    arn: str
    type: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    severity: Annotated[float, Field(ge=0.0, le=10.0, allow_inf_nan=False, strict=True)]
    # Not modelled, though GuardDuty sends them: ``description`` (long prose) and ``createdAt``;
    # nothing reads them, and every field costs simulate's hot path (issue #8).
    updated_at: str | None = Field(default=None, alias="updatedAt")
    title: str = ""
    resource: Resource
    service: Service

    @field_validator("resource")
    @classmethod
    def _instance_has_id(cls, value: Resource) -> Resource:
        # An Instance finding without an instance id names nothing to contain: invalid input.
        # (A field validator on the dict costs far less than a model validator on the model.)
        if value["resourceType"] == INSTANCE_RESOURCE:
            details = value.get("instanceDetails")
            if not details or not details.get("instanceId"):
                raise ValueError("resourceType is Instance but instanceDetails.instanceId is missing")
        return value

    # ---- derived, cheap -------------------------------------------------------------------------
    @property
    def resource_type(self) -> str:
        return self.resource["resourceType"]

    @property
    def is_instance_finding(self) -> bool:
        """Dispatch on resourceType alone: AccessKey findings can carry an instanceDetails block."""
        return self.resource["resourceType"] == INSTANCE_RESOURCE

    @property
    def instance_id(self) -> str | None:
        """The instance to contain, only for ``resourceType == "Instance"`` findings."""
        if self.resource["resourceType"] != INSTANCE_RESOURCE:
            return None
        details = self.resource.get("instanceDetails")
        return details.get("instanceId") if details else None

    @property
    def archived(self) -> bool:
        return self.service.get("archived") is True

    @property
    def count(self) -> int | None:
        return self.service.get("count")

    @property
    def resource_role(self) -> str | None:
        return self.service.get("resourceRole")

    @property
    def is_attack_sequence(self) -> bool:
        return self.resource["resourceType"] == ATTACK_SEQUENCE_RESOURCE or self.type.startswith(
            "AttackSequence:"
        )

    @property
    def is_sample(self) -> bool:
        """GuardDuty sample findings are published to EventBridge like real ones."""
        return is_sample_finding(self.service, self.title)

    @property
    def instance_tags(self) -> dict[str, str]:
        """The instance's tags as GuardDuty saw them (may be stale; the hub re-reads live tags)."""
        details = self.resource.get("instanceDetails")
        tags = details.get("tags") if details else None
        return {t["key"]: t.get("value") or "" for t in tags} if tags else {}

    def instance_tag(self, key: str) -> str | None:
        """One tag of the instance as GuardDuty saw it (None when absent)."""
        return tag_of_instance(self.resource, key)

    @property
    def sequence_instance_ids(self) -> tuple[str, ...]:
        """Instances an attack sequence names (``service.detection.sequence.resources``)."""
        detection = self.service.get("detection")
        sequence = detection.get("sequence") if detection else None
        if not sequence:
            return ()
        found: list[str] = []
        for res in sequence.get("resources", ()):
            if res.get("resourceType", "EC2_INSTANCE") not in ("EC2_INSTANCE", "Instance"):
                continue
            match = _INSTANCE_IN_UID.search(res["uid"])
            if match and match.group(1) not in found:
                found.append(match.group(1))
        return tuple(found)

    def arn_mismatch(self) -> str | None:
        """Why ``arn`` disagrees with ``accountId``/``region`` (None when it agrees)."""
        parts = self.arn.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "guardduty":
            return f"finding arn {self.arn!r} is not a GuardDuty finding arn"
        if parts[1] != self.partition:
            return f"finding arn partition {parts[1]} differs from partition {self.partition}"
        if parts[3] != self.region:
            return f"finding arn region {parts[3]} differs from detail.region {self.region}"
        if parts[4] != self.account_id:
            return f"finding arn account {parts[4]} differs from detail.accountId {self.account_id}"
        if not parts[5].endswith(f"/finding/{self.id}"):
            return "finding arn does not end with the finding id"
        return None


# The checks behind the properties above, as functions of the validated blocks: ``hub.policy.decide``
# calls them on the finding's fields directly (simulate's hot path: every attribute read on a
# pydantic model goes through its ``__getattr__`` hook, and each property is a call more).


def is_sample_finding(service: Service, title: str) -> bool:
    """A GuardDuty sample: ``additionalInfo.sample`` true (or ``"sample": true`` in its JSON
    ``value``), or a title starting with ``[SAMPLE]``."""
    info = service.get("additionalInfo")
    if info:
        sample = info.get("sample")
        if sample is True or (isinstance(sample, str) and sample.lower() == "true"):
            return True
        value = info.get("value")
        if isinstance(value, str) and '"sample"' in value:
            try:
                decoded = json.loads(value)
            except (ValueError, RecursionError):
                decoded = None
            if isinstance(decoded, dict) and decoded.get("sample") is True:
                return True
    # Only the title's first characters matter: almost every title starts with a letter, which
    # settles it without building any string.
    first = title[:1]
    if first != "[" and not first.isspace():
        return False
    return title.lstrip()[: len(SAMPLE_TITLE_PREFIX)].upper() == SAMPLE_TITLE_PREFIX


def tag_of_instance(resource: Resource, key: str) -> str | None:
    """One tag of the resource's instance as GuardDuty saw it (None when absent)."""
    details = resource.get("instanceDetails")
    for tag in (details.get("tags") if details else None) or ():
        if tag["key"] == key:
            return tag.get("value") or ""
    return None


class EventEnvelope(_Lenient):
    """The EventBridge envelope, with ``detail`` left undecoded until the trust checks pass.

    Not Powertools' ``EventBridgeModel``: that one requires ``time`` to be a datetime (real
    captured events mask it) and importing it loads every Powertools event model (cold start).
    """

    version: str = "0"
    id: str = ""
    detail_type: str = Field(alias="detail-type")
    source: str
    account: str
    time: str | None = None
    region: str | None = None
    resources: tuple[str, ...] = ()
    detail: dict[str, Any]


class GuardDutyEvent(_Lenient):
    """A full EventBridge event with a parsed finding (for tools that trust their input shape)."""

    id: str = ""
    detail_type: str = Field(alias="detail-type")
    source: str
    account: str
    region: str | None = None
    detail: Finding
