"""The ledger on moto's DynamoDB: the lock, the breaker's optimistic update, released marks."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import boto3
import pytest

from hub.breaker import BreakerState, evaluate
from hub.ledger import (
    CONTAINING,
    ISOLATED,
    RELEASED,
    DecisionRecord,
    Incident,
    Ledger,
    LockConflict,
    table_definition,
)
from spoke.models import EniState, PreState

ACCOUNT, REGION, INSTANCE = "333333333333", "eu-west-1", "i-0123456789abcdef0"


@pytest.fixture
def ledger(aws: None) -> Ledger:
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(**table_definition("ledger"))
    return Ledger("ledger", client)


def pre() -> PreState:
    return PreState(
        instance_id=INSTANCE,
        state="running",
        vpc_id="vpc-1",
        enis=(
            EniState(eni_id="eni-1", groups=("sg-a", "sg-b")),
            EniState(eni_id="eni-2", device_index=1, groups=("sg-b",)),
        ),
    )


def incident(finding: str = "f1", **kw: Any) -> Incident:
    now = time.time()
    base = Incident(
        account_id=ACCOUNT,
        region=REGION,
        instance_id=INSTANCE,
        incident_id=f"{INSTANCE}-{finding}",
        status=CONTAINING,
        first_finding_id=finding,
        finding_ids=(finding,),
        opened_at="2026-01-01T00:00:00.000Z",
        updated_at="2026-01-01T00:00:00.000Z",
        lease_owner=f"owner-{finding}",
        lease_expires=now + 300,
        attempts=1,
        pre_state=pre(),
    )
    return replace(base, **kw)


def open_one(ledger: Ledger, inc: Incident, *, replaces: Incident | None = None) -> BreakerState:
    pf = ledger.prefetch(ACCOUNT, REGION, INSTANCE, inc.first_finding_id)
    verdict = evaluate(pf.breaker, now=time.time(), max_isolations=10, window_seconds=3600)
    ledger.open_incident(
        inc,
        replaces=replaces,
        breaker_from=pf.breaker,
        breaker_to=verdict.new_state,
        check_not_released=inc.first_finding_id,
    )
    return verdict.new_state


def test_one_containment_per_instance(ledger: Ledger) -> None:
    open_one(ledger, incident("f1"))
    with pytest.raises(LockConflict) as err:
        open_one(ledger, incident("f2"))
    assert err.value.kind == "incident"
    assert err.value.current is not None and err.value.current.first_finding_id == "f1"
    pf = ledger.prefetch(ACCOUNT, REGION, INSTANCE, "f2")
    assert pf.incident is not None and pf.incident.pre_state == pre()
    assert pf.breaker.version == 1 and len(pf.breaker.stamps) == 1  # the loser did not count


def test_breaker_update_is_version_conditioned(ledger: Ledger) -> None:
    stale = ledger.prefetch(ACCOUNT, REGION, INSTANCE, "f1").breaker
    other = replace(incident("f9"), instance_id="i-0fffffffffffffff0")
    ledger.open_incident(
        other,
        replaces=None,
        breaker_from=stale,
        breaker_to=evaluate(stale, now=time.time(), max_isolations=5, window_seconds=60).new_state,
        check_not_released=None,
    )
    with pytest.raises(LockConflict) as err:
        ledger.open_incident(
            incident("f1"),
            replaces=None,
            breaker_from=stale,  # version 0, but the item exists now
            breaker_to=evaluate(stale, now=time.time(), max_isolations=5, window_seconds=60).new_state,
            check_not_released="f1",
        )
    assert err.value.kind == "breaker"
    assert ledger.incident(ACCOUNT, REGION, INSTANCE) is None  # the lock was not taken either


def test_attach_survives_the_holders_finish(ledger: Ledger) -> None:
    inc = incident("f1")
    open_one(ledger, inc)
    ledger.attach(inc, "f2")
    done = ledger.finish(
        replace(inc, status=ISOLATED, steps=({"step": "network", "status": "done"},)), inc.lease_owner
    )
    assert set(done.finding_ids) == {"f1", "f2"}
    assert done.lease_owner == "" and done.lease_expires == 0
    with pytest.raises(LockConflict):  # no longer the holder
        ledger.finish(inc, inc.lease_owner)


def test_take_over_needs_the_lease_it_saw(ledger: Ledger) -> None:
    inc = incident("f1", lease_expires=time.time() - 1)
    open_one(ledger, inc)
    seen = ledger.incident(ACCOUNT, REGION, INSTANCE)
    assert seen is not None and not seen.lease_valid(time.time())
    mine = ledger.take_over(seen, owner="retry", lease_expires=time.time() + 60, finding_id="f1")
    assert mine.lease_owner == "retry" and mine.attempts == 2 and mine.pre_state == pre()
    with pytest.raises(LockConflict):
        ledger.take_over(seen, owner="third", lease_expires=time.time() + 60, finding_id="f1")


def test_release_marks_findings_and_a_new_incident_archives_the_old(ledger: Ledger) -> None:
    inc = incident("f1")
    open_one(ledger, inc)
    ledger.attach(inc, "f2")
    ledger.finish(replace(inc, status=ISOLATED), inc.lease_owner)
    current = ledger.incident(ACCOUNT, REGION, INSTANCE)
    assert current is not None
    claimed = ledger.claim_for_release(current, owner="op", lease_expires=time.time() + 60, now=time.time())
    released = ledger.mark_released(replace(claimed, released_by="arn:op", release_reason="clean"), "op")
    assert released.status == RELEASED
    assert ledger.is_released(ACCOUNT, REGION, "f1") and ledger.is_released(ACCOUNT, REGION, "f2")
    assert not ledger.is_released(ACCOUNT, REGION, "f3")
    # The same finding cannot open a new incident...
    with pytest.raises(LockConflict) as err:
        open_one(ledger, incident("f1"), replaces=ledger.incident(ACCOUNT, REGION, INSTANCE))
    assert err.value.kind == "released"
    # ...a new one can, and the released incident is kept as history.
    old = ledger.incident(ACCOUNT, REGION, INSTANCE)
    open_one(ledger, incident("f3"), replaces=old)
    history = ledger.history(ACCOUNT, REGION, INSTANCE)
    assert [h.status for h in history] == [RELEASED, CONTAINING]
    assert history[0].released_by == "arn:op" and set(history[0].finding_ids) == {"f1", "f2"}
    assert [i.incident_id for i in ledger.open_incidents()] == [history[1].incident_id]
    assert [i.instance_id for i in ledger.current_incidents(INSTANCE)] == [INSTANCE]


def test_decision_records_round_trip(ledger: Ledger) -> None:
    rec = DecisionRecord(
        decision="isolated",
        reason="mode-isolate",
        delivery_id="m1",
        decided_at=1_800_000_000.5,
        account_id=ACCOUNT,
        region=REGION,
        finding_id="f1",
        instance_id=INSTANCE,
        severity=8.0,
        data={"steps": [{"step": "network"}]},
    )
    ledger.record_decision(rec)
    ledger.record_decision(
        DecisionRecord(decision="rejected", reason="malformed-event", delivery_id="m2", decided_at=1.0)
    )
    got = ledger.decisions(ACCOUNT, REGION, "f1")
    assert len(got) == 1 and got[0].decision == "isolated" and got[0].data["steps"][0]["step"] == "network"
    assert got[0].severity == 8.0
    assert [d.reason for d in ledger.event_decisions("m2")] == ["malformed-event"]
    item = ledger.client.get_item(TableName="ledger", Key={"pk": {"S": rec.pk}, "sk": {"S": rec.sk}})["Item"]
    assert int(item["expires_at"]["N"]) > 1_800_000_000 + 300 * 86400  # TTL on decision records


def test_an_oversized_decision_is_recorded_and_reads_back_as_a_truncation_note(ledger: Ledger) -> None:
    detail = "x" * 350_000  # past what one record keeps (DynamoDB items hold 400 KB)
    rec = DecisionRecord(
        decision="failed",
        reason="spoke-error",
        delivery_id="m3",
        decided_at=1_800_000_000.0,
        account_id=ACCOUNT,
        region=REGION,
        finding_id="f-big",
        data={"steps": [{"step": "network", "detail": detail}]},
    )
    ledger.record_decision(rec)
    [got] = ledger.decisions(ACCOUNT, REGION, "f-big")
    assert got.decision == "failed"
    assert got.data["truncated"] is True and got.data["chars"] > 350_000
    assert got.data["head"].startswith('{"steps"')
