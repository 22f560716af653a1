"""The three templates, read as AWS reads them: lint, contract names, and the security properties
that moto cannot evaluate (trust, conditions, resource scoping, bus/queue/topic policies, alarms,
TTL). See test_rollout_deploy.py for what the templates create under moto.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from stacksets import templates

LINT_REGIONS = ["us-east-1", "eu-west-1", "us-west-2", "ap-southeast-2", "eu-central-1"]

HUB = templates.hub().parsed()
SPOKE = templates.spoke().parsed()
FORWARDER = templates.forwarder().parsed()


@pytest.mark.parametrize("template", templates.all_templates(), ids=lambda t: t.name)
def test_cfn_lint_reports_nothing(template: templates.Template) -> None:
    from cfnlint.api import ManualArgs, lint

    matches = lint(template.body(), config=ManualArgs(regions=LINT_REGIONS))
    assert [str(m) for m in matches] == []


def test_contract_parameter_and_output_names() -> None:
    assert templates.parameter_names(HUB) == {
        "OrganizationId",
        "TrustedEventAccounts",
        "MinSeverity",
        "SpokeRolePrefix",
        "CodeS3Bucket",
        "CodeS3Key",
        "ConfigParameterName",
    }
    assert templates.output_names(HUB) == {
        "CentralBusArn",
        "QueueUrl",
        "DeadLetterQueueUrl",
        "LedgerTableName",
        "TopicArn",
        "HubRoleArn",
        "FunctionName",
    }
    # AllowRoleSessionRevocation is an addition with a safe default (off), not in the contract table.
    assert templates.parameter_names(SPOKE) == {
        "OrganizationId",
        "HubAccountId",
        "HubRoleName",
        "OperatorRoleName",
        "RolePrefix",
        "AllowRoleSessionRevocation",
    }
    assert SPOKE["Parameters"]["HubRoleName"]["Default"] == "orgcontain-hub"
    assert SPOKE["Parameters"]["OperatorRoleName"]["Default"] == ""
    assert SPOKE["Parameters"]["RolePrefix"]["Default"] == "orgcontain-spoke"
    assert SPOKE["Parameters"]["AllowRoleSessionRevocation"]["Default"] == "false"
    assert templates.output_names(SPOKE) == {"RoleArn"}
    assert templates.parameter_names(FORWARDER) == {"CentralBusArn", "MinSeverity"}
    assert FORWARDER["Parameters"]["MinSeverity"]["Default"] == 7
    assert HUB["Parameters"]["MinSeverity"]["Default"] == 7
    assert "RuleArn" in templates.output_names(FORWARDER)


def test_no_sam_transform() -> None:
    for parsed in (HUB, SPOKE, FORWARDER):
        assert "Transform" not in parsed


# ---- spoke role -------------------------------------------------------------------------------


def _spoke_statements(revocation: bool) -> list[dict[str, Any]]:
    """The spoke policy's statements as deployed with AllowRoleSessionRevocation = revocation."""
    role = SPOKE["Resources"]["SpokeRole"]["Properties"]
    out = []
    for stmt in role["Policies"][0]["PolicyDocument"]["Statement"]:
        if "Fn::If" in stmt:
            condition, when_true, when_false = stmt["Fn::If"]
            assert SPOKE["Conditions"][condition] == {
                "Fn::Equals": [{"Ref": "AllowRoleSessionRevocation"}, "true"]
            }
            chosen = when_true if revocation else when_false
            if chosen != {"Ref": "AWS::NoValue"}:
                out.append(chosen)
        else:
            out.append(stmt)
    return out


def _actions(stmt: dict[str, Any]) -> list[str]:
    action = stmt["Action"]
    return [action] if isinstance(action, str) else list(action)


def _resources(stmt: dict[str, Any]) -> list[Any]:
    res = stmt["Resource"]
    return res if isinstance(res, list) else [res]


def granted_actions(revocation: bool = False) -> set[str]:
    return {a for s in _spoke_statements(revocation) if s["Effect"] == "Allow" for a in _actions(s)}


