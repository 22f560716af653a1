"""Failures half-way, retries, and resuming with the recorded pre-state."""

from __future__ import annotations

from typing import Any

import pytest

from spoke.describe import carry_originals, describe
from spoke.isolate import isolate
from spoke.models import IsolationStatus, PreState, StepStatus
from tests.spoke.helpers import Member, Recorder, inject, is_mutating, make_plan


class Crash(Exception):
    """The Lambda dying mid-containment (timeout, out of memory)."""


def _crash_on_eni(session: Any, eni_id: str) -> None:
    def hook(params: dict[str, Any], **_: Any) -> None:
        if params.get("NetworkInterfaceId") == eni_id and "Groups" in params:
            raise Crash(eni_id)

    session.events.register("before-parameter-build.ec2.ModifyNetworkInterfaceAttribute", hook)


def test_crash_between_enis_then_resume_with_the_recorded_pre_state(member: Member) -> None:
    inst = member.workload.run_instance(enis=2)
    originals = member.eni_groups(inst.instance_id)
    clients, session = member.spoke()
    _crash_on_eni(session, inst.eni_ids[1])
    recorded = describe(clients, inst.instance_id)  # what the hub persists before isolating
    assert recorded is not None
    with pytest.raises(Crash):
        isolate(clients, make_plan(inst.instance_id), pre_state=recorded)
    half = member.eni_groups(inst.instance_id)
    assert (
        half[inst.eni_ids[1]] == originals[inst.eni_ids[1]]
        and half[inst.eni_ids[0]] != originals[inst.eni_ids[0]]
    )

    # The hub's retry: new clients, the ledger's pre-state.
    clients2, _ = member.spoke()
    result = isolate(clients2, make_plan(inst.instance_id), pre_state=recorded)
    assert result.status == IsolationStatus.ISOLATED
    q = result.quarantine_group_id
    assert member.eni_groups(inst.instance_id) == {e: [q] for e in inst.eni_ids}
    assert result.pre_state is not None
    assert {
        e.eni_id: sorted(e.groups) for e in result.pre_state.enis
    } == originals  # never the quarantine group


def test_resume_from_a_fresh_describe_merged_with_the_record_skips_done_enis(member_eu: Member) -> None:
    inst = member_eu.workload.run_instance(enis=2)
    originals = member_eu.eni_groups(inst.instance_id)
    clients, session = member_eu.spoke()
    _crash_on_eni(session, inst.eni_ids[1])
    recorded = describe(clients, inst.instance_id)
    assert recorded is not None
    with pytest.raises(Crash):
        isolate(clients, make_plan(inst.instance_id), pre_state=recorded)

    rec = Recorder()
    clients2, _ = member_eu.spoke(rec)
    fresh = describe(clients2, inst.instance_id)
    assert fresh is not None
    assert fresh.enis[0].found_on == "quarantine"
    assert fresh.enis[0].groups == ()  # not yet tagged: unknown, and never the quarantine group
    merged = carry_originals(fresh, recorded)
    result = isolate(clients2, make_plan(inst.instance_id), pre_state=merged)
    assert result.status == IsolationStatus.ISOLATED
    swaps = [
        c.params["NetworkInterfaceId"]
        for c in rec.ops("ModifyNetworkInterfaceAttribute")
        if "Groups" in c.params
    ]
    assert swaps == [inst.eni_ids[1], inst.eni_ids[1]]  # only the ENI not done yet
    assert result.pre_state is not None
    assert {e.eni_id: sorted(e.groups) for e in result.pre_state.enis} == originals


