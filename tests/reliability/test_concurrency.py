"""Issue #7, concurrency: several Lambda containers and threads delivering different findings (and
the same finding twice) for the same instances at the same moment, released together by a barrier.

Each instance ends with one incident, one ``isolated`` decision, one evidence set and one breaker
stamp; every other delivery ends ``already-isolated`` (after at most a retry while the holder
works); every finding is attached to the incident; nothing else in the accounts changes.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import hub.handler as handler
from hub.demo.org import EmulatedOrg, Instance
from hub.outcome import Outcome
from hub.responder import Responder
from tests.hub.helpers import envelope, make_finding, sqs_event
from tests.reliability.conftest import Hub
from tests.reliability.harness import fleet_state, quarantined_enis

CONTAINERS = 3
FINDINGS_PER_INSTANCE = 5
DUPLICATES_PER_INSTANCE = 2
LEASE = 300.0


def _deliver(container: Responder, record: dict[str, Any]) -> Outcome:
    return handler.run_batch(container, [record], LEASE)[record["messageId"]]


def test_simultaneous_findings_for_one_instance_contain_it_once(
    aws: None, make_hub: Callable[..., Hub]
) -> None:
    org = EmulatedOrg()
    hub = make_hub(org, config=None)
    a, b = org.member_ids[0], org.member_ids[1]
    targets: list[Instance] = [
        org.workload(a, org.regions[0]).run_instance(enis=3, extra_volumes=1, profile=True),
        org.workload(a, org.regions[0]).run_instance(enis=1),
        org.workload(b, org.regions[1]).run_instance(enis=2, extra_volumes=2),
    ]
    bystander = org.workload(a, org.regions[0]).run_instance(enis=2, profile=True)
    pairs = sorted({(i.account_id, i.region) for i in [*targets, bystander]})
    before = fleet_state(org, pairs)

    records: list[tuple[Instance, dict[str, Any]]] = []
    for inst in targets:
        events = [
            envelope(
                make_finding(inst.account_id, inst.region, inst.instance_id, finding_id=uuid.uuid4().hex),
                org.guardduty_admin_id,
            )
            for _ in range(FINDINGS_PER_INSTANCE)
        ]
        events += [copy.deepcopy(events[n]) for n in range(DUPLICATES_PER_INSTANCE)]  # at-least-once
        records += [(inst, r) for r in sqs_event(events)["Records"]]
    containers = [hub.container() for _ in range(CONTAINERS)]
    gate = threading.Barrier(len(records))

    def first_delivery(n: int) -> Outcome:
        gate.wait(timeout=60)
        return _deliver(containers[n % CONTAINERS], records[n][1])

    with ThreadPoolExecutor(max_workers=len(records)) as pool:
        outcomes = list(pool.map(first_delivery, range(len(records))))

    # Redelivery of what failed (SQS makes it visible again), until every delivery is terminal.
    final = dict(enumerate(outcomes))
    rounds = 0
    while any(o.retry for o in final.values()):
        rounds += 1
        assert rounds <= 5, [(o.reason, o.detail) for o in final.values() if o.retry]
        for n, outcome in list(final.items()):
            if outcome.retry:
                record = copy.deepcopy(records[n][1])
                record["attributes"]["ApproximateReceiveCount"] = str(rounds + 1)
                final[n] = _deliver(containers[(n + rounds) % CONTAINERS], record)

    after = fleet_state(org, pairs)
    ledger = hub.ledger
    decisions = ledger.all_decisions()
    first_reasons = Counter(f"{o.decision.value}:{o.reason}" for o in outcomes)
    for inst in targets:
        mine = [n for n, (i, _) in enumerate(records) if i is inst]
        ends = Counter(final[n].decision.value for n in mine)
        assert ends == {"isolated": 1, "already-isolated": len(mine) - 1}, (inst.instance_id, ends)
        isolated = [d for d in decisions if d.instance_id == inst.instance_id and d.decision == "isolated"]
        assert len(isolated) == 1
        history = ledger.history(inst.account_id, inst.region, inst.instance_id)
        assert len(history) == 1 and history[0].status == "isolated"
        incident = history[0]
        delivered = {final[n].finding_id for n in mine}
        assert len(delivered) == FINDINGS_PER_INSTANCE
        attached = set(incident.finding_ids) | {incident.first_finding_id}
        assert attached == delivered, "every finding is attached to the one incident"
        state = after[inst.instance_id]
        q, n_enis = quarantined_enis(state)
        assert q == n_enis == len(inst.eni_ids)
        assert state["snapshots"] == len(before[inst.instance_id]["delete_on_termination"]), (
            "one evidence set"
        )
        assert len(incident.snapshot_ids) == state["snapshots"]
    assert len(ledger.breaker().stamps) == len(targets)
    assert after[bystander.instance_id] == before[bystander.instance_id]
    # The race was real: deliveries met an incident another container was still containing.
    assert (
        first_reasons["already-isolated:incident-in-progress"]
        + first_reasons["failed:containment-in-progress"]
        > 0
    ), first_reasons