def test_spoke_trust_is_the_hub_role_and_operator_only_inside_the_org() -> None:
    trust = SPOKE["Resources"]["SpokeRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert len(trust) == 1
    (stmt,) = trust
    assert stmt["Effect"] == "Allow" and stmt["Action"] == "sts:AssumeRole"
    assert stmt["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${HubAccountId}:root"}}
    assert stmt["Condition"]["StringEquals"] == {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}
    hub_role = {"Fn::Sub": "arn:${AWS::Partition}:iam::${HubAccountId}:role/${HubRoleName}"}
    operator = {"Fn::Sub": "arn:${AWS::Partition}:iam::${HubAccountId}:role/${OperatorRoleName}"}
    assert stmt["Condition"]["ArnEquals"]["aws:PrincipalArn"] == {
        "Fn::If": ["HasOperator", [hub_role, operator], [hub_role]]
    }
    assert SPOKE["Conditions"]["HasOperator"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "OperatorRoleName"}, ""]}]
    }
    name = SPOKE["Resources"]["SpokeRole"]["Properties"]["RoleName"]
    assert name == {"Fn::Sub": "${RolePrefix}-${AWS::Region}"}


@pytest.mark.parametrize("revocation", [False, True])
def test_spoke_permissions_are_narrow(revocation: bool) -> None:
    for stmt in _spoke_statements(revocation):
        for action in _actions(stmt):
            assert "*" not in action, f"wildcard action {action}"
        if stmt["Effect"] == "Deny":
            continue
        service = _actions(stmt)[0].split(":")[0]
        if service == "iam":
            # IAM is global: aws:RequestedRegion would be us-east-1, so IAM statements are scoped by
            # resource (this account) and, for PassRole, by the receiving service.
            for res in _resources(stmt):
                assert ":iam::${AWS::AccountId}:" in res["Fn::Sub"]
            continue
        region_pin = stmt["Condition"]["StringEquals"]["aws:RequestedRegion"]
        assert region_pin == {"Ref": "AWS::Region"}, stmt["Sid"]
        mutating = [a for a in _actions(stmt) if not a.split(":")[1].startswith("Describe")]
        if mutating:
            for res in _resources(stmt):
                # mutations name this account's (and, but for snapshots, this region's) resources
                assert res != "*", stmt["Sid"]
                assert "${AWS::Region}:" in res["Fn::Sub"], stmt["Sid"]


def test_security_group_rule_changes_only_on_orgcontain_groups() -> None:
    rule_actions = {
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:AuthorizeSecurityGroupEgress",
        "ec2:RevokeSecurityGroupIngress",
        "ec2:RevokeSecurityGroupEgress",
    }
    stmts = [s for s in _spoke_statements(True) if rule_actions & set(_actions(s))]
    assert len(stmts) == 1
    assert set(_actions(stmts[0])) == rule_actions
    assert stmts[0]["Condition"]["StringEquals"]["aws:ResourceTag/orgcontain:role"] == [
        "quarantine",
        "transition",
    ]
    create = [s for s in _spoke_statements(True) if "ec2:CreateSecurityGroup" in _actions(s)]
    tagged = [s for s in create if "security-group/*" in s["Resource"]["Fn::Sub"]]
    assert tagged[0]["Condition"]["StringEquals"]["aws:RequestTag/orgcontain:role"] == [
        "quarantine",
        "transition",
    ]


