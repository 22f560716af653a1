"""End to end on the emulated org: SQS batches through hub.handler.lambda_handler, spoke roles in
member accounts, the ledger, SNS (read through a subscribed queue) and result events."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from hub.demo.org import Instance
from hub.handler import FindingFailed
from hub.models import Decision
from hub.policy import MODE_TAG
from tests.hub.conftest import HubEnv, json_tail
from tests.hub.helpers import base_config, body_text, call_fails, error_response, fail_when


def _groups(env: HubEnv, inst: Instance) -> dict[str, list[str]]:
    return env.enis_groups(inst.account_id, inst.region, inst.instance_id)


def _one_decision(env: HubEnv, detail: dict[str, Any]) -> Any:
    records = env.decisions_for(detail)
    assert len(records) == 1, [(r.decision, r.reason) for r in records]
    return records[0]


def test_mixed_batch_contains_exactly_the_right_instances(hub_env: HubEnv) -> None:
    env, org = hub_env, hub_env.org
    data = base_config(org)
    data["organizational_units"] = {
        org.ous["Workloads"]: {"mode": "notify"},
        org.ous["Prod"]: {"mode": "isolate"},
    }
    data["accounts"] = {org.accounts["sandbox"]: {"mode": "off", "reason": "sandbox"}}
    env.write_config(data)

    a = org.workload("prod-a", "us-east-1").run_instance(enis=2)  # isolated (Prod overrides Workloads)
    a_peer = org.workload("prod-a", "us-east-1").run_instance()  # same account, no finding
    b = org.workload("prod-b", "eu-west-1").run_instance(enis=3)  # isolated, the other region
    d = org.workload("dev", "eu-west-1").run_instance()  # Workloads OU: notify
    s = org.workload("sandbox", "us-east-1").run_instance()  # account off: skipped
    t = org.workload("prod-b", "us-east-1").run_instance(tags={MODE_TAG: "off"})  # tag exemption
    low = org.workload("prod-a", "eu-west-1").run_instance()  # below threshold
    before = {i.instance_id: _groups(env, i) for i in (a, a_peer, b, d, s, t, low)}

    f = {
        "a": env.finding("prod-a", "us-east-1", a.instance_id),
        "b": env.finding(
            "prod-b", "eu-west-1", b.instance_id, finding_type="CryptoCurrency:EC2/BitcoinTool.B!DNS"
        ),
        "d": env.finding("dev", "eu-west-1", d.instance_id),
        "s": env.finding("sandbox", "us-east-1", s.instance_id),
        "t": env.finding("prod-b", "us-east-1", t.instance_id, tags={MODE_TAG: "off"}),
        "low": env.finding("prod-a", "eu-west-1", low.instance_id, severity=5.0),
        "sample": env.finding("prod-a", "us-east-1", a_peer.instance_id, sample=True),
        "key": env.finding("prod-a", "us-east-1", a_peer.instance_id, resource_type="AccessKey"),
        "region": env.finding("prod-a", "ap-south-1", "i-0aaaaaaaaaaaaaaaa"),
        "outsider": env.finding("999999999999", "us-east-1", "i-0bbbbbbbbbbbbbbbb"),
        "forged": env.finding("prod-a", "us-east-1", a_peer.instance_id),
        "source": env.finding("prod-a", "us-east-1", a_peer.instance_id),
    }
    events = [env.event(detail) for key, detail in f.items() if key not in ("forged", "source")]
    events.append(env.event(f["forged"], account=org.accounts["prod-a"]))  # a member posing as admin
    events.append(env.event(f["source"], source="custom.guardduty"))
    events.append("this is not json")
    response = env.invoke(*events)
    assert response == {"batchItemFailures": []}

    # The network: exactly a and b, every ENI, in their own accounts and regions.
    assert env.quarantined(a.account_id, a.region, a.instance_id)
    assert len(_groups(env, a)) == 2
    assert env.quarantined(b.account_id, b.region, b.instance_id)
    assert len(_groups(env, b)) == 3
    for untouched in (a_peer, d, s, t, low):
        assert _groups(env, untouched) == before[untouched.instance_id], untouched

    expected = {
        "a": ("isolated", "mode-isolate"),
        "b": ("isolated", "mode-isolate"),
        "d": ("notified", "mode-notify"),
        "s": ("skipped", "account-opted-off"),
        "t": ("notified", "tag-exemption"),
        "low": ("skipped", "below-threshold"),
        "sample": ("skipped", "sample-finding"),
        "key": ("skipped", "not-instance-finding"),
        "region": ("notified", "region-not-covered"),
        "outsider": ("rejected", "account-not-in-organization"),
        "forged": ("rejected", "untrusted-event-account"),
        "source": ("rejected", "untrusted-source"),
    }
    for key, (decision, reason) in expected.items():
        rec = _one_decision(env, f[key])
        assert (rec.decision, rec.reason) == (decision, reason), key
    # ... and the garbage body: one decision too, under its delivery.
    all_decisions = env.decisions()
    assert len(all_decisions) == len(expected) + 1
    assert [r.reason for r in all_decisions if r.finding_id is None] == ["malformed-event"]

    # The ledger holds the pre-isolation groups per ENI (authoritative for release).
    inc = env.ledger.incident(a.account_id, a.region, a.instance_id)
    assert inc is not None and inc.status == "isolated" and inc.pre_state is not None
    assert {e.eni_id: sorted(e.groups) for e in inc.pre_state.enis} == {
        eni: sorted(gid for gid in _ids(env, a, eni, before)) for eni in a.eni_ids
    }

    # SNS: isolated x2 + notified x3, each with attributes; release line for the isolated ones.
    messages = env.stack.notifications()
    by_decision: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        by_decision.setdefault(m["attributes"]["decision"], []).append(m)
    assert sorted((k, len(v)) for k, v in by_decision.items()) == [("isolated", 2), ("notified", 3)]
    for m in messages:
        assert len(m["subject"]) < 100 and m["subject"].isascii()
        assert m["attributes"]["account"] and "severity" in m["attributes"]
        record = json_tail(m["body"])
        assert record["decision"] == m["attributes"]["decision"]
    iso_a = next(m for m in by_decision["isolated"] if a.instance_id in m["subject"])
    assert f"orgcontain release {a.account_id} us-east-1 {a.instance_id} --reason" in iso_a["body"]
    assert "Where:" in iso_a["body"] and "Why:" in iso_a["body"] and "network: done" in iso_a["body"]
    assert iso_a["attributes"]["severity"] == "8"
    # Result events on the orgcontain bus for the isolations and notices.
    results = env.stack.result_events()
    assert {(r["detail"]["decision"], r["detail-type"], r["source"]) for r in results} >= {
        ("isolated", "OrgContain Containment Result", "orgcontain"),
        ("notified", "OrgContain Containment Result", "orgcontain"),
    }
    assert not any(r["detail"]["decision"] in ("skipped", "rejected") for r in results)
    counts = env.responder.telemetry.counts
    assert counts["Isolated"] == 2 and counts["Rejected"] == 4 and counts["FindingsReceived"] == 13
    assert len(env.responder.telemetry.observations["SecondsToNetworkIsolation"]) == 2


def _ids(env: HubEnv, inst: Instance, eni: str, before: dict[str, dict[str, list[str]]]) -> list[str]:
    """Group ids the ENI had before (the fixture recorded names; map names back to ids)."""
    ec2 = env.org.client("ec2", inst.account_id, inst.region)
    names = before[inst.instance_id][eni]
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [inst.vpc_id]}])[
        "SecurityGroups"
    ]
    return [g["GroupId"] for g in groups if g["GroupName"] in names]


def test_same_finding_twice_and_two_findings_for_one_instance(hub_env: HubEnv) -> None:
    env = hub_env
    inst = env.org.workload("prod-a", "eu-west-1").run_instance()
    first = env.finding("prod-a", "eu-west-1", inst.instance_id)
    second = env.finding("prod-a", "eu-west-1", inst.instance_id, finding_type="Trojan:EC2/DropPoint!DNS")
    assert env.invoke(env.event(first), env.event(second)) == {"batchItemFailures": []}
    again = dict(first, service={**first["service"], "count": 7})  # GuardDuty's update of the same id
    assert env.invoke(env.event(again)) == {"batchItemFailures": []}

    assert env.quarantined("prod-a", "eu-west-1", inst.instance_id)
    first_records = env.decisions_for(first)
    assert sorted((r.decision, r.reason) for r in first_records) == [
        ("already-isolated", "incident-open"),
        ("isolated", "mode-isolate"),
    ]
    assert [(r.decision, r.reason) for r in env.decisions_for(second)] == [
        ("already-isolated", "incident-open")
    ]
    inc = env.ledger.incident(inc_account := inst.account_id, "eu-west-1", inst.instance_id)
    assert inc is not None and set(inc.finding_ids) == {first["id"], second["id"]}
    assert len(env.ledger.history(inc_account, "eu-west-1", inst.instance_id)) == 1
    breaker = env.ledger.breaker()
    assert len(breaker.stamps) == 1  # one containment counted
    assert [m["attributes"]["decision"] for m in env.stack.notifications()] == ["isolated"]


def test_released_instance_is_not_reisolated_by_the_same_finding(hub_env: HubEnv) -> None:
    env = hub_env
    inst = env.org.workload("prod-b", "us-east-1").run_instance(enis=2, profile=True)
    before = _groups(env, inst)
    finding = env.finding("prod-b", "us-east-1", inst.instance_id)
    env.invoke(env.event(finding))
    assert env.quarantined("prod-b", "us-east-1", inst.instance_id)

    outcome = env.responder.release_instance(
        inst.account_id, "us-east-1", inst.instance_id, "false positive", "arn:aws:iam::1:role/soc"
    )
    assert (outcome.decision, outcome.reason) == (Decision.NOTIFIED, "released")
    assert _groups(env, inst) == before  # restored exactly, per ENI
    ec2 = env.org.client("ec2", inst.account_id, "us-east-1")
    assocs = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [inst.instance_id]}]
    )["IamInstanceProfileAssociations"]
    assert [x["IamInstanceProfile"]["Arn"] for x in assocs if x["State"] == "associated"] == [
        inst.profile_arn
    ]

    env.invoke(env.event(dict(finding, updatedAt="2030-01-01T00:00:00.000Z")))
    assert [r.reason for r in env.decisions_for(finding) if r.decision == "skipped"] == ["released"]
    assert _groups(env, inst) == before

    new = env.finding("prod-b", "us-east-1", inst.instance_id, finding_type="Backdoor:EC2/Spambot")
    env.invoke(env.event(new))
    assert [(r.decision, r.reason) for r in env.decisions_for(new)] == [("isolated", "mode-isolate")]
    assert env.quarantined("prod-b", "us-east-1", inst.instance_id)
    statuses = [i.status for i in env.ledger.history(inst.account_id, "us-east-1", inst.instance_id)]
    assert statuses == ["released", "isolated"]
    subjects = [m["subject"] for m in env.stack.notifications()]
    assert any("RELEASED" in s for s in subjects)


def test_breaker_trips_at_its_limit_and_resets_after_the_window(hub_env: HubEnv) -> None:
    env, org = hub_env, hub_env.org
    env.write_config(base_config(org, breaker={"max_isolations": 2, "window_minutes": 10}))
    now = [2_000_000_000.0]
    env.rewire(clock=lambda: now[0])
    w = org.workload("dev", "us-east-1")
    insts = [w.run_instance() for _ in range(4)]
    findings = [env.finding("dev", "us-east-1", i.instance_id) for i in insts]
    env.invoke(*[env.event(f) for f in findings[:3]])
    decisions = [_one_decision(env, f) for f in findings[:3]]
    assert sorted((d.decision, d.reason) for d in decisions) == [
        ("isolated", "mode-isolate"),
        ("isolated", "mode-isolate"),
        ("notified", "breaker-open"),
    ]
    assert sum(env.quarantined("dev", "us-east-1", i.instance_id) for i in insts[:3]) == 2
    assert env.responder.telemetry.counts["BreakerOpen"] == 1
    breaker_msgs = [m for m in env.stack.notifications() if m["attributes"]["reason"] == "breaker-open"]
    assert len(breaker_msgs) == 1 and "breaker-open" in breaker_msgs[0]["subject"]

    now[0] += 5 * 60  # still inside the window
    env.invoke(env.event(findings[3]))
    assert (_one_decision(env, findings[3]).reason) == "breaker-open"
    now[0] += 6 * 60  # the window has passed
    late = env.finding("dev", "us-east-1", insts[3].instance_id)
    env.invoke(env.event(late))
    assert _one_decision(env, late).decision == "isolated"
    assert env.quarantined("dev", "us-east-1", insts[3].instance_id)


def test_assume_role_denied_fails_and_is_retried_until_the_role_exists(hub_env: HubEnv) -> None:
    env = hub_env
    inst = env.org.workload("sandbox", "eu-west-1").run_instance()
    denied = {"on": True}
    env.org.session(env.org.hub_account_id).events.register_first(
        "before-send.sts.AssumeRole",
        fail_when(
            lambda req: denied["on"] and inst.account_id in body_text(req),
            lambda: error_response(403, "AccessDenied", "User is not authorized to perform: sts:AssumeRole"),
        ),
    )
    env.rewire()
    finding = env.finding("sandbox", "eu-west-1", inst.instance_id)
    event = env.event(finding)
    batch = env.invoke(event)
    assert len(batch["batchItemFailures"]) == 1
    rec = _one_decision(env, finding)
    assert (rec.decision, rec.reason) == ("failed", "assume-role-denied")
    assert "orgcontain-spoke-eu-west-1" in rec.detail
    assert env.responder.telemetry.counts["AssumeRoleFailed"] == 1
    assert not env.quarantined("sandbox", "eu-west-1", inst.instance_id)
    assert [m["attributes"]["decision"] for m in env.stack.notifications()] == ["failed"]

    denied["on"] = False  # the StackSet reached the account
    assert env.invoke(event, receive_count=2) == {"batchItemFailures": []}
    assert env.quarantined("sandbox", "eu-west-1", inst.instance_id)


def test_cold_start_with_an_invalid_config_fails_every_finding_closed(
    hub_env: HubEnv, capsys: Any, hub_logs: Any
) -> None:
    env = hub_env
    inst = env.org.workload("prod-a", "us-east-1").run_instance()
    env.config_path.write_text("response: {mode: isolate}\nnot_a_key: 1\n")
    env.rewire()
    findings = [env.finding("prod-a", "us-east-1", inst.instance_id) for _ in range(2)]
    response = env.invoke(*[env.event(f) for f in findings])
    assert len(response["batchItemFailures"]) == 2  # all retried
    assert not env.quarantined("prod-a", "us-east-1", inst.instance_id)
    decisions = env.decisions()
    assert [(d.decision, d.reason) for d in decisions] == [("failed", "config-unavailable")] * 2
    assert "not_a_key" in decisions[0].detail
    out = capsys.readouterr().out
    assert "ConfigUnavailable" in out  # the metric (EMF)
    logged = "\n".join(hub_logs.messages())
    assert "failing closed" in logged and "not_a_key" in logged  # and the log says why


def test_bare_eventbridge_event_and_a_failure_raises(hub_env: HubEnv) -> None:
    env = hub_env
    inst = env.org.workload("prod-b", "eu-west-1").run_instance()
    result = env.invoke_direct(env.event(env.finding("prod-b", "eu-west-1", inst.instance_id)))
    assert result["batchItemFailures"] == [] and result["decision"] == "isolated"
    assert env.quarantined("prod-b", "eu-west-1", inst.instance_id)
    env.config_path.write_text("{}")
    env.rewire()
    with pytest.raises(FindingFailed, match="config-unavailable"):
        env.invoke_direct(env.event(env.finding("prod-b", "eu-west-1", inst.instance_id)))


def test_instance_gone_and_live_tag_exemption_and_dry_run(hub_env: HubEnv) -> None:
    env, org = hub_env, hub_env.org
    data = base_config(org)
    data["accounts"] = {org.accounts["dev"]: {"mode": "dry-run", "reason": "watch first"}}
    env.write_config(data)
    w = org.workload("prod-a", "us-east-1")
    gone, tagged = w.run_instance(), w.run_instance()
    w.ec2.terminate_instances(InstanceIds=[gone.instance_id])
    # Tagged after GuardDuty's snapshot: the finding does not carry the tag, the live instance does.
    w.ec2.create_tags(Resources=[tagged.instance_id], Tags=[{"Key": MODE_TAG, "Value": "notify"}])
    before_tagged = _groups(env, tagged)
    dry = org.workload("dev", "us-east-1").run_instance()
    before_dry = _groups(env, dry)
    fg = env.finding("prod-a", "us-east-1", gone.instance_id)
    ft = env.finding("prod-a", "us-east-1", tagged.instance_id)
    fd = env.finding("dev", "us-east-1", dry.instance_id)
    env.invoke(env.event(fg), env.event(ft), env.event(fd))
    assert (_one_decision(env, fg).decision, _one_decision(env, fg).reason) == ("skipped", "instance-gone")
    assert (_one_decision(env, ft).decision, _one_decision(env, ft).reason) == ("notified", "tag-exemption")
    assert _groups(env, tagged) == before_tagged
    rec = _one_decision(env, fd)
    assert (rec.decision, rec.reason) == ("dry-run", "mode-dry-run")
    assert _groups(env, dry) == before_dry  # read-only
    assert any(s["status"] == "would" for s in rec.data["steps"])
    msgs = {m["attributes"]["decision"]: m for m in env.stack.notifications()}
    assert set(msgs) == {"notified", "dry-run"}
    assert "dry-run" in msgs["dry-run"]["body"] and "watch first" in msgs["dry-run"]["body"]


def test_sns_outage_does_not_lose_the_decision(hub_env: HubEnv) -> None:
    env = hub_env
    env.org.session(env.org.hub_account_id).events.register_first(
        "before-call.sns.Publish", call_fails(lambda body: True, 500, "InternalError", "SNS is down")
    )
    env.rewire()
    inst = env.org.workload("prod-a", "eu-west-1").run_instance()
    finding = env.finding("prod-a", "eu-west-1", inst.instance_id)
    assert env.invoke(env.event(finding)) == {"batchItemFailures": []}  # not retried for an e-mail
    rec = _one_decision(env, finding)
    assert (rec.decision, rec.notification) == ("isolated", "failed")
    assert env.quarantined("prod-a", "eu-west-1", inst.instance_id)
    assert env.responder.telemetry.counts["NotificationsFailed"] == 1
    assert [r["detail"]["decision"] for r in env.stack.result_events()] == [
        "isolated"
    ]  # the bus still got it


def test_failure_mid_network_is_resumed_by_the_retry_with_the_recorded_pre_state(hub_env: HubEnv) -> None:
    env = hub_env
    inst = env.org.workload("prod-b", "us-east-1").run_instance(enis=2)
    before = _groups(env, inst)
    second_eni = inst.eni_ids[1]
    broken = {"on": True}

    def member_session(**kw: Any) -> boto3.Session:
        # Every member-account session of the hub gets the fault: the second ENI's swap is
        # throttled past botocore's retries while ``broken`` holds.
        session = boto3.Session(**kw)
        session.events.register_first(
            "before-call.ec2.ModifyNetworkInterfaceAttribute",
            call_fails(
                lambda body: broken["on"] and second_eni in body,
                503,
                "RequestLimitExceeded",
                "Request limit exceeded.",
            ),
        )
        return session

    env.rewire(spoke_session_factory=member_session)
    finding = env.finding("prod-b", "us-east-1", inst.instance_id)
    event = env.event(finding)
    first = env.invoke(event)
    assert len(first["batchItemFailures"]) == 1
    rec = _one_decision(env, finding)
    assert rec.decision == "failed" and rec.reason in ("network-isolation-failed", "containment-incomplete")
    inc = env.ledger.incident(inst.account_id, "us-east-1", inst.instance_id)
    assert inc is not None and inc.status == "containing" and inc.lease_expires == 0
    recorded = {e.eni_id: e.groups for e in inc.pre_state.enis}  # type: ignore[union-attr]
    assert all(recorded[eni] for eni in inst.eni_ids)
    # The first ENI is contained, the second still on its own groups (the failure left no trace).
    now_groups = _groups(env, inst)
    assert now_groups[inst.eni_ids[0]] == ["orgcontain-quarantine"]
    assert now_groups[second_eni] == before[second_eni]

    broken["on"] = False
    assert env.invoke(event, receive_count=2) == {"batchItemFailures": []}
    records = sorted((r.decision, r.reason) for r in env.decisions_for(finding))
    assert ("isolated", "resumed") in records
    assert env.quarantined("prod-b", "us-east-1", inst.instance_id)
    inc = env.ledger.incident(inst.account_id, "us-east-1", inst.instance_id)
    assert inc is not None and inc.status == "isolated" and inc.attempts == 2
    # The recorded originals are still the real ones (never the quarantine/transition group).
    env.responder.release_instance(inst.account_id, "us-east-1", inst.instance_id, "test", "arn:op")
    assert _groups(env, inst) == before


def test_a_crashed_holder_is_resumed_after_its_lease(hub_env: HubEnv) -> None:
    env = hub_env
    inst = env.org.workload("dev", "eu-west-1").run_instance()
    finding = env.finding("dev", "eu-west-1", inst.instance_id)
    event = env.event(finding)
    now = [1_900_000_000.0]
    env.rewire(clock=lambda: now[0])
    # A holder that took the lock and died before the network change: simulate by opening the
    # incident through the ledger with a live lease, as the first invocation would have.
    from hub.ledger import CONTAINING, Incident
    from spoke.describe import describe

    clients = env.responder.sessions.clients(inst.account_id, "eu-west-1", finding["id"])
    pre = describe(clients, inst.instance_id)
    assert pre is not None
    held = Incident(
        account_id=inst.account_id,
        region="eu-west-1",
        instance_id=inst.instance_id,
        incident_id=f"{inst.instance_id}-crashed",
        status=CONTAINING,
        first_finding_id=finding["id"],
        finding_ids=(finding["id"],),
        lease_owner="dead-invocation",
        lease_expires=now[0] + 100,
        attempts=1,
        pre_state=pre,
    )
    env.ledger.open_incident(held, replaces=None, breaker_from=None, breaker_to=None, check_not_released=None)
    # The SQS retry while the lease still runs: wait (failed, retried), never a second containment.
    assert len(env.invoke(event)["batchItemFailures"]) == 1
    assert [r.reason for r in env.decisions_for(finding)] == ["containment-in-progress"]
    # Another finding for the instance meanwhile is attached.
    other = env.finding("dev", "eu-west-1", inst.instance_id)
    env.invoke(env.event(other))
    assert [(r.decision, r.reason) for r in env.decisions_for(other)] == [
        ("already-isolated", "incident-in-progress")
    ]
    now[0] += 200  # the lease has run out: the next retry resumes with the recorded pre-state
    assert env.invoke(event, receive_count=3) == {"batchItemFailures": []}
    assert env.quarantined("dev", "eu-west-1", inst.instance_id)
    inc = env.ledger.incident(inst.account_id, "eu-west-1", inst.instance_id)
    assert inc is not None and inc.incident_id == held.incident_id and inc.status == "isolated"
    assert set(inc.finding_ids) == {finding["id"], other["id"]}


def test_metrics_are_emitted_as_emf(hub_env: HubEnv, capsys: Any) -> None:
    env = hub_env
    inst = env.org.workload("prod-a", "us-east-1").run_instance()
    env.invoke(
        env.event(env.finding("prod-a", "us-east-1", inst.instance_id)),
        env.event(env.finding("prod-a", "us-east-1", inst.instance_id, severity=1.0)),
    )
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert emf, "no EMF line"
    names = {m["Name"] for blob in emf for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"FindingsReceived", "Isolated", "Skipped", "SecondsToNetworkIsolation"} <= names
    assert emf[-1]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "OrgContain"


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (("resource",), "0", "malformed-finding"),
        (("resource", "instanceDetails"), ["i-0aaaaaaaaaaaaaaaa"], "malformed-finding"),
        (("resource", "instanceDetails", "instanceId"), {"id": "i-0a"}, "malformed-instance-id"),
        (("accountId",), 123456789012, "invalid-account-id"),
    ],
)
def test_wrongly_typed_finding_fields_are_rejected_not_crashed_on(
    hub_env: HubEnv, path: tuple[str, ...], value: Any, reason: str
) -> None:
    # Found by the hostile-input fuzz in CI: "resource": "0" crashed the handler while it read
    # log keys, so the record was retried and dead-lettered instead of rejected.
    env = hub_env
    inst = env.org.workload("prod-b", "eu-west-1").run_instance()
    before = _groups(env, inst)
    detail = env.finding("prod-b", "eu-west-1", inst.instance_id)
    target = detail
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert env.invoke(env.event(detail)) == {"batchItemFailures": []}
    decisions = env.decisions()
    assert [(r.decision, r.reason) for r in decisions] == [("rejected", reason)]
    assert _groups(env, inst) == before
