"""The hub Lambda: ``hub.handler.lambda_handler(event, context)``.

Accepts an SQS batch whose bodies are EventBridge events (the deployed wiring: partial-batch
responses, a ``failed`` finding goes back to the queue, then to the DLQ) and a bare EventBridge
event (direct invocation: a ``failed`` finding raises, so Lambda's own retry applies).

Environment: ``ORGCONTAIN_CONFIG`` (``ssm:/name`` or a file), ``ORGCONTAIN_LEDGER_TABLE``,
``ORGCONTAIN_TOPIC_ARN``, ``ORGCONTAIN_EVENT_BUS``, ``POWERTOOLS_SERVICE_NAME``,
``POWERTOOLS_METRICS_NAMESPACE``.

Cold start: only Powertools is imported here; pydantic models, boto3 and the spoke engine load on
the first invocation, and AWS clients on first use.

Inside a batch, findings run concurrently per account x region (each group in order, at most
``MAX_GROUPS`` groups at once): EC2 throttles per account and region, and two findings about
one instance then meet in order at the ledger lock rather than racing.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from hub.outcome import Outcome
    from hub.responder import Responder

# DESIGN's names are the defaults, so an unset variable (or an import before the environment is
# complete, as in tests) still yields the contract's service and namespace.
logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "orgcontain")
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "OrgContain",
    service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "orgcontain",
)
# The Tracer is built on the first invocation: constructing it loads the X-Ray SDK (which imports
# botocore), about half a second of import time on a small Lambda, paid at the first call instead.
_tracer: Any = None
_traced: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None
# A fully failed batch is reported item by item (every message retried), not as an exception.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

MAX_GROUPS = 8  # account x region groups processed at once within one batch
LEASE_MARGIN_SECONDS = 30.0

_lock = threading.Lock()
_responder: Responder | None = None
_overrides: dict[str, Any] = {}


class FindingFailed(RuntimeError):
    """A directly invoked finding could not be handled; raised so Lambda retries the event."""


class RetryLater(RuntimeError):
    """Marks an SQS record failed (it returns to the queue, then goes to the DLQ)."""


def configure(**overrides: Any) -> None:
    """Inject dependencies (tests, the demo): ``responder`` itself, or pieces of it:
    ``hub_session`` (boto3.Session of the hub), ``organizations_client_factory``,
    ``spoke_session_factory`` (builds member sessions from assumed-role credentials),
    ``spoke_client_config`` (botocore Config merged into the spoke clients'),
    ``endpoint_url``, ``clock``, ``config`` (an OrgContainConfig or RuntimeConfig)."""
    global _responder
    with _lock:
        _overrides.clear()
        _overrides.update(overrides)
        if _responder is not None:
            _responder.close()
        _responder = overrides.get("responder")
        # A new container starts with no metrics buffered. Calls made on the old responder outside
        # lambda_handler (operator actions in tests) are never flushed by log_metrics, and would
        # otherwise be printed by the next invocation's flush, counted as its own.
        metrics.clear_metrics()


def reset() -> None:
    configure()


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def build_responder(overrides: dict[str, Any] | None = None) -> Responder:
    """The Responder from the environment (clients are created on first use)."""
    import logging

    import boto3
    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
    from botocore.config import Config

    from hub.ledger import Ledger
    from hub.notify import Notifier
    from hub.orgview import OrgView
    from hub.responder import Responder
    from hub.runtime import CONFIG_ENV, RuntimeConfig
    from hub.session import SpokeSessions
    from hub.telemetry import Telemetry

    opts = dict(overrides or {})
    session: boto3.Session = opts.get("hub_session") or boto3.Session()
    endpoint = opts.get("endpoint_url")
    region = session.region_name or os.environ.get("AWS_REGION") or "us-east-1"
    aws_config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=15)
    telemetry = Telemetry(metrics)

    def client(service: str, region_name: str = region) -> Any:
        return session.client(  # type: ignore[call-overload]
            service, region_name=region_name, endpoint_url=endpoint, config=aws_config
        )

    def on_invalid(problem: Any) -> None:
        telemetry.count("ConfigInvalid")

    config = opts.get("config")
    if config is None:
        config = RuntimeConfig(
            os.environ.get(CONFIG_ENV, ""),
            ssm_client=client("ssm") if os.environ.get(CONFIG_ENV, "").startswith("ssm:") else None,
            on_invalid=on_invalid,
        )
    org_factory: Callable[[], Any] = opts.get("organizations_client_factory") or (
        lambda: client("organizations", "us-east-1")
    )
    table = os.environ.get("ORGCONTAIN_LEDGER_TABLE", "")
    if not table:
        raise RuntimeError("ORGCONTAIN_LEDGER_TABLE is not set: decisions cannot be recorded")
    # Route the hub's own module loggers through the Powertools JSON logger (keys, correlation id).
    for name in ("hub", "spoke"):
        logging.getLogger(name)
    copy_config_to_registered_loggers(source_logger=logger, include={"hub", "spoke"})
    return Responder(
        config=config,
        org=OrgView(org_factory),
        sessions=SpokeSessions(
            session,
            partition=_partition(region),
            endpoint_url=endpoint,
            session_factory=opts.get("spoke_session_factory"),
            client_config=opts.get("spoke_client_config"),
        ),
        ledger=Ledger(table, client("dynamodb")),
        notifier=Notifier(
            topic_arn=os.environ.get("ORGCONTAIN_TOPIC_ARN") or None,
            bus=os.environ.get("ORGCONTAIN_EVENT_BUS") or None,
            client_factory=client,
        ),
        telemetry=telemetry,
        **({"clock": opts["clock"]} if "clock" in opts else {}),
    )


def responder() -> Responder:
    global _responder
    with _lock:
        if _responder is None:
            _responder = build_responder(_overrides)
        return _responder


def _lease_seconds(context: Any) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        return float(remaining()) / 1000.0 + LEASE_MARGIN_SECONDS
    return 900.0 + LEASE_MARGIN_SECONDS


def _group_key(body: str) -> tuple[str, str]:
    """(account, region) of a record, for grouping; malformed bodies get their own group."""
    try:
        detail = json.loads(body).get("detail") or {}
        return str(detail.get("accountId", "?")), str(detail.get("region", "?"))
    except (ValueError, AttributeError, RecursionError):
        return "?", "?"


def _log_keys(parsed: Any, delivery_id: str) -> dict[str, Any]:
    """Log keys read from an event that has not been validated yet, so they must never raise:
    any field may be missing or of the wrong type (the responder rejects such events itself)."""

    def field(obj: Any, name: str) -> Any:
        return obj.get(name) if isinstance(obj, dict) else None

    detail = field(parsed, "detail")
    instance = field(field(detail, "resource"), "instanceDetails")
    return {
        "delivery_id": delivery_id,
        "correlation_id": field(detail, "id"),
        "finding_id": field(detail, "id"),
        "account_id": field(detail, "accountId"),
        "region": field(detail, "region"),
        "instance_id": field(instance, "instanceId"),
    }


def _handle_one(
    hub: Responder, body: str | dict[str, Any], delivery_id: str, attempt: int, lease: float
) -> Outcome:
    parsed: Any = body
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the decoder goes
            parsed = body  # the responder rejects it with reason malformed-event
    keys = _log_keys(parsed, delivery_id)
    from botocore.exceptions import BotoCoreError, ClientError  # loaded by now: the responder uses it

    logger.thread_safe_append_keys(**{k: v for k, v in keys.items() if isinstance(v, str)})
    try:
        return hub.handle_event(parsed, delivery_id=delivery_id, attempt=attempt, lease_seconds=lease)
    except (ClientError, BotoCoreError) as exc:
        # The decision could not even be recorded (the ledger is unreachable): this record goes
        # back to the queue; the others in the batch are unaffected.
        from hub.models import Decision
        from hub.outcome import Outcome

        logger.exception("could not record a decision for delivery %s", delivery_id)
        hub.telemetry.count("LedgerUnavailable")
        return Outcome(Decision.FAILED, "ledger-unavailable", delivery_id, detail=str(exc), attempt=attempt)
    finally:
        logger.thread_safe_clear_keys()


def run_batch(hub: Responder, records: list[dict[str, Any]], lease: float) -> dict[str, Outcome]:
    """Every record's outcome, by message id, account x region groups concurrently."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(_group_key(str(record.get("body", ""))), []).append(record)

    def run_group(items: list[dict[str, Any]]) -> list[tuple[str, Outcome]]:
        done = []
        for record in items:
            attempt = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1") or 1)
            message_id = str(record["messageId"])
            done.append(
                (message_id, _handle_one(hub, str(record.get("body", "")), message_id, attempt, lease))
            )
        return done

    outcomes: dict[str, Outcome] = {}
    if len(groups) == 1:
        for message_id, outcome in run_group(next(iter(groups.values()))):
            outcomes[message_id] = outcome
        return outcomes
    with ThreadPoolExecutor(
        max_workers=min(MAX_GROUPS, len(groups)), thread_name_prefix="orgcontain"
    ) as pool:
        for result in pool.map(run_group, groups.values()):
            outcomes.update(result)
    return outcomes


def tracer() -> Any:
    """The Powertools Tracer (created on first use; see above)."""
    global _tracer
    with _lock:
        if _tracer is None:
            from aws_lambda_powertools import Tracer

            _tracer = Tracer(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "orgcontain")
        return _tracer


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _traced
    if _traced is None:
        _traced = tracer().capture_lambda_handler(_handle)
    return _traced(event, context)


def _handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    hub = responder()
    lease = _lease_seconds(context)
    records = event.get("Records") if isinstance(event, dict) else None
    if isinstance(records, list):
        outcomes = run_batch(hub, records, lease)

        def record_handler(record: SQSRecord) -> str:
            outcome = outcomes[record.message_id]
            if outcome.retry:
                raise RetryLater(f"{outcome.reason}: {outcome.detail}")
            return outcome.decision.value

        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
        return dict(response)
    # A bare EventBridge event (direct invocation).
    delivery_id = str(event.get("id") or uuid.uuid4()) if isinstance(event, dict) else str(uuid.uuid4())
    outcome = _handle_one(hub, event, delivery_id, 1, lease)
    if outcome.retry:
        raise FindingFailed(
            f"finding {outcome.finding_id or delivery_id} failed: {outcome.reason}: {outcome.detail}"
        )
    return {"batchItemFailures": [], "decision": outcome.decision.value, "reason": outcome.reason}
