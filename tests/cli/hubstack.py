"""The hub's resources for the operator-command tests (isolate, release, status, redrive).

Two environments:

- :func:`ops_env`: the emulated org (``tests.hub.helpers``: ledger table, topic with an SQS reader,
  result bus with an SQS reader, spoke roles made with ``iam.create_role``) plus the findings
  queue and its DLQ, with the CLI acting as an operator in the hub account (``--profile``);
- :func:`hub_only`: just the ledger table and the queues in moto's default account, for commands
  and failures that need no member account (cheap: no org, no instances).

Both point the ``ORGCONTAIN_*`` variables at the resources; :func:`deploy_hub_stack` makes an
``orgcontain-hub`` stack whose outputs name them instead (the CLI's lookup when the environment
says nothing). Hooks that tests add with :meth:`CliEnv.on_session` run on every session the CLI
makes (``hub.cli.hubenv.SESSION_HOOKS``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.awsrequest import AWSResponse
from click.testing import Result
from typer.testing import CliRunner

import hub.cli.hubenv as hubenv
from hub.cli import app
from hub.demo.org import EmulatedOrg
from hub.ledger import Ledger, table_definition
from tests.hub.helpers import HubStack, base_config, create_hub_stack, create_spoke_roles

OPERATOR_ROLE = "orgcontain-operator"
OPERATOR_SESSION = "alice@example.com"
PROFILE = "operator"
MAX_RECEIVE = 1  # the test DLQ takes a message after one failed receive (the hub's stack says 5)
DEFAULT_ACCOUNT = "123456789012"  # moto's account for the tests' own credentials
ANSWERED = "https://answered-by-a-test-hook.invalid/"


def answer(request: Any, response: AWSResponse) -> AWSResponse:
    """``response`` for a before-send hook, with the request kept from moto.

    moto's in-process stub is itself a before-send handler that every request reaches, even one a
    test hook already answered: it would run the call (or raise NotImplementedError for an action
    it lacks). Pointing the answered request at a host moto does not serve keeps it out, as in AWS
    a request that was never sent changes nothing.
    """
    request.url = ANSWERED
    return response


@dataclass
class Queues:
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str


@dataclass
class CliEnv:
    """Runs the CLI in-process with a config file and hooks on the CLI's sessions."""

    config_path: Path
    queues: Queues
    session: boto3.Session  # the tests' own view of the hub account
    table: str
    monkeypatch: pytest.MonkeyPatch
    profile: str | None = None
    endpoint_url: str | None = None  # a moto server: passed as --endpoint-url too
    runner: CliRunner = field(default_factory=CliRunner)
    hooks: list[Callable[[boto3.Session], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.monkeypatch.setattr(hubenv, "SESSION_HOOKS", self.hooks)
        self.monkeypatch.setenv("COLUMNS", "200")  # rich tables: no wrapped ids in the captured output

    def cli(self, *args: str) -> Result:
        """Run ``orgcontain ARGS`` in-process; a traceback or an uncaught exception fails the test."""
        result = self.runner.invoke(app, list(args))
        assert "Traceback" not in result.output, result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"uncaught {result.exception!r}\n{result.output}") from result.exception
        return result

    def op(self, *args: str) -> Result:
        """``orgcontain ARGS --config <the test's config>`` (and ``--profile``, ``--endpoint-url``)."""
        extra = ["--profile", self.profile] if self.profile else []
        extra += ["--endpoint-url", self.endpoint_url] if self.endpoint_url else []
        return self.cli(*args, "--config", str(self.config_path), *extra)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.table, self.client("dynamodb"))

    def client(self, service: str) -> Any:
        return self.session.client(  # type: ignore[call-overload]
            service, region_name="us-east-1", endpoint_url=self.endpoint_url
        )

    def sqs(self) -> Any:
        return self.client("sqs")

    def on_session(self, hook: Callable[[boto3.Session], None]) -> None:
        """Run ``hook`` on every session the CLI makes (register botocore event handlers there)."""
        self.hooks.append(hook)

    def fault(self, event: str, response: Callable[[], AWSResponse], times: int | None = None) -> list[Any]:
        """Answer ``event`` (``before-send.<service>.<Operation>``) with ``response()`` in the CLI's
        sessions, ``times`` at most; returns the requests it answered."""
        answered: list[Any] = []

        def hook(request: Any, **_: Any) -> AWSResponse | None:
            if times is not None and len(answered) >= times:
                return None
            answered.append(request)
            return answer(request, response())

        self.on_session(lambda s: s.events.register_first(event, hook))
        return answered

    def record(self, event: str) -> list[dict[str, Any]]:
        """The parameters of every call, from a ``before-parameter-build.<service>.<Operation>`` hook."""
        calls: list[dict[str, Any]] = []

        def hook(params: dict[str, Any], **_: Any) -> None:
            calls.append(dict(params))

        self.on_session(lambda s: s.events.register(event, hook))
        return calls


