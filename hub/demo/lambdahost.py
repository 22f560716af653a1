"""Runs the deployed hub function the way Lambda's SQS event source would, since moto cannot.

moto stores the function (and would let an event source mapping swallow the queue's messages) but
never runs our code. :class:`FunctionHost` reads the deployed function and its mapping, deletes the
mapping, and then plays the poller: it receives up to the mapping's batch size, builds the SQS
event Lambda builds, calls the function's handler (resolved from its ``Handler`` setting, i.e.
``hub.handler.lambda_handler``) with the function's environment and a context stub, deletes the
messages the handler did not report as failed, and makes failed ones visible again.

The function's log lines and metrics (Powertools writes them to stdout, where CloudWatch Logs would
collect them) are kept in :attr:`FunctionHost.logs`, so ``--json`` output stays clean.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

# Where Lambda sets these (the function's own variables come from its configuration).
_RUNTIME_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION", "POWERTOOLS_TRACE_DISABLED")


@dataclass
class InvocationContext:
    """The parts of the Lambda context object the handler and Powertools read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: int
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = ""
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000), 0)


@dataclass
class FixedContext:
    """A Lambda context whose remaining time does not run down (tests, benchmarks): the hub's
    lease length, derived from it, is then the same on every run."""

    function_name: str = "orgcontain-hub"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:111111111111:function:orgcontain-hub"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/orgcontain-hub"
    log_stream_name: str = "stream"
    remaining_ms: int = 120_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Delivery:
    """One SQS message handed to the function, and whether the function reported it failed."""

    message_id: str
    body: str
    receive_count: int
    failed: bool = False

    @property
    def event(self) -> dict[str, Any]:
        try:
            parsed = json.loads(self.body)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}


class LogSink(io.TextIOBase):
    """The function's stdout: log lines and EMF metric blobs, kept in memory."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._partial = ""

    def write(self, text: str) -> int:
        data = self._partial + text
        *complete, self._partial = data.split("\n")
        self.lines.extend(line for line in complete if line)
        return len(text)

    def problems(self, limit: int = 20) -> list[str]:
        """The function's WARNING/ERROR log lines (most recent last)."""
        found = [line for line in self.lines if '"level":"WARNING"' in line or '"level":"ERROR"' in line]
        return found[-limit:]


def _process_stdout() -> Any:
    return sys.__stdout__ or sys.stdout


def _swap_stream(handler: logging.StreamHandler[Any], stream: Any) -> Any:
    """Point ``handler`` at ``stream``; returns the old one (never flushes it: it may be closed)."""
    handler.acquire()
    try:
        old = handler.stream
        handler.stream = stream
    finally:
        handler.release()
    return old


