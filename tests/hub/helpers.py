"""Reusable helpers for hub tests (also for reliability/benchmark tests): findings, envelopes, SQS
batches, a Lambda context stub, the hub stack's resources in moto, spoke roles, fault hooks."""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from hub.config import OrgContainConfig, parse_config
from hub.demo.lambdahost import FixedContext, lambda_sqs_record
from hub.demo.org import EmulatedOrg
from hub.ledger import Ledger, table_definition
from tests.conftest import load_fixture

# A real-shaped (not sample) Instance finding used as the template for generated ones.
TEMPLATE = "autoresp-ec2-canary-integtest-bare.json"
SPOKE_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::{hub}:role/orgcontain-hub"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_finding(
    account_id: str,
    region: str,
    instance_id: str | None = "i-0123456789abcdef0",
    *,
    finding_id: str | None = None,
    finding_type: str = "Backdoor:EC2/C&CActivity.B",
    severity: float = 8.0,
    tags: dict[str, str] | None = None,
    sample: bool = False,
    archived: bool = False,
    resource_type: str = "Instance",
    updated_at: str | None = None,
) -> dict[str, Any]:
    """A bare GuardDuty finding (camelCase event ``detail``) about ``instance_id``."""
    finding: dict[str, Any] = copy.deepcopy(load_fixture(TEMPLATE))
    fid = finding_id or uuid.uuid4().hex
    finding.update(
        id=fid,
        accountId=account_id,
        region=region,
        arn=f"arn:aws:guardduty:{region}:{account_id}:detector/3caf4e0aaa46ce4ccbcef949a8785353/finding/{fid}",
        type=finding_type,
        severity=severity,
        title=f"{finding_type} on {instance_id}",
        updatedAt=updated_at or now_iso(),
    )
    finding["resource"]["resourceType"] = resource_type
    details = finding["resource"]["instanceDetails"]
    details["instanceId"] = instance_id
    details["tags"] = [{"key": k, "value": v} for k, v in (tags or {"Name": "web"}).items()]
    finding["service"]["archived"] = archived
    if sample:
        finding["service"]["additionalInfo"] = {"sample": True}
    return finding


def envelope(
    detail: dict[str, Any],
    account: str,
    *,
    source: str = "aws.guardduty",
    detail_type: str = "GuardDuty Finding",
    region: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Wrap a bare finding as EventBridge delivers it (envelope ``account`` = the delivering admin)."""
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": now_iso(),
        "region": region or str(detail.get("region", "us-east-1")),
        "resources": [],
        "detail": detail,
    }


LambdaContext = FixedContext  # what the handler and Powertools read from the Lambda context

QUEUE_ARN = "arn:aws:sqs:us-east-1:111111111111:orgcontain-findings"


def sqs_event(bodies: Sequence[dict[str, Any] | str], *, receive_count: int = 1) -> dict[str, Any]:
    """An SQS batch (Lambda event) whose bodies are EventBridge events."""
    messages = [
        {
            "MessageId": str(uuid.uuid4()),
            "ReceiptHandle": "rh-" + uuid.uuid4().hex,
            "Body": body if isinstance(body, str) else json.dumps(body),
            "Attributes": {"ApproximateReceiveCount": str(receive_count)},
        }
        for body in bodies
    ]
    return {"Records": [lambda_sqs_record(m, queue_arn=QUEUE_ARN, region="us-east-1") for m in messages]}


def base_config(org: EmulatedOrg, **response: Any) -> dict[str, Any]:
    """Config data for the emulated org (override ``response`` keys, or mutate the result)."""
    return {
        "organization_id": org.organization_id,
        "hub": {"account_id": org.hub_account_id, "region": "us-east-1"},
        "trusted_event_accounts": [org.guardduty_admin_id],
        "regions": list(org.regions),
        "spoke_role_prefix": "orgcontain-spoke",
        "response": {
            "mode": "isolate",
            "min_severity": 7.0,
            "quarantine_ingress": [{"cidr": "10.0.0.10/32", "ports": [22], "description": "SOC bastion"}],
            "breaker": {"max_isolations": 20, "window_minutes": 60},
            **response,
        },
    }


def config_for(org: EmulatedOrg, data: dict[str, Any] | None = None, **response: Any) -> OrgContainConfig:
    return parse_config(data if data is not None else base_config(org, **response))


@dataclass
class HubStack:
    """The hub stack's resources in moto (what hub/template.yaml creates), in the hub account."""

    session: boto3.Session
    table: str
    topic_arn: str
    bus_name: str
    notifications_queue_url: str
    results_queue_url: str

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name="us-east-1")  # type: ignore[call-overload]

    def ledger(self) -> Ledger:
        return Ledger(self.table, self.client("dynamodb"))

    def notifications(self) -> list[dict[str, Any]]:
        """SNS messages delivered to the subscribed queue: {subject, body, attributes}."""
        return [
            {
                "subject": m.get("Subject"),
                "body": m["Message"],
                "attributes": {k: v["Value"] for k, v in m.get("MessageAttributes", {}).items()},
            }
            for m in _drain_queue(self.client("sqs"), self.notifications_queue_url)
        ]

    def result_events(self) -> list[dict[str, Any]]:
        return _drain_queue(self.client("sqs"), self.results_queue_url)


