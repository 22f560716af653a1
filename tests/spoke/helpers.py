"""Helpers for the spoke engine's tests: member accounts reached through assumed roles, as the hub
reaches them; call recorders and fault injection through botocore event hooks (state stays moto's).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import boto3
import botocore.loaders
import botocore.session
from botocore.awsrequest import AWSResponse, HTTPHeaders

from hub.demo.org import EmulatedOrg, Workload
from spoke.clients import SpokeClients
from spoke.models import ContainmentPlan, IngressPermission
from spoke.steps.base import CURRENT_STEP

SOC_INGRESS = (
    IngressPermission(from_port=22, to_port=22, cidr_ipv4="10.0.0.10/32", description="SOC bastion"),
    IngressPermission(from_port=443, to_port=443, cidr_ipv4="10.0.0.20/32", description="forensic collector"),
    IngressPermission(from_port=22, to_port=22, cidr_ipv6="2001:db8::/64", description="SOC v6"),
)


def make_plan(instance_id: str, **overrides: Any) -> ContainmentPlan:
    fields: dict[str, Any] = {
        "instance_id": instance_id,
        "finding_id": "f0e1d2c3b4a5968778695a4b3c2d1e0f",
        "reason": "test",
        "quarantined_at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        "quarantine_ingress": SOC_INGRESS,
    }
    fields.update(overrides)
    return ContainmentPlan(**fields)


# One botocore data loader for every test session: a fresh Session otherwise re-reads the service
# models (EC2's is large) on its first client, which dominates a short moto test.
_LOADER = botocore.loaders.create_loader()


def hub_session(org: EmulatedOrg, account_id: str, region: str) -> boto3.Session:
    """A fresh session in the member account through sts:AssumeRole (the hub's own path), so hooks
    registered on it reach every client SpokeClients creates from it."""
    sts = org.management_client("sts", region)
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/orgcontain-spoke-{region}", RoleSessionName="orgcontain-hub"
    )["Credentials"]
    core = botocore.session.Session()
    core.register_component("data_loader", _LOADER)
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        botocore_session=core,
    )


@dataclass
class Call:
    service: str  # IAM prefix (signing name): ec2, autoscaling, elasticloadbalancing, iam, sts
    operation: str
    params: dict[str, Any]
    step: str | None

    @property
    def action(self) -> str:
        return f"{self.service}:{self.operation}"


@dataclass
class Recorder:
    """Every API call made through a session, with its parameters and the step that made it."""

    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.signing_name or model.service_model.endpoint_prefix
        with self.lock:
            self.calls.append(Call(service, model.name, dict(params), CURRENT_STEP.get()))

    def ops(self, operation: str | None = None) -> list[Call]:
        return [c for c in self.calls if operation is None or c.operation == operation]

    def names(self) -> list[str]:
        return [c.operation for c in self.calls]

    def clear(self) -> None:
        self.calls.clear()


MUTATING_PREFIXES = (
    "Create",
    "Delete",
    "Modify",
    "Authorize",
    "Revoke",
    "Associate",
    "Disassociate",
    "Register",
    "Deregister",
    "Detach",
    "Attach",
    "Enter",
    "Exit",
    "Put",
    "Replace",
)


def is_mutating(operation: str) -> bool:
    return operation.startswith(MUTATING_PREFIXES)


@dataclass
class Member:
    """One member account and region of the emulated org, with a workload builder."""

    org: EmulatedOrg
    account_id: str
    region: str
    workload: Workload

    @property
    def ec2(self) -> Any:
        return self.org.client("ec2", self.account_id, self.region)

    def client(self, service: str) -> Any:
        return self.org.client(service, self.account_id, self.region)

    def spoke(self, recorder: Recorder | None = None) -> tuple[SpokeClients, boto3.Session]:
        session = hub_session(self.org, self.account_id, self.region)
        if recorder is not None:
            session.events.register("before-parameter-build", recorder)
        return SpokeClients(session, self.region), session

    def eni_groups(self, instance_id: str) -> dict[str, list[str]]:
        enis = self.ec2.describe_network_interfaces(
            Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
        )["NetworkInterfaces"]
        return {e["NetworkInterfaceId"]: sorted(g["GroupId"] for g in e["Groups"]) for e in enis}

    def instance(self, instance_id: str) -> dict[str, Any]:
        return dict(self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0])

    def tags(self, instance_id: str) -> dict[str, str]:
        return {t["Key"]: t["Value"] for t in self.instance(instance_id).get("Tags", [])}

    def attribute(self, instance_id: str, name: str) -> Any:
        resp = self.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute=name)
        key = name[0].upper() + name[1:]
        return resp[key]["Value"]

    def delete_on_termination(self, instance_id: str) -> dict[str, bool]:
        return {
            b["Ebs"]["VolumeId"]: b["Ebs"]["DeleteOnTermination"]
            for b in self.instance(instance_id)["BlockDeviceMappings"]
        }

    def quarantine_groups(self, vpc_id: str, role: str = "quarantine") -> list[dict[str, Any]]:
        return list(
            self.ec2.describe_security_groups(
                Filters=[
                    {"Name": "tag:orgcontain:role", "Values": [role]},
                    {"Name": "vpc-id", "Values": [vpc_id]},
                ]
            )["SecurityGroups"]
        )


def member_in(org: EmulatedOrg, account: str = "prod-a", region: str = "us-east-1") -> Member:
    account_id = org.accounts[account]
    return Member(org, account_id, region, org.workload(account, region))


# ---- fault injection ------------------------------------------------------------------------------


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def aws_error(code: str, status: int = 400, message: str = "injected") -> AWSResponse:
    """A real EC2 (query protocol) error response, as AWS sends it."""
    body = (
        f"<?xml version='1.0' encoding='UTF-8'?><Response><Errors><Error><Code>{code}</Code>"
        f"<Message>{message}</Message></Error></Errors><RequestID>injected</RequestID></Response>"
    ).encode()
    headers = HTTPHeaders()
    headers["Content-Type"] = "text/xml"
    return AWSResponse("https://ec2.amazonaws.com/", status, headers, _Body(body))


def form(request: Any) -> dict[str, list[str]]:
    body = request.body
    if isinstance(body, bytes):
        body = body.decode()
    return parse_qs(body or "")


def inject(
    target: Any,
    event: str,
    code: str,
    *,
    status: int = 400,
    times: int = 1,
    when: Callable[[dict[str, list[str]]], bool] = lambda _: True,
) -> list[int]:
    """Answer the first ``times`` matching sends of ``event`` with AWS error ``code``.

    ``target`` is a session (clients created from it afterwards carry the hook) or a client.
    Returns a one-element list counting the errors sent.

    botocore *emits* ``before-send`` to every handler and takes the first response, so moto's own
    handler would still apply the request after this one answered it; the request is pointed at
    an address moto does not serve, so that an injected error leaves the state unchanged, as it
    does in AWS.
    """
    sent = [0]

    def hook(request: Any, **_: Any) -> AWSResponse | None:
        if sent[0] < times and when(form(request)):
            sent[0] += 1
            request.url = "https://fault-injected.invalid/"
            return aws_error(code, status)
        return None

    events = target.meta.events if hasattr(target, "meta") else target.events
    events.register_first(f"before-send.{event}", hook)
    return sent