def test_aws_error_on_the_second_eni_fails_the_network_step_then_the_retry_completes(
    member_us: Member,
) -> None:
    inst = member_us.workload.run_instance(enis=2)
    originals = member_us.eni_groups(inst.instance_id)
    clients, session = member_us.spoke()
    # Beyond botocore's retries (InternalError is retried: 7 attempts, all answered with it).
    sent = inject(
        session,
        "ec2.ModifyNetworkInterfaceAttribute",
        "InternalError",
        status=500,
        times=7,
        when=lambda f: f.get("NetworkInterfaceId") == [inst.eni_ids[1]],
    )
    recorded = describe(clients, inst.instance_id)
    assert recorded is not None
    seen: list[PreState] = []
    result = isolate(clients, make_plan(inst.instance_id), pre_state=recorded, checkpoint=seen.append)
    assert sent == [7]
    assert result.status == IsolationStatus.FAILED
    network = result.step("network")
    assert (
        network is not None and network.status == StepStatus.FAILED and network.error_code == "InternalError"
    )
    assert seen == []  # later steps never started: nothing mutated beyond the network
    assert member_us.tags(inst.instance_id).get("orgcontain:status") is None
    assert member_us.eni_groups(inst.instance_id)[inst.eni_ids[1]] == originals[inst.eni_ids[1]]
    # The failed result's pre-state says how far it got and still holds only originals.
    assert result.pre_state is not None
    assert [e.found_on for e in result.pre_state.enis] == ["quarantine", "original"]
    assert {e.eni_id: sorted(e.groups) for e in result.pre_state.enis} == originals

    rec = Recorder()
    clients2, _ = member_us.spoke(rec)
    retry = isolate(clients2, make_plan(inst.instance_id), pre_state=result.pre_state)
    assert retry.status == IsolationStatus.ISOLATED
    assert member_us.eni_groups(inst.instance_id) == {e: [retry.quarantine_group_id] for e in inst.eni_ids}
    assert {
        c.params["NetworkInterfaceId"]
        for c in rec.ops("ModifyNetworkInterfaceAttribute")
        if "Groups" in c.params
    } == {inst.eni_ids[1]}


def test_throttling_is_absorbed_by_standard_retries(member_eu: Member) -> None:
    inst = member_eu.workload.run_instance()
    rec = Recorder()
    clients, session = member_eu.spoke(rec)
    sent = inject(session, "ec2.ModifyNetworkInterfaceAttribute", "RequestLimitExceeded", status=503, times=2)
    result = isolate(clients, make_plan(inst.instance_id))
    assert sent == [2]
    assert result.status == IsolationStatus.ISOLATED
    assert member_eu.eni_groups(inst.instance_id) == {inst.eni_ids[0]: [result.quarantine_group_id]}
    # No hand-written retry: each API call was made once; botocore retried the sends.
    swaps = [c for c in rec.ops("ModifyNetworkInterfaceAttribute") if "Groups" in c.params]
    assert len(swaps) == 2


def test_later_step_failure_is_partial_and_the_resume_completes_only_what_is_missing(
    member_us: Member,
) -> None:
    inst = member_us.workload.run_instance(profile=True, extra_volumes=1)
    clients, session = member_us.spoke()
    inject(session, "ec2.DisassociateIamInstanceProfile", "UnauthorizedOperation", status=403)
    seen: list[PreState] = []
    first = isolate(clients, make_plan(inst.instance_id), checkpoint=seen.append)
    assert first.status == IsolationStatus.PARTIAL
    failed = first.step("instance-profile")
    assert (
        failed is not None
        and failed.status == StepStatus.FAILED
        and failed.error_code == "UnauthorizedOperation"
    )
    # The network is contained, and the other later steps ran.
    assert member_us.eni_groups(inst.instance_id) == {inst.eni_ids[0]: [first.quarantine_group_id]}
    assert first.step("snapshots").status == StepStatus.DONE  # type: ignore[union-attr]
    # The checkpoint came with the values release needs, read before they were changed.
    (checkpointed,) = seen
    assert checkpointed.complete and checkpointed.disable_api_termination is False
    assert checkpointed.instance_profile_association_id and "network" in checkpointed.steps_completed

    rec = Recorder()
    clients2, _ = member_us.spoke(rec)
    second = isolate(clients2, make_plan(inst.instance_id), pre_state=first.pre_state)
    assert second.status == IsolationStatus.ISOLATED, second.detail
    mutations = [c.operation for c in rec.calls if is_mutating(c.operation)]
    assert mutations == ["DisassociateIamInstanceProfile"]
    assert second.step("snapshots").status == StepStatus.ALREADY  # type: ignore[union-attr]
    assert second.pre_state is not None
    assert second.pre_state.disable_api_termination is False  # the original, not the quarantined value
    assert second.pre_state.instance_profile_arn == inst.profile_arn


