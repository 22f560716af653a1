"""Figures 2 and 3: the API cost of a containment and of a release, by scenario; and orgcontain's
full containment side by side with the seed's single-account pattern, on a moto server.

Figure 2 counts every call (hub and member account) a warm hub makes for one finding, from the
handler receiving it to its return, and for an operator release (``Responder.release_instance``,
what ``orgcontain release`` runs). The groups already exist in the VPC.

Figure 3 runs, alternately on fresh single-ENI instances in one account and region, the seed's
design (EventBridge -> a Lambda in the member account calling
``ModifyInstanceAttribute(InstanceId, Groups=[quarantine])``, its EC2 client warm) and
orgcontain's handler (warm), and compares calls and wall time.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.calls import SWAP, Call, CallLog, until_last
from benchmarks.emulated import HubWorld, sqs_record
from tests.hub.helpers import LambdaContext

ACCOUNT, REGION = "prod-b", "us-east-1"

# What each call is for, to say what the extra calls buy (figure 3).
PURPOSE = {
    "organizations.DescribeAccount": "trust: the account is an ACTIVE member",
    "organizations.ListParents": "policy: OU path (per-OU overrides)",
    "sts.AssumeRole": "spoke session in the member account",
    "dynamodb.BatchGetItem": "ledger: open incident, breaker, released mark",
    "dynamodb.TransactWriteItems": "ledger: lock + breaker (one containment per instance)",
    "dynamodb.UpdateItem": "ledger: checkpoint and outcome on the incident",
    "dynamodb.PutItem": "ledger: the decision record",
    "ec2.DescribeInstances": "describe: ENIs, groups, volumes, tags (live tag re-check)",
    "ec2.DescribeSecurityGroups": "quarantine / transition group lookup",
    SWAP: "network: per ENI transition group, then quarantine group",
    "ec2.ModifyNetworkInterfaceAttribute": "conntrack: idle timeouts to their minimums",
    "ec2.DescribeInstanceAttribute": "discovery: termination protection, shutdown behaviour",
    "ec2.DescribeIamInstanceProfileAssociations": "discovery: instance profile",
    "ec2.DisassociateIamInstanceProfile": "credentials: instance profile off",
    "ec2.ModifyInstanceAttribute": "evidence: termination protection, shutdown stop, volumes kept",
    "elbv2.DescribeTargetGroups": "load balancers: target groups in the VPC",
    "elbv2.DescribeTargetHealth": "load balancers: is the instance registered",
    "elbv2.DeregisterTargets": "load balancers: deregister",
    "elb.DescribeLoadBalancers": "load balancers: classic ELBs",
    "autoscaling.DescribeAutoScalingInstances": "Auto Scaling: membership",
    "autoscaling.DetachInstances": "Auto Scaling: leave the group (before the network change)",
    "ec2.CreateSnapshots": "evidence: crash-consistent snapshots of every volume",
    "ec2.CreateTags": "tags: status, finding id, time, original groups",
    "sns.Publish": "notification to the security team",
    "events.PutEvents": "result event on the bus",
}


def _counts(calls: list[Call]) -> dict[str, Any]:
    hub = [c.name for c in calls if c.scope == "hub"]
    member = [c.name for c in calls if c.scope == "member"]
    return {
        "total": len(calls),
        "hub": len(hub),
        "member": len(member),
        "by_call": dict(Counter(c.name for c in calls)),
    }


def _contain(
    world: HubWorld, log: CallLog, account_id: str, instance_id: str, *, asg: bool = False
) -> tuple[list[Call], float]:
    import hub.handler as handler

    log.clear()
    event = {"Records": [sqs_record(world.event(account_id, REGION, instance_id))]}
    started = time.perf_counter()
    response = handler.lambda_handler(event, LambdaContext())
    elapsed = time.perf_counter() - started
    if response.get("batchItemFailures"):
        raise RuntimeError(f"containment failed: {response}")
    if not world.quarantined(account_id, REGION, instance_id, lenient=asg):
        raise RuntimeError(f"{instance_id} not quarantined")
    return log.snapshot(), elapsed


@contextmanager
def _warm_hub(endpoint_url: str) -> Iterator[tuple[HubWorld, CallLog, str, Any]]:
    """The hub wired to the org with its calls logged, after one containment in the benchmark's
    account and region (quarantine groups made, sessions and caches warm); reset on exit."""
    import hub.handler as handler

    world = HubWorld.build(endpoint_url=endpoint_url, max_isolations=10_000)
    account_id = world.org.accounts[ACCOUNT]
    workload = world.org.workload(ACCOUNT, REGION)
    log = CallLog()
    handler.configure(**world.wiring(log))
    try:
        _contain(world, log, account_id, workload.run_instance().instance_id)
        yield world, log, account_id, workload
    finally:
        handler.reset()


def scenarios(endpoint_url: str) -> dict[str, Any]:
    """Figure 2: calls of one containment and one release, by scenario."""
    import hub.handler as handler

    with _warm_hub(endpoint_url) as (world, log, account_id, workload):
        cases = {
            "1_eni": lambda: workload.run_instance(),
            "3_enis": lambda: workload.run_instance(enis=3),
            "asg_and_target_group": lambda: workload.run_asg_behind_alb(desired=2)[0],
            "4_volumes": lambda: workload.run_instance(extra_volumes=3),
        }
        out: dict[str, Any] = {}
        for name, make in cases.items():
            inst = make()
            calls, _ = _contain(world, log, account_id, inst.instance_id, asg=inst.asg_name is not None)
            contain = _counts(calls)
            contain["to_isolation"] = len(until_last(calls))
            log.clear()
            outcome = handler.responder().release_instance(
                account_id, REGION, inst.instance_id, "benchmark", "arn:aws:iam::111111111111:user/bench"
            )
            if outcome.reason != "released":
                raise RuntimeError(f"release of {name} failed: {outcome.reason} {outcome.detail}")
            out[name] = {"containment": contain, "release": _counts(log.snapshot())}
        return {"scenarios": out}


def seed_handler(ec2: Any, quarantine_group_id: str) -> Any:
    """The seed's single-account design: the finding's instance onto the quarantine group, one call.

    (``ModifyInstanceAttribute(Groups=...)`` fails on an instance with several ENIs in AWS; moto
    accepts it, so the comparison uses single-ENI instances.)"""

    def handle(event: dict[str, Any], _context: Any = None) -> dict[str, Any]:
        instance_id = event["detail"]["resource"]["instanceDetails"]["instanceId"]
        ec2.modify_instance_attribute(InstanceId=instance_id, Groups=[quarantine_group_id])
        return {"isolated": instance_id}

    return handle


def versus_seed(endpoint_url: str, repeats: int = 5) -> dict[str, Any]:
    """Figure 3: the seed's pattern and orgcontain's full containment, alternately, same account."""
    with _warm_hub(endpoint_url) as (world, log, account_id, workload):
        ec2 = world.org.session(account_id).client("ec2", region_name=REGION, endpoint_url=endpoint_url)
        log.attach(ec2.meta.events, "member")
        quarantine = ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": ["orgcontain-quarantine"]}]
        )["SecurityGroups"][0]["GroupId"]
        seed = seed_handler(ec2, quarantine)
        seed(world.event(account_id, REGION, workload.run_instance().instance_id))  # warm its client
        seed_runs: list[tuple[int, float]] = []
        ours: list[tuple[list[Call], float, float]] = []
        for _ in range(repeats):
            inst = workload.run_instance()
            event = world.event(account_id, REGION, inst.instance_id)
            log.clear()
            started = time.perf_counter()
            seed(event)
            seed_runs.append((len(log.snapshot()), time.perf_counter() - started))
            if not world.quarantined(account_id, REGION, inst.instance_id, lenient=True):
                raise RuntimeError("the seed's call did not quarantine the instance")
            inst = workload.run_instance()
            calls, elapsed = _contain(world, log, account_id, inst.instance_id)
            path = until_last(calls)
            ours.append((calls, elapsed, path[-1].end - calls[0].start))
    calls = ours[-1][0]
    seed_ms = statistics.median(s for _, s in seed_runs) * 1000
    ours_ms = statistics.median(o[1] for o in ours) * 1000
    to_isolation_ms = statistics.median(o[2] for o in ours) * 1000
    by_call = Counter(c.name for c in calls)
    return {
        "repeats": repeats,
        "seed_calls": statistics.median(n for n, _ in seed_runs),
        "seed_ms": round(seed_ms, 1),
        "orgcontain_calls": statistics.median(len(o[0]) for o in ours),
        "orgcontain_ms": round(ours_ms, 1),
        "orgcontain_ms_to_network_isolation": round(to_isolation_ms, 1),
        "calls_ratio": round(
            statistics.median(len(o[0]) for o in ours) / statistics.median(n for n, _ in seed_runs), 1
        ),
        "time_ratio": round(ours_ms / seed_ms, 1),
        "orgcontain_calls_by_purpose": [
            {"call": name, "count": n, "purpose": PURPOSE.get(name, "")} for name, n in by_call.items()
        ],
    }


def report_scenarios(fig: dict[str, Any]) -> list[str]:
    lines = ["2. API calls of a containment and of a release (warm hub, groups exist; hub + member account)"]
    for name, f in fig["scenarios"].items():
        c, r = f["containment"], f["release"]
        lines.append(
            f"   {name:22s} containment {c['total']:3d} calls ({c['hub']} hub, {c['member']} member; "
            f"isolated by call {c['to_isolation']}), release {r['total']:3d} calls "
            f"({r['hub']} hub, {r['member']} member)"
        )
    return lines


def report_seed(fig: dict[str, Any]) -> list[str]:
    lines = [
        f"3. versus the seed's single-account pattern ({fig['repeats']} repeats each, alternating, medians, "
        "moto server)",
        f"   seed (ModifyInstanceAttribute Groups=[quarantine]): {fig['seed_calls']:.0f} call, "
        f"{fig['seed_ms']:.1f} ms",
        f"   orgcontain full containment: {fig['orgcontain_calls']:.0f} calls ({fig['calls_ratio']}x), "
        f"{fig['orgcontain_ms']:.1f} ms ({fig['time_ratio']}x); network isolated after "
        f"{fig['orgcontain_ms_to_network_isolation']:.1f} ms",
        "   what the extra calls do:",
    ]
    for row in fig["orgcontain_calls_by_purpose"]:
        lines.append(f"     {row['count']:2d} x {row['call']:45s} {row['purpose']}")
    return lines
