"""Event models and structural trust checks, on the real GuardDuty samples and on generated input."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hub.config import OrgContainConfig, parse_config
from hub.models import Decision, EventEnvelope, Finding, GuardDutyEvent
from hub.trust import check_event
from tests.conftest import FIXTURES, load_fixture
from tests.hub.helpers import envelope, make_finding

ADMIN = "222222222222"
MEMBER = "333333333333"


@pytest.fixture(scope="module")
def config() -> OrgContainConfig:
    return parse_config(
        {
            "organization_id": "o-exampleorg1",
            "hub": {"account_id": "111111111111", "region": "us-east-1"},
            "trusted_event_accounts": [ADMIN, "101010101111", "303697492861"],
            "regions": ["us-east-1", "eu-west-1"],
        }
    )


def _as_event(name: str) -> dict[str, Any]:
    """A fixture as the hub would receive it: full envelopes as they are, bare findings wrapped."""
    data = load_fixture(name)
    if isinstance(data, dict) and "detail" in data and "source" in data:
        return dict(data)
    if isinstance(data, dict) and "detail" in data:  # partial envelope: keep it partial
        return dict(data)
    return envelope(data, ADMIN)


# Every real sample: the structural check's verdict (None = accepted) and, when accepted, what it
# is. Samples come from other tools; several were normalised by them, and those must be refused
# with a reason that says what is wrong rather than half-parsed.
EXPECTED: dict[str, str | None] = {
    "asff-securityhub-stealth-cloudtrailloggingdisabled.json": "malformed-finding",  # ASFF, not GuardDuty
    "awscli-getfindings-iam-recon-userpermissions-count5.json": "malformed-finding",  # PascalCase wrapper
    "elastic-runtime-container-dockersocketaccessed-on-ec2-EDITED.json": "invalid-account-id",  # 9 digits
    "lab39-ec2-bitcointool-b-dns-REAL-eventbridge-envelope.json": "untrusted-event-account",  # masked XXXX
    "mozdef-ec2-backdoor-dos-tcp-sample-count21-normalized.json": "malformed-finding",  # service renamed
    "mozdef-ec2-bitcointool-b-dns-sample-count21-normalized.json": "malformed-finding",
    "mozdef-ec2-portprobe-real-count13793-normalized.json": "malformed-finding",
    "mozdef-ec2-rdpbruteforce-real-normalized.json": "malformed-finding",
    "mozdef-ec2-torclient-sample-count21-normalized.json": "malformed-finding",
    "mozdef-ec2-trojan-dgadomainrequest-b-sample-count21-normalized.json": "malformed-finding",
    "wafacl-ec2-sshbruteforce-sample-partial-envelope.json": "malformed-event",  # no source/account
    "custodian-ec2-backdoor-cc-dns-sample.json": "untrusted-source-or-ok",
}


def test_every_real_sample_parses_or_is_rejected_with_a_reason(config: OrgContainConfig) -> None:
    names = sorted(p.name for p in Path(FIXTURES).glob("*.json"))
    assert len(names) >= 35
    accepted = 0
    for name in names:
        checked = check_event(_as_event(name), config)
        expected = EXPECTED.get(name)
        if expected is None or expected == "untrusted-source-or-ok":
            assert checked.rejection is None, (name, checked.rejection)
            assert checked.finding is not None
            accepted += 1
        else:
            assert checked.rejection is not None, name
            assert checked.rejection.reason == expected, (name, checked.rejection)
            assert checked.rejection.detail, name  # says what is wrong
    assert accepted >= 25


def test_instance_dispatch_is_on_resource_type_only() -> None:
    exfil = Finding.model_validate(
        load_fixture("elastic-iam-instancecredentialexfiltration-outsideaws-sample-count4.json")
    )
    assert exfil.resource_type == "AccessKey"
    assert exfil.resource["instanceDetails"]  # it carries a block...
    assert exfil.instance_id is None  # ...but it is not an instance finding
    assert not exfil.is_instance_finding
    container = Finding.model_validate(
        load_fixture("sekoia-container-execution-suspiciousfile-sample-bare.json")
    )
    assert container.instance_id is None
    canary = Finding.model_validate(load_fixture("autoresp-ec2-canary-integtest-bare.json"))
    assert canary.instance_id == "i-05746eb48123455e0"
    assert canary.is_instance_finding


@pytest.mark.parametrize(
    ("name", "sample"),
    [
        ("elastic-ec2-torclient-sample-count4.json", True),  # additionalInfo.sample true
        ("sekoia-ec2-torrelay-sample-bare.json", True),  # also the value JSON string form
        ("panther-attacksequence-s3-compromiseddata-sample-bare.json", True),
        ("panther-attacksequence-iam-compromisedcredentials-bare.json", False),  # flag removed by Panther
        ("autoresp-ec2-canary-integtest-bare.json", False),
    ],
)
def test_sample_detection_on_real_samples(name: str, sample: bool) -> None:
    assert Finding.model_validate(load_fixture(name)).is_sample is sample


def test_sample_by_value_string_alone_and_by_title() -> None:
    base = make_finding(MEMBER, "us-east-1")
    only_value = copy.deepcopy(base)
    only_value["service"]["additionalInfo"] = {"value": '{"sample":true}', "type": "default"}
    assert Finding.model_validate(only_value).is_sample
    not_sample = copy.deepcopy(base)
    not_sample["service"]["additionalInfo"] = {"value": '{"sample":false, "x": "sample"}', "type": "default"}
    assert not Finding.model_validate(not_sample).is_sample
    titled = copy.deepcopy(base)
    titled["title"] = "[SAMPLE] EC2 instance is communicating"
    assert Finding.model_validate(titled).is_sample


def test_attack_sequence_names_its_instances() -> None:
    seq = load_fixture("panther-attacksequence-iam-compromisedcredentials-bare.json")
    seq["service"]["detection"] = {
        "sequence": {
            "uid": "seq-1",
            "resources": [
                {"uid": "i-0aaaaaaaaaaaaaaaa", "resourceType": "EC2_INSTANCE"},
                {
                    "uid": "arn:aws:ec2:us-east-1:123456789012:instance/i-0bbbbbbbbbbbbbbbb",
                    "resourceType": "EC2_INSTANCE",
                },
                {"uid": "my-bucket", "resourceType": "S3_BUCKET"},
                {"uid": "i-0aaaaaaaaaaaaaaaa", "resourceType": "EC2_INSTANCE"},
            ],
            "signals": [{"uid": "s1"}],
        }
    }
    finding = Finding.model_validate(seq)
    assert finding.is_attack_sequence
    assert finding.sequence_instance_ids == ("i-0aaaaaaaaaaaaaaaa", "i-0bbbbbbbbbbbbbbbb")


def test_unknown_fields_are_ignored_used_fields_are_strict() -> None:
    data = make_finding(MEMBER, "us-east-1", "i-0123456789abcdef0")
    data["someFieldGuardDutyAddsIn2030"] = {"nested": [1, 2, 3]}
    data["resource"]["instanceDetails"]["newThing"] = "x"
    data["service"]["brandNew"] = True
    assert Finding.model_validate_json(json.dumps(data)).instance_id == "i-0123456789abcdef0"
    for field, value in (("severity", "8"), ("severity", True), ("accountId", 123456789012), ("region", "")):
        bad = copy.deepcopy(data)
        bad[field] = value
        with pytest.raises(ValidationError):
            Finding.model_validate(bad)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: f.pop("accountId"), "missing-account-id"),
        (lambda f: f.update(accountId="12345"), "invalid-account-id"),
        (lambda f: f.pop("region"), "missing-region"),
        (lambda f: f.update(region="mars-north-1x"), "invalid-region"),
        (lambda f: f.update(severity=10.5), "invalid-severity"),
        (lambda f: f.update(severity=-1), "invalid-severity"),
        (lambda f: f.pop("severity"), "invalid-severity"),
        (lambda f: f["resource"]["instanceDetails"].update(instanceId="i-xyz"), "malformed-instance-id"),
        (
            lambda f: f["resource"]["instanceDetails"].update(instanceId="i-0123; rm -rf"),
            "malformed-instance-id",
        ),
        (lambda f: f["resource"]["instanceDetails"].pop("instanceId"), "missing-instance-id"),
        (lambda f: f["resource"].pop("instanceDetails"), "missing-instance-id"),
        (lambda f: f.update(id="../../etc"), "invalid-finding-id"),
        (lambda f: f.update(arn=f["arn"].replace(MEMBER, "444444444444")), "arn-mismatch"),
        (lambda f: f.update(arn=f["arn"].replace("us-east-1", "eu-west-1")), "arn-mismatch"),
        (lambda f: f.update(arn="not-an-arn"), "arn-mismatch"),
        (lambda f: f.pop("service"), "malformed-finding"),
    ],
)
def test_malformed_findings_are_rejected_with_a_machine_readable_reason(
    config: OrgContainConfig, mutate: Any, reason: str
) -> None:
    detail = make_finding(MEMBER, "us-east-1", "i-0123456789abcdef0")
    mutate(detail)
    checked = check_event(envelope(detail, ADMIN), config)
    assert checked.rejection is not None
    assert checked.rejection.reason == reason
    assert checked.finding is None or reason == "arn-mismatch"


def test_nan_severity_in_raw_json_is_rejected(config: OrgContainConfig) -> None:
    body = json.dumps(envelope(make_finding(MEMBER, "us-east-1"), ADMIN)).replace(
        '"severity": 8.0', '"severity": NaN'
    )
    checked = check_event(body, config)
    assert checked.rejection is not None
    assert checked.rejection.reason in ("invalid-severity", "malformed-event")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"source": "custom.guardduty"}, "untrusted-source"),
        ({"source": "aws.securityhub"}, "untrusted-source"),
        ({"detail-type": "GuardDuty Runtime Protection Unhealthy"}, "unexpected-detail-type"),
        ({"account": "999999999999"}, "untrusted-event-account"),
        ({"account": MEMBER}, "untrusted-event-account"),  # a member forwarding its own events
    ],
)
def test_envelope_checks(config: OrgContainConfig, change: dict[str, str], reason: str) -> None:
    event = envelope(make_finding(MEMBER, "us-east-1"), ADMIN)
    event.update(change)
    checked = check_event(event, config)
    assert checked.rejection is not None and checked.rejection.reason == reason
    assert checked.hints and checked.hints["account_id"] == MEMBER


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '{"detail": {}}', b"\xff\xfe", '{"source": 1}'])
def test_garbage_is_a_malformed_event(config: OrgContainConfig, raw: str | bytes) -> None:
    checked = check_event(raw, config)
    assert checked.rejection is not None and checked.rejection.reason == "malformed-event"


def test_envelope_and_event_models() -> None:
    event = envelope(make_finding(MEMBER, "eu-west-1", "i-0123456789abcdef0"), ADMIN)
    env = EventEnvelope.model_validate(event)
    assert env.detail_type == "GuardDuty Finding" and env.account == ADMIN
    full = GuardDutyEvent.model_validate_json(json.dumps(event))
    assert full.detail.account_id == MEMBER and full.detail.region == "eu-west-1"


def test_decision_values_are_the_contract() -> None:
    assert [d.value for d in Decision] == [
        "isolated",
        "already-isolated",
        "notified",
        "dry-run",
        "skipped",
        "rejected",
        "failed",
    ]


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_severity_outside_0_to_10_never_parses(value: float) -> None:
    data = make_finding(MEMBER, "us-east-1")
    data["severity"] = value
    try:
        parsed = Finding.model_validate(data)
    except ValidationError:
        assert not (0.0 <= value <= 10.0)
    else:
        assert 0.0 <= parsed.severity <= 10.0


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_only_well_formed_instance_ids_parse(instance_id: str) -> None:
    data = make_finding(MEMBER, "us-east-1", instance_id)
    try:
        parsed = Finding.model_validate(data)
    except ValidationError:
        return
    assert parsed.instance_id == instance_id
    assert instance_id.startswith("i-") and len(instance_id) in (10, 19)
    assert all(c in "0123456789abcdef" for c in instance_id[2:])
