"""`orgcontain deploy` on the emulated organization (moto's CloudFormation and StackSets).

What moto cannot show, and where it is covered instead (see docs/deploy.md):
- auto-deployment is ignored and nested OUs are not expanded: the tests target every OU that
  holds accounts, and re-run deploy after moving an account (deploy adds what is missing);
- trust policies, conditions and resource scoping are never evaluated: test_templates.py checks
  them on the parsed templates;
- EventBusPolicy, QueuePolicy, TopicPolicy and Alarm resources are skipped by moto's
  CloudFormation: asserted on the parsed hub template instead;
- operations always succeed synchronously, so waits return at once and `failed`/`outdated`
  instances never occur here (test_coverage.py checks their mapping on AWS-shaped summaries).
"""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest
from rollout_support import Deployed, config_for, leaf_targets, write_config

from hub.demo.org import EmulatedOrg
from stacksets import templates
from stacksets.deploy import artifact_bucket_name, config_document

pytestmark = pytest.mark.usefixtures("aws")


def _policy(doc: Any) -> dict[str, Any]:
    if isinstance(doc, dict):
        return doc
    try:
        return dict(json.loads(doc))
    except json.JSONDecodeError:
        # moto's CloudFormation stores inline role policies as a Python repr, not JSON
        return dict(ast.literal_eval(doc))


def _actions(stmt: dict[str, Any]) -> list[str]:
    return [stmt["Action"]] if isinstance(stmt["Action"], str) else list(stmt["Action"])


def test_deploy_creates_the_hub_stack_with_its_outputs(org: EmulatedOrg, deployed_factory: Any) -> None:
    d: Deployed = deployed_factory(org)
    hub_region = org.regions[0]
    cfn = org.client("cloudformation", org.hub_account_id, hub_region)
    stack = cfn.describe_stacks(StackName="orgcontain-hub")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert set(outputs) == templates.output_names(templates.hub().parsed())
    assert (
        outputs["CentralBusArn"] == f"arn:aws:events:{hub_region}:{org.hub_account_id}:event-bus/orgcontain"
    )
    assert outputs["HubRoleArn"] == f"arn:aws:iam::{org.hub_account_id}:role/orgcontain-hub"
    assert outputs["FunctionName"] == "orgcontain-hub"

    # The resources behind the outputs exist in the hub account, with the settings users rely on.
    sqs = org.client("sqs", org.hub_account_id, hub_region)
    attrs = sqs.get_queue_attributes(QueueUrl=outputs["QueueUrl"], AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(":orgcontain-findings-dlq")
    assert int(redrive["maxReceiveCount"]) == 5
    lam = org.client("lambda", org.hub_account_id, hub_region)
    fn = lam.get_function_configuration(FunctionName=outputs["FunctionName"])
    assert fn["Runtime"] == "python3.12"
    assert fn["Handler"] == "hub.handler.lambda_handler"
    assert int(attrs["VisibilityTimeout"]) >= 6 * fn["Timeout"]
    env = fn["Environment"]["Variables"]
    assert env["ORGCONTAIN_CONFIG"] == "ssm:/orgcontain/config"
    assert env["ORGCONTAIN_LEDGER_TABLE"] == outputs["LedgerTableName"]
    assert env["ORGCONTAIN_TOPIC_ARN"] == outputs["TopicArn"]
    assert env["ORGCONTAIN_EVENT_BUS"] == "orgcontain"
    mappings = lam.list_event_source_mappings(FunctionName=outputs["FunctionName"])["EventSourceMappings"]
    assert [m["FunctionResponseTypes"] for m in mappings] == [["ReportBatchItemFailures"]]
    ddb = org.client("dynamodb", org.hub_account_id, hub_region)
    table = ddb.describe_table(TableName=outputs["LedgerTableName"])["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    rule = org.client("events", org.hub_account_id, hub_region).describe_rule(
        Name="orgcontain-findings", EventBusName="orgcontain"
    )
    assert json.loads(rule["EventPattern"])["detail"]["severity"] == [{"numeric": [">=", 7]}]

    # The package went to the artifact bucket under its content hash, the config to SSM.
    s3 = org.client("s3", org.hub_account_id, hub_region)
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=artifact_bucket_name(org.hub_account_id, hub_region))["Contents"]
    ]
    assert len(keys) == 1 and keys[0].startswith("lambda/orgcontain-")
    ssm = org.client("ssm", org.hub_account_id, hub_region)
    from hub.config import load_config_file, load_config_text

    pushed = ssm.get_parameter(Name="/orgcontain/config")["Parameter"]["Value"]
    assert load_config_text(pushed) == load_config_file(d.config_path)


