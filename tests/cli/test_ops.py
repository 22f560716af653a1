"""`orgcontain isolate`, `release` and `status` through the CLI, against moto.

With the emulated org (``env``) the CLI runs as an operator (a role session in the hub account,
through ``--profile``) and the instances are checked in their member accounts, through those
accounts' own credentials. Failures that need no member account run on ``hub`` (the ledger table
alone, in moto's default account).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from botocore.exceptions import EndpointConnectionError, NoRegionError
from typer.testing import CliRunner

import hub.cli.hubenv as hubenv
import hub.cli.ops as ops
from hub.cli import app
from hub.cli.hubenv import HubEnvError, find_hub_resources, operator_name
from hub.demo.org import EmulatedOrg
from hub.ledger import Ledger
from tests.cli.hubstack import (
    DEFAULT_ACCOUNT,
    HUB_ONLY_CONFIG,
    OPERATOR_ROLE,
    CliEnv,
    OpsEnv,
    deploy_hub_stack,
    hub_only,
    ops_env,
)
from tests.hub.helpers import error_response

UNKNOWN_INSTANCE = "i-0123456789abcdef0"
MEMBER = "222222222222"  # any 12 digits: for failures that happen before the member is reached


@pytest.fixture
def env(org: EmulatedOrg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OpsEnv:
    return ops_env(org, tmp_path, monkeypatch)


@pytest.fixture
def hub(aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliEnv:
    return hub_only(tmp_path, monkeypatch)


def plain(text: str) -> str:
    """Text without the box rich draws around usage errors, on one line."""
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", text).split())


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ---- the round trip -------------------------------------------------------------------------


def test_isolate_status_release_puts_every_eni_back(env: OpsEnv) -> None:
    region = "eu-west-1"
    account = env.account("prod-a")
    inst = env.org.workload("prod-a", region).run_instance(enis=2, extra_volumes=1, profile=True)
    iid = inst.instance_id
    before = env.enis_groups(account, region, iid)
    assert len(before) == 2 and all(before.values())

    isolated = env.op("isolate", account, region, iid, "--reason", "crypto miner seen by the SOC")
    assert isolated.exit_code == 0, isolated.output
    assert f"isolated {iid}" in isolated.stdout
    assert env.group_names(account, region, iid) == {"orgcontain-quarantine"}

    status = env.op("status", "--json")
    assert status.exit_code == 0, status.output
    [item] = json.loads(status.stdout)
    assert (item["instance_id"], item["account_id"], item["region"]) == (iid, account, region)
    assert item["status"] == "isolated"
    assert item["trigger"] == "manual"
    assert item["caller"] == env.operator_arn
    assert item["operator_reason"] == "crypto miner seen by the SOC"
    assert item["release_command"].startswith(f"orgcontain release {account} {region} {iid} --reason")
    assert "pre_state" not in item  # the list stays short; `status INSTANCE` has it all

    released = env.op("release", account, region, iid, "--reason", "false positive, re-imaged")
    assert released.exit_code == 0, released.output
    assert f"released {iid}" in released.stdout
    assert env.enis_groups(account, region, iid) == before  # each ENI on its own original groups

    assert json.loads(env.op("status", "--json").stdout) == []
    again = env.op("release", account, region, iid, "--reason", "twice")
    assert again.exit_code == 1
    assert "already released" in last_line(again.stderr) and iid in last_line(again.stderr)

    # Same notifications and result events as the Lambda: one each for isolate and release.
    subjects = [n["subject"] for n in env.stack.notifications()]
    assert any(s.startswith(f"orgcontain ISOLATED {iid}") for s in subjects), subjects
    assert any(s.startswith(f"orgcontain RELEASED {iid}") for s in subjects), subjects
    events = env.stack.result_events()
    assert [e["detail"]["action"] for e in events] == ["isolate", "release"]
    assert all(e["detail"]["operator"]["caller"] == env.operator_arn for e in events)


def test_isolate_records_caller_reason_and_operator_session_name(env: OpsEnv) -> None:
    account = env.account("dev")
    inst = env.org.workload("dev").run_instance()
    assumed = env.record("before-parameter-build.sts.AssumeRole")

    result = env.op("isolate", account, "us-east-1", inst.instance_id, "--reason", "IR-42", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)  # stdout is the JSON alone
    assert out["decision"] == "isolated"
    assert out["action"] == "isolate"
    assert out["operator"] == {"caller": env.operator_arn, "reason": "IR-42"}

    # The spoke role is assumed with the operator's name in the session name (CloudTrail shows it).
    assert [(c["RoleArn"], c["RoleSessionName"]) for c in assumed] == [
        (f"arn:aws:iam::{account}:role/orgcontain-spoke-us-east-1", "orgcontain-operator-alice@example.com")
    ]
    incident = env.ledger.incident(account, "us-east-1", inst.instance_id)
    assert incident is not None and incident.caller == env.operator_arn and incident.trigger == "manual"
    [record] = [d for d in env.ledger.all_decisions() if d.action == "isolate"]
    assert record.decision == "isolated"
    assert record.data["caller"] == env.operator_arn
    assert record.data["operator_reason"] == "IR-42"

    again = env.op("isolate", account, "us-east-1", inst.instance_id, "--reason", "IR-43")
    assert again.exit_code == 0, again.output
    assert "already contained" in again.stdout
    assert len(env.ledger.open_incidents()) == 1


def test_isolate_through_the_operator_role(env: OpsEnv) -> None:
    account = env.account("prod-b")
    inst = env.org.workload("prod-b").run_instance()
    assumed = env.record("before-parameter-build.sts.AssumeRole")
    result = env.op(
        "isolate",
        account,
        "us-east-1",
        inst.instance_id,
        "--reason",
        "IR-7",
        "--operator-role",
        OPERATOR_ROLE,
    )
    assert result.exit_code == 0, result.output
    hub_role = f"arn:aws:iam::{env.org.hub_account_id}:role/{OPERATOR_ROLE}"
    assert [c["RoleArn"] for c in assumed] == [
        hub_role,
        f"arn:aws:iam::{account}:role/orgcontain-spoke-us-east-1",
    ]
    assert {c["RoleSessionName"] for c in assumed} == {"orgcontain-operator-alice@example.com"}
    # The person is recorded, not the role they went through.
    incident = env.ledger.incident(account, "us-east-1", inst.instance_id)
    assert incident is not None and incident.caller == env.operator_arn
    assert env.group_names(account, "us-east-1", inst.instance_id) == {"orgcontain-quarantine"}


# ---- status ---------------------------------------------------------------------------------


def test_status_lists_and_shows_incidents(env: OpsEnv) -> None:
    a, b = env.account("prod-a"), env.account("dev")
    ia = env.org.workload("prod-a").run_instance(enis=2)
    ib = env.org.workload("dev", "eu-west-1").run_instance()
    original = env.enis_groups(a, "us-east-1", ia.instance_id)
    assert env.op("isolate", a, "us-east-1", ia.instance_id, "--reason", "IR-9").exit_code == 0
    assert env.op("isolate", b, "eu-west-1", ib.instance_id, "--reason", "IR-10").exit_code == 0

    table = env.op("status")
    assert table.exit_code == 0, table.output
    for inst, account, region in ((ia, a, "us-east-1"), (ib, b, "eu-west-1")):
        assert inst.instance_id in table.stdout
        assert f"orgcontain release {account} {region} {inst.instance_id}" in table.stdout
    assert "2 open incidents" in table.stderr

    only_b = json.loads(env.op("status", "--account", b, "--json").stdout)
    assert [i["instance_id"] for i in only_b] == [ib.instance_id]
    assert env.op("status", "--account", b, ia.instance_id).exit_code == 1

    people = env.op("status", ia.instance_id)
    assert people.exit_code == 0, people.output
    text = people.stdout
    assert f"{ia.instance_id} in account {a} region us-east-1" in text
    assert f"manual by {env.operator_arn}: IR-9" in text
    for eni, groups in original.items():  # the pre-state release restores, per ENI
        assert eni in text and all(g in text for g in groups)
    assert "steps:" in text and "network" in text
    assert f"orgcontain release {a} us-east-1 {ia.instance_id}" in text

    machine = json.loads(env.op("status", ia.instance_id, "--json").stdout)
    assert machine["instance_id"] == ia.instance_id
    assert {s["step"] for s in machine["steps"]} >= {"network", "tags"}
    assert {e["eni_id"]: sorted(e["groups"]) for e in machine["pre_state"]["enis"]} == original


def test_status_with_an_empty_ledger(hub: CliEnv) -> None:
    people = hub.op("status")
    assert people.exit_code == 0 and "no open incidents" in people.stderr
    assert json.loads(hub.op("status", "--json").stdout) == []
    one = hub.op("status", UNKNOWN_INSTANCE)
    assert one.exit_code == 1
    assert UNKNOWN_INSTANCE in last_line(one.stderr) and "never isolated" in last_line(one.stderr)


# ---- failures: one line, the right exit code --------------------------------------------------


def test_operator_errors_name_the_instance(env: OpsEnv) -> None:
    account = env.account("prod-a")
    inst = env.org.workload("prod-a").run_instance()

    never = env.op("release", account, "us-east-1", inst.instance_id, "--reason", "cleanup")
    assert never.exit_code == 1
    line = last_line(never.stderr)
    assert line.startswith("error:") and inst.instance_id in line and "never isolated" in line

    missing = env.op("isolate", account, "us-east-1", UNKNOWN_INSTANCE, "--reason", "x")
    assert missing.exit_code == 1
    assert UNKNOWN_INSTANCE in last_line(missing.stderr) and "gone" in last_line(missing.stderr)

    outside = env.op("isolate", "999999999999", "us-east-1", UNKNOWN_INSTANCE, "--reason", "x")
    assert outside.exit_code == 1
    assert "account 999999999999 is not an active account" in last_line(outside.stderr)
    assert env.ledger.open_incidents() == []


def test_spoke_role_denied_is_recorded_and_reported(env: OpsEnv) -> None:
    account = env.account("prod-a")
    inst = env.org.workload("prod-a").run_instance()
    env.fault(
        "before-send.sts.AssumeRole", lambda: error_response(403, "AccessDenied", "not authorized to assume")
    )
    result = env.op("isolate", account, "us-east-1", inst.instance_id, "--reason", "x")
    assert result.exit_code == 1
    assert result.stderr.count("error:") == 1
    line = last_line(result.stderr)
    assert "assume-role-denied" in line and "orgcontain-spoke-us-east-1" in line
    assert env.group_names(account, "us-east-1", inst.instance_id) == {"app", "db"}
    [record] = [d for d in env.ledger.all_decisions() if d.action == "isolate"]
    assert (record.decision, record.reason) == ("failed", "assume-role-denied")


def test_expired_credentials_end_in_one_actionable_line(hub: CliEnv) -> None:
    hub.fault(
        "before-send.sts.GetCallerIdentity",
        lambda: error_response(403, "ExpiredToken", "The security token included in the request is expired"),
    )
    result = hub.op("isolate", MEMBER, "us-east-1", UNKNOWN_INSTANCE, "--reason", "x")
    assert result.exit_code == 1
    assert result.stderr.count("error:") == 1
    assert "GetCallerIdentity failed: ExpiredToken" in last_line(result.stderr)
    assert "aws sso login" in last_line(result.stderr)


def test_ledger_access_denied_ends_in_one_line(hub: CliEnv) -> None:
    hub.fault(
        "before-send.dynamodb.Query",
        lambda: error_response(400, "AccessDeniedException", "no dynamodb:Query", protocol="json"),
    )
    result = hub.op("status")
    assert result.exit_code == 1
    assert last_line(result.stderr) == (
        "error: Query failed: AccessDeniedException: no dynamodb:Query "
        "(these credentials lack that permission (the operator role: --operator-role))"
    )


def test_a_ledger_table_that_is_not_there(hub: CliEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORGCONTAIN_LEDGER_TABLE", "no-such-table")
    result = hub.op("status")
    assert result.exit_code == 1
    line = last_line(result.stderr)
    assert line.startswith("error: Query failed: ResourceNotFoundException")
    assert "is the hub deployed in this account and region" in line


def test_no_credentials(hub: CliEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    for var in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    for args in (
        ["status"],
        ["isolate", MEMBER, "us-east-1", UNKNOWN_INSTANCE, "--reason", "x"],
        ["redrive"],
    ):
        result = hub.op(*args)
        assert result.exit_code == 1, result.output
        assert result.stderr.count("error:") == 1
        assert last_line(result.stderr) == (
            "error: no AWS credentials: pass --profile or set AWS_PROFILE (or log in, e.g. `aws sso login`)"
        )


def test_unknown_profile(hub: CliEnv) -> None:
    result = hub.op("status", "--profile", "nobody")
    assert result.exit_code == 1
    assert "nobody" in last_line(result.stderr) and "--profile" in last_line(result.stderr)


def test_invalid_config_is_one_line(hub: CliEnv) -> None:
    data = yaml.safe_load(hub.config_path.read_text())
    data["response"] = {"mode": "obliterate"}
    hub.config_path.write_text(yaml.safe_dump(data))
    result = hub.op("status")
    assert result.exit_code == 1
    assert result.stderr.count("error:") == 1
    line = last_line(result.stderr)
    assert "not a valid orgcontain config" in line and "response.mode" in line


# ---- usage errors: exit 2 before any AWS call ---------------------------------------------------

GOOD = (MEMBER, "us-east-1", UNKNOWN_INSTANCE)


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["isolate", "12345", "us-east-1", UNKNOWN_INSTANCE, "--reason", "x"], "ACCOUNT"),
        (["isolate", "22222222222a", "us-east-1", UNKNOWN_INSTANCE, "--reason", "x"], "ACCOUNT"),
        (["isolate", MEMBER, "ap-south-1", UNKNOWN_INSTANCE, "--reason", "x"], "REGION"),
        (["isolate", MEMBER, "us-east-1", "i-xyz", "--reason", "x"], "INSTANCE"),
        (["isolate", MEMBER, "us-east-1", "vol-0123456789abcdef0", "--reason", "x"], "INSTANCE"),
        (["isolate", *GOOD], "--reason"),
        (["isolate", *GOOD, "--reason", "   "], "--reason"),
        (["isolate", *GOOD, "--reason", "x", "--no-such-flag"], "--no-such-flag"),
        (["isolate", MEMBER, "us-east-1"], "INSTANCE"),
        (["release", "abc", "us-east-1", UNKNOWN_INSTANCE, "--reason", "x"], "ACCOUNT"),
        (["release", MEMBER, "us-west-2", UNKNOWN_INSTANCE, "--reason", "x"], "REGION"),
        (["status", "not-an-instance"], "INSTANCE"),
        (["status", "--account", "12"], "--account"),
        (["redrive", "--show", "-1"], "--show"),
    ],
)
def test_usage_errors_exit_2_before_any_aws_call(
    aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], names: str
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(HUB_ONLY_CONFIG))
    sent: list[str] = []

    def nothing_leaves(request: Any, event_name: str, **_: Any) -> Any:
        sent.append(event_name)
        return error_response(500, "InternalFailure", "the test allows no AWS call here")

    monkeypatch.setattr(
        hubenv, "SESSION_HOOKS", [lambda s: s.events.register_first("before-send", nothing_leaves)]
    )
    result = CliRunner().invoke(app, [*args, "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert names in plain(result.stderr)
    assert sent == []


def test_missing_config_is_a_usage_error(aws: None, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    for args in (
        ["isolate", *GOOD, "--reason", "x"],
        ["release", *GOOD, "--reason", "x"],
        ["status"],
        ["redrive"],
    ):
        result = CliRunner().invoke(app, [*args, "--config", str(missing)])
        assert result.exit_code == 2, result.output
        assert f"config file {missing} not found" in plain(result.stderr)


# ---- where the hub's resources are ------------------------------------------------------------


def test_hub_resources_from_the_stack_outputs(
    org: EmulatedOrg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ORGCONTAIN_* variables: the CLI reads the orgcontain-hub stack's outputs."""
    env = ops_env(org, tmp_path, monkeypatch, environment=False, spoke_accounts=["prod-a"])
    table = deploy_hub_stack(env.session, env.queues)
    account = env.account("prod-a")
    inst = org.workload("prod-a").run_instance()
    result = env.op("isolate", account, "us-east-1", inst.instance_id, "--reason", "stack")
    assert result.exit_code == 0, result.output
    assert "stack orgcontain-hub output LedgerTableName" in result.stderr
    incident = Ledger(table, env.client("dynamodb")).incident(account, "us-east-1", inst.instance_id)
    assert incident is not None and incident.status == "isolated"
    assert env.ledger.open_incidents() == []  # not the other table
    listed = json.loads(env.op("status", "--json").stdout)
    assert [i["instance_id"] for i in listed] == [inst.instance_id]