@dataclass
class OpsEnv(CliEnv):
    """The emulated org with the hub's resources; the CLI acts as an operator in the hub account."""

    org: EmulatedOrg = field(kw_only=True)
    stack: HubStack = field(kw_only=True)
    operator_arn: str = field(kw_only=True)

    def account(self, name: str) -> str:
        return self.org.accounts[name]

    def enis_groups(self, account: str, region: str, instance_id: str) -> dict[str, list[str]]:
        """Each ENI of the instance -> its group ids, read in the member account."""
        return {e["NetworkInterfaceId"]: sorted(g["GroupId"] for g in e["Groups"]) for e in
                self._enis(account, region, instance_id)}  # fmt: skip

    def group_names(self, account: str, region: str, instance_id: str) -> set[str]:
        return {g["GroupName"] for e in self._enis(account, region, instance_id) for g in e["Groups"]}

    def _enis(self, account: str, region: str, instance_id: str) -> list[dict[str, Any]]:
        ec2 = self.org.client("ec2", account, region)
        enis: list[dict[str, Any]] = ec2.describe_network_interfaces(
            Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
        )["NetworkInterfaces"]
        return enis


def create_queues(session: boto3.Session, endpoint_url: str | None = None) -> Queues:
    """The findings queue and its DLQ (as hub/template.yaml makes them, with a quicker redrive)."""
    sqs = session.client("sqs", region_name="us-east-1", endpoint_url=endpoint_url)
    dlq_url = sqs.create_queue(QueueName="orgcontain-findings-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName="orgcontain-findings",
        Attributes={
            "VisibilityTimeout": "60",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE}),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return Queues(queue_url, queue_arn, dlq_url, dlq_arn)


def point_environment(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    """Set the ``ORGCONTAIN_*`` variables the CLI reads (keys: hubenv resource keys)."""
    names = {r.key: r.env for r in hubenv.RESOURCES if r.env}
    for key, value in values.items():
        monkeypatch.setenv(str(names[key]), value)


STACK_TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Description": "orgcontain hub stack stand-in: the outputs the CLI reads",
    "Parameters": {"QueueUrl": {"Type": "String"}, "DeadLetterQueueUrl": {"Type": "String"}},
    "Resources": {
        "Ledger": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "orgcontain-stack-topic"}},
        "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "orgcontain"}},
    },
    "Outputs": {
        "LedgerTableName": {"Value": {"Ref": "Ledger"}},
        "TopicArn": {"Value": {"Ref": "Topic"}},
        "CentralBusArn": {"Value": {"Fn::GetAtt": ["Bus", "Arn"]}},
        "QueueUrl": {"Value": {"Ref": "QueueUrl"}},
        "DeadLetterQueueUrl": {"Value": {"Ref": "DeadLetterQueueUrl"}},
        "HubRoleArn": {"Value": "arn:aws:iam::111111111111:role/orgcontain-hub"},
        "FunctionName": {"Value": "orgcontain-hub"},
    },
}


def deploy_hub_stack(
    session: boto3.Session, queues: Queues, *, table: str = "orgcontain-stack-ledger"
) -> str:
    """An ``orgcontain-hub`` stack whose outputs name a real ledger table (the documented schema), a
    topic, a bus and the queues. Returns the table name."""
    template = json.loads(json.dumps(STACK_TEMPLATE))
    definition = table_definition(table)
    template["Resources"]["Ledger"]["Properties"] = {
        "TableName": table,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": definition["AttributeDefinitions"],
        "KeySchema": definition["KeySchema"],
        "GlobalSecondaryIndexes": definition["GlobalSecondaryIndexes"],
    }
    session.client("cloudformation", region_name="us-east-1").create_stack(
        StackName=hubenv.STACK_NAME,
        TemplateBody=json.dumps(template),
        Parameters=[
            {"ParameterKey": "QueueUrl", "ParameterValue": queues.queue_url},
            {"ParameterKey": "DeadLetterQueueUrl", "ParameterValue": queues.dlq_url},
        ],
    )
    return table


