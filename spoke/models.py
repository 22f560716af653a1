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
INSTANCE_TAG = "orgcontain:instance-id"
# Per-ENI copy of the original groups on the instance (the ledger stays authoritative): lets a
# fresh describe of an already-quarantined instance report the true originals, never our groups.
ORIGINAL_GROUPS_TAG_PREFIX = "orgcontain:original-groups:"
STATUS_QUARANTINED = "quarantined"
STATUS_RELEASED = "released"
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


# AWS limits for ConnectionTrackingSpecification (EC2 API reference "ConnectionTrackingConfiguration").
CONNTRACK_MINIMUMS = ConntrackTimeouts(tcp_established=60, udp_stream=60, udp=30)
CONNTRACK_DEFAULTS = ConntrackTimeouts(tcp_established=432_000, udp_stream=180, udp=30)

EniFoundOn = Literal["original", "transition", "quarantine"]


class EniState(_Model):
    eni_id: str
    device_index: int = 0
    # The ENI's own groups before containment: never orgcontain's quarantine/transition groups.
    groups: tuple[str, ...]
    requester_managed: bool = False
    # Timeouts before containment; None = never set (AWS defaults apply).
    conntrack: ConntrackTimeouts | None = None
    # VPC of this ENI when it differs from the instance's (multi-VPC ENI attachments).
    vpc_id: str | None = None
    # Where containment last saw or left the ENI: "original" for an instance not yet touched;
    # "quarantine" / "transition" once moved (a fresh describe of an already-contained instance says
    # so too; ``groups`` then comes from the instance's original-groups tag, or is empty).
    found_on: EniFoundOn = "original"
    # Why containment could not move this ENI (e.g. requester-managed: UnauthorizedOperation).
    not_modified: str | None = None


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
    # Filled by isolate() after the network step (what release needs beyond the describe).
    instance_profile_association_id: str | None = None
    # How isolate() took the instance out of its Auto Scaling group (None: it did not).
    autoscaling_action: Literal["standby", "detach"] | None = None
    # Steps whose original values isolate() has read after the network step (attributes, profile
    # association, load balancers). A resume never re-reads them: they would show quarantined values.
    discovered: tuple[str, ...] = ()
    # True once every enabled step's values are discovered (the pre-state handed to ``checkpoint``).
    complete: bool = False
    # Containment steps completed (done / already / skipped) as of the checkpoint or result that
    # carried this pre-state. A resume skips them; with "network" among them it re-describes first.
    steps_completed: tuple[str, ...] = ()

    @property
    def vpc_ids(self) -> tuple[str, ...]:
        """Every VPC the instance's ENIs live in (the instance's first)."""
        seen = dict.fromkeys([self.vpc_id, *(e.vpc_id or self.vpc_id for e in self.enis)])
        return tuple(v for v in seen if v)


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
    # ENIs left on their own groups (requester-managed or not modifiable): partly contained.
    enis_not_isolated: tuple[str, ...] = ()

    def step(self, name: str) -> StepOutcome | None:
        """The outcome of step ``name`` (None when the run never reached it)."""
        return next((s for s in self.steps if s.step == name), None)

    @property
    def failed_steps(self) -> tuple[str, ...]:
        """Steps that failed: a retry with ``pre_state`` can complete them. A ``partial`` result
        without any is final (ENIs AWS will not let this account modify stay as they are)."""
        return tuple(s.step for s in self.steps if s.status == StepStatus.FAILED)


class ReleaseStatus(StrEnum):
    RELEASED = "released"
    PARTIAL = "partial"
    GONE = "gone"


class ReleaseResult(_Model):
    instance_id: str
    status: ReleaseStatus
    steps: tuple[StepOutcome, ...] = ()
    detail: str = ""

    def step(self, name: str) -> StepOutcome | None:
        return next((s for s in self.steps if s.step == name), None)
