"""Typed inputs and outputs of the spoke engine.

The hub builds a :class:`ContainmentPlan` (pure, from the config and the finding) and persists the
:class:`PreState` that :func:`spoke.isolate.isolate` returns; :func:`spoke.release.release` takes
that same PreState back. Nothing here knows about organizations, config files or queues.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

QUARANTINE_ROLE = "quarantine"
TRANSITION_ROLE = "transition"
ROLE_TAG = "orgcontain:role"
STATUS_TAG = "orgcontain:status"
FINDING_TAG = "orgcontain:finding-id"
QUARANTINED_AT_TAG = "orgcontain:quarantined-at"
MODE_TAG = "orgcontain:mode"
QUARANTINE_GROUP_NAME = "orgcontain-quarantine"
TRANSITION_GROUP_NAME = "orgcontain-transition"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngressPermission(_Model):
    """One ingress rule of the quarantine group: exactly one source, a port range."""

    protocol: Literal["tcp", "udp"] = "tcp"
    from_port: int = Field(ge=0, le=65535)
    to_port: int = Field(ge=0, le=65535)
    cidr_ipv4: str | None = None
    cidr_ipv6: str | None = None
    prefix_list_id: str | None = None
    security_group_id: str | None = None
    description: str = ""


class ContainmentPlan(_Model):
    """What to do to one instance. Built by the hub, applied by the spoke."""

    instance_id: str
    finding_id: str
    reason: str = ""
    quarantined_at: datetime
    quarantine_ingress: tuple[IngressPermission, ...] = ()
    sever_tracked_connections: bool = True
    minimise_conntrack_timeouts: bool = True
    detach_from_autoscaling: bool = True
    autoscaling_action: Literal["standby", "detach"] = "detach"
    deregister_from_load_balancers: bool = True
    termination_protection: bool = True
    detach_instance_profile: bool = True
    revoke_role_sessions: bool = False
    snapshot_volumes: bool = True
    # Upper bound on target groups scanned for membership (API cost on large accounts).
    max_target_groups_scanned: int = Field(default=400, ge=0)


class ConntrackTimeouts(_Model):
    tcp_established: int | None = None
    udp_stream: int | None = None
    udp: int | None = None


class EniState(_Model):
    eni_id: str
    device_index: int = 0
    groups: tuple[str, ...]
    requester_managed: bool = False
    conntrack: ConntrackTimeouts | None = None


class TargetRegistration(_Model):
    target_group_arn: str
    port: int | None = None


class VolumeState(_Model):
    volume_id: str
    device_name: str
    delete_on_termination: bool


class PreState(_Model):
    """The instance as it was before containment: authoritative input for release."""

    instance_id: str
    state: str
    vpc_id: str
    subnet_id: str | None = None
    enis: tuple[EniState, ...]
    volumes: tuple[VolumeState, ...] = ()
    instance_profile_arn: str | None = None
    autoscaling_group: str | None = None
    autoscaling_min_size: int | None = None
    target_groups: tuple[TargetRegistration, ...] = ()
    classic_load_balancers: tuple[str, ...] = ()
    disable_api_termination: bool | None = None
    shutdown_behavior: str | None = None
    tags: dict[str, str] = {}


class StepStatus(StrEnum):
    DONE = "done"
    ALREADY = "already"
    SKIPPED = "skipped"
    FAILED = "failed"
    WOULD = "would"  # dry-run: what the step would change


class StepOutcome(_Model):
    step: str
    status: StepStatus
    detail: str = ""
    error_code: str | None = None


class IsolationStatus(StrEnum):
    ISOLATED = "isolated"
    ALREADY_ISOLATED = "already-isolated"
    PARTIAL = "partial"  # some ENIs could not be moved (e.g. requester-managed), or a later step failed
    FAILED = "failed"  # the network step did not complete: retry
    GONE = "gone"  # terminated, shutting down or missing
    DRY_RUN = "dry-run"


class IsolationResult(_Model):
    instance_id: str
    status: IsolationStatus
    pre_state: PreState | None = None
    steps: tuple[StepOutcome, ...] = ()
    quarantine_group_id: str | None = None
    transition_group_id: str | None = None
    snapshot_ids: tuple[str, ...] = ()
    network_isolated_at: datetime | None = None
    detail: str = ""


class ReleaseStatus(StrEnum):
    RELEASED = "released"
    PARTIAL = "partial"
    GONE = "gone"


class ReleaseResult(_Model):
    instance_id: str
    status: ReleaseStatus
    steps: tuple[StepOutcome, ...] = ()
    detail: str = ""
