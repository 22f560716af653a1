"""The demo checks its own outcome, reading the member accounts directly (not the hub's ledger).

- every finding got what the scenario says it must (decision and reason), and the low-severity one
  never reached the hub;
- every instance the hub isolated really is quarantined: each ENI on exactly the account's
  quarantine group (tagged ``orgcontain:role=quarantine``, no egress rule), the instance tagged;
  an Auto Scaling member has left its group and its target group;
- one isolation per instance, however many findings named it;
- every other instance, the opted-out account's above all, is untouched: same groups per ENI as
  before the findings, no orgcontain tag;
- the hub's queue and dead-letter queue are empty.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from hub.demo.fleet import Fleet, FleetInstance, eni_groups
from hub.demo.org import EmulatedOrg
from hub.demo.scenario import OPTED_OUT, Row

QUARANTINE_TAG = ("orgcontain:role", "quarantine")
STATUS_TAG = "orgcontain:status"


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


def _tags(ec2: Any, instance_ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {i: {} for i in instance_ids}
    if not instance_ids:
        return out
    for page in ec2.get_paginator("describe_instances").paginate(InstanceIds=instance_ids):
        for reservation in page["Reservations"]:
            for inst in reservation["Instances"]:
                out[inst["InstanceId"]] = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
    return out


def isolated_instances(rows: list[Row]) -> dict[str, FleetInstance]:
    """Fleet instances with an ``isolated`` decision, by id."""
    return {
        r.instance.instance_id: r.instance
        for r in rows
        if r.decision == "isolated" and r.instance is not None
    }


def check_decisions(rows: list[Row]) -> Check:
    wrong = []
    for r in rows:
        if r.ok:
            continue
        want = " or ".join(e.text() for e in r.expected) or "filtered before the hub"
        got = f"{r.decision} ({r.reason})" if r.decision else r.state
        wrong.append(f"#{r.n} {r.scenario}: expected {want}, got {got}")
    decided = sum(1 for r in rows if r.state == "decided")
    filtered = sum(1 for r in rows if r.state == "filtered")
    if wrong:
        return Check("expected-decisions", False, "; ".join(wrong))
    return Check(
        "expected-decisions",
        True,
        f"{decided} finding(s) decided as expected, {filtered} filtered on the way as expected",
    )


def check_one_isolation_per_instance(rows: list[Row]) -> Check:
    counts = Counter(r.instance.instance_id for r in rows if r.decision == "isolated" and r.instance)
    twice = sorted(i for i, n in counts.items() if n > 1)
    if twice:
        return Check("one-isolation-per-instance", False, f"isolated more than once: {', '.join(twice)}")
    return Check("one-isolation-per-instance", True, f"{len(counts)} instance(s), one isolation each")


def check_quarantined(org: EmulatedOrg, rows: list[Row]) -> Check:
    isolated = isolated_instances(rows)
    problems: list[str] = []
    enis = 0
    by_place: dict[tuple[str, str], list[FleetInstance]] = {}
    for inst in isolated.values():
        by_place.setdefault((inst.account_id, inst.region), []).append(inst)
    for (account_id, region), members in by_place.items():
        ec2 = org.client("ec2", account_id, region)
        groups_now = eni_groups(ec2, [m.instance_id for m in members])
        tags_now = _tags(ec2, [m.instance_id for m in members])
        quarantine: dict[str, dict[str, Any]] = {}
        for vpc in {m.vpc_id for m in members}:
            found = ec2.describe_security_groups(
                Filters=[
                    {"Name": "vpc-id", "Values": [vpc]},
                    {"Name": f"tag:{QUARANTINE_TAG[0]}", "Values": [QUARANTINE_TAG[1]]},
                ]
            )["SecurityGroups"]
            if len(found) != 1:
                problems.append(f"{account_id}/{region} {vpc}: {len(found)} quarantine group(s)")
                continue
            quarantine[vpc] = found[0]
        for m in members:
            group = quarantine.get(m.vpc_id)
            if group is None:
                continue
            if group.get("IpPermissionsEgress"):
                problems.append(f"{group['GroupId']} in {m.account_id}/{m.region} allows egress")
            current = groups_now[m.instance_id]
            if set(current) != set(m.eni_ids):
                problems.append(f"{m.instance_id}: ENIs {sorted(current)}, expected {sorted(m.eni_ids)}")
            for eni, gids in current.items():
                enis += 1
                if gids != (group["GroupId"],):
                    problems.append(f"{m.instance_id} {eni} is on {list(gids)}, not {group['GroupId']}")
            if tags_now[m.instance_id].get(STATUS_TAG) != "quarantined":
                problems.append(f"{m.instance_id} lacks {STATUS_TAG}=quarantined")
    if problems:
        return Check("isolated-instances-quarantined", False, "; ".join(problems))
    return Check(
        "isolated-instances-quarantined",
        True,
        f"{len(isolated)} instance(s), {enis} ENI(s), each on its account's quarantine group only",
    )


def check_left_autoscaling(org: EmulatedOrg, rows: list[Row]) -> Check | None:
    members = [i for i in isolated_instances(rows).values() if i.asg_name]
    if not members:
        return None
    problems = []
    for m in members:
        autoscaling = org.client("autoscaling", m.account_id, m.region)
        found = autoscaling.describe_auto_scaling_instances(InstanceIds=[m.instance_id])[
            "AutoScalingInstances"
        ]
        if found and found[0].get("LifecycleState") != "Standby":
            problems.append(f"{m.instance_id} still in {m.asg_name} ({found[0].get('LifecycleState')})")
        if m.target_group_arn:
            elbv2 = org.client("elbv2", m.account_id, m.region)
            health = elbv2.describe_target_health(TargetGroupArn=m.target_group_arn)[
                "TargetHealthDescriptions"
            ]
            if m.instance_id in {d["Target"]["Id"] for d in health}:
                problems.append(f"{m.instance_id} still registered in its target group")
    if problems:
        return Check("asg-members-left-group-and-target-group", False, "; ".join(problems))
    return Check(
        "asg-members-left-group-and-target-group",
        True,
        f"{len(members)} instance(s) out of their Auto Scaling group and target group",
    )


def _untouched(org: EmulatedOrg, instances: list[FleetInstance]) -> list[str]:
    problems = []
    by_place: dict[tuple[str, str], list[FleetInstance]] = {}
    for inst in instances:
        by_place.setdefault((inst.account_id, inst.region), []).append(inst)
    for (account_id, region), members in by_place.items():
        ec2 = org.client("ec2", account_id, region)
        now = eni_groups(ec2, [m.instance_id for m in members])
        tags = _tags(ec2, [m.instance_id for m in members])
        for m in members:
            if now[m.instance_id] != m.before:
                problems.append(f"{m.key} {m.instance_id}: groups {now[m.instance_id]} != before {m.before}")
            marks = sorted(
                k for k in tags[m.instance_id] if k.startswith("orgcontain:") and k != "orgcontain:mode"
            )
            if marks:
                problems.append(f"{m.key} {m.instance_id} tagged {', '.join(marks)}")
    return problems


def check_opted_out_untouched(org: EmulatedOrg, fleet: Fleet) -> Check:
    members = [i for i in fleet.instances if i.account_name == OPTED_OUT]
    problems = _untouched(org, members)
    if problems:
        return Check("opted-out-account-untouched", False, "; ".join(problems))
    return Check(
        "opted-out-account-untouched",
        True,
        f"{len(members)} instance(s) in {OPTED_OUT} ({org.accounts[OPTED_OUT]}): "
        "same groups, no orgcontain tag",
    )


def check_others_untouched(org: EmulatedOrg, fleet: Fleet, rows: list[Row]) -> Check:
    isolated = isolated_instances(rows)
    others = [i for i in fleet.instances if i.instance_id not in isolated and i.account_name != OPTED_OUT]
    problems = _untouched(org, others)
    if problems:
        return Check("other-instances-untouched", False, "; ".join(problems))
    return Check(
        "other-instances-untouched",
        True,
        f"{len(others)} instance(s) not isolated (dry-run, notified, skipped or no finding): unchanged",
    )


def check_queues_empty(sqs: Any, queue_url: str, dlq_url: str) -> Check:
    counts = {}
    for name, url in (("queue", queue_url), ("dead-letter queue", dlq_url)):
        attrs = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        counts[name] = int(attrs.get("ApproximateNumberOfMessages", 0)) + int(
            attrs.get("ApproximateNumberOfMessagesNotVisible", 0)
        )
    if any(counts.values()):
        detail = ", ".join(f"{k}: {v} message(s)" for k, v in counts.items())
        return Check("hub-queues-empty", False, detail)
    return Check("hub-queues-empty", True, "nothing left in the findings queue or its dead-letter queue")


def run_checks(
    org: EmulatedOrg, fleet: Fleet, rows: list[Row], sqs: Any, queue_url: str, dlq_url: str
) -> list[Check]:
    checks = [
        check_decisions(rows),
        check_quarantined(org, rows),
        check_one_isolation_per_instance(rows),
    ]
    asg = check_left_autoscaling(org, rows)
    if asg is not None:
        checks.append(asg)
    checks += [
        check_opted_out_untouched(org, fleet),
        check_others_untouched(org, fleet, rows),
        check_queues_empty(sqs, queue_url, dlq_url),
    ]
    return checks