class FunctionHost:
    def __init__(self, lambda_client: Any, sqs_client: Any, function_name: str) -> None:
        self._lambda = lambda_client
        self._sqs = sqs_client
        config = lambda_client.get_function_configuration(FunctionName=function_name)
        self.function_name = str(config["FunctionName"])
        self.function_arn = str(config["FunctionArn"])
        self.handler_path = str(config["Handler"])
        self.timeout = int(config.get("Timeout", 300))
        self.memory = int(config.get("MemorySize", 128))
        self.environment: dict[str, str] = dict((config.get("Environment") or {}).get("Variables") or {})
        mappings = lambda_client.list_event_source_mappings(FunctionName=function_name)["EventSourceMappings"]
        sqs_mappings = [m for m in mappings if ":sqs:" in str(m.get("EventSourceArn", ""))]
        if not sqs_mappings:
            raise RuntimeError(f"function {function_name} has no SQS event source mapping")
        mapping = sqs_mappings[0]
        self.batch_size = int(mapping.get("BatchSize") or 10)
        self.report_failures = "ReportBatchItemFailures" in (mapping.get("FunctionResponseTypes") or [])
        self.queue_arn = str(mapping["EventSourceArn"])
        _, _, _, self.region, owner, queue_name = self.queue_arn.split(":", 5)
        self.queue_url = str(
            sqs_client.get_queue_url(QueueName=queue_name, QueueOwnerAWSAccountId=owner)["QueueUrl"]
        )
        redrive = sqs_client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["RedrivePolicy"])
        policy = json.loads(redrive.get("Attributes", {}).get("RedrivePolicy") or "{}")
        self.max_receive = int(policy.get("maxReceiveCount") or 1)
        # moto's mapping would consume the messages itself without running our code: remove it.
        # Disabled first: moto's delete leaves the mapping attached to the queue, still polling.
        for m in mappings:
            lambda_client.update_event_source_mapping(UUID=m["UUID"], Enabled=False)
            lambda_client.delete_event_source_mapping(UUID=m["UUID"])
        self.logs = LogSink()
        self.invocations = 0
        self._handler: Callable[[dict[str, Any], Any], Any] | None = None

    # ---- the runtime ---------------------------------------------------------------------------
    def handler(self) -> Callable[[dict[str, Any], Any], Any]:
        if self._handler is None:
            module_name, _, attr = self.handler_path.rpartition(".")
            # Powertools binds its log handler to sys.stdout at import: make that the process's
            # own stdout (as in the Lambda runtime), not whatever a caller has swapped in.
            with contextlib.redirect_stdout(_process_stdout()):
                self._handler = getattr(importlib.import_module(module_name), attr)
        return self._handler

    @contextlib.contextmanager
    def environment_applied(self) -> Iterator[None]:
        """The function's environment variables in this process (restored afterwards)."""
        wanted = {
            **self.environment,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
        }
        saved = {k: os.environ.get(k) for k in wanted}
        os.environ.update(wanted)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    @contextlib.contextmanager
    def _stdout_to_logs(self) -> Iterator[None]:
        """Powertools writes logs (through handlers bound to stdout) and EMF metrics (print)."""
        handlers: dict[int, logging.StreamHandler[Any]] = {}
        for name in (self.environment.get("POWERTOOLS_SERVICE_NAME", "orgcontain"), "hub", "spoke"):
            for h in logging.getLogger(name).handlers:  # the same handler sits on several loggers
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                    handlers[id(h)] = h
        previous = {key: _swap_stream(h, self.logs) for key, h in handlers.items()}
        try:
            with contextlib.redirect_stdout(self.logs):
                yield
        finally:
            for key, h in handlers.items():
                old = previous[key]
                _swap_stream(h, _process_stdout() if getattr(old, "closed", False) else old)

    def invoke(self, event: dict[str, Any]) -> Any:
        context = InvocationContext(
            function_name=self.function_name,
            invoked_function_arn=self.function_arn,
            memory_limit_in_mb=self.memory,
            timeout_seconds=self.timeout,
            log_group_name=f"/aws/lambda/{self.function_name}",
            log_stream_name=time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex,
        )
        self.invocations += 1
        with self._stdout_to_logs():
            return self.handler()(event, context)

    # ---- the poller ------------------------------------------------------------------------------
    def poll_once(self) -> list[Delivery]:
        """One receive and, if anything came, one invocation. Returns the deliveries."""
        received = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(self.batch_size, 10),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not received:
            return []
        records = [self._record(m) for m in received]
        response = self.invoke({"Records": records}) or {}
        failed_ids = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        deliveries = []
        done: list[dict[str, str]] = []
        for message, record in zip(received, records, strict=True):
            failed = record["messageId"] in failed_ids
            count = int(record["attributes"]["ApproximateReceiveCount"])
            deliveries.append(Delivery(record["messageId"], record["body"], count, failed))
            if failed:
                # Lambda leaves it invisible until the visibility timeout; the demo does not wait.
                self._sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                done.append({"Id": str(len(done)), "ReceiptHandle": message["ReceiptHandle"]})
        if done:
            self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=done)
        return deliveries

    def drain(self, on_batch: Callable[[list[Delivery]], None] | None = None) -> list[Delivery]:
        """Poll until the queue is empty (failed messages return until maxReceiveCount)."""
        everything: list[Delivery] = []
        while True:
            batch = self.poll_once()
            if not batch:
                return everything
            everything.extend(batch)
            if on_batch is not None:
                on_batch(batch)

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return lambda_sqs_record(message, queue_arn=self.queue_arn, region=self.region)


def lambda_sqs_record(message: dict[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """The record Lambda's SQS poller hands the function for one ``ReceiveMessage`` message
    (``MessageId``, ``ReceiptHandle``, ``Body``, optional ``Attributes``, ``MessageAttributes``)."""
    attrs = message.get("Attributes", {})
    now = str(int(time.time() * 1000))
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attrs.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attrs.get("SentTimestamp", now),
            "SenderId": attrs.get("SenderId", "AIDAEXAMPLE"),
            "ApproximateFirstReceiveTimestamp": attrs.get("ApproximateFirstReceiveTimestamp", now),
        },
        "messageAttributes": {
            k: {"stringValue": v.get("StringValue"), "dataType": v.get("DataType", "String")}
            for k, v in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
