"""isolate(): every containment step, observed in the member account as a user would see it."""

from __future__ import annotations

from typing import Any

import pytest

from hub.demo.org import EmulatedOrg
from spoke.describe import describe
from spoke.errors import InvalidInstanceId, PreStateMismatch
from spoke.groups import GroupCache
from spoke.isolate import isolate
from spoke.models import CONNTRACK_MINIMUMS, IsolationStatus, PreState, StepStatus
from tests.spoke.helpers import Member, Recorder, inject, is_mutating, make_plan, member_in

MIN_SPEC = {"TcpEstablishedTimeout": 60, "UdpStreamTimeout": 60, "UdpTimeout": 30}


def _groups_calls(rec: Recorder) -> list[tuple[str, list[str]]]:
    return [
        (c.params["NetworkInterfaceId"], c.params["Groups"])
        for c in rec.ops("ModifyNetworkInterfaceAttribute")
        if "Groups" in c.params
    ]


def test_single_eni_instance_is_fully_contained(member: Member) -> None:
    inst = member.workload.run_instance(extra_volumes=1)
    rec = Recorder()
    clients, _ = member.spoke(rec)
    result = isolate(clients, make_plan(inst.instance_id))

    assert result.status == IsolationStatus.ISOLATED, result.detail
    q, t = result.quarantine_group_id, result.transition_group_id
    assert q and t
    # The ENI is on the quarantine group alone, having passed through the transition group.
    assert member.eni_groups(inst.instance_id) == {inst.eni_ids[0]: [q]}
    assert _groups_calls(rec) == [(inst.eni_ids[0], [t]), (inst.eni_ids[0], [q])]
    assert not [c for c in rec.ops("ModifyInstanceAttribute") if "Groups" in c.params]
    # Connection tracking at its minimums (moto does not store it: the request is the evidence).
    specs = [
        c.params
        for c in rec.ops("ModifyNetworkInterfaceAttribute")
        if "ConnectionTrackingSpecification" in c.params
    ]
    assert specs == [{"NetworkInterfaceId": inst.eni_ids[0], "ConnectionTrackingSpecification": MIN_SPEC}]
    # Evidence protected.
    assert member.attribute(inst.instance_id, "disableApiTermination") is True
    assert member.attribute(inst.instance_id, "instanceInitiatedShutdownBehavior") == "stop"
    assert set(member.delete_on_termination(inst.instance_id).values()) == {False}
    snaps = member.ec2.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:orgcontain:instance-id", "Values": [inst.instance_id]}]
    )["Snapshots"]
    assert sorted(s["VolumeId"] for s in snaps) == sorted(inst.volume_ids)
    assert sorted(s["SnapshotId"] for s in snaps) == sorted(result.snapshot_ids)
    assert len(rec.ops("CreateSnapshots")) == 1  # one crash-consistent call
    assert all(
        {"Key": "orgcontain:finding-id", "Value": make_plan("i-0").finding_id} in s["Tags"] for s in snaps
    )
    # Tags.
    tags = member.tags(inst.instance_id)
    assert tags["orgcontain:status"] == "quarantined"
    assert tags["orgcontain:finding-id"] == make_plan("i-0").finding_id
    assert tags["orgcontain:quarantined-at"] == "2025-01-02T03:04:05Z"
    assert tags[f"orgcontain:original-groups:{inst.eni_ids[0]}"] == " ".join(inst.groups)
    # The recorded pre-state holds the originals, never our groups.
    pre = result.pre_state
    assert pre is not None and pre.complete
    assert pre.enis[0].groups == tuple(inst.groups)
    assert pre.disable_api_termination is False and pre.shutdown_behavior == "stop"
    assert [v.delete_on_termination for v in pre.volumes] == [True, True]
    assert result.network_isolated_at is not None
    assert {s.step for s in result.steps if s.status == StepStatus.FAILED} == set()


