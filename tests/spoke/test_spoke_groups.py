"""The quarantine and transition groups: creation, every kind of SOC source, drift, races, staleness."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from spoke.groups import GroupCache, VpcGroups
from spoke.isolate import isolate
from spoke.models import IngressPermission, IsolationStatus, StepStatus
from tests.spoke.helpers import Member, Recorder, inject, make_plan


def _sources(group: dict[str, Any]) -> set[tuple[Any, ...]]:
    out: set[tuple[Any, ...]] = set()
    for p in group["IpPermissions"]:
        port = p.get("FromPort")
        out |= {(port, "cidr", r["CidrIp"]) for r in p["IpRanges"]}
        out |= {(port, "cidr6", r["CidrIpv6"]) for r in p["Ipv6Ranges"]}
        out |= {(port, "pl", r["PrefixListId"]) for r in p["PrefixListIds"]}
        out |= {(port, "sg", r["GroupId"]) for r in p["UserIdGroupPairs"]}
    return out


def test_prefix_list_and_security_group_sources(member_us: Member) -> None:
    net = member_us.workload.network()
    pl = member_us.ec2.create_managed_prefix_list(
        PrefixListName="soc-vpn", MaxEntries=5, AddressFamily="IPv4", Entries=[{"Cidr": "10.9.0.0/24"}]
    )["PrefixList"]["PrefixListId"]
    bastion = member_us.ec2.create_security_group(
        GroupName="soc-bastion", Description="soc", VpcId=net.vpc_id
    )["GroupId"]
    inst = member_us.workload.run_instance()
    ingress = (
        IngressPermission(from_port=22, to_port=22, prefix_list_id=pl, description="SOC VPN"),
        IngressPermission(
            from_port=22, to_port=22, security_group_id=bastion, description="bastion, same VPC"
        ),
        IngressPermission(from_port=443, to_port=443, cidr_ipv4="10.0.0.20/32"),
    )
    clients, _ = member_us.spoke()
    result = isolate(clients, make_plan(inst.instance_id, quarantine_ingress=ingress))
    assert result.status == IsolationStatus.ISOLATED
    (q,) = member_us.quarantine_groups(inst.vpc_id)
    assert _sources(q) == {(22, "pl", pl), (22, "sg", bastion), (443, "cidr", "10.0.0.20/32")}
    assert q["IpPermissionsEgress"] == []


def _tamper(member: Member, q: str, t: str) -> None:
    ec2 = member.ec2
    ec2.authorize_security_group_egress(
        GroupId=q,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
        ],
    )
    ec2.authorize_security_group_ingress(
        GroupId=q,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
        ],
    )
    ec2.revoke_security_group_ingress(
        GroupId=q,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.20/32"}]}
        ],
    )
    ec2.revoke_security_group_ingress(
        GroupId=t, IpPermissions=[{"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}]
    )


def _expected_soc() -> set[tuple[Any, ...]]:
    return {(22, "cidr", "10.0.0.10/32"), (443, "cidr", "10.0.0.20/32"), (22, "cidr6", "2001:db8::/64")}


def test_drift_is_repaired_cold_with_tightening_before_the_swap(member_us: Member) -> None:
    first = member_us.workload.run_instance()
    clients, _ = member_us.spoke()
    r1 = isolate(clients, make_plan(first.instance_id))
    q, t = r1.quarantine_group_id, r1.transition_group_id
    assert q and t
    _tamper(member_us, q, t)

    second = member_us.workload.run_instance()
    rec = Recorder()
    cold, _ = member_us.spoke(rec)  # a new Lambda: empty cache, the lookup reads the rules for free
    r2 = isolate(cold, make_plan(second.instance_id), groups=GroupCache())
    assert r2.status == IsolationStatus.ISOLATED
    assert r2.quarantine_group_id == q
    (qg,) = member_us.quarantine_groups(second.vpc_id)
    assert qg["IpPermissionsEgress"] == []
    assert _sources(qg) == _expected_soc()
    (tg,) = member_us.quarantine_groups(second.vpc_id, "transition")
    assert {r["CidrIpv6"] for p in tg["IpPermissions"] for r in p["Ipv6Ranges"]} == {"::/0"}
    names = rec.names()
    swap = names.index("ModifyNetworkInterfaceAttribute")
    # What the quarantine group must not have, and the transition group's missing rule, are fixed
    # before any ENI uses them; the missing SOC rule is added after the swap.
    assert names.index("RevokeSecurityGroupEgress") < swap
    assert names.index("RevokeSecurityGroupIngress") < swap
    assert names.index("AuthorizeSecurityGroupIngress") < swap  # the transition group's ::/0
    soc_adds = [
        i
        for i, c in enumerate(rec.calls)
        if c.operation == "AuthorizeSecurityGroupIngress" and c.params["GroupId"] == q
    ]
    assert soc_adds and all(i > swap for i in soc_adds)
    assert names.count("DescribeSecurityGroups") == 1  # the lookup served the reconcile too


def test_drift_is_repaired_warm_after_the_swap(member_eu: Member) -> None:
    first = member_eu.workload.run_instance()
    rec = Recorder()
    clients, _ = member_eu.spoke(rec)
    cache = GroupCache(reconcile_interval=0)
    r1 = isolate(clients, make_plan(first.instance_id), groups=cache)
    q, t = r1.quarantine_group_id, r1.transition_group_id
    assert q and t
    _tamper(member_eu, q, t)
    second = member_eu.workload.run_instance()
    rec.clear()
    r2 = isolate(clients, make_plan(second.instance_id), groups=cache)
    assert r2.status == IsolationStatus.ISOLATED
    names = rec.names()
    assert names.index("DescribeSecurityGroups") > names.index("ModifyNetworkInterfaceAttribute")
    (qg,) = member_eu.quarantine_groups(second.vpc_id)
    assert qg["IpPermissionsEgress"] == [] and _sources(qg) == _expected_soc()
    assert r2.step("reconcile-groups").status == StepStatus.DONE  # type: ignore[union-attr]


def test_warm_cache_within_the_interval_makes_no_group_call(member_us: Member) -> None:
    a = member_us.workload.run_instance()
    b = member_us.workload.run_instance()
    rec = Recorder()
    clients, _ = member_us.spoke(rec)
    cache = GroupCache()
    isolate(clients, make_plan(a.instance_id), groups=cache)
    rec.clear()
    result = isolate(clients, make_plan(b.instance_id), groups=cache)
    assert result.status == IsolationStatus.ISOLATED
    assert not [n for n in rec.names() if "SecurityGroup" in n]
    assert result.step("security-groups").status == StepStatus.ALREADY  # type: ignore[union-attr]


def test_concurrent_first_containments_in_one_vpc_use_one_group(member_eu: Member) -> None:
    a = member_eu.workload.run_instance()
    b = member_eu.workload.run_instance()
    lookups_done = threading.Barrier(2, timeout=30)
    create_lock = threading.Lock()  # AWS serialises creations in a VPC; moto's check is not atomic

    def rig(session: Any) -> None:
        looked = [False]

        def after_lookup(**_: Any) -> None:
            if not looked[0]:  # both runners have seen "no group yet" before either creates
                looked[0] = True
                lookups_done.wait()

        def creating(**_: Any) -> None:  # a before-call hook returning a value would answer the call
            create_lock.acquire()

        def created(**_: Any) -> None:
            create_lock.release()

        session.events.register("after-call.ec2.DescribeSecurityGroups", after_lookup)
        session.events.register("before-call.ec2.CreateSecurityGroup", creating)
        session.events.register("after-call.ec2.CreateSecurityGroup", created)

    def run(instance_id: str) -> Any:
        clients, session = member_eu.spoke()
        rig(session)
        return isolate(clients, make_plan(instance_id), groups=GroupCache())

    with ThreadPoolExecutor(2) as pool:  # .result() re-raises whatever a runner raised
        futures = [pool.submit(run, i.instance_id) for i in (a, b)]
        results = {i: f.result(timeout=60) for i, f in enumerate(futures)}
    (q,) = member_eu.quarantine_groups(a.vpc_id)
    (t,) = member_eu.quarantine_groups(a.vpc_id, "transition")
    assert {r.quarantine_group_id for r in results.values()} == {q["GroupId"]}
    assert {r.transition_group_id for r in results.values()} == {t["GroupId"]}
    assert all(r.status == IsolationStatus.ISOLATED for r in results.values())
    details = " ".join(r.step("security-groups").detail for r in results.values())
    assert "adopted" in details  # the loser of the race took the winner's group
    assert q["IpPermissionsEgress"] == []
    groups = {**member_eu.eni_groups(a.instance_id), **member_eu.eni_groups(b.instance_id)}
    assert set(map(tuple, groups.values())) == {(q["GroupId"],)}


def test_a_cached_group_that_was_deleted_is_looked_up_again(member_us: Member) -> None:
    a = member_us.workload.run_instance()
    b = member_us.workload.run_instance()
    clients, _ = member_us.spoke()
    cache = GroupCache()
    real = isolate(clients, make_plan(a.instance_id), groups=cache)
    # The cache now names a group that no longer exists (deleted by someone since): AWS refuses it.
    cache.put(a.vpc_id, VpcGroups("sg-0000000000000dead", "sg-0000000000000beef"))
    inject(clients.ec2, "ec2.ModifyNetworkInterfaceAttribute", "InvalidGroup.NotFound")
    result = isolate(clients, make_plan(b.instance_id), groups=cache)
    assert result.status == IsolationStatus.ISOLATED
    assert result.quarantine_group_id == real.quarantine_group_id
    assert cache.get(a.vpc_id) == VpcGroups(real.quarantine_group_id or "", real.transition_group_id)
    assert member_us.eni_groups(b.instance_id) == {b.eni_ids[0]: [real.quarantine_group_id]}


def test_an_untagged_group_with_our_name_is_adopted_and_tagged(member_eu: Member) -> None:
    inst = member_eu.workload.run_instance()
    by_hand = member_eu.ec2.create_security_group(
        GroupName="orgcontain-quarantine", Description="made by hand", VpcId=inst.vpc_id
    )["GroupId"]
    clients, _ = member_eu.spoke()
    result = isolate(clients, make_plan(inst.instance_id))
    assert result.quarantine_group_id == by_hand
    (q,) = member_eu.quarantine_groups(inst.vpc_id)
    assert q["GroupId"] == by_hand and q["IpPermissionsEgress"] == []


def test_group_cache_basics() -> None:
    now = [100.0]
    cache = GroupCache(reconcile_interval=60, clock=lambda: now[0])
    assert "vpc-1" not in cache and cache.get("vpc-1") is None and cache.reconcile_due("vpc-1")
    cache.put("vpc-1", VpcGroups("sg-q", "sg-t"))
    cache.mark_reconciled("vpc-1")
    assert len(cache) == 1 and not cache.reconcile_due("vpc-1")
    now[0] += 61
    assert cache.reconcile_due("vpc-1")
    cache.mark_reconciled("vpc-1")
    cache.put("vpc-1", VpcGroups("sg-q2", "sg-t"))  # other groups: reconcile again
    assert cache.reconcile_due("vpc-1")
    cache.invalidate("vpc-1")
    assert cache.get("vpc-1") is None and cache.snapshot() == {}


def test_groups_can_be_prepared_ahead_of_the_swap(member_us: Member) -> None:
    from spoke.isolate import prepare_groups

    inst = member_us.workload.run_instance()
    rec = Recorder()
    clients, _ = member_us.spoke(rec)
    cache = GroupCache()
    plan = make_plan(inst.instance_id)
    outcome = prepare_groups(clients, plan, [inst.vpc_id], cache)
    assert outcome.status == StepStatus.DONE and inst.vpc_id in cache
    assert prepare_groups(clients, plan, [], cache).status == StepStatus.SKIPPED
    rec.clear()
    result = isolate(clients, plan, groups=cache)
    assert result.status == IsolationStatus.ISOLATED
    assert rec.names()[:3] == [
        "DescribeInstances",
        "ModifyNetworkInterfaceAttribute",
        "ModifyNetworkInterfaceAttribute",
    ]
