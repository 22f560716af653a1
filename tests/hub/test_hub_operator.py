"""Break-glass isolate/release (what `orgcontain isolate|release|status` call) and status queries."""

from __future__ import annotations

import pytest

from hub.models import Decision
from hub.responder import ResponderError
from tests.hub.conftest import HubEnv, json_tail

OPERATOR = "arn:aws:sts::111111111111:assumed-role/orgcontain-operator/alice"


def test_operator_isolate_then_release_restores_exactly(hub_env: HubEnv) -> None:
    env = hub_env
    w = env.org.workload("dev", "eu-west-1")
    inst = w.run_instance(enis=2, profile=True, extra_volumes=1)
    before = env.enis_groups(inst.account_id, "eu-west-1", inst.instance_id)
    hub = env.responder

    out = hub.isolate_instance(
        inst.account_id, "eu-west-1", inst.instance_id, "IR-1234 lateral movement", OPERATOR
    )
    assert (out.decision, out.reason, out.action) == (Decision.ISOLATED, "operator-isolate", "isolate")
    assert env.quarantined(inst.account_id, "eu-west-1", inst.instance_id)
    inc = hub.incident(inst.account_id, "eu-west-1", inst.instance_id)
    assert inc is not None and inc.trigger == "manual" and inc.caller == OPERATOR and inc.status == "isolated"
    assert [i.instance_id for i in hub.open_incidents()] == [inst.instance_id]
    assert [i.account_id for i in hub.find_incidents(inst.instance_id)] == [inst.account_id]

    # A second manual isolation of the same instance attaches, never contains twice.
    again = hub.isolate_instance(inst.account_id, "eu-west-1", inst.instance_id, "again", OPERATOR)
    assert again.decision is Decision.ALREADY_ISOLATED

    rel = hub.release_instance(inst.account_id, "eu-west-1", inst.instance_id, "IR-1234 closed", OPERATOR)
    assert (rel.decision, rel.reason, rel.action) == (Decision.NOTIFIED, "released", "release")
    assert env.enis_groups(inst.account_id, "eu-west-1", inst.instance_id) == before
    ec2 = env.org.client("ec2", inst.account_id, "eu-west-1")
    protection = ec2.describe_instance_attribute(
        InstanceId=inst.instance_id, Attribute="disableApiTermination"
    )
    assert protection["DisableApiTermination"]["Value"] is False  # back to what it was
    assert hub.open_incidents() == []
    done = hub.incident(inst.account_id, "eu-west-1", inst.instance_id)
    assert done is not None and done.status == "released" and done.released_by == OPERATOR
    assert done.release_reason == "IR-1234 closed"

    messages = env.stack.notifications()
    assert [m["attributes"]["action"] for m in messages] == ["isolate", "release"]
    assert "alice" in messages[0]["body"] and "IR-1234 lateral movement" in messages[0]["body"]
    assert json_tail(messages[1]["body"])["operator"]["reason"] == "IR-1234 closed"
    actions = {r["detail"]["action"] for r in env.stack.result_events()}
    assert {"isolate", "release"} <= actions

    with pytest.raises(ResponderError, match=f"{inst.instance_id}.*already released"):
        hub.release_instance(inst.account_id, "eu-west-1", inst.instance_id, "twice", OPERATOR)


def test_release_of_an_instance_never_isolated_names_it(hub_env: HubEnv) -> None:
    env = hub_env
    inst = env.org.workload("prod-a", "us-east-1").run_instance()
    with pytest.raises(ResponderError) as err:
        env.responder.release_instance(inst.account_id, "us-east-1", inst.instance_id, "x", OPERATOR)
    message = str(err.value)
    assert inst.instance_id in message and inst.account_id in message and "never isolated" in message


@pytest.mark.parametrize(
    ("account", "region", "instance", "match"),
    [
        ("999999999999", "us-east-1", "i-0123456789abcdef0", "not an active account"),
        (None, "ap-south-1", "i-0123456789abcdef0", "not in the config's regions"),
        (None, "us-east-1", "i-nothex", "not an EC2 instance id"),
        (None, "us-east-1", "i-0123456789abcdef0", "gone"),
    ],
)
def test_operator_isolate_refuses_with_a_clear_error(
    hub_env: HubEnv, account: str | None, region: str, instance: str, match: str
) -> None:
    acct = account or hub_env.org.accounts["prod-b"]
    with pytest.raises(ResponderError, match=match):
        hub_env.responder.isolate_instance(acct, region, instance, "reason", OPERATOR)
