"""release(): everything containment changed is put back exactly, from the recorded pre-state."""

from __future__ import annotations

from typing import Any

import pytest

from spoke.describe import describe
from spoke.isolate import isolate
from spoke.models import ConntrackTimeouts, IsolationStatus, ReleaseStatus, StepStatus
from spoke.release import release
from tests.spoke.helpers import Member, Recorder, is_mutating, make_plan

DEFAULTS_SPEC = {"TcpEstablishedTimeout": 432000, "UdpStreamTimeout": 180, "UdpTimeout": 30}


def _specs(rec: Recorder) -> dict[str, dict[str, int]]:
    return {
        c.params["NetworkInterfaceId"]: c.params["ConnectionTrackingSpecification"]
        for c in rec.ops("ModifyNetworkInterfaceAttribute")
        if "ConnectionTrackingSpecification" in c.params
    }


def _observable(member: Member, instance_id: str) -> dict[str, Any]:
    tags = member.tags(instance_id)
    assocs = member.ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}]
    )["IamInstanceProfileAssociations"]
    return {
        "groups": member.eni_groups(instance_id),
        "profile": sorted(a["IamInstanceProfile"]["Arn"] for a in assocs if a["State"] == "associated"),
        "termination": member.attribute(instance_id, "disableApiTermination"),
        "shutdown": member.attribute(instance_id, "instanceInitiatedShutdownBehavior"),
        "delete_on_termination": member.delete_on_termination(instance_id),
        "tags": {k: v for k, v in tags.items() if not k.startswith("orgcontain:")},
    }


def test_release_restores_everything_exactly(member: Member) -> None:
    inst = member.workload.run_instance(enis=2, profile=True, extra_volumes=2)
    ec2 = member.ec2
    # Originals that differ from containment's values, so a restore is visible.
    ec2.modify_instance_attribute(
        InstanceId=inst.instance_id, InstanceInitiatedShutdownBehavior={"Value": "terminate"}
    )
    ec2.modify_instance_attribute(
        InstanceId=inst.instance_id,
        BlockDeviceMappings=[{"DeviceName": "/dev/sdg", "Ebs": {"DeleteOnTermination": False}}],
    )
    elbv2 = member.client("elbv2")
    tg = elbv2.create_target_group(Name="web", Protocol="HTTP", Port=80, VpcId=inst.vpc_id)["TargetGroups"][
        0
    ]["TargetGroupArn"]
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": inst.instance_id, "Port": 8080}])
    before = _observable(member, inst.instance_id)

    rec = Recorder()
    clients, _ = member.spoke(rec)
    contained = isolate(clients, make_plan(inst.instance_id))
    assert contained.status == IsolationStatus.ISOLATED, contained.detail
    assert _observable(member, inst.instance_id) != before
    assert contained.pre_state is not None
    assert [(r.target_group_arn, r.port) for r in contained.pre_state.target_groups] == [(tg, 8080)]

    rec.clear()
    released = release(clients, contained.pre_state, finding_id=make_plan("i-0").finding_id)
    assert released.status == ReleaseStatus.RELEASED, released.detail
    assert _observable(member, inst.instance_id) == before
    health = elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    assert [(d["Target"]["Id"], d["Target"]["Port"]) for d in health] == [(inst.instance_id, 8080)]
    tags = member.tags(inst.instance_id)
    assert tags["orgcontain:status"] == "released"
    assert not [k for k in tags if k.startswith("orgcontain:original-groups:")]
    # moto does not store conntrack settings: the requests show the defaults coming back.
    assert _specs(rec) == dict.fromkeys(inst.eni_ids, DEFAULTS_SPEC)
    # The quarantine group stays for the next containment in the VPC.
    assert [g["GroupId"] for g in member.quarantine_groups(inst.vpc_id)] == [contained.quarantine_group_id]
    # Evidence stays.
    assert member.ec2.describe_snapshots(SnapshotIds=list(contained.snapshot_ids))["Snapshots"]


