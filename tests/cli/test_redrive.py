"""`orgcontain redrive`: show what failed (from the DLQ and the ledger), then move it back.

Dead letters are made the way production makes them: the hub Lambda (``hub.handler``) fails a
finding (its spoke role is denied), the queue's redrive policy moves the message to the DLQ; and an
EventBridge delivery failure (a DLQ message with ``ERROR_CODE``/``ERROR_MESSAGE`` attributes).

moto has no SQS message move tasks (``NotImplementedError`` in-process), so the CLI falls back to
receive -> send -> delete there; the move-task path is driven by before-send hooks answering
StartMessageMoveTask / ListMessageMoveTasks with real response bodies.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

import hub.cli.ops as ops
import hub.handler as handler
from hub.demo.org import EmulatedOrg
from tests.cli.hubstack import CliEnv, OpsEnv, answer, hub_only, ops_env
from tests.hub.helpers import LambdaContext, envelope, error_response, make_finding, sqs_event


@pytest.fixture
def env(org: EmulatedOrg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OpsEnv:
    monkeypatch.setenv("ORGCONTAIN_CONFIG", str(tmp_path / "orgcontain.yaml"))  # the Lambda's
    return ops_env(org, tmp_path, monkeypatch)


@pytest.fixture
def hub(aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliEnv:
    """The queues and the ledger alone (no org): enough for DLQ messages the bus could not deliver."""
    return hub_only(tmp_path, monkeypatch)


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def queue_bodies(sqs: Any, url: str) -> list[str]:
    """Every message body in the queue (received and deleted)."""
    bodies: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            return bodies
        for m in got:
            bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def visible(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def fail_in_the_hub(env: OpsEnv, account: str, region: str, instance_id: str) -> dict[str, Any]:
    """A finding the hub Lambda fails on (spoke role denied), left in the DLQ by the redrive policy.

    Returns the finding (the event's ``detail``)."""
    org = env.org
    detail = make_finding(account, region, instance_id)
    event = envelope(detail, org.guardduty_admin_id)
    sqs = env.sqs()
    sqs.send_message(QueueUrl=env.queues.queue_url, MessageBody=json.dumps(event))
    [message] = sqs.receive_message(QueueUrl=env.queues.queue_url, MaxNumberOfMessages=1)["Messages"]

    # The hub, on its own session whose AssumeRole into the spoke is refused.
    creds = org.session(org.hub_account_id).get_credentials()
    hub_session = boto3.Session(
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        aws_session_token=creds.token,
        region_name="us-east-1",
    )
    hub_session.events.register_first(
        "before-send.sts.AssumeRole",
        lambda **_: error_response(403, "AccessDenied", "spoke role not trusted"),
    )
    handler.configure(
        hub_session=hub_session, organizations_client_factory=org.organizations_client_as_delegated_admin
    )
    try:
        batch = sqs_event([message["Body"]])
        response = handler.lambda_handler(batch, LambdaContext())
    finally:
        handler.reset()
    assert len(response["batchItemFailures"]) == 1  # the Lambda reported it failed
    # The event source mapping leaves a failed message; after maxReceiveCount SQS moves it to the DLQ.
    sqs.change_message_visibility(
        QueueUrl=env.queues.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )
    assert sqs.receive_message(QueueUrl=env.queues.queue_url, MaxNumberOfMessages=1).get("Messages") is None
    return detail


def undeliverable(env: CliEnv, account: str, region: str, admin: str = "333333333333") -> dict[str, Any]:
    """An event the bus rule could not deliver: EventBridge puts it in the DLQ with error attributes."""
    detail = make_finding(account, region, "i-0fedcba9876543210")
    attributes = {
        "RULE_ARN": "arn:aws:events:us-east-1:111111111111:rule/orgcontain/findings",
        "TARGET_ARN": env.queues.queue_arn,
        "ERROR_CODE": "NO_PERMISSIONS",
        "ERROR_MESSAGE": "events.amazonaws.com is not allowed to SendMessage",
    }
    env.sqs().send_message(
        QueueUrl=env.queues.dlq_url,
        MessageBody=json.dumps(envelope(detail, admin)),
        MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
    )
    return detail


def json_response(body: dict[str, Any], status: int = 200) -> AWSResponse:
    raw = json.dumps(body).encode()

    class Raw:
        def stream(self, **_: Any) -> Any:
            yield raw

        def read(self, *_: Any, **__: Any) -> bytes:
            return raw

    return AWSResponse(
        "https://sqs.us-east-1.amazonaws.com/", status, {"Content-Type": "application/x-amz-json-1.0"}, Raw()
    )


def move_task_hooks(env: CliEnv, moved: int, statuses: list[str]) -> list[dict[str, Any]]:
    """Answer StartMessageMoveTask and ListMessageMoveTasks as SQS does; returns the start requests."""
    started: list[dict[str, Any]] = []
    handle = "eyJ0YXNrSWQiOiJkZW1vIn0="
    polls = iter(statuses)

    def start(request: Any, **_: Any) -> AWSResponse:
        started.append(json.loads(request.body))
        return answer(request, json_response({"TaskHandle": handle}))

    def listing(request: Any, **_: Any) -> AWSResponse:
        source = json.loads(request.body)["SourceArn"]
        status = next(polls, statuses[-1])
        task: dict[str, Any] = {
            "TaskHandle": handle,
            "Status": status,
            "SourceArn": source,
            "DestinationArn": env.queues.queue_arn,
            "ApproximateNumberOfMessagesMoved": moved if status == "COMPLETED" else 0,
            "ApproximateNumberOfMessagesToMove": moved,
            "StartedTimestamp": 1700000000000,
        }
        return answer(request, json_response({"Results": [task]}))

    def register(session: boto3.Session) -> None:
        session.events.register_first("before-send.sqs.StartMessageMoveTask", start)
        session.events.register_first("before-send.sqs.ListMessageMoveTasks", listing)

    env.on_session(register)
    return started


# ---- the fallback (moto): receive -> send -> delete --------------------------------------------


def test_redrive_shows_why_then_moves_back_by_receive_send_delete(env: OpsEnv) -> None:
    account = env.account("prod-a")
    inst = env.org.workload("prod-a").run_instance()
    failed = fail_in_the_hub(env, account, "us-east-1", inst.instance_id)
    lost = undeliverable(env, env.account("dev"), "eu-west-1")
    sqs = env.sqs()
    originals = {m: visible(sqs, u) for m, u in (("dlq", env.queues.dlq_url),)}
    assert originals == {"dlq": 2}

    result = env.op("redrive")
    assert result.exit_code == 0, result.output
    table = result.stdout
    # What failed and why: the finding, where, and the error the ledger recorded.
    assert failed["id"] in table and account in table and inst.instance_id in table
    assert "failed (assume-role-denied)" in table and "AccessDenied" in table
    assert lost["id"] in table and "NO_PERMISSIONS" in table
    # How it moved, said plainly.
    assert "StartMessageMoveTask" in result.stderr and "receive -> send -> delete" in result.stderr
    assert "moved 2 by receive -> send -> delete; 0 failed; 0 left" in result.stderr

    assert visible(sqs, env.queues.dlq_url) == 0
    bodies = sorted(json.loads(b)["detail"]["id"] for b in queue_bodies(sqs, env.queues.queue_url))
    assert bodies == sorted([failed["id"], lost["id"]])


def test_redrive_json(env: OpsEnv) -> None:
    account = env.account("dev")
    inst = env.org.workload("dev").run_instance()
    detail = fail_in_the_hub(env, account, "us-east-1", inst.instance_id)
    result = env.op("redrive", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # stdout holds the JSON alone
    assert report["messages"] == 1 and report["dry_run"] is False
    [letter] = report["dead_letters"]
    assert (letter["finding_id"], letter["account_id"], letter["region"], letter["instance_id"]) == (
        detail["id"],
        account,
        "us-east-1",
        inst.instance_id,
    )
    assert letter["receive_count"] == 1  # the hub's one attempt (maxReceiveCount 1), not our own look
    assert letter["last_decision"] == "failed" and letter["last_reason"] == "assume-role-denied"
    assert "AccessDenied" in letter["last_error"]
    assert report["move"]["method"] == "receive-send-delete"
    assert report["move"]["moved"] == 1 and report["move"]["remaining"] == 0
    assert "StartMessageMoveTask" in report["move"]["fallback_reason"]


def test_redrive_then_the_hub_handles_the_finding(env: OpsEnv) -> None:
    """Redriven messages are the hub's input again: with the fault gone the instance is isolated."""
    account = env.account("prod-b")
    inst = env.org.workload("prod-b").run_instance()
    fail_in_the_hub(env, account, "us-east-1", inst.instance_id)
    assert env.op("redrive").exit_code == 0
    sqs = env.sqs()
    [message] = sqs.receive_message(QueueUrl=env.queues.queue_url, MaxNumberOfMessages=10)["Messages"]
    handler.configure(
        hub_session=env.org.session(env.org.hub_account_id),
        organizations_client_factory=env.org.organizations_client_as_delegated_admin,
    )
    try:
        response = handler.lambda_handler(sqs_event([message["Body"]]), LambdaContext())
    finally:
        handler.reset()
    assert response["batchItemFailures"] == []
    assert env.group_names(account, "us-east-1", inst.instance_id) == {"orgcontain-quarantine"}


def test_dry_run_moves_nothing_and_puts_the_messages_back(hub: CliEnv) -> None:
    undeliverable(hub, "444444444444", "us-east-1")
    undeliverable(hub, "555555555555", "us-east-1")
    result = hub.op("redrive", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: 2 messages left in the dead-letter queue" in result.stderr
    # Peeking hid nothing: both are visible again at once, and nothing reached the queue.
    sqs = hub.sqs()
    assert visible(sqs, hub.queues.dlq_url) == 2
    assert visible(sqs, hub.queues.queue_url) == 0


def test_empty_dlq(hub: CliEnv) -> None:
    result = hub.op("redrive")
    assert result.exit_code == 0
    assert "nothing to redrive" in result.stderr
    report = json.loads(hub.op("redrive", "--json").stdout)
    assert report["messages"] == 0 and report["move"] is None


def test_source_queue_found_from_the_dlq(hub: CliEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the DLQ known: the queue to redrive to is the one whose redrive policy names it."""
    monkeypatch.delenv("ORGCONTAIN_QUEUE_URL")
    undeliverable(hub, "444444444444", "us-east-1")
    report = json.loads(hub.op("redrive", "--json").stdout)
    assert report["queue"] == hub.queues.queue_url
    assert visible(hub.sqs(), hub.queues.queue_url) == 1


# ---- the message move task ----------------------------------------------------------------------


def test_redrive_by_message_move_task(hub: CliEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "MOVE_TASK_POLL_SECONDS", 0.0)
    undeliverable(hub, "444444444444", "us-east-1")
    undeliverable(hub, "555555555555", "eu-west-1")
    started = move_task_hooks(hub, moved=2, statuses=["RUNNING", "COMPLETED"])

    result = hub.op("redrive")
    assert result.exit_code == 0, result.output
    assert started == [{"SourceArn": hub.queues.dlq_arn, "DestinationArn": hub.queues.queue_arn}]
    assert "COMPLETED, 2 of 2 moved" in result.stderr, result.stderr
    assert "receive -> send -> delete" not in result.stderr
    # SQS does the moving: the CLI itself neither received-and-deleted nor sent anything.
    sqs = hub.sqs()
    assert visible(sqs, hub.queues.dlq_url) == 2
    assert visible(sqs, hub.queues.queue_url) == 0

    report = json.loads(hub.op("redrive", "--json").stdout)
    assert report["move"]["method"] == "message-move-task"
    assert report["move"]["status"] == "COMPLETED" and report["move"]["moved"] == 2


def test_a_failed_move_task_is_one_line(hub: CliEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "MOVE_TASK_POLL_SECONDS", 0.0)
    undeliverable(hub, "444444444444", "us-east-1")
    move_task_hooks(hub, moved=1, statuses=["FAILED"])
    result = hub.op("redrive")
    assert result.exit_code == 1
    assert last_line(result.stderr).startswith("error: the message move task failed")


def test_move_task_denied_is_not_hidden_by_the_fallback(hub: CliEnv) -> None:
    undeliverable(hub, "444444444444", "us-east-1")
    denied: Callable[[], AWSResponse] = lambda: error_response(  # noqa: E731
        400, "AccessDenied", "not authorized to perform sqs:StartMessageMoveTask", protocol="json"
    )
    hub.fault("before-send.sqs.StartMessageMoveTask", denied)
    result = hub.op("redrive")
    assert result.exit_code == 1
    assert result.stderr.count("error:") == 1
    assert last_line(result.stderr).startswith("error: StartMessageMoveTask failed: AccessDenied")
    assert visible(hub.sqs(), hub.queues.dlq_url) == 1  # nothing moved behind the operator's back


# ---- against a moto server (--endpoint-url) ------------------------------------------------------


@pytest.fixture
def server() -> Iterator[str]:
    """A moto server on localhost (no in-process mock: the CLI talks HTTP to it)."""
    from moto.server import ThreadedMotoServer

    moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto_server.start()
    host, port = moto_server.get_host_and_port()
    url = f"http://{host}:{port}"
    # The server shares moto's backends with the in-process mock: start from nothing, leave nothing.
    reset = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    try:
        urllib.request.urlopen(reset, timeout=10).close()
        yield url
    finally:
        urllib.request.urlopen(reset, timeout=10).close()
        moto_server.stop()


def test_redrive_and_status_against_a_moto_server(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server answers StartMessageMoveTask with a 500: the CLI falls back and says so."""
    hub = hub_only(tmp_path, monkeypatch, endpoint_url=server)
    undeliverable(hub, "444444444444", "us-east-1")
    undeliverable(hub, "555555555555", "eu-west-1")
    report = json.loads(hub.op("redrive", "--json").stdout)
    assert report["move"]["method"] == "receive-send-delete"
    assert "(500)" in report["move"]["fallback_reason"]
    assert report["move"]["moved"] == 2
    assert visible(hub.sqs(), hub.queues.dlq_url) == 0
    assert visible(hub.sqs(), hub.queues.queue_url) == 2
    status = hub.op("status", "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout) == []
