"""The policy: a pure function, its reasons, and precedence properties (hypothesis)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hub.config import Mode, OrgContainConfig, parse_config
from hub.models import Decision, Finding
from hub.policy import MODE_TAG, PolicyDecision, decide, effective_mode
from tests.conftest import load_fixture
from tests.hub.helpers import make_finding

MEMBER = "333333333333"
OTHER = "444444444444"
OU_PARENT = "ou-abcd-11111111"
OU_CHILD = "ou-abcd-22222222"
INSTANCE = "i-0123456789abcdef0"


def cfg(**kw: Any) -> OrgContainConfig:
    data: dict[str, Any] = {
        "organization_id": "o-exampleorg1",
        "hub": {"account_id": "111111111111", "region": "us-east-1"},
        "trusted_event_accounts": ["222222222222"],
        "regions": ["us-east-1", "eu-west-1"],
        "response": {"mode": "isolate", "min_severity": 7.0},
    }
    for key, value in kw.items():
        if key in ("mode", "min_severity", "finding_types"):
            data["response"][key] = value
        else:
            data[key] = value
    return parse_config(data)


def finding(**kw: Any) -> Finding:
    region = kw.pop("region", "us-east-1")
    account = kw.pop("account", MEMBER)
    instance = kw.pop("instance", INSTANCE)
    return Finding.model_validate(make_finding(account, region, instance, **kw))


def test_high_severity_instance_finding_is_isolated() -> None:
    d = decide(finding(), cfg())
    assert d == PolicyDecision(Decision.ISOLATED, "mode-isolate", Mode.ISOLATE, (INSTANCE,), "response", "")


@pytest.mark.parametrize(
    ("kw", "config_kw", "decision", "reason"),
    [
        ({"severity": 6.9}, {}, Decision.SKIPPED, "below-threshold"),
        ({"severity": 7.0}, {}, Decision.ISOLATED, "mode-isolate"),  # inclusive
        ({"severity": 10.0}, {}, Decision.ISOLATED, "mode-isolate"),
        ({"archived": True}, {}, Decision.SKIPPED, "archived"),
        ({"sample": True}, {}, Decision.SKIPPED, "sample-finding"),
        ({"resource_type": "AccessKey"}, {}, Decision.SKIPPED, "not-instance-finding"),
        ({"resource_type": "S3Bucket"}, {}, Decision.SKIPPED, "not-instance-finding"),
        ({"region": "ap-south-1"}, {}, Decision.NOTIFIED, "region-not-covered"),
        ({}, {"mode": "notify"}, Decision.NOTIFIED, "mode-notify"),
        ({}, {"mode": "dry-run"}, Decision.DRY_RUN, "mode-dry-run"),
        ({}, {"mode": "off"}, Decision.SKIPPED, "mode-off"),
        ({}, {"finding_types": {"include": ["Backdoor:*"]}}, Decision.ISOLATED, "mode-isolate"),
        ({}, {"finding_types": {"include": ["CryptoCurrency:*"]}}, Decision.SKIPPED, "type-not-included"),
        (
            {},
            {"finding_types": {"include": ["*"], "exclude": ["Backdoor:EC2/C&C*"]}},
            Decision.SKIPPED,
            "type-excluded",
        ),
        (
            {},
            {"accounts": {MEMBER: {"mode": "notify", "reason": "payments"}}},
            Decision.NOTIFIED,
            "mode-notify",
        ),
        ({}, {"accounts": {MEMBER: {"mode": "off"}}}, Decision.SKIPPED, "account-opted-off"),
        ({}, {"accounts": {OTHER: {"mode": "off"}}}, Decision.ISOLATED, "mode-isolate"),
        ({"tags": {MODE_TAG: "off"}}, {}, Decision.NOTIFIED, "tag-exemption"),
        ({"tags": {MODE_TAG: "notify"}}, {}, Decision.NOTIFIED, "tag-exemption"),
        ({"tags": {MODE_TAG: " Dry-Run "}}, {}, Decision.DRY_RUN, "tag-exemption"),
        ({"tags": {MODE_TAG: "isolate"}}, {"mode": "notify"}, Decision.NOTIFIED, "mode-notify"),
        ({"tags": {MODE_TAG: "please-dont"}}, {}, Decision.NOTIFIED, "tag-invalid"),
        ({"tags": {MODE_TAG: "isolate"}}, {}, Decision.ISOLATED, "mode-isolate"),
    ],
)
def test_decisions_and_reasons(
    kw: dict[str, Any], config_kw: dict[str, Any], decision: Decision, reason: str
) -> None:
    d = decide(finding(**kw), cfg(**config_kw))
    assert (d.decision, d.reason) == (decision, reason)


def test_account_override_reason_is_carried() -> None:
    d = decide(finding(), cfg(accounts={MEMBER: {"mode": "notify", "reason": "payments production"}}))
    assert d.source == f"account:{MEMBER}" and d.detail == "payments production"


def test_nearest_ou_wins_and_account_beats_ou() -> None:
    ous = {OU_PARENT: {"mode": "notify"}, OU_CHILD: {"mode": "dry-run"}}
    c = cfg(organizational_units=ous)
    assert decide(finding(), c, [OU_PARENT, OU_CHILD]).decision is Decision.DRY_RUN
    assert decide(finding(), c, [OU_PARENT]).decision is Decision.NOTIFIED
    assert decide(finding(), c, []).decision is Decision.ISOLATED
    c2 = cfg(organizational_units={OU_CHILD: {"mode": "off"}}, accounts={MEMBER: {"mode": "notify"}})
    assert decide(finding(), c2, [OU_PARENT, OU_CHILD]).reason == "mode-notify"
    c3 = cfg(organizational_units={OU_CHILD: {"mode": "off"}})
    assert decide(finding(), c3, [OU_PARENT, OU_CHILD]).reason == "ou-opted-off"


def test_override_cannot_exceed_the_ceiling() -> None:
    c = cfg(mode="notify", accounts={MEMBER: {"mode": "isolate"}})
    mode, source, why = effective_mode(c, MEMBER)
    assert mode is Mode.NOTIFY and source == "response" and "capped" in why
    assert decide(finding(), c).decision is Decision.NOTIFIED


def test_live_tags_replace_the_finding_tags() -> None:
    f = finding(tags={MODE_TAG: "off"})
    assert decide(f, cfg()).reason == "tag-exemption"
    assert decide(f, cfg(), instance_tags={}).decision is Decision.ISOLATED
    assert decide(finding(), cfg(), instance_tags={MODE_TAG: "notify"}).reason == "tag-exemption"


def test_attack_sequence_is_notified_with_its_instances() -> None:
    data = load_fixture("panther-attacksequence-iam-compromisedcredentials-bare.json")
    data["service"]["detection"] = {
        "sequence": {"resources": [{"uid": "i-0aaaaaaaaaaaaaaaa", "resourceType": "EC2_INSTANCE"}]}
    }
    d = decide(Finding.model_validate(data), cfg())
    assert (d.decision, d.reason, d.instance_ids) == (
        Decision.NOTIFIED,
        "attack-sequence",
        ("i-0aaaaaaaaaaaaaaaa",),
    )
    assert decide(Finding.model_validate(data), cfg(mode="off")).decision is Decision.SKIPPED


def test_access_key_finding_with_instance_details_is_not_isolated() -> None:
    data = load_fixture("elastic-iam-instancecredentialexfiltration-outsideaws-sample-count4.json")
    data["service"]["additionalInfo"] = {}  # not a sample: the resource type alone decides
    d = decide(Finding.model_validate(data), cfg(min_severity=0))
    assert (d.decision, d.reason) == (Decision.SKIPPED, "not-instance-finding")


def test_decide_is_pure_and_config_changes_are_seen() -> None:
    f = finding()
    c1, c2 = cfg(), cfg(mode="notify")
    assert decide(f, c1).decision is Decision.ISOLATED
    assert decide(f, c2).decision is Decision.NOTIFIED
    assert decide(f, c1).decision is Decision.ISOLATED


# ---- properties -------------------------------------------------------------------------------

MODES = [m.value for m in Mode]
tag_values = st.one_of(
    st.none(), st.sampled_from([*MODES, "OFF", "Notify", " isolate ", "x", ""]), st.text(max_size=12)
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[OrgContainConfig, Finding, list[str], dict[str, str] | None]:
    response = draw(st.sampled_from(MODES))
    account = draw(st.one_of(st.none(), st.sampled_from(MODES)))
    parent = draw(st.one_of(st.none(), st.sampled_from(MODES)))
    child = draw(st.one_of(st.none(), st.sampled_from(MODES)))
    ous = {ou: {"mode": m} for ou, m in ((OU_PARENT, parent), (OU_CHILD, child)) if m is not None}
    accounts = {MEMBER: {"mode": account}} if account is not None else {}
    c = cfg(
        mode=response,
        organizational_units=ous,
        accounts=accounts,
        min_severity=draw(st.sampled_from([0.0, 7.0])),
    )
    tag = draw(tag_values)
    severity = draw(st.sampled_from([2.0, 6.99, 7.0, 8.5, 10.0]))
    f = finding(severity=severity)
    path = draw(st.sampled_from([[], [OU_PARENT], [OU_PARENT, OU_CHILD]]))
    tags = None if tag is None else {MODE_TAG: tag}
    return c, f, path, tags


def _rank(d: PolicyDecision) -> int:
    return {Decision.ISOLATED: 3, Decision.DRY_RUN: 2, Decision.NOTIFIED: 1, Decision.SKIPPED: 0}[d.decision]


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_the_ceiling_is_never_exceeded(
    s: tuple[OrgContainConfig, Finding, list[str], dict[str, str] | None],
) -> None:
    c, f, path, tags = s
    d = decide(f, c, path, tags)
    ceiling = c.response.mode
    assert d.mode.rank <= ceiling.rank
    if ceiling is not Mode.ISOLATE:
        assert d.decision is not Decision.ISOLATED
    if ceiling in (Mode.NOTIFY, Mode.OFF):
        assert d.decision not in (Decision.ISOLATED, Decision.DRY_RUN)


@settings(max_examples=200, deadline=None)
@given(scenarios(), tag_values)
def test_no_tag_makes_the_response_harsher(
    s: tuple[OrgContainConfig, Finding, list[str], dict[str, str] | None], tag: str | None
) -> None:
    c, f, path, _ = s
    untagged = decide(f, c, path, {})
    tagged = decide(f, c, path, {} if tag is None else {MODE_TAG: tag})
    assert _rank(tagged) <= _rank(untagged)


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_an_account_set_to_notify_is_never_isolated_whatever_the_tag(
    s: tuple[OrgContainConfig, Finding, list[str], dict[str, str] | None],
) -> None:
    c, f, path, tags = s
    data = c.model_dump()
    data["accounts"] = {MEMBER: {"mode": "notify", "reason": ""}}
    notify_account = parse_config(data)
    d = decide(f, notify_account, path, tags)
    assert d.decision not in (Decision.ISOLATED, Decision.DRY_RUN)


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_account_off_never_isolates(
    s: tuple[OrgContainConfig, Finding, list[str], dict[str, str] | None],
) -> None:
    c, f, path, tags = s
    data = copy.deepcopy(c.model_dump())
    data["accounts"] = {MEMBER: {"mode": "off", "reason": ""}}
    d = decide(f, parse_config(data), path, tags)
    assert d.decision is Decision.SKIPPED


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_a_tag_exemption_is_notified_never_silently_skipped(
    s: tuple[OrgContainConfig, Finding, list[str], dict[str, str] | None],
) -> None:
    c, f, path, tags = s
    assume(tags is not None)
    d = decide(f, c, path, tags)
    if d.reason in ("tag-exemption", "tag-invalid"):
        assert d.decision in (Decision.NOTIFIED, Decision.DRY_RUN)
        assert d.instance_ids == (INSTANCE,)


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_threshold_is_inclusive_and_respected(
    s: tuple[OrgContainConfig, Finding, list[str], dict[str, str] | None],
) -> None:
    c, f, path, tags = s
    d = decide(f, c, path, tags)
    if f.severity < c.response.min_severity:
        assert (d.decision, d.reason) == (Decision.SKIPPED, "below-threshold")
    else:
        assert d.reason != "below-threshold"