def test_quarantine_group_has_no_egress_and_exactly_the_soc_ingress(member_eu: Member) -> None:
    inst = member_eu.workload.run_instance()
    clients, _ = member_eu.spoke()
    result = isolate(clients, make_plan(inst.instance_id))
    (q,) = member_eu.quarantine_groups(inst.vpc_id)
    assert q["GroupId"] == result.quarantine_group_id and q["GroupName"] == "orgcontain-quarantine"
    assert q["IpPermissionsEgress"] == []  # the default IPv4 and IPv6 egress rules are gone
    ingress = {
        (p["IpProtocol"], p["FromPort"], r.get("CidrIp") or r.get("CidrIpv6"))
        for p in q["IpPermissions"]
        for r in p["IpRanges"] + p["Ipv6Ranges"]
    }
    assert ingress == {
        ("tcp", 22, "10.0.0.10/32"),
        ("tcp", 443, "10.0.0.20/32"),
        ("tcp", 22, "2001:db8::/64"),
    }
    (t,) = member_eu.quarantine_groups(inst.vpc_id, "transition")
    for direction in ("IpPermissions", "IpPermissionsEgress"):
        perms = t[direction]
        assert {r["CidrIp"] for p in perms for r in p["IpRanges"] if p["IpProtocol"] == "-1"} == {"0.0.0.0/0"}
        assert {r["CidrIpv6"] for p in perms for r in p["Ipv6Ranges"] if p["IpProtocol"] == "-1"} == {"::/0"}


def test_every_eni_of_a_multi_eni_instance_is_swapped_on_its_own(member: Member) -> None:
    inst = member.workload.run_instance(enis=3)
    before = member.eni_groups(inst.instance_id)
    rec = Recorder()
    clients, _ = member.spoke(rec)
    result = isolate(clients, make_plan(inst.instance_id))
    assert result.status == IsolationStatus.ISOLATED
    q, t = result.quarantine_group_id, result.transition_group_id
    assert member.eni_groups(inst.instance_id) == {e: [q] for e in inst.eni_ids}
    # Per ENI, transition then quarantine back to back (the ENIs are swapped concurrently, so
    # only each ENI's own order is fixed); never the instance-level call.
    calls = _groups_calls(rec)
    assert sorted(calls) == sorted(call for e in inst.eni_ids for call in ((e, [t]), (e, [q])))
    assert all([g for eni, g in calls if eni == e] == [[t], [q]] for e in inst.eni_ids)
    assert not [c for c in rec.ops("ModifyInstanceAttribute") if "Groups" in c.params]
    assert result.pre_state is not None
    assert {e.eni_id: sorted(e.groups) for e in result.pre_state.enis} == before


def test_profile_and_several_volumes(member_us: Member) -> None:
    inst = member_us.workload.run_instance(profile=True, extra_volumes=3)
    rec = Recorder()
    clients, _ = member_us.spoke(rec)
    result = isolate(clients, make_plan(inst.instance_id))
    assert result.status == IsolationStatus.ISOLATED, result.detail
    assocs = member_us.ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [inst.instance_id]}]
    )["IamInstanceProfileAssociations"]
    assert [a for a in assocs if a["State"] == "associated"] == []
    pre = result.pre_state
    assert pre is not None
    assert pre.instance_profile_arn == inst.profile_arn and pre.instance_profile_association_id
    assert member_us.delete_on_termination(inst.instance_id) == dict.fromkeys(inst.volume_ids, False)
    assert len(result.snapshot_ids) == 4 and len(rec.ops("CreateSnapshots")) == 1
    # One ModifyInstanceAttribute carries every volume's DeleteOnTermination.
    bdm = [
        c.params["BlockDeviceMappings"]
        for c in rec.ops("ModifyInstanceAttribute")
        if "BlockDeviceMappings" in c.params
    ]
    assert len(bdm) == 1 and len(bdm[0]) == 4
    assert result.step("revoke-sessions").status == StepStatus.SKIPPED  # type: ignore[union-attr]


