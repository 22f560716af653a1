"""Describe one instance in ONE DescribeInstances call, as the pre-isolation state.

Everything containment needs before the network change comes from that one call: every ENI with
its groups, VPC and connection-tracking timeouts (``ConnectionTrackingConfiguration`` is in the
describe when set), volumes and their ``DeleteOnTermination``, the profile, the Auto Scaling group
(its ``aws:autoscaling:groupName`` tag), tags and state. What only later steps change (attribute
values, the profile association id, load-balancer membership) is discovered after the network
change by :func:`spoke.isolate.isolate`.

orgcontain's own groups are recognised by name and never reported as an ENI's original groups:
an ENI found on them says so in ``found_on``, and its originals come from the instance's
``orgcontain:original-groups:<eni>`` tag written at the end of a containment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from spoke.errors import InvalidInstanceId, error_code
from spoke.models import (
    ORIGINAL_GROUPS_TAG_PREFIX,
    QUARANTINE_GROUP_NAME,
    TRANSITION_GROUP_NAME,
    ConntrackTimeouts,
    EniFoundOn,
    EniState,
    PreState,
    VolumeState,
)
from spoke.steps.base import Step

if TYPE_CHECKING:
    from spoke.clients import SpokeClients

INSTANCE_ID_RE = re.compile(r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
GONE_STATES = frozenset({"shutting-down", "terminated"})
ASG_TAG = "aws:autoscaling:groupName"
# Tag values hold at most 256 characters; longer group lists stay in the ledger only.
MAX_TAG_VALUE = 256


class Describe(Step):
    name = "describe"
    actions = frozenset({"ec2:DescribeInstances"})
    release_actions = frozenset({"ec2:DescribeInstances"})


def validate_instance_id(instance_id: str) -> str:
    if not isinstance(instance_id, str) or not INSTANCE_ID_RE.fullmatch(instance_id):
        raise InvalidInstanceId(str(instance_id))
    return instance_id


def describe(clients: SpokeClients, instance_id: str) -> PreState | None:
    """ONE DescribeInstances call. None = gone (terminated / shutting-down / not found).

    Raises :class:`spoke.errors.InvalidInstanceId` for malformed ids (checked before any call, and
    again if AWS says ``InvalidInstanceID.Malformed``).
    """
    validate_instance_id(instance_id)
    try:
        resp = clients.ec2.describe_instances(InstanceIds=[instance_id])
    except ClientError as exc:
        code = error_code(exc)
        if code == "InvalidInstanceID.NotFound":
            return None
        if code == "InvalidInstanceID.Malformed":
            raise InvalidInstanceId(instance_id) from exc
        raise
    for reservation in resp.get("Reservations", []):
        for inst in reservation.get("Instances", []):
            if inst.get("InstanceId") == instance_id:
                return pre_state_from_instance(inst)
    return None


def _conntrack(eni: Mapping[str, Any]) -> ConntrackTimeouts | None:
    cfg = eni.get("ConnectionTrackingConfiguration")
    if not cfg:
        return None
    return ConntrackTimeouts(
        tcp_established=cfg.get("TcpEstablishedTimeout"),
        udp_stream=cfg.get("UdpStreamTimeout"),
        udp=cfg.get("UdpTimeout"),
    )


def original_groups_tag(eni_id: str) -> str:
    return f"{ORIGINAL_GROUPS_TAG_PREFIX}{eni_id}"


def encode_groups(groups: tuple[str, ...]) -> str | None:
    value = " ".join(groups)
    return value if 0 < len(value) <= MAX_TAG_VALUE else None


def _eni_state(eni: Mapping[str, Any], instance_vpc: str, tags: Mapping[str, str]) -> EniState:
    eni_id = str(eni["NetworkInterfaceId"])
    live = [(str(g["GroupId"]), str(g.get("GroupName", ""))) for g in eni.get("Groups", [])]
    ours = {gid: name for gid, name in live if name in (QUARANTINE_GROUP_NAME, TRANSITION_GROUP_NAME)}
    others = tuple(gid for gid, _ in live if gid not in ours)
    found_on: EniFoundOn = "original"
    groups = others
    conntrack = _conntrack(eni)
    if ours and not others:
        found_on = "quarantine" if set(ours.values()) == {QUARANTINE_GROUP_NAME} else "transition"
        groups = tuple(tags.get(original_groups_tag(eni_id), "").split())
        # The live timeouts are containment's, not the originals: unknown (release restores defaults).
        conntrack = None
    vpc = eni.get("VpcId")
    return EniState(
        eni_id=eni_id,
        device_index=int(eni.get("Attachment", {}).get("DeviceIndex", 0)),
        groups=groups,
        conntrack=conntrack,
        vpc_id=str(vpc) if vpc and vpc != instance_vpc else None,
        found_on=found_on,
    )


def pre_state_from_instance(inst: Mapping[str, Any]) -> PreState | None:
    """Pure: the PreState of one ``Instances[]`` entry of DescribeInstances (None when gone)."""
    state = str(inst.get("State", {}).get("Name", ""))
    if state in GONE_STATES:
        return None
    tags = {str(t["Key"]): str(t.get("Value", "")) for t in inst.get("Tags", [])}
    nics = sorted(
        inst.get("NetworkInterfaces", []),
        key=lambda n: (
            n.get("Attachment", {}).get("NetworkCardIndex", 0),
            n.get("Attachment", {}).get("DeviceIndex", 0),
        ),
    )
    vpc_id = str(inst.get("VpcId") or (nics[0].get("VpcId") if nics else "") or "")
    volumes = tuple(
        VolumeState(
            volume_id=str(b["Ebs"]["VolumeId"]),
            device_name=str(b["DeviceName"]),
            delete_on_termination=bool(b["Ebs"].get("DeleteOnTermination", False)),
        )
        for b in inst.get("BlockDeviceMappings", [])
        if "Ebs" in b and "VolumeId" in b["Ebs"]
    )
    profile = inst.get("IamInstanceProfile") or {}
    return PreState(
        instance_id=str(inst["InstanceId"]),
        state=state,
        vpc_id=vpc_id,
        subnet_id=inst.get("SubnetId"),
        enis=tuple(_eni_state(n, vpc_id, tags) for n in nics),
        volumes=volumes,
        instance_profile_arn=profile.get("Arn"),
        autoscaling_group=tags.get(ASG_TAG),
        tags=tags,
    )


def carry_originals(current: PreState, recorded: PreState) -> PreState:
    """Merge a fresh describe with the recorded pre-state of the same instance.

    The result holds the recorded originals (groups, timeouts, attributes, profile, load balancers,
    progress) and the current facts: which ENIs are attached now and where each one is
    (``found_on``), the state and the volumes. An ENI attached since the recording brings its own
    live groups as originals. Use it when a fresh describe meets a ledger record, e.g. on a resume.
    """
    if current.instance_id != recorded.instance_id:
        raise ValueError(f"{current.instance_id} is not {recorded.instance_id}")
    rec = {e.eni_id: e for e in recorded.enis}
    enis = tuple(
        rec[e.eni_id].model_copy(update={"found_on": e.found_on}) if e.eni_id in rec else e
        for e in current.enis
    )
    rec_vols = {v.volume_id: v for v in recorded.volumes}
    volumes = tuple(rec_vols.get(v.volume_id, v) for v in current.volumes)
    return recorded.model_copy(update={"enis": enis, "state": current.state, "volumes": volumes})
