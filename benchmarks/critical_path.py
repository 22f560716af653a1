"""Figure 1: the AWS calls from the handler receiving a finding to the instance's last ENI on the
quarantine group, warm and cold, counted in member-account calls and in end-to-end round trips.

A single-ENI instance outside an Auto Scaling group, in a VPC where the quarantine and transition
groups already exist (an earlier containment made them). The finding goes through the real
``hub.handler.lambda_handler`` against a moto server; every session and client the hub and the
spoke create carry call-recording hooks (:mod:`benchmarks.calls`), and every call waits
``LATENCY`` seconds before it is sent, so calls in flight together overlap as on a network.

- warm: the same container handles a second finding in the account and region (org view, role
  session and group ids cached);
- cold: a new container (``hub.handler.configure`` again: new sessions, clients, caches).

Also measured, side by side: a 3-ENI instance, warm, with the ENIs swapped concurrently (now) and
one after the other (as before issue #8's fix).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks.calls import Call, CallLog, chain_length, round_trips, until_last
from benchmarks.emulated import HubWorld, sqs_record
from tests.hub.helpers import LambdaContext

LATENCY = 0.05  # seconds added to every call: a regional AWS API round trip, roughly
ACCOUNT, REGION = "prod-a", "eu-west-1"


def _member_path(calls: list[Call]) -> list[str]:
    """Calls into the member account (the spoke's, plus the AssumeRole that opens its session)."""
    return [c.name for c in calls if c.scope == "member" or c.name == "sts.AssumeRole"]


def _invoke(world: HubWorld, log: CallLog | None, instance_id: str) -> dict[str, Any]:
    import hub.handler as handler

    account_id = world.org.accounts[ACCOUNT]
    if log is not None:
        log.clear()
    event = {"Records": [sqs_record(world.event(account_id, REGION, instance_id))]}
    started = time.perf_counter()
    response = handler.lambda_handler(event, LambdaContext())
    if response.get("batchItemFailures"):
        raise RuntimeError(f"the finding failed: {response}")
    if not world.quarantined(account_id, REGION, instance_id):
        raise RuntimeError(f"{instance_id} is not quarantined after the handler returned: {response}")
    if log is None:
        return {}
    path = until_last(log.snapshot())
    member = _member_path(path)
    return {
        "member_calls": len(member),
        "member_call_list": member,
        "round_trips": chain_length(path),
        "round_trip_list": round_trips(path),
        "ms_to_isolation": round((path[-1].end - started) * 1000, 1),
    }


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def run(endpoint_url: str, repeats: int = 5) -> dict[str, Any]:
    import hub.handler as handler
    import spoke.steps.network as network

    # Every repeat isolates 4 instances: keep the breaker (20 an hour by default) out of the way.
    world = HubWorld.build(endpoint_url=endpoint_url, max_isolations=10_000)
    workload = world.org.workload(ACCOUNT, REGION)
    # The groups exist in the VPC already: an earlier containment made them.
    handler.configure(**world.wiring())
    _invoke(world, None, workload.run_instance().instance_id)

    cold: list[dict[str, Any]] = []
    warm: list[dict[str, Any]] = []
    multi: dict[str, list[dict[str, Any]]] = {"concurrent": [], "sequential": []}
    try:
        for _ in range(repeats):
            log = CallLog(LATENCY)
            handler.configure(**world.wiring(log))  # a new container: nothing cached
            cold.append(_invoke(world, log, workload.run_instance().instance_id))
            warm.append(_invoke(world, log, workload.run_instance().instance_id))
            for mode, width in (("concurrent", network.MAX_PARALLEL_SWAPS), ("sequential", 1)):
                saved = network.MAX_PARALLEL_SWAPS
                network.MAX_PARALLEL_SWAPS = width
                try:
                    multi[mode].append(_invoke(world, log, workload.run_instance(enis=3).instance_id))
                finally:
                    network.MAX_PARALLEL_SWAPS = saved
    finally:
        handler.reset()

    def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "member_calls": _median(runs, "member_calls"),
            "round_trips": _median(runs, "round_trips"),
            "ms_to_isolation": _median(runs, "ms_to_isolation"),
            "member_call_list": runs[-1]["member_call_list"],
            "round_trip_list": runs[-1]["round_trip_list"],
            "stable": len({(r["member_calls"], r["round_trips"]) for r in runs}) == 1,
        }

    return {
        "repeats": repeats,
        "latency_ms": LATENCY * 1000,
        "warm": summary(warm),
        "cold": summary(cold),
        "warm_3_enis_concurrent": summary(multi["concurrent"]),
        "warm_3_enis_sequential": summary(multi["sequential"]),
    }


def report(fig: dict[str, Any]) -> list[str]:
    lines = [
        f"1. critical path to network isolation ({fig['repeats']} repeats, medians; "
        f"{fig['latency_ms']:.0f} ms added to every call)"
    ]
    for name, target_member, target_rt in (("warm", 3, 4), ("cold", 5, 8)):
        f = fig[name]
        lines.append(
            f"   {name}: {f['member_calls']:.0f} member-account calls (target <= {target_member}), "
            f"{f['round_trips']:.0f} round trips end to end (target <= {target_rt}), "
            f"{f['ms_to_isolation']:.0f} ms{'' if f['stable'] else ' (counts varied between repeats)'}"
        )
        lines.append(f"     member calls: {', '.join(f['member_call_list'])}")
        for i, rt in enumerate(f["round_trip_list"], 1):
            lines.append(f"     RT{i}: {' || '.join(rt)}")
    c, s = fig["warm_3_enis_concurrent"], fig["warm_3_enis_sequential"]
    lines.append(
        f"   warm, 3 ENIs: {c['round_trips']:.0f} round trips, {c['ms_to_isolation']:.0f} ms with the ENIs "
        f"swapped concurrently; {s['round_trips']:.0f} round trips, {s['ms_to_isolation']:.0f} ms one "
        "after the other (before)"
    )
    return lines