def _drain_queue(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not msgs:
            return out
        for m in msgs:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def create_hub_stack(org: EmulatedOrg, *, name: str = "orgcontain") -> HubStack:
    """Ledger table (with the documented key schema and GSI), SNS topic with an SQS subscriber, the
    result bus with a rule delivering result events to an SQS queue; all in the hub account."""
    session = org.session(org.hub_account_id)
    ddb = session.client("dynamodb", region_name="us-east-1")
    table = f"{name}-ledger"
    ddb.create_table(**table_definition(table))
    ddb.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )
    sqs = session.client("sqs", region_name="us-east-1")
    sns = session.client("sns", region_name="us-east-1")
    events = session.client("events", region_name="us-east-1")
    topic_arn = sns.create_topic(Name=f"{name}-notifications")["TopicArn"]
    nq = sqs.create_queue(QueueName=f"{name}-notifications-reader")["QueueUrl"]
    nq_arn = sqs.get_queue_attributes(QueueUrl=nq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=nq_arn)
    bus = f"{name}-results"
    events.create_event_bus(Name=bus)
    rq = sqs.create_queue(QueueName=f"{name}-results-reader")["QueueUrl"]
    rq_arn = sqs.get_queue_attributes(QueueUrl=rq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="results", EventBusName=bus, EventPattern=json.dumps({"source": ["orgcontain"]}))
    events.put_targets(Rule="results", EventBusName=bus, Targets=[{"Id": "q", "Arn": rq_arn}])
    return HubStack(session, table, topic_arn, bus, nq, rq)


def create_spoke_roles(
    org: EmulatedOrg, accounts: Iterable[str], regions: Iterable[str], prefix: str = "orgcontain-spoke"
) -> None:
    """The spoke role per account and region (the StackSet's job in production)."""
    trust = SPOKE_TRUST.replace("{hub}", org.hub_account_id)
    regions = list(regions)
    for account in accounts:
        iam = org.client("iam", account)
        for region in regions:
            iam.create_role(RoleName=f"{prefix}-{region}", AssumeRolePolicyDocument=trust)


def error_response(status: int, code: str, message: str, *, protocol: str = "query") -> AWSResponse:
    """A botocore response carrying a real AWS error body (for before-send fault hooks)."""
    if protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = {"x-amzn-ErrorType": code, "Content-Type": "application/x-amz-json-1.0"}
    else:
        body = (
            f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>"
        ).encode()
        headers = {"Content-Type": "text/xml"}
    raw = _Raw(body)
    return AWSResponse("https://fault.invalid/", status, headers, raw)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterable[bytes]:
        yield self._body

    def read(self, *_: Any, **__: Any) -> bytes:
        return self._body