def test_resume_without_recorded_progress_finds_the_earlier_snapshots(member_eu: Member) -> None:
    inst = member_eu.workload.run_instance(extra_volumes=1)
    clients, session = member_eu.spoke()
    inject(session, "ec2.CreateTags", "InternalError", status=500, times=7)
    first = isolate(clients, make_plan(inst.instance_id))
    assert first.status == IsolationStatus.PARTIAL and first.step("tags").status == StepStatus.FAILED  # type: ignore[union-attr]
    assert first.pre_state is not None
    # The hub kept only the checkpoint (no progress of the later steps).
    checkpoint_only = first.pre_state.model_copy(
        update={"steps_completed": ("autoscaling", "network", "conntrack")}
    )
    rec = Recorder()
    clients2, _ = member_eu.spoke(rec)
    second = isolate(clients2, make_plan(inst.instance_id), pre_state=checkpoint_only)
    assert second.status in (IsolationStatus.ISOLATED, IsolationStatus.ALREADY_ISOLATED)
    assert rec.ops("CreateSnapshots") == []
    assert sorted(second.snapshot_ids) == sorted(first.snapshot_ids)
    assert member_eu.tags(inst.instance_id)["orgcontain:status"] == "quarantined"


def test_eni_attached_after_containment_is_isolated_on_resume(member_us: Member) -> None:
    inst = member_us.workload.run_instance()
    clients, _ = member_us.spoke()
    first = isolate(clients, make_plan(inst.instance_id))
    assert first.status == IsolationStatus.ISOLATED and first.pre_state is not None
    net = member_us.workload.network()
    eni = member_us.ec2.create_network_interface(SubnetId=net.subnet_ids[0], Groups=[net.db_group_id])[
        "NetworkInterface"
    ]["NetworkInterfaceId"]
    member_us.ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=inst.instance_id, DeviceIndex=1)
    again = isolate(clients, make_plan(inst.instance_id), pre_state=first.pre_state)
    assert again.status == IsolationStatus.ISOLATED
    assert member_us.eni_groups(inst.instance_id)[eni] == [first.quarantine_group_id]
    assert again.pre_state is not None
    assert {e.eni_id: e.groups for e in again.pre_state.enis}[eni] == (net.db_group_id,)


def test_a_failing_checkpoint_stops_before_any_later_mutation(member_us: Member) -> None:
    inst = member_us.workload.run_instance(profile=True)
    rec = Recorder()
    clients, _ = member_us.spoke(rec)

    def ledger_down(_: PreState) -> None:
        raise RuntimeError("ledger unavailable")

    with pytest.raises(RuntimeError, match="ledger unavailable"):
        isolate(clients, make_plan(inst.instance_id), checkpoint=ledger_down)
    # The network is contained; nothing after the checkpoint changed.
    assert set(map(tuple, member_us.eni_groups(inst.instance_id).values())) != {tuple(inst.groups)}
    mutations = [c.operation for c in rec.calls if is_mutating(c.operation)]
    assert set(mutations) <= {
        "CreateSecurityGroup",
        "RevokeSecurityGroupEgress",
        "AuthorizeSecurityGroupIngress",
        "ModifyNetworkInterfaceAttribute",
    }
    assert member_us.attribute(inst.instance_id, "disableApiTermination") is False
