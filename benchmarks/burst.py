"""Figure 7: a burst of findings across many accounts and regions, through the handler, against a
moto server, at 1, 2 and 4 concurrent workers.

Each worker is a process playing one Lambda container: it builds the hub from ``hub.handler``
(cold: nothing cached), then, like Lambda's SQS poller, takes up to 10 messages at a time from a
shared queue and calls ``hub.handler.lambda_handler`` with them; the messages it reports failed go
back on the queue (receive count + 1, at most 5 receives, then "DLQ"). The moto server is its own
process too, so workers compete for the machine's cores as Lambda containers would not: the
speed-up is a lower bound (say how many cores the machine has).

The findings: every instance gets one, then duplicates (a third the same finding id delivered
again, as SQS and GuardDuty updates do; the rest a new finding about the same instance), in
random order. Duplicate containments are counted twice, independently: from the decisions
(``isolated`` more than once for an instance) and from EC2 (more than one set of evidence
snapshots tagged with the instance id).
"""

from __future__ import annotations

import heapq
import multiprocessing as mp
import os
import queue
import random
import statistics
import time
from collections import Counter
from typing import Any

from benchmarks.emulated import HubWorld, config_data, quiet_environment, sqs_record
from benchmarks.server import MotoServer, reset
from tests.hub.helpers import envelope

MAX_RECEIVES = 5
# A failed message is visible again after this long (the deployed queue says 1,800 s, longer than
# the function's timeout; a benchmark cannot wait that long, and the hub retries sooner anyway
# when the first attempt holds the lock: ``containment-in-progress``).
VISIBILITY = 2.0
BATCH = 10  # the hub template's event source batch size


def _build_fleet(world: HubWorld, accounts: list[str], regions: list[str], per_region: int) -> dict[str, Any]:
    """``per_region`` single-ENI instances in each account x region (one VPC each), in few calls."""
    instances: list[tuple[str, str, str]] = []
    for account_id in accounts:
        for region in regions:
            ec2 = world.org.client("ec2", account_id, region)
            vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.0.0/24", AvailabilityZone=f"{region}a")[
                "Subnet"
            ]["SubnetId"]
            app = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
            reservation = ec2.run_instances(
                ImageId="ami-12c6146b",
                InstanceType="t3.micro",
                MinCount=per_region,
                MaxCount=per_region,
                NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [app]}],
            )
            instances += [(account_id, region, i["InstanceId"]) for i in reservation["Instances"]]
    return {"instances": instances}


