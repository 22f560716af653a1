"""Hub CPU time per finding, excluding AWS round trips (not a test: run it by hand).

    /work/venv/bin/python -m tests.hub.cpu_profile [N]

Times the pure work the hub does for one finding that ends in an isolation: the SQS body parsed
and trust-checked (envelope, Finding model, ARN), the policy three times (upper bound, with the OU
path, with the live tags), the breaker, the ledger items built (incident lock, breaker, decision
record, their DynamoDB attribute maps) and read back, the SNS message and the result event
composed. AWS calls are not made.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime

from hub.breaker import BreakerState, evaluate
from hub.config import parse_config
from hub.ledger import CONTAINING, DecisionRecord, Incident, breaker_put, iso
from hub.models import Decision
from hub.notify import compose, result_event
from hub.outcome import Outcome
from hub.plan import build_plan
from hub.policy import decide
from hub.trust import check_event
from spoke.models import EniState, PreState
from tests.hub.helpers import envelope, make_finding

ADMIN, MEMBER, OU = "222222222222", "333333333333", "ou-abcd-11111111"


def main(n: int = 2000) -> None:
    config = parse_config(
        {
            "organization_id": "o-exampleorg1",
            "hub": {"account_id": "111111111111", "region": "us-east-1"},
            "trusted_event_accounts": [ADMIN],
            "regions": ["us-east-1", "eu-west-1"],
            "response": {
                "quarantine_ingress": [{"cidr": "10.0.0.10/32", "ports": [22, 443]}],
                "finding_types": {"include": ["*"], "exclude": ["Recon:*", "PenTest:*"]},
            },
            "organizational_units": {OU: {"mode": "isolate"}},
            "accounts": {"444444444444": {"mode": "notify"}},
        }
    )
    body = json.dumps(envelope(make_finding(MEMBER, "eu-west-1", "i-0123456789abcdef0"), ADMIN))
    pre = PreState(
        instance_id="i-0123456789abcdef0",
        state="running",
        vpc_id="vpc-1",
        enis=(EniState(eni_id="eni-1", groups=("sg-a", "sg-b")), EniState(eni_id="eni-2", groups=("sg-b",))),
        tags={"Name": "web"},
    )
    breaker = BreakerState(7, tuple(time.time() - i * 60 for i in range(7)))

    def one(critical_only: bool = False) -> None:
        checked = check_event(body, config)
        finding = checked.finding
        assert finding is not None and checked.rejection is None
        decide(finding, config)
        d = decide(finding, config, (OU,))
        live = decide(finding, config, (OU,), pre.tags)
        assert live.decision is Decision.ISOLATED
        now = time.time()
        verdict = evaluate(breaker, now=now, max_isolations=20, window_seconds=3600)
        incident = Incident(
            account_id=finding.account_id,
            region=finding.region,
            instance_id=pre.instance_id,
            incident_id=f"{pre.instance_id}-{int(now * 1000)}",
            status=CONTAINING,
            first_finding_id=finding.id,
            finding_ids=(finding.id,),
            opened_at=iso(now),
            updated_at=iso(now),
            lease_owner="m",
            lease_expires=now + 300,
            attempts=1,
            pre_state=pre,
            reason=d.reason,
        )
        item = incident.to_item()
        breaker_put("t", breaker, verdict.new_state)
        build_plan(
            config,
            instance_id=pre.instance_id,
            finding_id=finding.id,
            quarantined_at=datetime.now(UTC),
            reason=d.reason,
        )
        if critical_only:  # what runs before the network change
            return
        Incident.from_item(item)
        outcome = Outcome(
            Decision.ISOLATED,
            d.reason,
            "m",
            account_id=finding.account_id,
            region=finding.region,
            instance_id=pre.instance_id,
            finding=finding,
            finding_id=finding.id,
            incident=incident,
        )
        DecisionRecord(
            decision="isolated", reason=d.reason, delivery_id="m", decided_at=now, data={"x": 1}
        ).to_item()
        compose(outcome)
        result_event(outcome, "bus")

    for _ in range(200):  # warm caches (compiled policy, pydantic)
        one()
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        one()
    cpu = (time.process_time() - start_cpu) / n
    wall = (time.perf_counter() - start_wall) / n
    start = time.process_time()
    for _ in range(n):
        one(critical_only=True)
    critical = (time.process_time() - start) / n
    # The parse + trust + policy part alone (what every finding pays, whatever the decision).
    start = time.process_time()
    for _ in range(n):
        f = check_event(body, config).finding
        assert f is not None
        decide(f, config, (OU,))
    front = (time.process_time() - start) / n
    print(f"findings: {n}")
    print(f"hub CPU per isolated finding (no AWS): {cpu * 1e6:.0f} us (wall {wall * 1e6:.0f} us)")
    print(f"  before the network change (critical):  {critical * 1e6:.0f} us")
    print(f"  of which parse + trust + policy:      {front * 1e6:.0f} us")
    print("  (the rest: ledger read-back, decision record, SNS body with indented JSON, result event)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