def call_fails(
    predicate: Callable[[str], bool],
    status: int,
    code: str,
    message: str,
    *,
    times: int | None = None,
) -> Callable[..., tuple[AWSResponse, dict[str, Any]] | None]:
    """A ``before-call.<service>.<Operation>`` hook: while ``predicate(serialized request body)``
    holds, the call fails with ``code`` WITHOUT reaching moto.

    Use this, not a ``before-send`` hook, when the failure must leave no trace: botocore emits
    ``before-send`` to every handler (moto's included) and only then picks the first response, so
    moto applies the change even though the client sees the injected error. A before-call
    response also bypasses botocore's retries: it stands for "failed after the retries".
    """
    state = {"left": times}

    def hook(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        body = params.get("body")
        text = body.decode() if isinstance(body, bytes) else str(body)
        if not predicate(text):
            return None
        if state["left"] is not None:
            if state["left"] <= 0:
                return None
            state["left"] -= 1
        parsed = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 0},
        }
        return AWSResponse("https://fault.invalid/", status, {}, _Raw(b"")), parsed

    return hook


def body_text(request: Any) -> str:
    body = request.body
    if body is None:
        return ""
    return body.decode() if isinstance(body, bytes) else str(body)


def fail_when(
    predicate: Callable[[Any], bool], response: Callable[[], AWSResponse], times: int | None = None
) -> Callable[..., AWSResponse | None]:
    """A before-send hook: answer ``response()`` while ``predicate(request)`` holds (``times`` max)."""
    state = {"left": times}

    def hook(request: Any, **_: Any) -> AWSResponse | None:
        if not predicate(request):
            return None
        if state["left"] is not None:
            if state["left"] <= 0:
                return None
            state["left"] -= 1
        return response()

    return hook


# ---- moto: one DynamoDB request at a time (autouse fixture in tests/hub and tests/reliability) ----

_DYNAMODB_LOCK = threading.RLock()


def serialize_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's DynamoDB handle one request at a time and undo a cancelled transaction item by item.

    moto 5.2's ``transact_write_items`` deep-copies every table it touches before it starts and,
    when a condition fails, puts that copy back. Under threads (the handler runs account x region
    groups concurrently) a write another thread made in between is silently undone (an incident
    lock, a checkpoint, a decision record), and the deep copy itself can die with ``RuntimeError:
    dictionary changed size during iteration``. DynamoDB transactions are serializable, so the hub
    is right to rely on them; the emulator is not. Copying the whole table also makes every
    transaction cost O(table): with a thousand decision records, about a second each.

    Here every DynamoDB request holds one lock, and a transaction saves only the items it names and
    puts those back when it is cancelled (what moto's rollback restores, minus the cost).
    tests/reliability/test_fault_injection.py checks the rollback and that concurrent writes survive.
    """
    from moto.dynamodb import models as ddb_models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    original_call = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _DYNAMODB_LOCK:
            return original_call(self)

    class _NoTableCopy:
        """moto's own ``copy`` module, except that a Table is not copied (we save its items)."""

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    original_transact = ddb_models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = []
        for entry in transact_items:
            op_type, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            if table is None or op_type == "ConditionCheck":
                continue
            attrs = op["Item"] if op_type == "Put" else op["Key"]
            hash_key = DynamoType(attrs[table.hash_key_attr])
            range_key = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
            saved.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
        try:
            original_transact(self, transact_items)
        except Exception:
            for table, hash_key, range_key, old in reversed(saved):
                if range_key is None:
                    if old is None:
                        table.items.pop(hash_key, None)
                    else:
                        table.items[hash_key] = old
                elif old is None:
                    table.items[hash_key].pop(range_key, None)
                else:
                    table.items[hash_key][range_key] = old
            raise

    monkeypatch.setattr(DynamoHandler, "call_action", call_action)
    monkeypatch.setattr(ddb_models, "copy", _NoTableCopy)
    monkeypatch.setattr(ddb_models.DynamoDBBackend, "transact_write_items", transact_write_items)
