"""Deregister the instance from the target groups and classic load balancers that hold it.

ELBv2 has no "which target groups hold instance X" call: discovery lists the target groups
(DescribeTargetGroups, 400 a page) and asks each instance-type group in the instance's VPCs for
its targets (one DescribeTargetHealth per group). Classic ELBs list their instances inline
(DescribeLoadBalancers, 400 a page). On an account with N instance target groups in the VPC
that is about N/400 + N calls, so the scan stops after ``plan.max_target_groups_scanned`` groups
and says so. The quarantine group already blocks load-balancer traffic; deregistering stops
health checks and keeps the group's books honest.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from botocore.exceptions import ClientError

from spoke.errors import error_code
from spoke.models import TargetRegistration
from spoke.steps.base import ALREADY, DONE, FAILED, SKIPPED, WOULD, IsolateRun, LaterStep, ReleaseRun

PAGE = 400
TG_GONE = frozenset({"TargetGroupNotFound"})
TARGET_NOT_THERE = frozenset({"InvalidTarget"})
LB_GONE = frozenset({"LoadBalancerNotFound", "AccessPointNotFound"})
INSTANCE_NOT_THERE = frozenset({"InvalidInstance", "InvalidEndPoint"})


class LoadBalancers(LaterStep):
    name = "load-balancers"
    actions = frozenset(
        {
            "elasticloadbalancing:DescribeTargetGroups",
            "elasticloadbalancing:DescribeTargetHealth",
            "elasticloadbalancing:DeregisterTargets",
            "elasticloadbalancing:DescribeLoadBalancers",
            "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
        }
    )
    release_actions = frozenset(
        {"elasticloadbalancing:RegisterTargets", "elasticloadbalancing:RegisterInstancesWithLoadBalancer"}
    )
    # Set by discovery when the scan stopped at the bound (reported by apply).
    _truncated_note = "scan stopped at {n} target groups (plan.max_target_groups_scanned)"

    @classmethod
    def skip_reason(cls, run: IsolateRun) -> str | None:
        return None if run.p.deregister_from_load_balancers else "off (plan.deregister_from_load_balancers)"

    @classmethod
    def discover(cls, run: IsolateRun) -> None:
        instance_id = run.s.instance_id
        vpcs = set(run.s.vpc_ids)
        limit = run.p.max_target_groups_scanned
        registrations: list[TargetRegistration] = []
        scanned = 0
        truncated = False
        elbv2 = run.clients.elbv2
        if limit > 0:
            for page in elbv2.get_paginator("describe_target_groups").paginate(
                PaginationConfig={"PageSize": PAGE}
            ):
                for tg in page.get("TargetGroups", []):
                    if tg.get("TargetType", "instance") != "instance" or tg.get("VpcId") not in vpcs:
                        continue
                    if scanned >= limit:
                        truncated = True
                        break
                    scanned += 1
                    registrations += _registrations(elbv2, tg["TargetGroupArn"], instance_id)
                if truncated:
                    break
        classic: list[str] = []
        for lb_page in run.clients.elb.get_paginator("describe_load_balancers").paginate(
            PaginationConfig={"PageSize": PAGE}
        ):
            for lb in lb_page.get("LoadBalancerDescriptions", []):
                if lb.get("VPCId") in vpcs and any(
                    i.get("InstanceId") == instance_id for i in lb.get("Instances", [])
                ):
                    classic.append(lb["LoadBalancerName"])
        run.update(target_groups=tuple(registrations), classic_load_balancers=tuple(classic))
        run.notes[cls.name] = cls._truncated_note.format(n=scanned) if truncated else ""

    @classmethod
    def apply(cls, run: IsolateRun) -> None:
        note = run.notes.get(cls.name, "")
        by_tg: dict[str, list[Any]] = defaultdict(list)
        for reg in run.s.target_groups:
            by_tg[reg.target_group_arn].append(_target(run.s.instance_id, reg))
        classic = run.s.classic_load_balancers
        if not by_tg and not classic:
            run.record(cls.name, ALREADY, "in no target group or classic load balancer" + _sep(note))
            return
        if run.dry_run:
            run.record(
                cls.name,
                WOULD,
                f"would deregister from {len(by_tg)} target group(s) and {len(classic)} classic ELB(s)"
                + _sep(note),
            )
            return
        done = 0
        for arn, targets in by_tg.items():
            try:
                run.clients.elbv2.deregister_targets(TargetGroupArn=arn, Targets=targets)
                done += 1
            except ClientError as exc:
                if error_code(exc) not in TG_GONE | TARGET_NOT_THERE:
                    raise
        for name in classic:
            try:
                run.clients.elb.deregister_instances_from_load_balancer(
                    LoadBalancerName=name, Instances=[{"InstanceId": run.s.instance_id}]
                )
                done += 1
            except ClientError as exc:
                if error_code(exc) not in LB_GONE | INSTANCE_NOT_THERE:
                    raise
        run.record(
            cls.name,
            DONE if done else ALREADY,
            f"deregistered from {len(by_tg)} target group(s), {len(classic)} classic ELB(s)" + _sep(note),
        )

    @classmethod
    def restore(cls, run: ReleaseRun) -> None:
        by_tg: dict[str, list[Any]] = defaultdict(list)
        for reg in run.s.target_groups:
            by_tg[reg.target_group_arn].append(_target(run.s.instance_id, reg))
        if not by_tg and not run.s.classic_load_balancers:
            run.record(cls.name, SKIPPED, "was in no load balancer")
            return
        done: list[str] = []
        gone: list[str] = []
        failed: list[str] = []
        for arn, targets in by_tg.items():
            try:
                run.clients.elbv2.register_targets(TargetGroupArn=arn, Targets=targets)
                done.append(arn.rsplit("/", 2)[-2] if "/" in arn else arn)
            except ClientError as exc:
                if error_code(exc) in TG_GONE:
                    gone.append(arn)
                else:
                    failed.append(f"{arn}: {error_code(exc)}")
        for name in run.s.classic_load_balancers:
            try:
                run.clients.elb.register_instances_with_load_balancer(
                    LoadBalancerName=name, Instances=[{"InstanceId": run.s.instance_id}]
                )
                done.append(name)
            except ClientError as exc:
                if error_code(exc) in LB_GONE:
                    gone.append(name)
                else:
                    failed.append(f"{name}: {error_code(exc)}")
        detail = f"registered again in {', '.join(done) or 'none'}" + (
            f"; deleted meanwhile: {', '.join(gone)}" if gone else ""
        )
        if failed:
            run.record(cls.name, FAILED, detail + f"; failed: {', '.join(failed)}", "register-failed")
        else:
            run.record(cls.name, DONE, detail)


def _registrations(elbv2: Any, arn: str, instance_id: str) -> list[TargetRegistration]:
    try:
        health = elbv2.describe_target_health(TargetGroupArn=arn)
    except ClientError as exc:
        if error_code(exc) in TG_GONE:
            return []
        raise
    return [
        TargetRegistration(target_group_arn=arn, port=d["Target"].get("Port"))
        for d in health.get("TargetHealthDescriptions", [])
        if d["Target"]["Id"] == instance_id and d.get("TargetHealth", {}).get("State") != "draining"
    ]


def _target(instance_id: str, reg: TargetRegistration) -> dict[str, Any]:
    return {"Id": instance_id, **({"Port": reg.port} if reg.port is not None else {})}


def _sep(note: str) -> str:
    return f"; {note}" if note else ""
