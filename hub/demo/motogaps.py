"""Where moto 5.2 differs from AWS on the demo's path, and how the demo bridges each gap.

The list is printed by ``orgcontain demo`` (and returned in its JSON) so nobody mistakes the
emulation for AWS. docs/moto.md has the measurements behind each line.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

_lock = threading.Lock()

# (gap, what the demo does about it); printed in the closing summary.
GAPS: tuple[tuple[str, str], ...] = (
    (
        "moto's CloudFormation cannot read an EventPattern written as a JSON string (AWS can; the "
        "templates need one for the numeric severity threshold)",
        "the string is parsed before moto's Rule resource reads it",
    ),
    (
        "EventBridge deliveries lack the envelope 'account' field",
        "moto's delivery template gets the field back (hub.demo.org.patch_moto)",
    ),
    (
        "the Lambda function never runs our code, and an SQS event source mapping would swallow the messages",
        "the mapping is disabled and deleted after the deploy (moto's delete alone leaves it "
        "polling the queue); the demo polls the queue with the mapping's batch "
        "size and calls the function's handler (hub.handler.lambda_handler) with the function's "
        "environment and a context stub, deleting what it reports done, as Lambda's poller would",
    ),
    (
        "EventBusPolicy, QueuePolicy, TopicPolicy and CloudWatch alarms in the templates are skipped "
        "(nothing is enforced or evaluated)",
        "not bridged: the forged message is stopped by the hub's own trust check, which the demo shows",
    ),
    (
        "put_events accepts the reserved source aws.guardduty from anyone (AWS only from GuardDuty), "
        "and GuardDuty's findings APIs are not emulated",
        "the demo plays GuardDuty: it puts the findings on the admin account's default bus itself",
    ),
    (
        "a cross-account or cross-region bus target re-stamps the event with the target's "
        "account and region (AWS keeps the original envelope)",
        "harmless here: the hub is the GuardDuty admin, so 'account' is right; the hub acts on "
        "detail.accountId and detail.region, never on the envelope region",
    ),
    (
        "Organizations lists the organization only to the management account (AWS: also to a "
        "delegated admin, the hub)",
        "the hub's Organizations reads are routed to the management account's view",
    ),
    (
        "an Auto Scaling launch template's network-interface groups are ignored",
        "the demo sets the launched ENIs' groups itself after the group launches them",
    ),
    (
        "a DynamoDB transaction that fails restores a copy of the whole table taken when it "
        "started, undoing writes other threads made meanwhile (the hub contains several "
        "account-regions at once, and contending on the breaker makes transactions fail)",
        "moto's DynamoDB calls are serialised while the demo runs",
    ),
    (
        "(not a gap, a shortcut) Lambda leaves a failed message invisible for the queue's visibility "
        "timeout (30 min) before the retry",
        "the demo makes it visible again at once; retries stop at the queue's maxReceiveCount (DLQ)",
    ),
)


def accept_string_event_patterns() -> None:
    """Let moto's CloudFormation accept ``EventPattern`` as a JSON string, as AWS does (idempotent).

    Shares its marker with the rollout tests' identical fixture, so either may run first.
    """
    from moto.events import models as events_models

    with _lock:
        rule: Any = events_models.Rule
        if getattr(rule, "_orgcontain_string_patterns", False):
            return
        original = rule.create_from_cloudformation_json.__func__

        def create(cls: Any, resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any) -> Any:
            props = cloudformation_json.get("Properties", {})
            if isinstance(props.get("EventPattern"), str):
                props["EventPattern"] = json.loads(props["EventPattern"])
            return original(cls, resource_name, cloudformation_json, *args, **kwargs)

        rule.create_from_cloudformation_json = classmethod(create)
        rule._orgcontain_string_patterns = True


# The REST services orgcontain, its demo, tests and benchmarks call: only REST routers compile
# werkzeug URL rules (the Query and JSON ones route on a parameter or a header).
REST_SERVICES = ("guardduty", "lambda", "s3")
_routers_built = False


def build_routers_up_front(services: tuple[str, ...] = REST_SERVICES) -> None:
    """Build moto's request routers now, in the calling thread (idempotent).

    moto builds a service's router on its first request, and for REST services werkzeug compiles
    the URL rules with ``ast.parse``. CPython 3.11 keeps ``ast.parse``'s recursion counter per
    interpreter, not per thread (python/cpython#106905, fixed in 3.12), so two threads making their
    first call to such a service at once can fail with ``SystemError: AST constructor recursion
    depth mismatch``. The hub and ``coverage`` call AWS from worker threads; seen once in the
    suite, on the coverage command's concurrent GuardDuty listings.
    """
    global _routers_built
    if _routers_built:
        return
    from moto.core.routing import get_service_router
    from werkzeug.exceptions import NotFound

    for name in services:
        router: Any = get_service_router(name)
        model = router._service_model
        for protocol in model.metadata.get("protocols") or [model.protocol]:
            try:
                router._get_router(protocol)
            except NotFound:  # a protocol moto does not route for this service
                continue
    _routers_built = True


@contextmanager
def serialised_dynamodb() -> Iterator[None]:
    """moto's DynamoDB, one request at a time, for the duration (see GAPS)."""
    from moto.dynamodb.responses import DynamoHandler

    handler: Any = DynamoHandler
    original = handler.call_action
    guard = threading.RLock()

    def call_action(self: Any) -> Any:
        with guard:
            return original(self)

    handler.call_action = call_action
    try:
        yield
    finally:
        handler.call_action = original


@contextmanager
def shared_service_models() -> Iterator[None]:
    """One botocore data loader for every boto3 Session made meanwhile.

    The demo (and the hub it runs) make a Session per account and role; each would parse the
    service models again (EC2's alone takes about 0.1 s). The models are read-only data, already
    shared by all clients of one Session; this shares them across Sessions too.
    """
    import botocore.loaders
    import botocore.session

    original = botocore.session.create_loader
    loaders: dict[Any, Any] = {}
    guard = threading.Lock()

    def create_loader(search_path_string: Any = None) -> Any:
        with guard:
            if search_path_string not in loaders:
                loaders[search_path_string] = botocore.loaders.create_loader(search_path_string)
            return loaders[search_path_string]

    botocore.session.create_loader = create_loader
    try:
        yield
    finally:
        botocore.session.create_loader = original


def fewer_amis() -> None:
    """Load moto's ~40 default AMIs per account x region, without the ~1,300 regional ones.

    moto builds every AMI object again for each account and region the demo touches, and once
    more when the mock stops; the demo launches one AMI (``hub.demo.org.AMI``, a default one).
    ``MOTO_AMIS_PATH`` is read at import (a file of default AMIs) and, later, only for presence;
    the caller restores the environment.
    """
    import moto.ec2.models.amis  # noqa: F401 - imported before the variable is set

    os.environ["MOTO_AMIS_PATH"] = str(resources.files("moto.ec2").joinpath("resources", "amis.json"))


def seed(value: int) -> None:
    """Make moto's ids (accounts, instances, ENIs, ...) repeat for the same seed.

    Call right after entering ``mock_aws``: moto intercepts this request, nothing leaves the host.
    """
    import requests

    requests.post(f"http://motoapi.amazonaws.com/moto-api/seed?a={int(value)}", timeout=5)


@contextmanager
def skipped_resource_types() -> Iterator[set[str]]:
    """Collect the resource types moto's CloudFormation skipped (it warns once per resource)."""
    import logging
    import re

    found: set[str] = set()
    pattern = re.compile(r"Tried to parse (\S+) but it's not supported")
    moto_log = logging.getLogger("moto")
    level = moto_log.level
    moto_log.setLevel(logging.ERROR)  # the same news as the warnings below, one line per resource
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield found
        finally:
            moto_log.setLevel(level)
            for w in caught:
                match = pattern.search(str(w.message))
                if match:
                    found.add(match.group(1))
