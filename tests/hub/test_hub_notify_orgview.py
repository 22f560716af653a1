"""Notification composition (pure) and the organization view (moto Organizations)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.demo.org import EmulatedOrg
from hub.models import Decision, Finding
from hub.notify import RESULT_DETAIL_TYPE, RESULT_SOURCE, compose, result_event
from hub.orgview import OrgView
from hub.outcome import Outcome
from tests.hub.conftest import json_tail
from tests.hub.helpers import make_finding

ACCOUNT = "333333333333"


def outcome(decision: Decision = Decision.ISOLATED, reason: str = "mode-isolate", **kw: object) -> Outcome:
    finding = Finding.model_validate(make_finding(ACCOUNT, "eu-west-1", "i-0123456789abcdef0"))
    base = Outcome(
        decision,
        reason,
        "msg-1",
        account_id=ACCOUNT,
        region="eu-west-1",
        instance_id="i-0123456789abcdef0",
        finding=finding,
        finding_id=finding.id,
        mode="isolate",
        mode_source="response",
    )
    for key, value in kw.items():
        setattr(base, key, value)
    return base


def test_isolated_message_tells_what_where_why_and_how_to_release() -> None:
    msg = compose(outcome())
    assert msg.subject == f"orgcontain ISOLATED i-0123456789abcdef0 in {ACCOUNT}/eu-west-1"
    for part in ("What:", "Backdoor:EC2/C&CActivity.B", "High", "Where:", "Why:", "mode-isolate"):
        assert part in msg.body
    assert f"orgcontain release {ACCOUNT} eu-west-1 i-0123456789abcdef0 --reason" in msg.body
    record = json_tail(msg.body)
    assert record["decision"] == "isolated" and record["finding_id"]
    assert msg.attributes["decision"] == {"DataType": "String", "StringValue": "isolated"}
    assert msg.attributes["severity"] == {"DataType": "Number", "StringValue": "8"}
    assert msg.attributes["account"]["StringValue"] == ACCOUNT


def test_notice_suggests_a_manual_isolation_and_names_the_reason() -> None:
    msg = compose(outcome(Decision.NOTIFIED, "breaker-open", detail="20 isolations in the last 60 min"))
    assert "breaker-open" in msg.subject
    assert "orgcontain isolate" in msg.body and "20 isolations" in msg.body
    assert "orgcontain release" not in msg.body


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.sampled_from(list(Decision)))
def test_subjects_are_short_ascii_single_line(reason: str, decision: Decision) -> None:
    msg = compose(outcome(decision, reason))
    assert len(msg.subject) < 100
    assert msg.subject.isascii() and "\n" not in msg.subject and "\r" not in msg.subject


def test_result_event_shape() -> None:
    entry = result_event(outcome(), "orgcontain-results")
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == (
        RESULT_SOURCE,
        RESULT_DETAIL_TYPE,
        "orgcontain-results",
    )
    assert json.loads(entry["Detail"])["instance_id"] == "i-0123456789abcdef0"
    assert entry["Resources"] == [f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/i-0123456789abcdef0"]


def test_org_view_status_path_and_cache(org: EmulatedOrg) -> None:
    calls: list[str] = []
    client = org.organizations_client_as_delegated_admin()
    client.meta.events.register("before-call.organizations.*", lambda model, **_: calls.append(model.name))
    now = [0.0]
    view = OrgView(lambda: client, ttl_seconds=300, clock=lambda: now[0])
    prod_a = org.accounts["prod-a"]
    assert view.account_status(prod_a) == "ACTIVE"
    assert view.account_status("999999999999") is None
    assert view.ou_path(prod_a) == (org.ous["Workloads"], org.ous["Prod"])
    # The walk stops at the nearest configured OU.
    assert view.ou_path(prod_a, stop_at={org.ous["Prod"]}) == (org.ous["Prod"],)
    n = len(calls)
    assert view.account_status(prod_a) == "ACTIVE" and view.ou_path(org.accounts["prod-b"])
    assert len(calls) == n + 1  # prod-b's own parent only: the OU parents are cached
    # A suspended account is seen after the TTL.
    org.management_client("organizations").close_account(AccountId=org.accounts["sandbox"])
    assert view.account_status(org.accounts["sandbox"]) != "ACTIVE"
    org.management_client("organizations").close_account(AccountId=prod_a)
    assert view.account_status(prod_a) == "ACTIVE"  # cached
    now[0] = 301
    assert view.account_status(prod_a) != "ACTIVE"
