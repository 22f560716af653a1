"""Figure 5: the hub's CPU time per finding outside AWS round trips (no AWS call is made).

For one finding that ends in an isolation, the pure work the hub does: the SQS body parsed and
trust-checked (envelope, Finding model, ARN), the policy three times (upper bound, with the OU
path, with the live tags), the breaker, the ledger items built (incident lock, breaker, decision
record, their DynamoDB attribute maps) and read back, the SNS message and the result event
composed. Timed with ``time.process_time`` over ``n`` findings after a warm-up (moved here from
tests/hub/cpu_profile.py).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from tests.hub.helpers import envelope, make_finding

ADMIN, MEMBER, OU = "222222222222", "333333333333", "ou-abcd-11111111"


def run(n: int = 2000, repeats: int = 3) -> dict[str, Any]:
    from hub.breaker import BreakerState, evaluate
    from hub.config import parse_config
    from hub.ledger import DecisionRecord, Incident, breaker_put
    from hub.models import Decision
    from hub.notify import compose, result_event
    from hub.outcome import Outcome
    from hub.plan import build_plan
    from hub.policy import decide
    from hub.trust import check_event
    from spoke.models import EniState, PreState

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
        incident = Incident.opened(
            finding.account_id,
            finding.region,
            pre,
            finding_id=finding.id,
            owner="m",
            now=now,
            lease_seconds=300,
            reason=d.reason,
            finding_type=finding.type,
            severity=finding.severity,
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

    def timed(body_fn: Any) -> float:
        best = float("inf")
        for _ in range(repeats):
            start = time.process_time()
            for _ in range(n):
                body_fn()
            best = min(best, (time.process_time() - start) / n)
        return best

    def front() -> None:
        f = check_event(body, config).finding
        assert f is not None
        decide(f, config, (OU,))

    for _ in range(200):  # warm caches (compiled policy, pydantic)
        one()
    return {
        "findings": n,
        "repeats": repeats,
        "cpu_ms_per_finding": round(timed(one) * 1000, 3),
        "critical_cpu_ms": round(timed(lambda: one(critical_only=True)) * 1000, 3),
        "parse_trust_policy_ms": round(timed(front) * 1000, 3),
    }


def report(fig: dict[str, Any]) -> list[str]:
    return [
        f"5. hub CPU per isolated finding, outside AWS round trips: {fig['cpu_ms_per_finding']:.3f} ms "
        f"(target < 2 ms; best of {fig['repeats']} x {fig['findings']} findings, process time)",
        f"   before the network change: {fig['critical_cpu_ms']:.3f} ms; of which parse + trust + policy: "
        f"{fig['parse_trust_policy_ms']:.3f} ms",
    ]