def test_session_revocation_when_asked(member_us: Member) -> None:
    inst = member_us.workload.run_instance(profile=True)
    clients, _ = member_us.spoke()
    result = isolate(clients, make_plan(inst.instance_id, revoke_role_sessions=True))
    assert result.status == IsolationStatus.ISOLATED, result.detail
    iam = member_us.client("iam")
    assert inst.profile_arn is not None
    profile = iam.get_instance_profile(InstanceProfileName=inst.profile_arn.rsplit("/", 1)[-1])
    role = profile["InstanceProfile"]["Roles"][0]["RoleName"]
    doc = iam.get_role_policy(RoleName=role, PolicyName="orgcontain-revoke-older-sessions")["PolicyDocument"]
    (stmt,) = doc["Statement"]
    assert stmt["Effect"] == "Deny" and "aws:TokenIssueTime" in stmt["Condition"]["DateLessThan"]


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_stopped_instance_is_contained(org: EmulatedOrg, region: str) -> None:
    member = member_in(org, "sandbox", region)
    inst = member.workload.run_instance(enis=2)
    member.ec2.stop_instances(InstanceIds=[inst.instance_id])
    clients, _ = member.spoke()
    result = isolate(clients, make_plan(inst.instance_id))
    assert result.status == IsolationStatus.ISOLATED
    assert result.pre_state is not None and result.pre_state.state == "stopped"
    assert set(map(tuple, member.eni_groups(inst.instance_id).values())) == {(result.quarantine_group_id,)}
    assert member.attribute(inst.instance_id, "disableApiTermination") is True


def test_terminated_instance_is_gone_not_an_error(member_us: Member) -> None:
    inst = member_us.workload.run_instance()
    member_us.ec2.terminate_instances(InstanceIds=[inst.instance_id])
    rec = Recorder()
    clients, _ = member_us.spoke(rec)
    result = isolate(clients, make_plan(inst.instance_id))
    assert result.status == IsolationStatus.GONE
    assert not [c for c in rec.calls if is_mutating(c.operation)]


def test_nonexistent_instance_is_gone(member_eu: Member) -> None:
    member_eu.workload.network()
    clients, _ = member_eu.spoke()
    result = isolate(clients, make_plan("i-0123456789abcdef0"))
    assert result.status == IsolationStatus.GONE and result.pre_state is None


def test_malformed_instance_id_is_a_clear_error(member_us: Member) -> None:
    clients, _ = member_us.spoke()
    with pytest.raises(InvalidInstanceId):
        isolate(clients, make_plan("i-not-an-id"))


def test_pre_state_of_another_instance_is_refused(member_us: Member) -> None:
    a = member_us.workload.run_instance()
    b = member_us.workload.run_instance()
    clients, _ = member_us.spoke()
    pre = describe(clients, a.instance_id)
    with pytest.raises(PreStateMismatch):
        isolate(clients, make_plan(b.instance_id), pre_state=pre)


def test_second_run_changes_nothing_and_says_already_isolated(member: Member) -> None:
    inst = member.workload.run_instance(enis=2, profile=True)
    clients, _ = member.spoke()
    first = isolate(clients, make_plan(inst.instance_id))
    assert first.status == IsolationStatus.ISOLATED
    state_after_first = (member.eni_groups(inst.instance_id), member.tags(inst.instance_id))

    rec = Recorder()
    clients2, _ = member.spoke(rec)
    second = isolate(clients2, make_plan(inst.instance_id))
    assert second.status == IsolationStatus.ALREADY_ISOLATED
    assert rec.names() == ["DescribeInstances"]
    assert (member.eni_groups(inst.instance_id), member.tags(inst.instance_id)) == state_after_first
    # Its fresh describe still reports the true originals (from the tags), never our group.
    assert second.pre_state is not None and first.pre_state is not None
    assert [e.groups for e in second.pre_state.enis] == [e.groups for e in first.pre_state.enis]
    assert all(first.quarantine_group_id not in e.groups for e in second.pre_state.enis)

    # The hub's way: its describe, then isolate with that pre-state: nothing beyond the describe.
    rec.clear()
    hub_pre = describe(clients2, inst.instance_id)
    assert (
        isolate(clients2, make_plan(inst.instance_id), pre_state=hub_pre).status
        == IsolationStatus.ALREADY_ISOLATED
    )
    assert rec.names() == ["DescribeInstances"]

    # A resume with the recorded pre-state: one describe to see where it stands, no mutation.
    rec.clear()
    again = isolate(clients2, make_plan(inst.instance_id), pre_state=first.pre_state)
    assert again.status == IsolationStatus.ALREADY_ISOLATED, again.steps
    assert not [c for c in rec.calls if is_mutating(c.operation)]