def operator_profile(org: EmulatedOrg, folder: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A named profile holding the operator role's credentials in the hub account; returns the
    operator's ARN. The tests' default credentials stay moto's management account."""
    creds = org.management_client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{org.hub_account_id}:role/{OPERATOR_ROLE}", RoleSessionName=OPERATOR_SESSION
    )["Credentials"]
    (folder / "credentials").write_text(
        f"[{PROFILE}]\naws_access_key_id = {creds['AccessKeyId']}\n"
        f"aws_secret_access_key = {creds['SecretAccessKey']}\naws_session_token = {creds['SessionToken']}\n"
    )
    (folder / "config").write_text(f"[profile {PROFILE}]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(folder / "config"))
    return f"arn:aws:sts::{org.hub_account_id}:assumed-role/{OPERATOR_ROLE}/{OPERATOR_SESSION}"


def org_reads_as_management(org: EmulatedOrg) -> Callable[[boto3.Session], None]:
    """moto lists the org only to the management account, AWS to the delegated admin (the hub):
    route the CLI's Organizations reads to the management backend (docs/moto.md)."""
    mgmt = org.management_account_id

    def as_management(request: Any, **_: Any) -> None:
        request.headers["x-moto-account-id"] = mgmt

    return lambda session: session.events.register("before-sign.organizations.*", as_management)


def ops_env(
    org: EmulatedOrg,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    environment: bool = True,
    spoke_accounts: Iterable[str] = ("prod-a", "prod-b", "dev"),
) -> OpsEnv:
    """The emulated org with the hub's resources and spoke roles in ``spoke_accounts`` (names);
    ``environment``: name the resources in ORGCONTAIN_* variables (else nothing says where they are
    until :func:`deploy_hub_stack`)."""
    stack = create_hub_stack(org)
    queues = create_queues(stack.session)
    create_spoke_roles(org, [org.accounts[a] for a in spoke_accounts], org.regions)
    config_path = tmp_path / "orgcontain.yaml"
    config_path.write_text(yaml.safe_dump(base_config(org)))
    if environment:
        point_environment(
            monkeypatch,
            table=stack.table,
            topic_arn=stack.topic_arn,
            bus=stack.bus_name,
            queue_url=queues.queue_url,
            dlq_url=queues.dlq_url,
        )
    operator_arn = operator_profile(org, tmp_path, monkeypatch)
    env = OpsEnv(
        config_path,
        queues,
        stack.session,
        stack.table,
        monkeypatch,
        profile=PROFILE,
        org=org,
        stack=stack,
        operator_arn=operator_arn,
    )
    env.on_session(org_reads_as_management(org))
    return env


HUB_ONLY_CONFIG = {
    "organization_id": "o-exampleorgid",
    "hub": {"account_id": DEFAULT_ACCOUNT, "region": "us-east-1"},
    "trusted_event_accounts": [DEFAULT_ACCOUNT],
    "regions": ["us-east-1", "eu-west-1"],
}


def hub_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, endpoint_url: str | None = None) -> CliEnv:
    """The ledger table and the queues in moto's default account, named in the environment; the CLI
    runs on the tests' own credentials. Call inside ``mock_aws`` (the ``aws`` fixture), or give the
    ``endpoint_url`` of a moto server."""
    session = boto3.Session(region_name="us-east-1")
    table = "orgcontain-ledger"
    ddb = session.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint_url)
    ddb.create_table(**table_definition(table))
    queues = create_queues(session, endpoint_url)
    config_path = tmp_path / "orgcontain.yaml"
    config_path.write_text(yaml.safe_dump(HUB_ONLY_CONFIG))
    point_environment(monkeypatch, table=table, queue_url=queues.queue_url, dlq_url=queues.dlq_url)
    return CliEnv(config_path, queues, session, table, monkeypatch, endpoint_url=endpoint_url)