def _findings(
    world: HubWorld, instances: list[tuple[str, str, str]], total: int, seed: int
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events = [world.event(a, r, i) for a, r, i in instances]
    records = [sqs_record(e) for e in events]
    while len(records) < total:
        original = rng.choice(events)
        detail = original["detail"]
        if rng.random() < 1 / 3:  # the same finding delivered again
            event = envelope(detail, world.org.guardduty_admin_id)
        else:  # a new finding about the same instance
            event = world.event(
                detail["accountId"], detail["region"], detail["resource"]["instanceDetails"]["instanceId"]
            )
        records.append(sqs_record(event))
    rng.shuffle(records)
    return records[:total]


def _worker(spec: dict[str, Any], inbox: Any, results: Any, start: Any) -> None:
    """One Lambda container: build the hub, then poll the queue until told to stop."""
    # Powertools writes its log lines and metrics to standard output (CloudWatch's job): drop them.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    quiet_environment()
    os.environ.update(spec["environment"])
    import boto3

    import hub.handler as handler
    from hub.config import parse_config
    from tests.hub.helpers import LambdaContext

    hub_session = boto3.Session(**spec["hub_credentials"], region_name="us-east-1")

    def org_client() -> Any:
        client = hub_session.client("organizations", region_name="us-east-1", endpoint_url=spec["endpoint"])

        def as_management(request: Any, **_: Any) -> None:
            request.headers["x-moto-account-id"] = spec["management_account"]  # docs/moto.md

        client.meta.events.register("before-sign.organizations.*", as_management)
        return client

    handler.configure(
        hub_session=hub_session,
        organizations_client_factory=org_client,
        endpoint_url=spec["endpoint"],
        config=parse_config(spec["config"]),
    )
    timings: dict[str, tuple[float, float]] = {}
    real_handle_one = handler._handle_one

    def timed_handle_one(hub: Any, body: Any, delivery_id: str, attempt: int, lease: float) -> Any:
        started = time.monotonic()
        outcome = real_handle_one(hub, body, delivery_id, attempt, lease)
        timings[delivery_id] = (started, time.monotonic())
        return outcome

    handler._handle_one = timed_handle_one  # type: ignore[assignment]
    results.put(("ready", os.getpid()))
    start.wait()
    cpu_at_start = time.process_time()  # imports and set-up before the burst are not counted
    while True:
        first = inbox.get()
        if first is None:
            inbox.put(None)  # for the other workers
            results.put(("cpu", time.process_time() - cpu_at_start))
            return
        batch = [first]
        while len(batch) < BATCH:
            try:
                item = inbox.get_nowait()
            except queue.Empty:
                break
            if item is None:
                inbox.put(None)  # leave the stop signal for the next poll
                break
            batch.append(item)
        timings.clear()
        response = handler.lambda_handler({"Records": batch}, LambdaContext())
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        outcomes = []
        for record in batch:
            begun, ended = timings.get(record["messageId"], (0.0, 0.0))
            outcomes.append((record, record["messageId"] in failed, begun, ended))
        results.put(("batch", outcomes))


def _one_run(
    world: HubWorld, server: MotoServer, records: list[dict[str, Any]], workers: int
) -> dict[str, Any]:
    endpoint = server.endpoint
    ctx = mp.get_context("spawn")
    inbox: Any = ctx.Queue()
    results: Any = ctx.Queue()
    start = ctx.Event()
    frozen = world.org.session(world.org.hub_account_id).get_credentials().get_frozen_credentials()  # type: ignore[union-attr]
    spec = {
        "endpoint": endpoint,
        "hub_credentials": {
            "aws_access_key_id": frozen.access_key,
            "aws_secret_access_key": frozen.secret_key,
            "aws_session_token": frozen.token,
        },
        "management_account": world.org.management_account_id,
        "config": config_data(world.org, max_isolations=10_000, ou_override=False),
        "environment": {
            "ORGCONTAIN_LEDGER_TABLE": world.table,
            "ORGCONTAIN_TOPIC_ARN": world.topic_arn,
            "ORGCONTAIN_EVENT_BUS": world.bus_name,
        },
    }
    procs = [
        ctx.Process(target=_worker, args=(spec, inbox, results, start), daemon=True) for _ in range(workers)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        kind, _pid = results.get(timeout=120)
        assert kind == "ready"
    for record in records:
        inbox.put(record)
    server_cpu_before = server.cpu_seconds()
    began = time.monotonic()
    start.set()
    pending = len(records)
    service: list[float] = []
    done_at: list[float] = []
    decisions: Counter[str] = Counter()
    isolated: Counter[tuple[str, str, str]] = Counter()
    dlq = retries = 0
    invisible: list[tuple[float, int, dict[str, Any]]] = []  # (visible again at, seq, record)
    deadline = began + 900
    try:
        while pending:
            while invisible and invisible[0][0] <= time.monotonic():
                inbox.put(heapq.heappop(invisible)[2])
            if time.monotonic() > deadline:
                raise TimeoutError(f"{pending} findings still pending after 900 s")
            try:
                _kind, outcomes = results.get(timeout=0.1)
            except queue.Empty:
                continue
            for record, failed, begun, ended in outcomes:
                if ended:
                    service.append(ended - begun)
                if failed:
                    receives = int(record["attributes"]["ApproximateReceiveCount"])
                    if receives < MAX_RECEIVES:
                        retries += 1
                        attributes = {**record["attributes"], "ApproximateReceiveCount": str(receives + 1)}
                        again = dict(record, attributes=attributes)
                        heapq.heappush(invisible, (time.monotonic() + VISIBILITY, retries, again))
                        continue
                    dlq += 1
                pending -= 1
                done_at.append(ended - began if ended else time.monotonic() - began)
        wall = time.monotonic() - began
        server_cpu = server.cpu_seconds() - server_cpu_before
        inbox.put(None)
        workers_cpu = 0.0
        for _ in procs:
            kind, value = results.get(timeout=60)
            while kind != "cpu":
                kind, value = results.get(timeout=60)
            workers_cpu += value
    finally:
        inbox.put(None)
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.terminate()
    # Decisions come from the ledger: every delivery has exactly one record.
    from hub.ledger import Ledger

    ledger = Ledger(
        world.table,
        world.org.session(world.org.hub_account_id).client(
            "dynamodb", region_name="us-east-1", endpoint_url=endpoint
        ),
    )
    for rec in ledger.all_decisions():
        decisions[f"{rec.decision}/{rec.reason}"] += 1
        if rec.decision == "isolated":
            isolated[(rec.account_id or "", rec.region or "", rec.instance_id or "")] += 1
    service.sort()
    return {
        "workers": workers,
        "findings": len(records),
        "wall_s": round(wall, 2),
        "findings_per_s": round(len(records) / wall, 1),
        "service_ms_median": round(statistics.median(service) * 1000, 1),
        "service_ms_p95": round(service[int(0.95 * (len(service) - 1))] * 1000, 1),
        "done_s_median": round(statistics.median(done_at), 2),
        "done_s_p95": round(sorted(done_at)[int(0.95 * (len(done_at) - 1))], 2),
        "server_cpu_s": round(server_cpu, 1),
        "workers_cpu_s": round(workers_cpu, 1),
        # What the machine's cores allow: moto's server is one Python process (one core at most,
        # its GIL), and the server and the workers share os.cpu_count() cores.
        "cpu_busy_cores": round((server_cpu + workers_cpu) / wall, 2),
        "retried_deliveries": retries,
        "dlq": dlq,
        "decisions": dict(decisions),
        "duplicate_containments_decisions": sum(n - 1 for n in isolated.values() if n > 1),
        "instances_isolated": len(isolated),
    }


def _evidence_duplicates(world: HubWorld, accounts: list[str], regions: list[str]) -> tuple[int, int]:
    """(instances with more than one evidence snapshot set, instances with snapshots) from EC2."""
    per_instance: Counter[str] = Counter()
    for account_id in accounts:
        for region in regions:
            ec2 = world.org.client("ec2", account_id, region)
            snaps = ec2.describe_snapshots(
                OwnerIds=["self"], Filters=[{"Name": "tag-key", "Values": ["orgcontain:finding-id"]}]
            )["Snapshots"]
            for snap in snaps:
                tags = {t["Key"]: t["Value"] for t in snap.get("Tags", [])}
                per_instance[tags.get("orgcontain:instance-id", "?")] += 1
    # One root volume per instance: one snapshot per containment.
    return sum(1 for n in per_instance.values() if n > 1), len(per_instance)


def run(
    server: MotoServer,
    *,
    findings: int = 1000,
    accounts: int = 50,
    workers: tuple[int, ...] = (1, 2, 4),
    seed: int = 8,
) -> dict[str, Any]:
    endpoint = server.endpoint
    regions = ["us-east-1", "eu-west-1"]
    per_region = max(1, round(findings * 0.6 / (accounts * len(regions))))
    runs = []
    for n in workers:
        reset(endpoint)
        # 4 named members come with the emulated org; the rest are extra members.
        world = HubWorld.build(
            endpoint_url=endpoint,
            extra_members=max(0, accounts - 4),
            regions=regions,
            max_isolations=10_000,
            ou_override=False,
        )
        members = world.org.member_ids[:accounts]
        fleet = _build_fleet(world, members, regions, per_region)
        records = _findings(world, fleet["instances"], findings, seed)
        result = _one_run(world, server, records, n)
        dup, with_evidence = _evidence_duplicates(world, members, regions)
        result["duplicate_containments_evidence"] = dup
        result["instances"] = len(fleet["instances"])
        result["instances_with_evidence"] = with_evidence
        runs.append(result)
    base = runs[0]["wall_s"]
    for r in runs:
        r["speedup"] = round(base / r["wall_s"], 2)
    # The best speed-up the CPU could give, from the first run's CPU time: the server's CPU cannot
    # spread over more than one core, and all the CPU over more than the machine's cores.
    first = runs[0]
    cores = os.cpu_count() or 1
    bound = max(first["server_cpu_s"], (first["server_cpu_s"] + first["workers_cpu_s"]) / cores)
    cpu_bound_speedup = round(first["wall_s"] / bound, 2) if bound else None
    return {
        "findings": findings,
        "accounts": accounts,
        "regions": len(regions),
        "cores": os.cpu_count(),
        "runs": runs,
        "cpu_bound_speedup": cpu_bound_speedup,
        "duplicate_containments": max(
            max(r["duplicate_containments_decisions"], r["duplicate_containments_evidence"]) for r in runs
        ),
    }


def report(fig: dict[str, Any]) -> list[str]:
    lines = [
        f"7. burst: {fig['findings']} findings, {fig['accounts']} accounts x {fig['regions']} regions, "
        f"moto server, {fig['cores']} cores shared by the server and the workers"
    ]
    for r in fig["runs"]:
        lines.append(
            f"   {r['workers']} worker(s): {r['wall_s']:.1f} s ({r['findings_per_s']:.0f}/s, speed-up "
            f"{r['speedup']:.2f}x); per finding {r['service_ms_median']:.0f} ms median, "
            f"{r['service_ms_p95']:.0f} ms p95 in the handler; "
            f"done {r['done_s_median']:.1f} s / {r['done_s_p95']:.1f} s after the burst "
            f"(median / p95); {r['instances_isolated']}/{r['instances']} instances isolated, "
            f"{r['retried_deliveries']} retried deliveries, {r['dlq']} to the DLQ; "
            f"CPU during the burst: moto {r['server_cpu_s']:.0f} s, hub {r['workers_cpu_s']:.0f} s "
            f"({r['cpu_busy_cores']:.1f} cores busy)"
        )
    lines.append(
        f"   the CPU allows at most {fig['cpu_bound_speedup']}x on {fig['cores']} cores (from 1 worker's "
        "CPU: moto's server is one process, and everything shares the cores)"
    )
    lines.append(
        f"   duplicate containments: {fig['duplicate_containments']} (decisions and evidence snapshots)"
    )
    return lines
