"""A GuardDuty finding travels from the admin account's default bus to the hub's queue.

Deployed with `orgcontain deploy` on an org whose GuardDuty admin (``audit``) is not the hub
account: the finding is put on the admin's default bus in the *second* region; the forwarder rule
there sends it to the central bus in the hub account's home region, whose rule sends it to the
queue the hub Lambda reads.

What moto does not reproduce faithfully, so what this test can and cannot show:
- the cross-account, cross-region bus target is delivered without evaluating the central bus's
  policy or the forwarder role (moto skips EventBusPolicy), and as a *new* event: its ``account``
  and ``region`` become the hub's and ``resources`` is dropped, where AWS keeps the original
  envelope (the admin account and the finding's region). The test therefore checks what survives
  the hop in both: ``source``, ``detail-type`` and the ``detail`` (the finding itself, with the
  member's ``accountId`` and ``region``, which is what the hub acts on);
- ``aws.*`` sources are accepted by moto's ``put_events`` (AWS reserves them for AWS services),
  which is what lets the test stand in for GuardDuty;
- the hub's SQS event source mapping is deleted first: moto would consume the messages itself.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from hub.demo.org import EmulatedOrg

pytestmark = pytest.mark.usefixtures("aws")

FIXTURE = "elastic-ec2-bitcointool-b-sample-count4.json"


def _finding(
    load_fixture: Any, account: str, region: str, severity: float, finding_id: str
) -> dict[str, Any]:
    raw = load_fixture(FIXTURE)
    detail = copy.deepcopy(raw.get("detail", raw))
    detail.update({"accountId": account, "region": region, "severity": severity, "id": finding_id})
    return detail


def _receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    out = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not msgs:
            return out
        for m in msgs:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_high_severity_finding_reaches_the_hub_queue_and_a_low_one_does_not(
    org_separate_admin: EmulatedOrg, deployed_factory: Any, guardduty_fixture: Any
) -> None:
    org = org_separate_admin
    deployed_factory(org)
    hub_region, second_region = org.regions[0], org.regions[1]
    lam = org.client("lambda", org.hub_account_id, hub_region)
    for mapping in lam.list_event_source_mappings(FunctionName="orgcontain-hub")["EventSourceMappings"]:
        lam.delete_event_source_mapping(UUID=mapping["UUID"])
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in org.client("cloudformation", org.hub_account_id, hub_region).describe_stacks(
            StackName="orgcontain-hub"
        )["Stacks"][0]["Outputs"]
    }

    member = org.accounts["prod-a"]
    high = _finding(guardduty_fixture, member, second_region, 8.0, "high-finding-1")
    low = _finding(guardduty_fixture, member, second_region, 2.0, "low-finding-1")
    admin_events = org.client("events", org.guardduty_admin_id, second_region)
    entries = [
        {"Source": "aws.guardduty", "DetailType": "GuardDuty Finding", "Detail": json.dumps(d)}
        for d in (high, low)
    ]
    entries.append(
        {"Source": "aws.guardduty", "DetailType": "GuardDuty Runtime Protection Unhealthy", "Detail": "{}"}
    )
    resp = admin_events.put_events(Entries=entries)
    assert resp["FailedEntryCount"] == 0

    sqs = org.client("sqs", org.hub_account_id, hub_region)
    received = _receive_all(sqs, outputs["QueueUrl"])
    assert [e["detail"]["id"] for e in received] == ["high-finding-1"]
    (event,) = received
    assert event["source"] == "aws.guardduty"
    assert event["detail-type"] == "GuardDuty Finding"
    assert event["detail"]["accountId"] == member
    assert event["detail"]["region"] == second_region
    assert event["detail"]["severity"] == 8.0
    # Nothing was dead-lettered, and nothing reached the hub through any other account's bus.
    assert _receive_all(sqs, outputs["DeadLetterQueueUrl"]) == []


def test_a_member_account_default_bus_does_not_forward(
    org_separate_admin: EmulatedOrg, deployed_factory: Any, guardduty_fixture: Any
) -> None:
    """Only the GuardDuty admin has the forwarder: a finding on a member's own bus stays there."""
    org = org_separate_admin
    deployed_factory(org)
    hub_region = org.regions[0]
    lam = org.client("lambda", org.hub_account_id, hub_region)
    for mapping in lam.list_event_source_mappings(FunctionName="orgcontain-hub")["EventSourceMappings"]:
        lam.delete_event_source_mapping(UUID=mapping["UUID"])
    member = org.accounts["dev"]
    detail = _finding(guardduty_fixture, member, hub_region, 9.0, "member-bus-finding")
    org.client("events", member, hub_region).put_events(
        Entries=[{"Source": "aws.guardduty", "DetailType": "GuardDuty Finding", "Detail": json.dumps(detail)}]
    )
    sqs = org.client("sqs", org.hub_account_id, hub_region)
    url = sqs.get_queue_url(QueueName="orgcontain-findings")["QueueUrl"]
    assert _receive_all(sqs, url) == []
