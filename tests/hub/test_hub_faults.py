"""Faults around the decision: a ledger that cannot be written, an account suspended meanwhile."""

from __future__ import annotations

from typing import Any

import boto3

from tests.hub.conftest import HubEnv
from tests.hub.helpers import call_fails


def test_unrecordable_decision_fails_only_its_own_record(hub_env: HubEnv) -> None:
    env = hub_env
    broken_finding = env.finding("prod-a", "us-east-1", "i-0123456789abcdef0", severity=2.0)
    fine_finding = env.finding("prod-b", "eu-west-1", "i-0fedcba9876543210", severity=2.0)
    frozen = env.org.session(env.org.hub_account_id).get_credentials().get_frozen_credentials()  # type: ignore[union-attr]
    hub_session = boto3.Session(
        aws_access_key_id=frozen.access_key,
        aws_secret_access_key=frozen.secret_key,
        aws_session_token=frozen.token,
        region_name="us-east-1",
    )
    hub_session.events.register_first(
        "before-call.dynamodb.PutItem",
        call_fails(lambda body: broken_finding["id"] in body, 500, "InternalServerError", "DynamoDB is down"),
    )
    env.rewire(hub_session=hub_session)
    events = [env.event(broken_finding), env.event(fine_finding)]
    response = env.invoke(*events)
    assert len(response["batchItemFailures"]) == 1
    assert env.decisions_for(broken_finding) == []
    assert [(r.decision, r.reason) for r in env.decisions_for(fine_finding)] == [
        ("skipped", "below-threshold")
    ]
    assert env.responder.telemetry.counts["LedgerUnavailable"] == 1


def test_suspended_account_is_rejected(hub_env: HubEnv, hub_logs: Any) -> None:
    env = hub_env
    inst = env.org.workload("sandbox", "us-east-1").run_instance()
    env.org.management_client("organizations").close_account(AccountId=inst.account_id)
    finding = env.finding("sandbox", "us-east-1", inst.instance_id)
    assert env.invoke(env.event(finding)) == {"batchItemFailures": []}
    rec = env.decisions_for(finding)
    assert [(r.decision, r.reason) for r in rec] == [("rejected", "account-not-active")]
    assert not env.quarantined("sandbox", "us-east-1", inst.instance_id)
    assert any("account-not-active" in m for m in hub_logs.messages())
