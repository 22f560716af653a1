"""Issue #7, the burst: 500+ findings about ~80 instances (43 of them qualifying) in 24 member
accounts and both regions, delivered through a real SQS queue (redrive policy to a DLQ) to the real
handler in batches of 10,
under throttling, a refused AssumeRole, Lambda crashes between the network step and the rest,
DynamoDB conditional conflicts and an SNS outage; then the DLQ is redriven with the faults gone,
and every contained instance is released. The five invariants are checked on moto's state and the
ledger.

Run with ``-n 0 -s`` to print the figures (also written to reliability-figures.json in the run's
temporary directory).
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.retries.standard import ExponentialBackoff

import hub.handler as handler
from hub.demo.fleet import _asg_behind_alb
from hub.demo.org import EmulatedOrg, Instance, Workload
from hub.ledger import DecisionRecord, Ledger
from hub.models import Decision
from hub.policy import MODE_TAG
from tests.hub.helpers import base_config, envelope, make_finding
from tests.reliability.conftest import Hub
from tests.reliability.harness import (
    FastOrg,
    Faults,
    FindingsQueue,
    Poller,
    check_nothing_lost,
    decisions_by_pub,
    emf_metrics,
    fleet_state,
    light_decisions,
    pub_of,
    quarantined_enis,
    without_orgcontain_tags,
)

SEED = 20_261_203
ACCEPT_TARGET = {
    ("isolated", "mode-isolate"),
    ("isolated", "resumed"),
    ("already-isolated", "incident-open"),
    ("already-isolated", "incident-in-progress"),
}


@dataclass
class Planned:
    """One instance of the fleet and what the burst says about it."""

    inst: Instance
    kind: str  # target | denied | exempt | live-exempt | low | optout | notify | bystander | asg-peer
    finding_ids: list[str] = field(default_factory=list)


@dataclass
class Burst:
    org: EmulatedOrg
    hub: Hub
    fleet: list[Planned]
    pairs: list[tuple[str, str]]
    denied_account: str
    pubs: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)
    expect: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # pub -> acceptable terminal
    pub_instance: dict[str, str] = field(default_factory=dict)


def _build(org: EmulatedOrg, make_hub: Any, rng: random.Random) -> Burst:
    members = org.member_ids
    denied, optout, notify = members[-1], members[-2], members[-3]
    config = base_config(org, breaker={"max_isolations": 10_000, "window_minutes": 60})
    config["accounts"] = {
        optout: {"mode": "off", "reason": "sandbox, opted out"},
        notify: {"mode": "notify", "reason": "payments, manual approval"},
    }
    # The denied account's spoke role was never deployed (the StackSet has not reached it).
    hub = make_hub(org, spoke_accounts=[a for a in members if a != denied], config=config)
    fleet: list[Planned] = []
    pairs = [(a, r) for a in members for r in org.regions]
    for n, (account, region) in enumerate(pairs):
        w = org.workload(account, region)

        def run(kind: str, w: Workload = w, **kw: Any) -> None:
            fleet.append(Planned(w.run_instance(**kw), kind))

        if account == denied:
            run("denied", enis=2)
        elif account == optout:
            run("optout")
        elif account == notify:
            run("notify", enis=2)
        else:
            run("target", enis=1 + n % 3, profile=n % 3 == 0, extra_volumes=n % 2)
            if n % 4 == 0:
                run("bystander", enis=2, profile=True)
            if n % 5 == 2:
                run("exempt", tags={MODE_TAG: "notify"})
            if n % 7 == 3:
                run("low", profile=True)
            if n % 9 == 4:
                inst = w.run_instance()
                # Tagged after GuardDuty's snapshot: only the live re-check sees the exemption.
                w.ec2.create_tags(Resources=[inst.instance_id], Tags=[{"Key": MODE_TAG, "Value": "dry-run"}])
                fleet.append(Planned(inst, "live-exempt"))
    # The demo's ASG: ENI groups set per interface (moto otherwise also shows the launch template's
    # instance-level group on the ENI next to the quarantine group, a display gap: docs/moto.md).
    asg_members = _asg_behind_alb(org, org.workload(members[0], "us-east-1"), desired=2)
    fleet.append(Planned(asg_members[0], "target"))
    fleet.append(Planned(asg_members[1], "asg-peer"))
    return Burst(org, hub, fleet, pairs, denied)


def _publications(b: Burst, rng: random.Random) -> None:
    """Several finding ids per instance, each re-published as GuardDuty updates it, some delivered
    twice (EventBridge and SQS are at-least-once), plus hostile and out-of-scope events."""
    admin = b.org.guardduty_admin_id
    n = 0

    def add(body: dict[str, Any] | str, accept: set[tuple[str, str]], instance: str | None = None) -> None:
        nonlocal n
        n += 1
        pub = f"p{n:04d}"
        b.pubs.append((pub, body))
        b.expect[pub] = accept
        if instance:
            b.pub_instance[pub] = instance

    kinds = {
        "target": (7.0, ACCEPT_TARGET, (2, 3), (2, 5)),
        "denied": (8.0, set(), (1, 2), (2, 3)),
        "exempt": (8.0, {("notified", "tag-exemption")}, (1, 2), (1, 3)),
        "live-exempt": (8.0, {("dry-run", "tag-exemption")}, (1, 1), (1, 3)),
        "low": (2.0, {("skipped", "below-threshold")}, (1, 2), (1, 3)),
        "optout": (8.0, {("skipped", "account-opted-off")}, (1, 2), (1, 3)),
        "notify": (8.0, {("notified", "mode-notify")}, (1, 2), (1, 3)),
    }
    for planned in b.fleet:
        spec = kinds.get(planned.kind)
        if spec is None:
            continue
        floor, accept, ids, updates = spec
        inst = planned.inst
        tags = {MODE_TAG: "notify"} if planned.kind == "exempt" else {"Name": "web"}
        for _ in range(rng.randint(*ids)):
            fid = uuid.uuid4().hex
            planned.finding_ids.append(fid)
            for count in range(1, rng.randint(*updates) + 1):
                severity = floor + rng.choice((0.0, 0.5, 1.0, 2.0)) if floor >= 7 else floor
                detail = make_finding(
                    inst.account_id,
                    inst.region,
                    inst.instance_id,
                    finding_id=fid,
                    severity=min(severity, 10.0),
                    tags=tags,
                    updated_at=f"2026-12-03T12:{count:02d}:00.000Z",
                )
                detail["service"]["count"] = count
                event = envelope(detail, admin)
                add(event, accept, inst.instance_id)
                if rng.random() < 0.08:  # the same event delivered twice
                    add(json.loads(json.dumps(event)), accept, inst.instance_id)
    targets = [p for p in b.fleet if p.kind == "target"]
    for i in range(10):  # an instance of account A named in a finding of account B
        victim = targets[i * 3]
        other = next(a for a in b.org.member_ids if a != victim.inst.account_id and a != b.denied_account)
        event = envelope(make_finding(other, victim.inst.region, victim.inst.instance_id), admin)
        add(event, {("skipped", "instance-gone")})
    for i in range(8):
        t = targets[i]
        add(envelope(make_finding(t.inst.account_id, t.inst.region, t.inst.instance_id, sample=True), admin),
            {("skipped", "sample-finding")})  # fmt: skip
        add(envelope(make_finding(t.inst.account_id, t.inst.region, t.inst.instance_id),
                     t.inst.account_id), {("rejected", "untrusted-event-account")})  # fmt: skip
        add(envelope(make_finding(t.inst.account_id, "ap-south-1", "i-0123456789abcdef0"), admin),
            {("notified", "region-not-covered")})  # fmt: skip
        add(envelope(make_finding("999999999999", "us-east-1", t.inst.instance_id), admin),
            {("rejected", "account-not-in-organization")})  # fmt: skip
        add(envelope(make_finding(t.inst.account_id, t.inst.region, t.inst.instance_id), admin,
                     source="aws.securityhub"), {("rejected", "untrusted-source")})  # fmt: skip
        add('{"truncated": ' + json.dumps(make_finding(t.inst.account_id, t.inst.region, "i-0abc"))[:200],
            {("rejected", "malformed-event")})  # fmt: skip
    rng.shuffle(b.pubs)


@pytest.fixture
def quiet_hub_logs() -> Iterator[None]:
    """The hub logs every decision as JSON; 500 of them bury the figures printed with -s."""
    level = handler.logger.log_level
    handler.logger.setLevel(logging.ERROR)
    yield
    handler.logger.setLevel(level)


@pytest.mark.slow
def test_burst_under_faults_keeps_every_invariant(
    aws: None,
    make_hub: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    record_figures: Any,
    quiet_hub_logs: None,
) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    org = FastOrg(extra_members=20)
    b = _build(org, make_hub, rng)
    _publications(b, rng)
    built = time.monotonic()
    assert len(b.pubs) >= 500 and len(org.member_ids) >= 20

    # Compressed time: botocore's throttling back-off (rand * 1 s * 2^n) scaled down 50x, its logic
    # (retry quota, attempts) unchanged; the hub's clock is ours to move past lease expiry.
    monkeypatch.setitem(ExponentialBackoff._DEFAULT_BACKOFF_CONFIG, "throttling_base_scale", 0.02)
    offset = [0.0]
    faults = Faults(
        org,
        seed=SEED,
        ec2_throttle=0.03,
        ec2_retried=0.03,
        ddb_conflict=0.15,
        crash_after_network={
            p.inst.instance_id for p in rng.sample([p for p in b.fleet if p.kind == "target"], 5)
        },
    )
    b.hub.wiring = {
        "hub_session": faults.hub_session(),
        "spoke_session_factory": faults.member_session,
        "clock": lambda: time.time() + offset[0],
    }
    b.hub.cold_start()
    crash_set = set(faults.crash_after_network)

    pairs = b.pairs
    before = fleet_state(org, pairs)
    queue = FindingsQueue.create(org, max_receive=3)

    def sns_window(invocation: int) -> None:
        faults.sns_down = 4 <= invocation <= 14

    poller = Poller(queue, b.hub.cold_start, before_invoke=sns_window)
    queue.publish(b.pubs)
    burst_start = time.monotonic()

    # ---- phase 1: the burst, faults on ----------------------------------------------------------
    poller.drain()
    phase1 = time.monotonic()
    # Every planned crash happened; two of them in one batch's concurrent groups kill one invocation.
    assert faults.counts["crash-after-network"] == len(crash_set)
    assert 1 <= poller.crashes <= len(crash_set)
    ledger = b.hub.ledger
    poller.collect_metrics()
    mid = fleet_state(org, pairs)
    half_done_mid = _half_done_without_record(b, mid, ledger, light_decisions(ledger), poller)
    assert half_done_mid == [], half_done_mid
    dead_after_burst = len(queue.dead_letters())

    # ---- phase 2: faults gone (the spoke role is still missing), leases expired, DLQ redriven ------
    faults.off()
    offset[0] += 1_000.0
    redriven = queue.redrive()
    poller.drain()
    poller.collect_metrics()
    phase2 = time.monotonic()

    after = fleet_state(org, pairs)
    decisions = light_decisions(ledger)
    by_pub = decisions_by_pub(decisions, poller.message_pub)
    dead = {pub_of(m): m for m in queue.dead_letters()}
    published = [pub for pub, _ in b.pubs]

    # Invariant 1: nothing lost.
    lost = check_nothing_lost(published, by_pub, dead, ledger, poller.message_pub, poller.crashed_pubs)
    denied_ids = {p.inst.instance_id for p in b.fleet if p.kind == "denied"}
    for pub in dead:
        assert b.pub_instance.get(pub) in denied_ids, f"{pub} in the DLQ after the redrive"
        last = max(by_pub[pub], key=lambda d: d.decided_at)
        assert (last.decision, last.reason) == ("failed", "assume-role-denied"), (pub, last)
    wrong = []
    for pub in published:
        terminal = [(d.decision, d.reason) for d in by_pub.get(pub, []) if d.decision != "failed"]
        if terminal and terminal[0] not in b.expect[pub]:
            wrong.append((pub, terminal, b.expect[pub]))
    assert wrong == []

    # Invariant 2: nothing half-done silently (and the redrive completed every target).
    half_done_end = _half_done_without_record(b, after, ledger, decisions, poller)
    targets = [p for p in b.fleet if p.kind == "target"]
    incomplete = [p.inst.instance_id for p in targets if not _fully_contained(after[p.inst.instance_id])]

    # Invariant 3: nothing touched by mistake.
    qualifying = {p.inst.instance_id for p in targets}
    touched = [
        (iid, _diff(before[iid], after[iid]))
        for iid in before
        if iid not in qualifying and before[iid] != after[iid]
    ]

    # Invariant 4: one containment per instance, one evidence set.
    duplicates = []
    isolated_decisions = Counter(d.instance_id for d in decisions if d.decision == "isolated")
    for p in targets:
        i = p.inst
        history = ledger.history(i.account_id, i.region, i.instance_id)
        volumes = len(before[i.instance_id]["delete_on_termination"])
        if (
            len(history) != 1
            or isolated_decisions[i.instance_id] != 1
            or after[i.instance_id]["snapshots"] != volumes
        ):
            duplicates.append(
                (
                    i.instance_id,
                    len(history),
                    isolated_decisions[i.instance_id],
                    after[i.instance_id]["snapshots"],
                )
            )
    breaker = ledger.breaker()
    assert len(breaker.stamps) == len(targets), "one breaker stamp per containment"

    # ---- phase 3: release everything, throttled, then exactly what was there before --------------
    faults.ec2_throttle = 0.05
    responder = handler.responder()
    releases = Counter()
    for p in targets:
        i = p.inst
        for attempt in range(4):
            out = responder.release_instance(
                i.account_id, i.region, i.instance_id, "false positive", "arn:aws:iam::1:role/soc",
                reattach_asg=i.asg_name is not None,
            )  # fmt: skip
            releases[f"{out.decision.value}:{out.reason}"] += 1
            if out.decision is Decision.NOTIFIED:
                break
            faults.ec2_throttle = 0.0 if attempt else faults.ec2_throttle
        else:
            pytest.fail(f"release of {i.instance_id} never completed")
    faults.off()
    released = fleet_state(org, pairs)
    not_exact = [
        (iid, _diff(without_orgcontain_tags(before[iid]), without_orgcontain_tags(released[iid])))
        for iid in qualifying
        if without_orgcontain_tags(before[iid]) != without_orgcontain_tags(released[iid])
    ]
    not_exact += [
        (iid, "status tag")
        for iid in qualifying
        if released[iid]["tags"].get("orgcontain:status") != "released"
    ]
    finished = time.monotonic()

    poller.collect_metrics()
    emitted = emf_metrics(capsys.readouterr().out)
    decision_kinds = Counter(f"{d.decision}" for d in decisions)
    reasons = Counter(f"{d.decision}:{d.reason}" for d in decisions)
    figures = {
        "findings_published": len(b.pubs),
        "distinct_finding_ids": len({f for p in b.fleet for f in p.finding_ids}),
        "instances": len(before),
        "qualifying_instances": len(targets),
        "member_accounts": len(org.member_ids),
        "regions": list(org.regions),
        "lambda_invocations": poller.invocations,
        "lambda_crashes": poller.crashes,
        "batch_item_failures": poller.batch_failures,
        "dlq_after_burst": dead_after_burst,
        "redriven": redriven,
        "dlq_at_end": len(dead),
        "faults_injected": dict(sorted(faults.counts.items())),
        "decisions_by_kind": dict(sorted(decision_kinds.items())),
        "decisions_by_reason": dict(sorted(reasons.items())),
        "releases": dict(sorted(releases.items())),
        "metrics_emitted_emf": {k: emitted[k] for k in sorted(emitted)},
        "lost": len(lost),
        "half_done_without_record": len(half_done_mid) + len(half_done_end),
        "incomplete_after_redrive": len(incomplete),
        "touched_by_mistake": len(touched),
        "duplicate_containments": len(duplicates),
        "release_not_exact": len(not_exact),
        "seconds": {
            "build_fleet": round(built - started, 1),
            "burst_phase": round(phase1 - burst_start, 1),
            "redrive_phase": round(phase2 - phase1, 1),
            "release_phase": round(finished - phase2, 1),
            "total": round(finished - started, 1),
        },
    }
    path = record_figures("burst", figures)
    with capsys.disabled():
        print("\n---- reliability burst figures ----")
        print(json.dumps(figures, indent=2, sort_keys=True))
        print(f"(written to {path})")

    assert lost == []
    assert half_done_end == []
    assert incomplete == []
    assert touched == []
    assert duplicates == []
    assert not_exact == []
    # The faults really happened, and the alarms a person would see were emitted.
    assert all(faults.counts[k] > 0 for k in (
        "ec2-RequestLimitExceeded", "ec2-Throttling", "ec2-throttled-then-retried", "assume-role-denied",
        "ddb-conditional-conflict", "sns-outage", "crash-after-network",
    )), faults.counts  # fmt: skip
    assert emitted["Failed"] > 0 and emitted["AssumeRoleFailed"] > 0 and emitted["NotificationsFailed"] > 0
    assert emitted["Isolated"] == len(targets)
    noted = [d for d in decisions if d.notification == "failed"]
    assert len(noted) == emitted["NotificationsFailed"]


def _fully_contained(state: dict[str, Any]) -> bool:
    q, n = quarantined_enis(state)
    return (
        n > 0
        and q == n
        and state["termination_protection"] is True
        and state["shutdown"] == "stop"
        and not any(state["delete_on_termination"].values())
        and state["profile"] is None
        and state["asg"] is None
        and state["target_groups"] == []
        and state["snapshots"] == len(state["delete_on_termination"])
        and state["tags"].get("orgcontain:status") == "quarantined"
    )


def _half_done_without_record(
    b: Burst,
    state: dict[str, dict[str, Any]],
    ledger: Ledger,
    decisions: list[DecisionRecord],
    poller: Poller,
) -> list[str]:
    """Invariant 2: an instance with some ENIs quarantined and others not (or quarantined with no
    incident, or an incident called isolated that is not) must have its incident recorded as not
    done, a failed decision on one of its findings, and the Failed metric emitted."""
    problems = []
    failed_instances = {d.instance_id for d in decisions if d.decision == "failed"}
    for p in b.fleet:
        i = p.inst
        q, n = quarantined_enis(state[i.instance_id])
        incident = ledger.incident(i.account_id, i.region, i.instance_id)
        if incident is not None and incident.status == "isolated":
            if not _fully_contained(state[i.instance_id]):
                problems.append(f"{i.instance_id}: ledger says isolated, AWS says {q}/{n} ENIs and more")
            continue
        if q == 0 and (incident is None or incident.status != "containing"):
            continue
        if incident is None:
            problems.append(f"{i.instance_id}: {q}/{n} ENIs quarantined and no incident")
        elif (
            incident.status != "containing"
            or i.instance_id not in failed_instances
            or not poller.metrics["Failed"]
        ):
            problems.append(
                f"{i.instance_id}: {q}/{n} ENIs quarantined, incident {incident.status}, no failure recorded"
            )
    return problems


def _diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
