"""Issue #7, the breaker: a false-positive storm (hundreds of qualifying findings about different
instances within minutes, as when a bad GuardDuty update or a noisy rule fires org-wide) isolates
at most ``max_isolations`` instances, then only notifies, with the reason ``breaker-open`` and when
automatic isolation resumes; the storm arrives through three concurrent Lambda containers, so the
breaker's optimistic lock is contended as it is in production.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import hub.handler as handler
from hub.demo.org import AMI, EmulatedOrg, Workload
from hub.outcome import Outcome
from tests.hub.helpers import base_config, envelope, make_finding, sqs_event
from tests.reliability.conftest import Hub
from tests.reliability.harness import QUARANTINE

MAX_ISOLATIONS = 7
INSTANCES_PER_ACCOUNT_REGION = 25  # x 4 accounts x 2 regions = 200 qualifying findings
CONTAINERS = 3
BATCH = 10


@dataclass(frozen=True)
class Launched:
    instance_id: str
    account_id: str
    region: str


def _launch(work: Workload, count: int) -> list[Launched]:
    """``count`` instances in one RunInstances (the app group declared on the ENI, as run_instance
    does); a storm needs many instances, not varied ones."""
    net = work.network()
    reservation = work.ec2.run_instances(
        ImageId=AMI,
        InstanceType="t3.micro",
        MinCount=count,
        MaxCount=count,
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": net.subnet_ids[0], "Groups": [net.app_group_id]}],
    )
    return [Launched(i["InstanceId"], work.account_id, work.region) for i in reservation["Instances"]]


def _network_and_tags(org: EmulatedOrg, pairs: list[tuple[str, str]]) -> dict[str, tuple[Any, ...]]:
    """Per instance: its ENIs' group names and its tags (two calls per account and region)."""
    out: dict[str, tuple[Any, ...]] = {}
    for account, region in pairs:
        ec2 = org.client("ec2", account, region)
        names = {g["GroupId"]: g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]}
        groups: dict[str, list[tuple[str, ...]]] = {}
        for eni in ec2.describe_network_interfaces()["NetworkInterfaces"]:
            owner = eni.get("Attachment", {}).get("InstanceId")
            if owner:
                groups.setdefault(owner, []).append(tuple(sorted(names[g["GroupId"]] for g in eni["Groups"])))
        for page in ec2.get_paginator("describe_instances").paginate():
            for reservation in page["Reservations"]:
                for inst in reservation["Instances"]:
                    iid = inst["InstanceId"]
                    tags = tuple(sorted((t["Key"], t["Value"]) for t in inst.get("Tags", [])))
                    out[iid] = (tuple(sorted(groups.get(iid, []))), tags)
    return out


def test_false_positive_storm_isolates_at_most_the_limit_then_notifies(
    aws: None, make_hub: Callable[..., Hub], record_figures: Any
) -> None:
    org = EmulatedOrg()
    config = base_config(org, breaker={"max_isolations": MAX_ISOLATIONS, "window_minutes": 60})
    hub = make_hub(org, config=config)
    accounts = org.member_ids[:4]
    fleet: list[Launched] = []
    for account in accounts:
        for region in org.regions:
            fleet += _launch(org.workload(account, region), INSTANCES_PER_ACCOUNT_REGION)
    pairs = [(a, r) for a in accounts for r in org.regions]
    before = _network_and_tags(org, pairs)
    events = [
        envelope(make_finding(i.account_id, i.region, i.instance_id, severity=8.0), org.guardduty_admin_id)
        for i in fleet
    ]
    # Interleaved across accounts and regions, as a storm arrives; batches of 10 per invocation.
    events = [events[k] for j in range(INSTANCES_PER_ACCOUNT_REGION) for k in range(j, len(events), 25)]
    batches = [sqs_event(events[i : i + BATCH])["Records"] for i in range(0, len(events), BATCH)]
    containers = [hub.container() for _ in range(CONTAINERS)]
    started = time.monotonic()

    def invoke(n: int) -> dict[str, Outcome]:
        return handler.run_batch(containers[n % CONTAINERS], batches[n], 300.0)

    with ThreadPoolExecutor(max_workers=CONTAINERS) as pool:
        outcomes = [o for result in pool.map(invoke, range(len(batches))) for o in result.values()]
    seconds = time.monotonic() - started

    decided = Counter(f"{o.decision.value}:{o.reason}" for o in outcomes)
    after = _network_and_tags(org, pairs)
    contained = [i for i in fleet if after[i.instance_id][0] == ((QUARANTINE,),)]
    untouched = [i for i in fleet if after[i.instance_id] == before[i.instance_id]]
    assert len(events) == 200
    # At most the limit, and the limit exactly (the storm is large enough to reach it).
    assert len(contained) == MAX_ISOLATIONS, decided
    assert decided["isolated:mode-isolate"] == MAX_ISOLATIONS
    assert len(untouched) == len(fleet) - MAX_ISOLATIONS
    assert len(hub.ledger.breaker().stamps) == MAX_ISOLATIONS
    # Everything else was notified (not dropped, not failed), saying why and until when.
    breaker_open = [o for o in outcomes if o.reason == "breaker-open"]
    assert decided["notified:breaker-open"] == len(events) - MAX_ISOLATIONS == len(breaker_open), decided
    assert all("automatic isolation resumes about 20" in o.detail for o in breaker_open)
    assert sum(c.telemetry.counts["BreakerOpen"] for c in containers) == len(breaker_open)
    notices = [n for n in hub.stack.notifications() if n["attributes"].get("reason") == "breaker-open"]
    assert len(notices) == len(breaker_open)
    record_figures(
        "breaker_storm",
        {
            "qualifying_findings": len(events),
            "containers": CONTAINERS,
            "max_isolations": MAX_ISOLATIONS,
            "isolated": len(contained),
            "notified_breaker_open": len(breaker_open),
            "seconds": round(seconds, 1),
        },
    )