def test_dry_run_changes_nothing(member_eu: Member) -> None:
    inst = member_eu.workload.run_instance(enis=2, profile=True, extra_volumes=1)
    before = (
        member_eu.eni_groups(inst.instance_id),
        member_eu.tags(inst.instance_id),
        member_eu.delete_on_termination(inst.instance_id),
        member_eu.attribute(inst.instance_id, "disableApiTermination"),
    )
    rec = Recorder()
    clients, _ = member_eu.spoke(rec)
    seen: list[PreState] = []
    result = isolate(clients, make_plan(inst.instance_id), dry_run=True, checkpoint=seen.append)
    assert result.status == IsolationStatus.DRY_RUN
    assert not [c.operation for c in rec.calls if is_mutating(c.operation)]
    assert seen == []
    after = (
        member_eu.eni_groups(inst.instance_id),
        member_eu.tags(inst.instance_id),
        member_eu.delete_on_termination(inst.instance_id),
        member_eu.attribute(inst.instance_id, "disableApiTermination"),
    )
    assert after == before
    assert member_eu.quarantine_groups(inst.vpc_id) == []
    would = {s.step for s in result.steps if s.status == StepStatus.WOULD}
    assert {
        "security-groups",
        "network",
        "conntrack",
        "termination-protection",
        "instance-profile",
        "snapshots",
        "tags",
    } <= would


def test_given_pre_state_means_no_second_describe_and_network_first(member_us: Member) -> None:
    first = member_us.workload.run_instance()
    target = member_us.workload.run_instance()
    rec = Recorder()
    clients, _ = member_us.spoke(rec)
    cache = GroupCache()
    isolate(clients, make_plan(first.instance_id), groups=cache)  # fills the cache
    rec.clear()
    pre = describe(clients, target.instance_id)
    result = isolate(clients, make_plan(target.instance_id), pre_state=pre, groups=cache)
    assert result.status == IsolationStatus.ISOLATED
    names = rec.names()
    assert names.count("DescribeInstances") == 1  # the hub's own
    assert names[1:3] == ["ModifyNetworkInterfaceAttribute", "ModifyNetworkInterfaceAttribute"]
    first_mutation = next(c for c in rec.calls if is_mutating(c.operation))
    assert first_mutation.operation == "ModifyNetworkInterfaceAttribute" and "Groups" in first_mutation.params


def test_without_severing_the_swap_goes_straight_to_quarantine(member_eu: Member) -> None:
    inst = member_eu.workload.run_instance(enis=2)
    rec = Recorder()
    clients, _ = member_eu.spoke(rec)
    result = isolate(
        clients,
        make_plan(inst.instance_id, sever_tracked_connections=False, minimise_conntrack_timeouts=False),
    )
    q = result.quarantine_group_id
    assert _groups_calls(rec) == [(e, [q]) for e in inst.eni_ids]
    assert member_eu.quarantine_groups(inst.vpc_id, "transition") == []
    assert result.step("conntrack").status == StepStatus.SKIPPED  # type: ignore[union-attr]


