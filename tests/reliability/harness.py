"""The reliability suite's harness: a real SQS queue with its DLQ in front of the real handler, fault
injection through botocore event hooks, the fleet's AWS state read back from moto, and the five
invariants of issue #7 as functions that return what breaks them.

Faults never touch moto's state: every injected error is answered from a ``before-call`` hook
(botocore then skips the HTTP layer, moto included) or from a ``before-send`` hook that first points
the request at an address moto does not serve (so botocore's own retries run, and moto never sees
the request). ``test_fault_injection.py`` proves both, and that a plain ``before-send`` answer does
NOT keep moto from applying the request.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

import hub.handler as handler
from hub.demo.lambdahost import lambda_sqs_record
from hub.demo.org import EmulatedOrg, iter_instances
from hub.ledger import DecisionRecord, Ledger
from tests.hub.helpers import LambdaContext
from tests.spoke.helpers import aws_error

QUARANTINE = "orgcontain-quarantine"
TERMINAL = frozenset({"isolated", "already-isolated", "notified", "dry-run", "skipped", "rejected"})

# ---- moto ------------------------------------------------------------------------------------------


def cheap_sqs_retention_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto 5.2's ReceiveMessage checks each returned message's retention period by building ALL the
    queue's attributes (approximate counts included, each a pass over every message): O(queue) per
    message received, which makes draining a 500-message queue quadratic. Same check, O(1)."""
    from moto.core.utils import unix_time
    from moto.sqs.models import Message, SQSBackend

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Message) -> bool:
        queue = self.get_queue(queue_name)
        return bool(int(queue.message_retention_period) + message.sent_timestamp / 1000 > unix_time())  # type: ignore[operator]

    monkeypatch.setattr(
        SQSBackend, "is_message_valid_based_on_retention_period", is_message_valid_based_on_retention_period
    )


# ---- faults ----------------------------------------------------------------------------------------


class LambdaCrash(BaseException):
    """The Lambda process died mid-invocation (timeout, out of memory): no code after this point
    runs, no response is returned, so SQS makes the whole batch visible again.

    A BaseException, so that no ``except Exception`` in the hub can turn it into a decision, exactly
    as nothing in a killed process gets to write one.
    """


# One botocore data loader for every session the faults wrap: a fresh Session otherwise re-reads the
# service models on its first client, which would dominate the burst.
_LOADER = botocore.loaders.create_loader()


def shared_loader_session(**kwargs: Any) -> boto3.Session:
    core = botocore.session.Session()
    core.register_component("data_loader", _LOADER)
    return boto3.Session(botocore_session=core, **kwargs)


class FastOrg(EmulatedOrg):
    """EmulatedOrg whose member sessions share one botocore data loader: with 24 accounts, each
    session otherwise parses the EC2, IAM, ELB and Auto Scaling models again (most of the set-up)."""

    def session(
        self,
        account_id: str,
        role_name: str = "OrganizationAccountAccessRole",
        session_name: str = "orgcontain-test",
    ) -> boto3.Session:
        key = (account_id, role_name)
        if key not in self._sessions and account_id != self.management_account_id:
            creds = self._mgmt("sts").assume_role(
                RoleArn=f"arn:aws:iam::{account_id}:role/{role_name}", RoleSessionName=session_name
            )["Credentials"]
            self._sessions[key] = shared_loader_session(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
            )
        return super().session(account_id, role_name, session_name)


def _body_text(params: dict[str, Any]) -> str:
    body = params.get("body")
    if isinstance(body, bytes):
        return body.decode(errors="replace")
    return str(body)


def _short_circuit(status: int, code: str, message: str, **extra: Any) -> tuple[AWSResponse, dict[str, Any]]:
    """A before-call answer: botocore returns it as the call's result (no HTTP, no moto, no retry)."""

    class _Raw:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield b""

    parsed = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 0},
        **extra,
    }
    return AWSResponse("https://fault.invalid/", status, {}, _Raw()), parsed


