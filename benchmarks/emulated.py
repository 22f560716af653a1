"""The emulated organization with the hub's resources, and the hub wired to it, for benchmarks.

Works in-process (inside ``moto.mock_aws()``) and against a moto server (``endpoint_url``). The
hub runs its real code (``hub.handler``): findings go in as SQS batches of EventBridge events, the
hub assumes the spoke role in the member account and region, the ledger is DynamoDB, SNS and the
result bus are real (emulated) services.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.session

from hub.config import OrgContainConfig, parse_config
from hub.demo.lambdahost import lambda_sqs_record
from hub.demo.org import EmulatedOrg, fake_credentials

# The findings, envelopes and Lambda context are the tests' own: one builder of each in the repository.
from tests.hub.helpers import base_config, envelope, make_finding

ROOT = Path(__file__).resolve().parents[1]
HUB_REGION = "us-east-1"


def quiet_environment() -> None:
    """Fake credentials, no real AWS, the contract's Powertools names, no tracing, quiet logs."""
    fake_credentials()
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "orgcontain")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "OrgContain")
    os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    os.environ.setdefault("AWS_LAMBDA_FUNCTION_NAME", "orgcontain-hub")


QUEUE_ARN = "arn:aws:sqs:us-east-1:111111111111:orgcontain-findings"


def sqs_record(
    event: dict[str, Any], receive_count: int = 1, message_id: str | None = None
) -> dict[str, Any]:
    message = {
        "MessageId": message_id or str(uuid.uuid4()),
        "ReceiptHandle": "rh-" + uuid.uuid4().hex,
        "Body": json.dumps(event),
        "Attributes": {"ApproximateReceiveCount": str(receive_count)},
    }
    return lambda_sqs_record(message, queue_arn=QUEUE_ARN, region=HUB_REGION)


def config_data(org: EmulatedOrg, *, max_isolations: int = 20, ou_override: bool = True) -> dict[str, Any]:
    """The responder's config for the emulated org (the tests' own): isolate, severity >= 7, the SOC
    bastion as forensic access, and one OU override, so the OU path is looked up, as in most
    organizations."""
    data = base_config(org, breaker={"max_isolations": max_isolations, "window_minutes": 60})
    if ou_override:
        data["organizational_units"] = {org.ous["Sandbox"]: {"mode": "notify", "reason": "sandbox"}}
    return data


@dataclass
class HubWorld:
    """An emulated org plus the hub stack's resources (ledger, topic, result bus)."""

    org: EmulatedOrg
    config: OrgContainConfig
    table: str
    topic_arn: str
    bus_name: str
    endpoint_url: str | None = None

    @classmethod
    def build(
        cls,
        *,
        endpoint_url: str | None = None,
        extra_members: int = 0,
        regions: Sequence[str] = ("us-east-1", "eu-west-1"),
        max_isolations: int = 20,
        ou_override: bool = True,
    ) -> HubWorld:
        org = EmulatedOrg(regions=regions, extra_members=extra_members, endpoint_url=endpoint_url)
        session = org.session(org.hub_account_id)

        def client(service: str) -> Any:
            return session.client(service, region_name=HUB_REGION, endpoint_url=endpoint_url)  # type: ignore[call-overload]

        from hub.ledger import table_definition

        table = "orgcontain-ledger"
        client("dynamodb").create_table(**table_definition(table))
        topic_arn = client("sns").create_topic(Name="orgcontain-notifications")["TopicArn"]
        bus = "orgcontain"
        client("events").create_event_bus(Name=bus)
        world = cls(
            org,
            parse_config(config_data(org, max_isolations=max_isolations, ou_override=ou_override)),
            table,
            topic_arn,
            bus,
        )
        world.endpoint_url = endpoint_url
        world.export_environment()
        return world

    def export_environment(self) -> None:
        os.environ["ORGCONTAIN_LEDGER_TABLE"] = self.table
        os.environ["ORGCONTAIN_TOPIC_ARN"] = self.topic_arn
        os.environ["ORGCONTAIN_EVENT_BUS"] = self.bus_name

    def hub_session(self) -> boto3.Session:
        """A new boto3 Session with the hub account's credentials (a new Lambda container's)."""
        frozen = self.org.session(self.org.hub_account_id).get_credentials().get_frozen_credentials()  # type: ignore[union-attr]
        return boto3.Session(
            aws_access_key_id=frozen.access_key,
            aws_secret_access_key=frozen.secret_key,
            aws_session_token=frozen.token,
            region_name=HUB_REGION,
        )

    def wiring(self, log: Any = None) -> dict[str, Any]:
        """``hub.handler.configure`` / ``build_responder`` overrides; ``log`` (a CallLog) records
        every call of every session and client the hub and the spoke create."""
        hub_session = self.hub_session()
        if log is not None:
            log.attach(hub_session.events, "hub")

        def member_session(**kw: Any) -> boto3.Session:
            # As hub.session builds it by default: sharing the hub session's data loader.
            core = botocore.session.Session()
            core.register_component("data_loader", hub_session._session.get_component("data_loader"))
            session = boto3.Session(botocore_session=core, **kw)
            if log is not None:
                log.attach(session.events, "member")
            return session

        def org_client() -> Any:
            c = self.org.organizations_client_as_delegated_admin()
            if log is not None:
                log.attach(c.meta.events, "hub")
            return c

        return {
            "hub_session": hub_session,
            "spoke_session_factory": member_session,
            "organizations_client_factory": org_client,
            "endpoint_url": self.endpoint_url,
            "config": self.config,
        }

    def event(self, account_id: str, region: str, instance_id: str, **kw: Any) -> dict[str, Any]:
        return envelope(make_finding(account_id, region, instance_id, **kw), self.org.guardduty_admin_id)

    def quarantined(self, account_id: str, region: str, instance_id: str, *, lenient: bool = False) -> bool:
        """Every ENI of the instance on the quarantine group alone. ``lenient``: moto also displays an
        Auto Scaling instance's launch-template groups (and the groups an instance-level call set) on
        its ENIs next to the ENI's own, so there the quarantine group
        only has to be among them (docs/moto.md)."""
        ec2 = self.org.client("ec2", account_id, region)
        enis = ec2.describe_network_interfaces(
            Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
        )["NetworkInterfaces"]

        def ok(names: list[str]) -> bool:
            return "orgcontain-quarantine" in names if lenient else names == ["orgcontain-quarantine"]

        return bool(enis) and all(ok([g["GroupName"] for g in e["Groups"]]) for e in enis)