@pytest.mark.parametrize("action", ["detach", "standby"])
def test_asg_instance_leaves_the_group_before_the_network_change(member_eu: Member, action: str) -> None:
    members = member_eu.workload.run_asg_behind_alb(desired=2)
    inst = members[0]
    rec = Recorder()
    clients, _ = member_eu.spoke(rec)
    result = isolate(clients, make_plan(inst.instance_id, autoscaling_action=action))
    assert result.status == IsolationStatus.ISOLATED, result.detail
    names = rec.names()
    leave = "DetachInstances" if action == "detach" else "EnterStandby"
    assert names.index(leave) < names.index("ModifyNetworkInterfaceAttribute")
    assert [c.params.get("ShouldDecrementDesiredCapacity") for c in rec.ops(leave)] == [False]
    asg = member_eu.client("autoscaling")
    found = asg.describe_auto_scaling_instances(InstanceIds=[inst.instance_id])["AutoScalingInstances"]
    if action == "detach":
        assert found == []
    else:
        assert found[0]["LifecycleState"] == "Standby"
    # Deregistered explicitly from the target group (moto keeps standby/detached targets).
    health = member_eu.client("elbv2").describe_target_health(TargetGroupArn=inst.target_group_arn)
    assert inst.instance_id not in {d["Target"]["Id"] for d in health["TargetHealthDescriptions"]}
    pre = result.pre_state
    assert pre is not None
    assert pre.autoscaling_group == inst.asg_name and pre.autoscaling_action == action
    assert [(r.target_group_arn, r.port) for r in pre.target_groups] == [(inst.target_group_arn, 80)]
    # The quarantine group was requested for the ENI (moto also displays the launch template's
    # group on ASG instances, a display gap noted in docs/moto.md).
    assert (inst.eni_ids[0], [result.quarantine_group_id]) in _groups_calls(rec)


def test_classic_load_balancer_deregistration(member_us: Member) -> None:
    inst = member_us.workload.run_instance()
    net = member_us.workload.network()
    elb = member_us.client("elb")
    elb.create_load_balancer(
        LoadBalancerName="legacy",
        Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}],
        Subnets=[net.subnet_ids[0]],
        SecurityGroups=[net.app_group_id],
    )
    elb.register_instances_with_load_balancer(
        LoadBalancerName="legacy", Instances=[{"InstanceId": inst.instance_id}]
    )
    clients, _ = member_us.spoke()
    result = isolate(clients, make_plan(inst.instance_id))
    assert result.status == IsolationStatus.ISOLATED
    lb = elb.describe_load_balancers(LoadBalancerNames=["legacy"])["LoadBalancerDescriptions"][0]
    assert lb["Instances"] == []
    assert result.pre_state is not None and result.pre_state.classic_load_balancers == ("legacy",)


def test_target_group_scan_is_bounded(member_eu: Member) -> None:
    members = member_eu.workload.run_asg_behind_alb(desired=1)
    elbv2 = member_eu.client("elbv2")
    for i in range(3):  # more instance target groups in the VPC than the bound
        elbv2.create_target_group(Name=f"extra-{i}", Protocol="HTTP", Port=80, VpcId=members[0].vpc_id)
    rec = Recorder()
    clients, _ = member_eu.spoke(rec)
    result = isolate(clients, make_plan(members[0].instance_id, max_target_groups_scanned=2))
    assert len(rec.ops("DescribeTargetHealth")) == 2
    assert "scan stopped at 2 target groups" in result.step("load-balancers").detail  # type: ignore[union-attr]


def test_requester_managed_eni_is_reported_and_the_rest_contained(member_us: Member) -> None:
    inst = member_us.workload.run_instance(enis=2)
    second = inst.eni_ids[1]
    clients, session = member_us.spoke()
    # AWS refuses to modify an ENI another service manages (ECS, EKS): UnauthorizedOperation.
    inject(
        session,
        "ec2.ModifyNetworkInterfaceAttribute",
        "UnauthorizedOperation",
        status=403,
        times=10,
        when=lambda f: f.get("NetworkInterfaceId") == [second],
    )
    result = isolate(clients, make_plan(inst.instance_id))
    assert result.status == IsolationStatus.PARTIAL
    assert result.enis_not_isolated == (second,)
    assert "partly contained" in result.detail and second in result.detail
    groups = member_us.eni_groups(inst.instance_id)
    assert groups[inst.eni_ids[0]] == [result.quarantine_group_id]
    assert groups[second] == [member_us.workload.network().db_group_id]  # untouched
    assert result.pre_state is not None
    assert result.pre_state.enis[1].not_modified == "UnauthorizedOperation"
    # The other steps still ran.
    assert member_us.tags(inst.instance_id)["orgcontain:status"] == "quarantined"
    assert result.step("snapshots").status == StepStatus.DONE  # type: ignore[union-attr]