@dataclass
class Faults:
    """Faults injected into the hub's real botocore calls; ``counts`` says how many of each kind.

    ``ec2_throttle`` fails a fraction of EC2 calls past botocore's retries (the caller sees
    ``RequestLimitExceeded`` or ``Throttling`` at once), ``ec2_retried`` throttles a fraction once
    and lets botocore's standard retry mode absorb it. ``ddb_conflict`` answers a fraction of the
    lock transactions with a conditional-check conflict (another writer won the breaker or the
    incident), ``sns_down`` fails every SNS publish, ``crash_after_network`` kills the Lambda between
    an instance's network step and the rest (once per instance named), and AssumeRole is refused
    for a role that does not exist in moto's IAM (as AWS refuses it).
    """

    org: EmulatedOrg
    seed: int = 7
    ec2_throttle: float = 0.0
    ec2_retried: float = 0.0
    ddb_conflict: float = 0.0
    sns_down: bool = False
    crash_after_network: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._roles: dict[str, bool] = {}

    def off(self) -> None:
        self.ec2_throttle = self.ec2_retried = self.ddb_conflict = 0.0
        self.sns_down = False
        self.crash_after_network = set()

    def _roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def _count(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1

    # ---- member-account sessions (what SpokeSessions builds from assumed-role credentials) ------
    def member_session(self, **kwargs: Any) -> boto3.Session:
        session = shared_loader_session(**kwargs)
        session.events.register_first("before-call.ec2", self._ec2_before_call)
        session.events.register_first("before-send.ec2", self._ec2_before_send)
        return session

    def _ec2_before_call(
        self, model: Any, params: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        if model.name == "DescribeInstanceAttribute" and self.crash_after_network:
            text = _body_text(params)
            with self._lock:
                hit = next((i for i in self.crash_after_network if i in text), None)
                if hit is not None:
                    self.crash_after_network.discard(hit)
                    self.counts["crash-after-network"] += 1
            if hit is not None:
                raise LambdaCrash(f"Lambda died after the network step of {hit}")
        if self._roll(self.ec2_throttle):
            code = "RequestLimitExceeded" if self._rng.random() < 0.5 else "Throttling"
            self._count(f"ec2-{code}")
            return _short_circuit(503, code, "Request limit exceeded.")
        return None

    def _ec2_before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        if not self._roll(self.ec2_retried):
            return None
        self._count("ec2-throttled-then-retried")
        request.url = "https://fault-injected.invalid/"  # moto must not apply what AWS refused
        return aws_error("RequestLimitExceeded", 503, "Request limit exceeded.")

    # ---- the hub's own session ---------------------------------------------------------------------
    def hub_session(self) -> boto3.Session:
        """A session in the hub account (same credentials as the org's), carrying the hub faults."""
        frozen = self.org.session(self.org.hub_account_id).get_credentials().get_frozen_credentials()  # type: ignore[union-attr]
        session = shared_loader_session(
            aws_access_key_id=frozen.access_key,
            aws_secret_access_key=frozen.secret_key,
            aws_session_token=frozen.token,
            region_name="us-east-1",
        )
        session.events.register_first("before-call.sts.AssumeRole", self._assume_role)
        session.events.register_first("before-call.dynamodb.TransactWriteItems", self._transaction)
        session.events.register_first("before-call.sns.Publish", self._publish)
        return session

    def role_exists(self, account_id: str, role_name: str) -> bool:
        key = f"{account_id}/{role_name}"
        with self._lock:
            known = self._roles.get(key)
        if known is not None:
            return known
        try:
            self.org.client("iam", account_id).get_role(RoleName=role_name)
            found = True
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchEntity":
                raise
            found = False
        with self._lock:
            self._roles[key] = found
        return found

    def forget_roles(self) -> None:
        with self._lock:
            self._roles.clear()

    def _assume_role(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        # moto hands out credentials for any role, existing or not; AWS refuses a missing one.
        body = params.get("body") or {}
        arn = str(body.get("RoleArn", "")) if isinstance(body, dict) else ""
        parts = arn.split(":")
        is_role = len(parts) == 6 and parts[5].startswith("role/")
        if is_role and not self.role_exists(parts[4], parts[5][len("role/") :]):
            self._count("assume-role-denied")
            return _short_circuit(
                403, "AccessDenied", f"User is not authorized to perform: sts:AssumeRole on {arn}"
            )
        return None

    def _transaction(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if not self._roll(self.ddb_conflict):
            return None
        items = json.loads(_body_text(params)).get("TransactItems", [])
        # Another writer won: the breaker (another isolation elsewhere) or the incident itself.
        loser = next(
            (i for i, it in enumerate(items) if "Put" in it and it["Put"]["Item"]["pk"]["S"] == "BREAKER"),
            0,
        )
        if self._rng.random() < 0.3:
            loser = 0
        self._count("ddb-conditional-conflict")
        reasons = [
            {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
            if i == loser
            else {"Code": "None"}
            for i in range(len(items))
        ]
        return _short_circuit(
            400,
            "TransactionCanceledException",
            "Transaction cancelled, please refer cancellation reasons for specific reasons",
            CancellationReasons=reasons,
        )

    def _publish(self, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if not self.sns_down:
            return None
        self._count("sns-outage")
        return _short_circuit(500, "InternalError", "SNS is unavailable")


# ---- the findings queue and the Lambda poller -------------------------------------------------------


@dataclass
class FindingsQueue:
    """The hub stack's queue and DLQ (redrive policy, ``max_receive`` attempts), in the hub account."""

    sqs: Any
    url: str
    dlq_url: str
    max_receive: int

    @classmethod
    def create(
        cls, org: EmulatedOrg, *, max_receive: int = 3, name: str = "orgcontain-findings"
    ) -> FindingsQueue:
        sqs = org.client("sqs", org.hub_account_id)
        dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        url = sqs.create_queue(
            QueueName=name,
            Attributes={
                # 0 for the test: a failed message is visible again at once (AWS: >= 6x the timeout).
                "VisibilityTimeout": "0",
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive)}
                ),
            },
        )["QueueUrl"]
        return cls(sqs, url, dlq, max_receive)

    def publish(self, bodies: Iterable[tuple[str, dict[str, Any] | str]]) -> int:
        """Send ``(pub id, body)`` pairs; the pub id rides along as a message attribute."""
        batch: list[dict[str, Any]] = []
        sent = 0
        for pub, body in bodies:
            batch.append(
                {
                    "Id": str(len(batch)),
                    "MessageBody": body if isinstance(body, str) else json.dumps(body),
                    "MessageAttributes": {"pub": {"DataType": "String", "StringValue": pub}},
                }
            )
            if len(batch) == 10:
                sent += self._send(batch)
                batch = []
        if batch:
            sent += self._send(batch)
        return sent

    def _send(self, batch: list[dict[str, Any]]) -> int:
        resp = self.sqs.send_message_batch(QueueUrl=self.url, Entries=batch)
        assert not resp.get("Failed"), resp.get("Failed")
        return len(batch)

    def depth(self, url: str | None = None) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every DLQ message (looked at and put back)."""
        seen: dict[str, dict[str, Any]] = {}
        handles = []
        while True:
            got = self.sqs.receive_message(
                QueueUrl=self.dlq_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=30,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            for m in got:
                seen[m["MessageId"]] = m
                handles.append(m["ReceiptHandle"])
        for h in handles:
            self.sqs.change_message_visibility(QueueUrl=self.dlq_url, ReceiptHandle=h, VisibilityTimeout=0)
        return list(seen.values())

    def redrive(self) -> int:
        """Move the DLQ back to the queue the way ``orgcontain redrive`` does under moto."""
        from hub.cli.ops import _send_receive_delete

        result = _send_receive_delete(self.sqs, self.dlq_url, self.url, self.depth(self.dlq_url))
        assert result.failed == 0, result.notes
        return result.moved


def pub_of(message: dict[str, Any]) -> str:
    return str(message.get("MessageAttributes", {}).get("pub", {}).get("StringValue", ""))


@dataclass
class Poller:
    """Lambda's SQS poller: batches of ``batch_size``, partial batch failures, crashes.

    A returned batch deletes what succeeded and leaves the failures (visible again at once). A
    crashed invocation deletes nothing (the whole batch comes back) and the next invocation runs in
    a new container (``cold_start``).
    """

    queue: FindingsQueue
    cold_start: Callable[[], None]
    batch_size: int = 10
    remaining_ms: int = 120_000
    message_pub: dict[str, str] = field(default_factory=dict)
    invocations: int = 0
    crashes: int = 0
    crashed_pubs: set[str] = field(default_factory=set)
    batch_failures: int = 0
    metrics: Counter[str] = field(default_factory=Counter)
    before_invoke: Callable[[int], None] | None = None

    def poll(self) -> bool:
        got = self.queue.sqs.receive_message(
            QueueUrl=self.queue.url,
            MaxNumberOfMessages=self.batch_size,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            return False
        for m in got:
            self.message_pub[m["MessageId"]] = pub_of(m)
        event = {"Records": [_lambda_record(m, self.queue) for m in got]}
        self.invocations += 1
        if self.before_invoke is not None:
            self.before_invoke(self.invocations)
        try:
            response = handler.lambda_handler(event, LambdaContext(remaining_ms=self.remaining_ms))
        except LambdaCrash:
            self.crashes += 1
            self.crashed_pubs |= {pub_of(m) for m in got}
            self.new_container()
            return True
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        self.batch_failures += len(failed)
        done = [m for m in got if m["MessageId"] not in failed]
        for i in range(0, len(done), 10):
            chunk = done[i : i + 10]
            self.queue.sqs.delete_message_batch(
                QueueUrl=self.queue.url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(chunk)],
            )
        return True

    def drain(self, *, max_invocations: int = 2_000) -> None:
        start = self.invocations
        while self.poll():
            assert self.invocations - start < max_invocations, "the queue never drained"

    def new_container(self) -> None:
        self.collect_metrics()
        self.cold_start()

    def collect_metrics(self) -> None:
        """Fold the current container's metric tally into the total (a new container starts at 0)."""
        self.metrics.update(handler.responder().telemetry.counts)
        handler.responder().telemetry.counts.clear()


def _lambda_record(message: dict[str, Any], queue: FindingsQueue) -> dict[str, Any]:
    name = queue.url.rsplit("/", 1)[-1]
    return lambda_sqs_record(
        message, queue_arn=f"arn:aws:sqs:us-east-1:000000000000:{name}", region="us-east-1"
    )


def emf_metrics(stdout: str) -> Counter[str]:
    """Sum of every EMF metric the handler printed (what CloudWatch would have received)."""
    totals: Counter[str] = Counter()
    for line in stdout.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = blob.get(metric["Name"], 0)
                totals[metric["Name"]] += int(sum(value) if isinstance(value, list) else value)
    return totals


# ---- the fleet's state, read back from moto ----------------------------------------------------------


def fleet_state(org: EmulatedOrg, pairs: Iterable[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Everything a containment may change, per instance, read from moto through member roles:
    each ENI's groups, the instance's tags, profile association, termination protection, shutdown
    behaviour, DeleteOnTermination per volume, Auto Scaling group and target-group membership, state
    and the evidence snapshots taken of it."""
    out: dict[str, dict[str, Any]] = {}
    for account, region in pairs:
        ec2 = org.client("ec2", account, region)
        names = {g["GroupId"]: g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]}
        enis: dict[str, dict[str, list[str]]] = {}
        for eni in ec2.describe_network_interfaces()["NetworkInterfaces"]:
            owner = eni.get("Attachment", {}).get("InstanceId")
            if owner:
                enis.setdefault(owner, {})[eni["NetworkInterfaceId"]] = sorted(
                    names.get(g["GroupId"], g["GroupId"]) for g in eni["Groups"]
                )
        profiles = {
            a["InstanceId"]: a["IamInstanceProfile"]["Arn"]
            for a in ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"]
            if a["State"] == "associated"
        }
        snapshots: Counter[str] = Counter()
        for snap in ec2.describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": "tag-key", "Values": ["orgcontain:instance-id"]}]
        )["Snapshots"]:
            tags = {t["Key"]: t["Value"] for t in snap.get("Tags", [])}
            snapshots[tags["orgcontain:instance-id"]] += 1
        asg = org.client("autoscaling", account, region)
        asg_of = {
            i["InstanceId"]: i["AutoScalingGroupName"]
            for i in asg.describe_auto_scaling_instances()["AutoScalingInstances"]
        }
        elbv2 = org.client("elbv2", account, region)
        targets: dict[str, list[str]] = {}
        for tg in elbv2.describe_target_groups()["TargetGroups"]:
            for desc in elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])[
                "TargetHealthDescriptions"
            ]:
                targets.setdefault(desc["Target"]["Id"], []).append(tg["TargetGroupName"])
        for inst in iter_instances(ec2):
            iid = inst["InstanceId"]
            if inst["State"]["Name"] in ("terminated", "shutting-down"):
                continue
            out[iid] = {
                "account": account,
                "region": region,
                "state": inst["State"]["Name"],
                "enis": enis.get(iid, {}),
                "tags": {t["Key"]: t["Value"] for t in inst.get("Tags", [])},
                "profile": profiles.get(iid),
                "termination_protection": ec2.describe_instance_attribute(
                    InstanceId=iid, Attribute="disableApiTermination"
                )["DisableApiTermination"]["Value"],
                "shutdown": ec2.describe_instance_attribute(
                    InstanceId=iid, Attribute="instanceInitiatedShutdownBehavior"
                )["InstanceInitiatedShutdownBehavior"]["Value"],
                "delete_on_termination": {
                    b["Ebs"]["VolumeId"]: b["Ebs"]["DeleteOnTermination"]
                    for b in inst.get("BlockDeviceMappings", [])
                },
                "asg": asg_of.get(iid),
                "target_groups": sorted(targets.get(iid, [])),
                "snapshots": snapshots.get(iid, 0),
            }
    return out


def quarantined_enis(state: dict[str, Any]) -> tuple[int, int]:
    """(ENIs on the quarantine group alone, ENIs) of one instance's state."""
    enis = state["enis"]
    return sum(1 for groups in enis.values() if groups == [QUARANTINE]), len(enis)


def without_orgcontain_tags(state: dict[str, Any]) -> dict[str, Any]:
    """An instance's state with orgcontain's own tags (status, finding id, ...) left out."""
    return {
        **state,
        "tags": {k: v for k, v in state["tags"].items() if not k.startswith("orgcontain:")},
        "snapshots": None,
    }


# ---- the invariants ---------------------------------------------------------------------------------


@dataclass
class Verdict:
    lost: list[str] = field(default_factory=list)
    half_done_without_record: list[str] = field(default_factory=list)
    touched_by_mistake: list[str] = field(default_factory=list)
    duplicate_containments: list[str] = field(default_factory=list)
    release_not_exact: list[str] = field(default_factory=list)


_LIGHT = (
    "pk",
    "sk",
    "kind",
    "decision",
    "reason",
    "delivery_id",
    "decided_at",
    "instance_id",
    "notification",
)


def light_decisions(ledger: Ledger) -> list[DecisionRecord]:
    """Every decision record without its large fields (steps, detail): the Scan the invariants need,
    a fraction of moto's serialization cost of ``Ledger.all_decisions`` on a thousand records."""
    names = {f"#a{n}": a for n, a in enumerate(_LIGHT)}
    pages = ledger.client.get_paginator("scan").paginate(
        TableName=ledger.table,
        FilterExpression="#a2 = :decision",
        ProjectionExpression=", ".join(names),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={":decision": {"S": "decision"}},
    )
    return [DecisionRecord.from_item(item) for page in pages for item in page["Items"]]


def decisions_by_pub(
    decisions: Iterable[DecisionRecord], message_pub: dict[str, str]
) -> dict[str, list[DecisionRecord]]:
    out: dict[str, list[DecisionRecord]] = {}
    for d in decisions:
        pub = message_pub.get(d.delivery_id)
        if pub is not None:
            out.setdefault(pub, []).append(d)
    return out


def check_nothing_lost(
    published: Iterable[str],
    by_pub: dict[str, list[DecisionRecord]],
    dead: dict[str, dict[str, Any]],
    ledger: Ledger,
    message_pub: dict[str, str],
    crashed: set[str] = frozenset(),  # type: ignore[assignment]
) -> list[str]:
    """Invariant 1: every delivered message has exactly one terminal decision, or sits in the DLQ
    with its reason (its last decision is ``failed`` with a reason, or the ledger shows the
    interrupted attempt: the instance's incident still names that delivery as its lease owner).

    One exception, which is SQS's contract and not a loss: a message of a batch whose Lambda died
    (``crashed``) comes back even if its decision was already written, and is decided again. The
    later decisions must then not act again: only the first may be ``isolated``."""
    problems = []
    for pub in published:
        records = sorted(by_pub.get(pub, []), key=lambda d: d.decided_at)
        terminal = [d for d in records if d.decision in TERMINAL]
        if pub in crashed and len(terminal) > 1:
            again = [d for d in terminal[1:] if d.decision not in ("already-isolated", terminal[0].decision)]
            again += [d for d in terminal[1:] if d.decision == "isolated"]
            if again:
                problems.append(f"{pub}: redelivered after a crash and acted again {again}")
            terminal = terminal[:1]
        if pub in dead:
            if terminal:
                problems.append(f"{pub}: in the DLQ but decided {[(d.decision, d.reason) for d in terminal]}")
            elif records and records[-1].decision == "failed" and records[-1].reason:
                continue
            elif not _interrupted_holder(pub, dead[pub], ledger, message_pub):
                problems.append(f"{pub}: in the DLQ with no recorded reason")
            continue
        if len(terminal) != 1:
            problems.append(
                f"{pub}: {len(terminal)} terminal decisions {[(d.decision, d.reason) for d in records]}"
            )
    return problems


def _interrupted_holder(
    pub: str, message: dict[str, Any], ledger: Ledger, message_pub: dict[str, str]
) -> bool:
    try:
        detail = json.loads(message["Body"])["detail"]
        instance = detail["resource"]["instanceDetails"]["instanceId"]
        incident = ledger.incident(detail["accountId"], detail["region"], instance)
    except (KeyError, TypeError, ValueError):
        return False
    return incident is not None and message_pub.get(incident.lease_owner) == pub


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