def test_spoke_role_is_in_every_member_account_and_region(org: EmulatedOrg, deployed_factory: Any) -> None:
    deployed_factory(org)
    parsed = templates.spoke().parsed()
    template_statements = parsed["Resources"]["SpokeRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"
    ]
    for account in [*org.member_ids, org.hub_account_id]:
        iam = org.client("iam", account)
        names = {r["RoleName"] for r in iam.list_roles()["Roles"]}
        for region in org.regions:
            name = f"orgcontain-spoke-{region}"
            assert name in names, f"{name} missing in {account}"
            role = iam.get_role(RoleName=name)["Role"]
            trust = _policy(role["AssumeRolePolicyDocument"])["Statement"]
            assert len(trust) == 1
            assert trust[0]["Principal"] == {"AWS": f"arn:aws:iam::{org.hub_account_id}:root"}
            assert trust[0]["Condition"]["StringEquals"] == {"aws:PrincipalOrgID": org.organization_id}
            assert trust[0]["Condition"]["ArnEquals"]["aws:PrincipalArn"] == [
                f"arn:aws:iam::{org.hub_account_id}:role/orgcontain-hub"
            ]
            policy = _policy(
                iam.get_role_policy(RoleName=name, PolicyName="orgcontain-containment")["PolicyDocument"]
            )
            # moto keeps an AWS::NoValue list element as None (AWS drops it)
            statements = [st for st in policy["Statement"] if st is not None]
            assert len(statements) == len(template_statements) - 1  # session revocation off by default
            allowed = {a for st in statements if st["Effect"] == "Allow" for a in _actions(st)}
            assert "iam:PutRolePolicy" not in allowed
            for stmt in statements:
                if not str(stmt["Action"]).startswith("iam:"):
                    # the region pin is resolved to this stack instance's region
                    assert stmt["Condition"]["StringEquals"]["aws:RequestedRegion"] == region
    # never in the management account: service-managed StackSets do not deploy there
    mgmt_roles = {r["RoleName"] for r in org.management_client("iam").list_roles()["Roles"]}
    assert not any(n.startswith("orgcontain-spoke-") for n in mgmt_roles)


def test_forwarder_rule_in_every_region_of_the_guardduty_admin(
    org_separate_admin: EmulatedOrg, deployed_factory: Any
) -> None:
    org = org_separate_admin
    deployed_factory(org)
    bus_arn = f"arn:aws:events:{org.regions[0]}:{org.hub_account_id}:event-bus/orgcontain"
    for region in org.regions:
        events = org.client("events", org.guardduty_admin_id, region)
        rule = events.describe_rule(Name="orgcontain-forwarder")
        pattern = json.loads(rule["EventPattern"])
        assert pattern["source"] == ["aws.guardduty"]
        assert pattern["detail-type"] == ["GuardDuty Finding"]
        assert pattern["detail"]["severity"] == [{"numeric": [">=", 7]}]
        (target,) = events.list_targets_by_rule(Rule="orgcontain-forwarder")["Targets"]
        assert target["Arn"] == bus_arn
        assert target["RoleArn"].endswith(f":role/orgcontain-forwarder-{region}")
        assert target["DeadLetterConfig"]["Arn"].startswith(f"arn:aws:sqs:{region}:{org.guardduty_admin_id}:")
        assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    # only the admin account has a forwarder
    for account in org.member_ids:
        rules = org.client("events", account, org.regions[0]).list_rules()["Rules"]
        assert not [r for r in rules if r["Name"] == "orgcontain-forwarder"]


