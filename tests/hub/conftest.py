"""Fixtures of the hub tests: the emulated org with the hub stack's resources, spoke roles in every
workload account and region, a config file, and the Lambda handler wired to them."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import hub.handler as handler
from hub.demo.org import EmulatedOrg
from hub.ledger import Ledger
from hub.responder import Responder
from tests.hub.helpers import (
    HubStack,
    LambdaContext,
    base_config,
    create_hub_stack,
    create_spoke_roles,
    envelope,
    make_finding,
    serialize_dynamodb,
    sqs_event,
)


@pytest.fixture(autouse=True)
def _dynamodb_one_request_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's DynamoDB transactions are not safe under threads (tests.hub.helpers.serialize_dynamodb);
    the hub's handler runs account x region groups concurrently."""
    serialize_dynamodb(monkeypatch)


@dataclass
class HubEnv:
    org: EmulatedOrg
    stack: HubStack
    config_path: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def ledger(self) -> Ledger:
        return self.stack.ledger()

    @property
    def responder(self) -> Responder:
        return handler.responder()

    def write_config(self, data: dict[str, Any]) -> None:
        """Replace the config file and start a fresh (cold) handler that reads it."""
        self.config_path.write_text(yaml.safe_dump(data))
        self.rewire()

    def rewire(self, **overrides: Any) -> None:
        wiring: dict[str, Any] = {
            "hub_session": self.org.session(self.org.hub_account_id),
            "organizations_client_factory": self.org.organizations_client_as_delegated_admin,
        }
        handler.configure(**{**wiring, **overrides})

    def finding(self, account: str, region: str, instance_id: str | None, **kw: Any) -> dict[str, Any]:
        return make_finding(self.org.accounts.get(account, account), region, instance_id, **kw)

    def event(self, detail: dict[str, Any], **kw: Any) -> dict[str, Any]:
        kw.setdefault("account", self.org.guardduty_admin_id)
        account = kw.pop("account")
        return envelope(detail, account, **kw)

    def invoke(self, *events: dict[str, Any] | str, receive_count: int = 1) -> dict[str, Any]:
        """Run the Lambda on an SQS batch of ``events``; returns its response."""
        return dict(
            handler.lambda_handler(sqs_event(list(events), receive_count=receive_count), LambdaContext())
        )

    def invoke_direct(self, event: dict[str, Any]) -> dict[str, Any]:
        return dict(handler.lambda_handler(event, LambdaContext()))

    def decisions(self) -> list[Any]:
        return self.ledger.all_decisions()

    def decisions_for(self, detail: dict[str, Any]) -> list[Any]:
        return self.ledger.decisions(detail["accountId"], detail["region"], detail["id"])

    def enis_groups(self, account: str, region: str, instance_id: str) -> dict[str, list[str]]:
        ec2 = self.org.client("ec2", self.org.accounts.get(account, account), region)
        enis = ec2.describe_network_interfaces(
            Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
        )["NetworkInterfaces"]
        return {e["NetworkInterfaceId"]: sorted(g["GroupName"] for g in e["Groups"]) for e in enis}

    def quarantined(self, account: str, region: str, instance_id: str) -> bool:
        groups = self.enis_groups(account, region, instance_id)
        return bool(groups) and all(g == ["orgcontain-quarantine"] for g in groups.values())


@pytest.fixture
def hub_env(org: EmulatedOrg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubEnv]:
    stack = create_hub_stack(org)
    create_spoke_roles(org, org.member_ids, org.regions)
    config_path = tmp_path / "orgcontain.yaml"
    config_path.write_text(yaml.safe_dump(base_config(org)))
    monkeypatch.setenv("ORGCONTAIN_CONFIG", str(config_path))
    monkeypatch.setenv("ORGCONTAIN_LEDGER_TABLE", stack.table)
    monkeypatch.setenv("ORGCONTAIN_TOPIC_ARN", stack.topic_arn)
    monkeypatch.setenv("ORGCONTAIN_EVENT_BUS", stack.bus_name)
    env = HubEnv(org, stack, config_path, monkeypatch)
    env.rewire()
    yield env
    handler.reset()


@pytest.fixture
def sns_bodies(hub_env: HubEnv) -> Callable[[], list[dict[str, Any]]]:
    return hub_env.stack.notifications


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def hub_logs() -> Iterator[_Records]:
    """Log records of the hub's modules (they go through the Powertools JSON handler in Lambda)."""
    handler_ = _Records()
    # On the module loggers themselves: the handler's build replaces the handlers of "hub".
    targets = [logging.getLogger(n) for n in ("hub.responder", "hub.runtime", "hub.notify", "hub.orgview")]
    for target in targets:
        target.addHandler(handler_)
    yield handler_
    for target in targets:
        target.removeHandler(handler_)


def json_tail(body: str) -> dict[str, Any]:
    """The full JSON record at the end of an SNS body."""
    marker = "Full record (JSON):\n"
    return dict(json.loads(body[body.index(marker) + len(marker) :]))