def test_eni_flagged_requester_managed_is_not_touched(member_eu: Member) -> None:
    inst = member_eu.workload.run_instance(enis=2)
    rec = Recorder()
    clients, _ = member_eu.spoke(rec)
    pre = describe(clients, inst.instance_id)
    assert pre is not None
    flagged = pre.model_copy(
        update={"enis": (pre.enis[0], pre.enis[1].model_copy(update={"requester_managed": True}))}
    )
    result = isolate(clients, make_plan(inst.instance_id), pre_state=flagged)
    assert result.status == IsolationStatus.PARTIAL
    assert result.enis_not_isolated == (inst.eni_ids[1],)
    assert {c[0] for c in _groups_calls(rec)} == {inst.eni_ids[0]}


def test_every_eni_refused_is_a_failure_not_a_partial(member_us: Member) -> None:
    inst = member_us.workload.run_instance()
    clients, session = member_us.spoke()
    inject(session, "ec2.ModifyNetworkInterfaceAttribute", "UnauthorizedOperation", status=403, times=10)
    result = isolate(clients, make_plan(inst.instance_id))
    assert result.status == IsolationStatus.FAILED
    assert result.step("network").error_code == "no-eni-isolated"  # type: ignore[union-attr]


def test_conntrack_unsupported_is_skipped_not_failed(member_us: Member) -> None:
    inst = member_us.workload.run_instance()
    clients, session = member_us.spoke()
    inject(
        session,
        "ec2.ModifyNetworkInterfaceAttribute",
        "UnsupportedOperation",
        times=5,
        when=lambda f: any(k.startswith("ConnectionTrackingSpecification") for k in f),
    )
    result = isolate(clients, make_plan(inst.instance_id))
    assert result.status == IsolationStatus.ISOLATED
    assert result.step("conntrack").status == StepStatus.SKIPPED  # type: ignore[union-attr]


def test_timeouts_already_minimal_are_left_alone(member_eu: Member) -> None:
    inst = member_eu.workload.run_instance()
    rec = Recorder()
    clients, _ = member_eu.spoke(rec)
    pre = describe(clients, inst.instance_id)
    assert pre is not None
    pre = pre.model_copy(update={"enis": (pre.enis[0].model_copy(update={"conntrack": CONNTRACK_MINIMUMS}),)})
    result = isolate(clients, make_plan(inst.instance_id), pre_state=pre)
    assert result.step("conntrack").status == StepStatus.ALREADY  # type: ignore[union-attr]
    assert not [
        c for c in rec.ops("ModifyNetworkInterfaceAttribute") if "ConnectionTrackingSpecification" in c.params
    ]


def _spec_calls(rec: Recorder) -> list[dict[str, Any]]:
    return [
        c.params
        for c in rec.ops("ModifyNetworkInterfaceAttribute")
        if "ConnectionTrackingSpecification" in c.params
    ]


def test_partial_results_say_whether_a_retry_can_help(member_eu: Member) -> None:
    inst = member_eu.workload.run_instance(enis=2)
    clients, session = member_eu.spoke()
    inject(
        session,
        "ec2.ModifyNetworkInterfaceAttribute",
        "UnauthorizedOperation",
        status=403,
        times=10,
        when=lambda f: f.get("NetworkInterfaceId") == [inst.eni_ids[1]],
    )
    first = isolate(clients, make_plan(inst.instance_id))
    assert first.status == IsolationStatus.PARTIAL and first.failed_steps == ()  # final: nothing to retry
    again = isolate(clients, make_plan(inst.instance_id), pre_state=first.pre_state)
    assert again.status == IsolationStatus.PARTIAL and again.enis_not_isolated == (inst.eni_ids[1],)
    assert again.failed_steps == ()