def test_pass_role_only_to_ec2() -> None:
    (stmt,) = [s for s in _spoke_statements(True) if "iam:PassRole" in _actions(s)]
    assert _actions(stmt) == ["iam:PassRole"]
    assert stmt["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}


def test_instance_tags_only_orgcontain_keys() -> None:
    (stmt,) = [s for s in _spoke_statements(True) if "ec2:DeleteTags" in _actions(s)]
    assert stmt["Condition"]["ForAllValues:StringLike"] == {"aws:TagKeys": ["orgcontain:*"]}


def test_put_role_policy_only_when_enabled_and_never_on_own_roles() -> None:
    assert "iam:PutRolePolicy" not in granted_actions(revocation=False)
    assert "iam:PutRolePolicy" in granted_actions(revocation=True)
    denies = [s for s in _spoke_statements(True) if s["Effect"] == "Deny"]
    assert [_actions(s) for s in denies] == [["iam:PutRolePolicy"]]
    resources = {r["Fn::Sub"] for r in _resources(denies[0])}
    assert "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${RolePrefix}-*" in resources


def test_spoke_grants_exactly_what_the_spoke_engine_calls() -> None:
    """The role and spoke/ stay in step: every declared action is granted, nothing more."""
    permissions = pytest.importorskip(
        "spoke.permissions", reason="spoke/permissions.py does not exist yet (spoke engine not merged)"
    )
    required = set(permissions.required_actions())
    assert granted_actions(revocation=True) == required
    # Off by default, the role lacks exactly the session revocation's write.
    assert required - granted_actions(revocation=False) == {"iam:PutRolePolicy"}


# ---- forwarder ----------------------------------------------------------------------------------


def _render_sub(value: Any, **params: Any) -> str:
    text = value["Fn::Sub"]
    return re.sub(r"\$\{(\w+)\}", lambda m: str(params[m.group(1)]), text)


def _matches(pattern_json: str, event: dict[str, Any]) -> bool:
    from moto.events.models import EventPattern

    return bool(EventPattern.load(pattern_json).matches_event(event))


def _finding_event(
    severity: Any, source: str = "aws.guardduty", detail_type: str = "GuardDuty Finding"
) -> Any:
    return {
        "version": "0",
        "id": "e1",
        "detail-type": detail_type,
        "source": source,
        "account": "111111111111",
        "time": "2026-01-01T00:00:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": {"severity": severity, "type": "Backdoor:EC2/C&CActivity.B", "accountId": "222222222222"},
    }


@pytest.mark.parametrize("resource", [("forwarder", "ForwardRule"), ("hub", "FindingsRule")])
def test_rule_patterns_match_high_severity_guardduty_findings_only(resource: tuple[str, str]) -> None:
    parsed = FORWARDER if resource[0] == "forwarder" else HUB
    pattern = parsed["Resources"][resource[1]]["Properties"]["EventPattern"]
    # !Sub, so the threshold is a JSON number (a Ref to a Number parameter would be a string)
    rendered = _render_sub(pattern, MinSeverity=7)
    assert json.loads(rendered)["detail"]["severity"] == [{"numeric": [">=", 7]}]
    assert _matches(rendered, _finding_event(8.0))
    assert _matches(rendered, _finding_event(7))
    assert _matches(rendered, _finding_event(10))
    assert not _matches(rendered, _finding_event(6.9))
    assert not _matches(rendered, _finding_event(2.0))
    assert not _matches(rendered, _finding_event(8.0, detail_type="GuardDuty Runtime Protection Unhealthy"))
    assert not _matches(rendered, _finding_event(8.0, source="custom.app"))
    assert _matches(_render_sub(pattern, MinSeverity=8.5), _finding_event(9.1))
    assert not _matches(_render_sub(pattern, MinSeverity=8.5), _finding_event(8.4))


def test_forwarder_role_target_retry_and_dead_letters() -> None:
    res = FORWARDER["Resources"]
    role = res["ForwarderRole"]["Properties"]
    assert "${AWS::Region}" in role["RoleName"]["Fn::Sub"]  # IAM is global; one stack per region
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    (put,) = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert put == {"Effect": "Allow", "Action": "events:PutEvents", "Resource": {"Ref": "CentralBusArn"}}
    rule = res["ForwardRule"]["Properties"]
    assert "EventBusName" not in rule  # the default bus, where GuardDuty publishes
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Ref": "CentralBusArn"}
    assert target["RoleArn"] == {"Fn::GetAtt": ["ForwarderRole", "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert res["DeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"] is True
    (send,) = [
        s
        for s in res["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow"
    ]
    assert send["Principal"] == {"Service": "events.amazonaws.com"}
    assert "aws:SourceArn" in send["Condition"]["ArnEquals"]
    assert FORWARDER["Outputs"]["RuleArn"]["Value"] == {"Fn::GetAtt": ["ForwardRule", "Arn"]}


# ---- hub ----------------------------------------------------------------------------------------


def test_bus_policy_lets_only_trusted_accounts_put_guardduty_findings() -> None:
    res = HUB["Resources"]
    assert res["Bus"]["Properties"]["Name"] == "orgcontain"
    policy = res["BusPolicy"]["Properties"]
    assert policy["EventBusName"] == {"Fn::GetAtt": ["Bus", "Name"]}
    stmt = policy["Statement"]
    assert stmt["Effect"] == "Allow"
    assert stmt["Action"] == "events:PutEvents"  # never PutRule / PutTargets
    assert stmt["Principal"] == {"AWS": {"Ref": "TrustedEventAccounts"}}
    assert stmt["Condition"]["StringEquals"] == {
        "aws:PrincipalOrgID": {"Ref": "OrganizationId"},
        "events:source": "aws.guardduty",
        "events:detail-type": "GuardDuty Finding",
    }
    # Rules on the bus refer to it by name through GetAtt (a Ref on a bus crashes moto).
    assert res["FindingsRule"]["Properties"]["EventBusName"] == {"Fn::GetAtt": ["Bus", "Name"]}


def test_queue_dead_letters_and_queue_policy() -> None:
    res = HUB["Resources"]
    queue = res["Queue"]["Properties"]
    fn = res["Function"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * fn["Timeout"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] <= 10
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    for name in ("Queue", "DeadLetterQueue"):
        assert res[name]["Properties"]["KmsMasterKeyId"] == {"Ref": "Key"}
    (target,) = res["FindingsRule"]["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    allow = [
        s for s in res["QueuePolicy"]["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"
    ]
    assert len(allow) == 1
    assert allow[0]["Principal"] == {"Service": "events.amazonaws.com"}
    assert allow[0]["Action"] == "sqs:SendMessage"
    assert allow[0]["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["FindingsRule", "Arn"]}}}
    # The key lets EventBridge encrypt for exactly that rule (its ARN written out: no cycle).
    key_stmts = res["Key"]["Properties"]["KeyPolicy"]["Statement"]
    events = next(s for s in key_stmts if s["Principal"] == {"Service": "events.amazonaws.com"})
    arn = events["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"]
    bus = res["Bus"]["Properties"]["Name"]
    rule = res["FindingsRule"]["Properties"]["Name"]
    assert arn.endswith(f":rule/{bus}/{rule}")


def test_function_and_event_source() -> None:
    res = HUB["Resources"]
    fn = res["Function"]["Properties"]
    assert fn["Runtime"] == "python3.12"
    assert fn["Architectures"] == ["arm64"]
    assert fn["Handler"] == "hub.handler.lambda_handler"
    assert fn["Code"] == {"S3Bucket": {"Ref": "CodeS3Bucket"}, "S3Key": {"Ref": "CodeS3Key"}}
    assert fn["Role"] == {"Fn::GetAtt": ["HubRole", "Arn"]}
    assert 60 <= fn["Timeout"] <= 900 and fn["MemorySize"] >= 512
    assert 1 <= fn["ReservedConcurrentExecutions"] <= 50
    env = fn["Environment"]["Variables"]
    assert env == {
        "ORGCONTAIN_CONFIG": {"Fn::Sub": "ssm:${ConfigParameterName}"},
        "ORGCONTAIN_LEDGER_TABLE": {"Ref": "Ledger"},
        "ORGCONTAIN_TOPIC_ARN": {"Ref": "Topic"},
        "ORGCONTAIN_EVENT_BUS": {"Fn::GetAtt": ["Bus", "Name"]},
        "POWERTOOLS_SERVICE_NAME": "orgcontain",
        "POWERTOOLS_METRICS_NAMESPACE": "OrgContain",
    }
    esm = res["QueueSource"]["Properties"]
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= esm["BatchSize"] <= 10
    assert 2 <= esm["ScalingConfig"]["MaximumConcurrency"] <= fn["ReservedConcurrentExecutions"]


def test_hub_role_assumes_only_spoke_roles_in_the_org_and_touches_only_its_own_resources() -> None:
    role = HUB["Resources"]["HubRole"]["Properties"]
    assert role["RoleName"] == "orgcontain-hub"
    statements = role["Policies"][0]["PolicyDocument"]["Statement"]
    by_sid = {s["Sid"]: s for s in statements}
    assume = by_sid["AssumeSpokeRolesInTheOrganization"]
    assert assume["Action"] == "sts:AssumeRole"
    assert assume["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/${SpokeRolePrefix}-*"}
    assert assume["Condition"] == {"StringEquals": {"aws:ResourceOrgID": {"Ref": "OrganizationId"}}}
    assert [s for s in statements if "sts:AssumeRole" in _actions(s)] == [assume]
    star = {s["Sid"] for s in statements if s["Resource"] == "*"}
    # only actions that have no resource type can be granted on "*", and metrics only in our namespace
    assert star == {"OrganizationParents", "Metrics", "Tracing"}
    assert by_sid["Metrics"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "OrgContain"}}
    for stmt in statements:
        for action in _actions(stmt):
            assert "*" not in action
    parameter_arn = (
        "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${ConfigParameterName}"
    )
    assert by_sid["ReadConfig"]["Resource"] == {"Fn::Sub": parameter_arn}


def test_ledger_table() -> None:
    table = HUB["Resources"]["Ledger"]
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert {k["AttributeName"]: k["KeyType"] for k in props["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    (gsi,) = props["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "gsi1"
    assert table["DeletionPolicy"] == "Retain"
    # The hub's own ledger module names the same keys, index and TTL attribute.
    ledger = pytest.importorskip("hub.ledger")
    assert gsi["IndexName"] == ledger.GSI


def test_topic_is_encrypted_and_alarms_notify_it() -> None:
    res = HUB["Resources"]
    assert res["Topic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "Key"}
    alarms = templates.resources_of_type(HUB, "AWS::CloudWatch::Alarm")
    by_metric = {}
    for alarm in alarms.values():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": "Topic"}]
        assert props["ComparisonOperator"] == "GreaterThanThreshold"
        assert props["TreatMissingData"] == "notBreaching"
        if "MetricName" in props:
            by_metric[props["MetricName"]] = props
        else:
            for m in props["Metrics"]:
                if "MetricStat" in m:
                    by_metric[m["MetricStat"]["Metric"]["MetricName"]] = props
    assert by_metric["ApproximateNumberOfMessagesVisible"]["Threshold"] == 0  # DLQ not empty
    assert by_metric["ApproximateNumberOfMessagesVisible"]["Dimensions"][0]["Value"] == {
        "Fn::GetAtt": ["DeadLetterQueue", "QueueName"]
    }
    assert by_metric["Errors"]["Namespace"] == "AWS/Lambda"
    for metric in ("BreakerOpen", "AssumeRoleFailed"):
        assert by_metric[metric]["Namespace"] == "OrgContain"
        assert by_metric[metric]["Threshold"] == 0
        assert by_metric[metric]["Dimensions"] == [{"Name": "service", "Value": "orgcontain"}]
    assert "ConfigInvalid" in by_metric and "ConfigUnavailable" in by_metric
    # a topic policy lets CloudWatch publish (only for this account's alarms)
    stmts = res["TopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    cw = next(s for s in stmts if s["Effect"] == "Allow")
    assert cw["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert cw["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_alarm_and_dashboard_metrics_are_ones_the_hub_emits() -> None:
    telemetry = pytest.importorskip("hub.telemetry")
    emitted = set(telemetry.DECISION_METRIC.values()) | set(
        re.findall(r"\b([A-Z][A-Za-z]+)\b", telemetry.__doc__.split("Metric names")[1])
    )
    body = HUB["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    rendered = re.sub(r"\$\{[\w:]+\}", "x", body)
    dashboard = json.loads(rendered)  # valid JSON once substituted
    used = {
        m[1]
        for w in dashboard["widgets"]
        for m in w["properties"]["metrics"]
        if isinstance(m, list) and len(m) > 1 and m[0] == "OrgContain"
    }
    for alarm in templates.resources_of_type(HUB, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if props.get("Namespace") == "OrgContain":
            used.add(props["MetricName"])
        for m in props.get("Metrics", []):
            if "MetricStat" in m:
                used.add(m["MetricStat"]["Metric"]["MetricName"])
    assert used <= emitted, used - emitted
    assert {"FindingsReceived", "SecondsToNetworkIsolation", "Isolated", "Failed"} <= used


@pytest.mark.parametrize("template", templates.all_templates(), ids=lambda t: t.name)
def test_checkov_suppressions_carry_their_reason(template: templates.Template) -> None:
    """.ci/templates runs checkov; any check skipped in a template says why, in the template."""
    for name, res in template.parsed().get("Resources", {}).items():
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (name, skip)
            assert len(skip.get("comment", "").split()) >= 8, f"{name}: {skip['id']} needs a reason"
