"""The critical path, counted in calls into the member account (botocore hooks, no mocks).

A single-ENI instance outside an Auto Scaling group, no load balancer, the groups already in its
VPC: network-isolated by the 3rd member call warm (the hub's describe, transition, quarantine) and
by the 5th cold (assume-role, describe, group lookup, transition, quarantine); under 16 calls in
all. The first containment ever in a VPC is counted separately. Figures: docs/containment.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session

from spoke.clients import SpokeClients
from spoke.describe import describe
from spoke.groups import GroupCache
from spoke.isolate import isolate
from spoke.models import IsolationStatus
from tests.spoke.helpers import _LOADER, Member, Recorder, make_plan, member_in


@dataclass
class Count:
    network_isolated_at_call: int
    total: int
    calls: list[str]

    def __str__(self) -> str:
        at = self.network_isolated_at_call
        return f"network isolated by call {at}, {self.total} calls: {', '.join(self.calls)}"


def _count(rec: Recorder, eni_id: str, quarantine_id: str) -> Count:
    names = [c.operation for c in rec.calls]
    last_swap = max(
        i
        for i, c in enumerate(rec.calls)
        if c.operation == "ModifyNetworkInterfaceAttribute"
        and c.params.get("NetworkInterfaceId") == eni_id
        and c.params.get("Groups") == [quarantine_id]
    )
    return Count(last_swap + 1, len(names), names)


def _cold_clients(member: Member, rec: Recorder) -> SpokeClients:
    """A new Lambda: it assumes the spoke role (counted) and has no client, no cache yet."""
    core = botocore.session.Session()
    core.register_component("data_loader", _LOADER)
    hub = boto3.Session(botocore_session=core)  # the hub's own (management-account) credentials
    hub.events.register("before-parameter-build", rec)
    creds = hub.client("sts", region_name=member.region).assume_role(
        RoleArn=f"arn:aws:iam::{member.account_id}:role/orgcontain-spoke-{member.region}",
        RoleSessionName="orgcontain-hub",
    )["Credentials"]
    core2 = botocore.session.Session()
    core2.register_component("data_loader", _LOADER)
    session = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        botocore_session=core2,
    )
    session.events.register("before-parameter-build", rec)
    return SpokeClients(session, member.region)


def _hub_flow(clients: SpokeClients, instance_id: str, cache: GroupCache) -> Any:
    pre = describe(clients, instance_id)  # the hub describes (tags re-read, gone check)...
    return isolate(clients, make_plan(instance_id), pre_state=pre, groups=cache)  # ...then isolates


def test_critical_path_budget(org: Any) -> None:
    member = member_in(org, "prod-a", "eu-west-1")
    seed = member.workload.run_instance()
    warm_rec = Recorder()
    warm_clients, _ = member.spoke(warm_rec)
    cache = GroupCache()
    first_ever = isolate(warm_clients, make_plan(seed.instance_id), groups=cache)
    assert first_ever.status == IsolationStatus.ISOLATED
    q = first_ever.quarantine_group_id or ""
    first = _count(warm_rec, seed.eni_ids[0], q)

    # Warm: same clients, group cache filled.
    warm_target = member.workload.run_instance()
    warm_rec.clear()
    assert _hub_flow(warm_clients, warm_target.instance_id, cache).status == IsolationStatus.ISOLATED
    warm = _count(warm_rec, warm_target.eni_ids[0], q)

    # Cold: a new Lambda (assume-role counted), empty cache, groups already in the VPC.
    cold_target = member.workload.run_instance()
    cold_rec = Recorder()
    cold_clients = _cold_clients(member, cold_rec)
    assert _hub_flow(cold_clients, cold_target.instance_id, GroupCache()).status == IsolationStatus.ISOLATED
    cold = _count(cold_rec, cold_target.eni_ids[0], q)

    # The first containment ever in a VPC, cold.
    fresh = member_in(org, "prod-b", "eu-west-1")
    new_vpc = fresh.workload.run_instance()
    new_rec = Recorder()
    new_clients = _cold_clients(fresh, new_rec)
    r = _hub_flow(new_clients, new_vpc.instance_id, GroupCache())
    assert r.status == IsolationStatus.ISOLATED
    first_cold = _count(new_rec, new_vpc.eni_ids[0], r.quarantine_group_id or "")

    # Shown with `pytest -s` (and on failure): the figures quoted in docs/containment.md.
    print(f"\nwarm: {warm}\ncold: {cold}")
    print(f"first ever in a VPC (cold): {first_cold}\nfirst ever, warm session: {first}")

    assert warm.calls[:3] == [
        "DescribeInstances",
        "ModifyNetworkInterfaceAttribute",
        "ModifyNetworkInterfaceAttribute",
    ]
    assert warm.network_isolated_at_call <= 3
    assert cold.calls[:3] == ["AssumeRole", "DescribeInstances", "DescribeSecurityGroups"]
    assert cold.network_isolated_at_call <= 5
    assert warm.total < 16 and cold.total < 16
    # Nothing slow stands before the network change.
    for count in (warm, cold, first_cold):
        before = count.calls[: count.network_isolated_at_call]
        assert not {
            "CreateSnapshots",
            "DescribeTargetGroups",
            "DescribeTargetHealth",
            "DescribeLoadBalancers",
        } & set(before)
        assert "ModifyInstanceAttribute" not in before