def test_release_restores_each_enis_own_recorded_timeouts(member_eu: Member) -> None:
    inst = member_eu.workload.run_instance(enis=2)
    clients, _ = member_eu.spoke()
    pre = describe(clients, inst.instance_id)
    assert pre is not None
    # AWS shows ConnectionTrackingConfiguration in the describe once set; moto never does.
    custom = ConntrackTimeouts(tcp_established=3600, udp_stream=120, udp=45)
    pre = pre.model_copy(update={"enis": (pre.enis[0].model_copy(update={"conntrack": custom}), pre.enis[1])})
    contained = isolate(clients, make_plan(inst.instance_id), pre_state=pre)
    assert contained.pre_state is not None
    rec = Recorder()
    clients2, _ = member_eu.spoke(rec)
    release(clients2, contained.pre_state)
    assert _specs(rec) == {
        inst.eni_ids[0]: {"TcpEstablishedTimeout": 3600, "UdpStreamTimeout": 120, "UdpTimeout": 45},
        inst.eni_ids[1]: DEFAULTS_SPEC,
    }


@pytest.mark.parametrize("action", ["detach", "standby"])
def test_release_puts_the_instance_back_in_its_group_only_when_asked(member_us: Member, action: str) -> None:
    members = member_us.workload.run_asg_behind_alb(desired=2)
    inst = members[0]
    clients, _ = member_us.spoke()
    contained = isolate(clients, make_plan(inst.instance_id, autoscaling_action=action))
    assert contained.pre_state is not None
    asg = member_us.client("autoscaling")

    def lifecycle() -> str | None:
        found = asg.describe_auto_scaling_instances(InstanceIds=[inst.instance_id])["AutoScalingInstances"]
        return found[0]["LifecycleState"] if found else None

    out = lifecycle()
    kept_out = release(clients, contained.pre_state)
    assert kept_out.step("autoscaling").status == StepStatus.SKIPPED  # type: ignore[union-attr]
    assert lifecycle() == out
    back = release(clients, contained.pre_state, reattach_asg=True)
    assert back.status == ReleaseStatus.RELEASED, back.detail
    assert lifecycle() == "InService"
    health = member_us.client("elbv2").describe_target_health(TargetGroupArn=inst.target_group_arn)
    assert inst.instance_id in {d["Target"]["Id"] for d in health["TargetHealthDescriptions"]}


def test_release_twice_changes_nothing_the_second_time(member_us: Member) -> None:
    inst = member_us.workload.run_instance(profile=True)
    clients, _ = member_us.spoke()
    contained = isolate(clients, make_plan(inst.instance_id))
    assert contained.pre_state is not None
    release(clients, contained.pre_state)
    after_first = _observable(member_us, inst.instance_id)
    rec = Recorder()
    clients2, _ = member_us.spoke(rec)
    second = release(clients2, contained.pre_state)
    assert second.status == ReleaseStatus.RELEASED
    assert _observable(member_us, inst.instance_id) == after_first
    # Only the connection-tracking request repeats: moto never shows the timeouts (AWS does, and
    # then that step is skipped too).
    mutations = {c.operation for c in rec.calls if is_mutating(c.operation)}
    assert mutations <= {"ModifyNetworkInterfaceAttribute"}
    assert not [c for c in rec.ops("ModifyNetworkInterfaceAttribute") if "Groups" in c.params]


def test_release_of_a_gone_instance(member_eu: Member) -> None:
    inst = member_eu.workload.run_instance()
    clients, _ = member_eu.spoke()
    contained = isolate(clients, make_plan(inst.instance_id))
    assert contained.pre_state is not None
    member_eu.ec2.modify_instance_attribute(
        InstanceId=inst.instance_id, DisableApiTermination={"Value": False}
    )
    member_eu.ec2.terminate_instances(InstanceIds=[inst.instance_id])
    assert release(clients, contained.pre_state).status == ReleaseStatus.GONE


def test_an_eni_whose_originals_are_unknown_stays_quarantined(member_us: Member) -> None:
    inst = member_us.workload.run_instance(enis=2)
    clients, _ = member_us.spoke()
    contained = isolate(clients, make_plan(inst.instance_id))
    assert contained.pre_state is not None
    pre = contained.pre_state
    lost = pre.model_copy(update={"enis": (pre.enis[0], pre.enis[1].model_copy(update={"groups": ()}))})
    result = release(clients, lost)
    assert result.status == ReleaseStatus.PARTIAL
    network = result.step("network")
    assert (
        network is not None
        and network.status == StepStatus.FAILED
        and network.error_code == "originals-unknown"
    )
    groups = member_us.eni_groups(inst.instance_id)
    assert groups[inst.eni_ids[0]] == sorted(pre.enis[0].groups)
    assert groups[inst.eni_ids[1]] == [contained.quarantine_group_id]