def test_no_stack_and_no_environment(aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(HUB_ONLY_CONFIG))
    result = CliRunner().invoke(app, ["status", "--config", str(config)])
    assert result.exit_code == 1
    line = last_line(result.stderr)
    assert f"no stack orgcontain-hub in account {DEFAULT_ACCOUNT} region us-east-1" in line
    assert "ORGCONTAIN_LEDGER_TABLE" in line


def test_environment_wins_over_the_stack_field_by_field(aws: None) -> None:
    import boto3

    cfn = boto3.client("cloudformation", region_name="us-east-1")
    cfn.create_stack(
        StackName="orgcontain-hub",
        TemplateBody=json.dumps(
            {
                "Resources": {"T": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "t"}}},
                "Outputs": {
                    "LedgerTableName": {"Value": "stack-table"},
                    "TopicArn": {"Value": {"Ref": "T"}},
                    "DeadLetterQueueUrl": {"Value": "https://sqs/dlq"},
                },
            }
        ),
    )
    reads: list[int] = []

    def factory() -> Any:
        reads.append(1)
        return cfn

    res = find_hub_resources(factory, need=["table"], environ={"ORGCONTAIN_LEDGER_TABLE": "env-table"})
    assert (res.table, res.topic_arn, reads) == ("env-table", None, [])  # all needed in env: no read
    res = find_hub_resources(
        factory, need=["table", "dlq_url"], environ={"ORGCONTAIN_LEDGER_TABLE": "env-table"}
    )
    assert (res.table, res.dlq_url, reads) == ("env-table", "https://sqs/dlq", [1])
    assert res.topic_arn is not None and res.topic_arn.endswith(":t")
    assert res.sources["table"] == "env ORGCONTAIN_LEDGER_TABLE"
    assert res.sources["dlq_url"] == "stack orgcontain-hub output DeadLetterQueueUrl"
    with pytest.raises(HubEnvError, match="no output QueueUrl"):
        find_hub_resources(factory, need=["queue_url"], environ={})


@pytest.mark.parametrize(
    ("arn", "name"),
    [
        ("arn:aws:iam::111111111111:user/alice", "alice"),
        ("arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_IR_0a1b/bob@example.com", "bob@example.com"),
        ("arn:aws:iam::111111111111:root", "root"),
        ("arn:aws:iam::111111111111:user/division/carol", "carol"),
    ],
)
def test_operator_name(arn: str, name: str) -> None:
    assert operator_name(arn) == name


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
            "error: cannot reach http://127.0.0.1:1: check --endpoint-url, --region and the network",
        ),
        (NoRegionError(), "error: no AWS region: pass --region or set hub.region in the config"),
    ],
)
def test_connection_failures_end_in_one_line(
    error: Exception, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Errors botocore raises before any answer (the retries it makes first are too slow to test
    through a refused port): the command boundary turns them into one line and exit 1."""
    with pytest.raises(typer.Exit) as exited, ops.boundary():
        raise error
    assert exited.value.exit_code == 1
    assert capsys.readouterr().err.strip() == expected