def _snapshot(org: EmulatedOrg) -> dict[str, Any]:
    """What a deploy can change, read from every place it writes."""
    hub_region = org.regions[0]
    cfn_hub = org.client("cloudformation", org.hub_account_id, hub_region)
    mgmt_cfn = org.management_client("cloudformation", hub_region)
    try:
        stack = cfn_hub.describe_stacks(StackName="orgcontain-hub")["Stacks"][0]
        stack_state = (
            stack["StackStatus"],
            str(stack.get("LastUpdatedTime")),
            len(cfn_hub.list_change_sets(StackName="orgcontain-hub")["Summaries"]),
        )
    except Exception:  # noqa: BLE001 - absent stack reads as None in the snapshot
        stack_state = None
    sets = {}
    for name in ("orgcontain-spoke", "orgcontain-forwarder"):
        try:
            ops = mgmt_cfn.list_stack_set_operations(StackSetName=name)["Summaries"]
            inst = mgmt_cfn.list_stack_instances(StackSetName=name)["Summaries"]
            sets[name] = (len(ops), len(inst))
        except Exception:  # noqa: BLE001
            sets[name] = None
    s3 = org.client("s3", org.hub_account_id, hub_region)
    buckets = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
    objects = {b: s3.list_objects_v2(Bucket=b).get("KeyCount", 0) for b in buckets}
    ssm = org.client("ssm", org.hub_account_id, hub_region)
    params = {p["Name"]: p.get("Version") for p in ssm.describe_parameters()["Parameters"]}
    return {"stack": stack_state, "sets": sets, "objects": objects, "params": params}


def test_dry_run_prints_the_plan_and_changes_nothing(
    org: EmulatedOrg, tmp_path: Any, lambda_package: Any
) -> None:
    from typer.testing import CliRunner

    cfg = write_config(tmp_path, config_for(org))
    d = Deployed(org, cfg, lambda_package, leaf_targets(org), CliRunner())
    before = _snapshot(org)
    result = d.invoke(*d.deploy_args("--dry-run"))
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True and plan["changed"] is True
    actions = {c["target"]: c["action"] for c in plan["changes"]}
    assert actions["hub stack orgcontain-hub"] == "create"
    assert actions["StackSet orgcontain-spoke"] == "create"
    spoke_instances = next(c for c in plan["changes"] if c["target"] == "orgcontain-spoke instances")
    expected = (len(org.member_ids) + 1) * len(org.regions)  # members + the hub account
    assert spoke_instances["detail"].startswith(f"{expected} to add")
    assert _snapshot(org) == before


def test_second_deploy_is_a_no_op(org: EmulatedOrg, deployed_factory: Any) -> None:
    d: Deployed = deployed_factory(org)
    before = _snapshot(org)
    result = d.invoke(*d.deploy_args())
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["changed"] is False, report
    assert {c["action"] for c in report["changes"]} == {"unchanged"}
    assert _snapshot(org) == before
    # ... and a dry run of a changed config shows exactly that change, and still changes nothing
    data = config_for(org, response={"mode": "notify", "min_severity": 8.0})
    d.config_path.write_text(json.dumps(data))
    result = d.invoke(*d.deploy_args("--dry-run"))
    plan = {c["target"]: c for c in json.loads(result.stdout)["changes"]}
    assert plan["config parameter /orgcontain/config"]["action"] == "update"
    assert plan["hub stack orgcontain-hub"]["detail"] == "parameter MinSeverity"
    assert plan["StackSet orgcontain-forwarder"]["action"] == "update"
    assert plan["StackSet orgcontain-spoke"]["action"] == "unchanged"
    assert _snapshot(org) == before


def test_config_change_updates_only_what_depends_on_it(org: EmulatedOrg, deployed_factory: Any) -> None:
    d: Deployed = deployed_factory(org)
    data = config_for(org, response={"mode": "notify", "min_severity": 8.0})
    d.config_path.write_text(json.dumps(data))
    result = d.invoke(*d.deploy_args())
    assert result.exit_code == 0, result.output
    changed = {c["target"] for c in json.loads(result.stdout)["changes"] if c["action"] != "unchanged"}
    assert changed == {
        "config parameter /orgcontain/config",
        "hub stack orgcontain-hub",
        "StackSet orgcontain-forwarder",
    }
    ssm = org.client("ssm", org.hub_account_id, org.regions[0])
    assert ssm.get_parameter(Name="/orgcontain/config")["Parameter"]["Value"] == config_document(
        __import__("hub.config", fromlist=["parse_config"]).parse_config(data)
    )
    stack = org.client("cloudformation", org.hub_account_id, org.regions[0]).describe_stacks(
        StackName="orgcontain-hub"
    )["Stacks"][0]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert params["MinSeverity"] == "8"
