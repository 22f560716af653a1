"""An emulated AWS Organization on moto, for the tests and for `orgcontain demo`.

Everything here talks to moto through real boto3 clients, and every member-account resource is
built through an assumed role, as the hub itself reaches member accounts. Call only inside an
active ``moto.mock_aws()`` (or against a moto server through ``endpoint_url``).

Three moto gaps are patched here, all documented in docs/moto.md:
- delivered EventBridge events lack the envelope ``account``;
- Organizations refuses the StackSets service principal as a delegated administrator;
- CloudFormation cannot read an ``EventPattern`` written as a JSON string (AWS accepts it, and our
  templates need it: a ``Ref`` to a Number parameter is a string, so ``!Sub`` writes the threshold).
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from hub.demo.motogaps import build_routers_up_front

MANAGEMENT_ACCOUNT_ID = "123456789012"  # moto's default account: it creates the organization
DEFAULT_REGIONS = ("us-east-1", "eu-west-1")
ACCESS_ROLE = "OrganizationAccountAccessRole"
AMI = "ami-12c6146b"  # preloaded in moto in every region
_BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3})
_patch_lock = threading.Lock()


def fake_credentials() -> None:
    """Dummy credentials and no account override, so nothing can reach real AWS.

    ``MOTO_ACCOUNT_ID`` beats assumed-role credentials in moto and would make a multi-account test
    pass while talking to the wrong account, so it is removed.
    """
    for var in ("MOTO_ACCOUNT_ID", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(var, None)
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    # moto otherwise loads ~1,300 AMIs per account and region (and again at teardown): the tests
    # and the demo run about twice as fast without them. Any AMI id is accepted by run_instances.
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


def patch_moto() -> None:
    """Work around moto 5.2 gaps (idempotent): three of AWS fidelity, and routers built before
    threads race to build them (``hub.demo.motogaps.build_routers_up_front``)."""
    from moto.events import models as events_models
    from moto.events.utils import EventTemplateParser
    from moto.organizations import models as org_models

    with _patch_lock:
        rule = events_models.Rule
        if not getattr(rule, "_orgcontain_string_patterns", False):
            original = rule.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

            def create(
                cls: Any, resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any
            ) -> Any:
                props = cloudformation_json.get("Properties", {})
                if isinstance(props.get("EventPattern"), str):
                    props["EventPattern"] = json.loads(props["EventPattern"])
                return original(cls, resource_name, cloudformation_json, *args, **kwargs)

            rule.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign,assignment]
            rule._orgcontain_string_patterns = True  # type: ignore[attr-defined]
        template = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
        if '"account"' not in template:
            EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = template.replace(
                '"source": "<source>", ', '"source": "<source>", "account": "<account>", '
            )
        supported = org_models.FakeDelegatedAdministrator.SUPPORTED_SERVICES
        stacksets = "member.org.stacksets.cloudformation.amazonaws.com"
        if stacksets not in supported:
            org_models.FakeDelegatedAdministrator.SUPPORTED_SERVICES = [*supported, stacksets]
        build_routers_up_front()


@dataclass
class Instance:
    instance_id: str
    account_id: str
    region: str
    vpc_id: str
    eni_ids: list[str]
    groups: list[str]
    volume_ids: list[str] = field(default_factory=list)
    profile_arn: str | None = None
    asg_name: str | None = None
    target_group_arn: str | None = None


@dataclass
class Network:
    vpc_id: str
    subnet_ids: list[str]
    app_group_id: str
    db_group_id: str


class Workload:
    """Builds VPCs and instances inside one member account and region, through an assumed role."""

    _serial = itertools.count(1)

    def __init__(self, org: EmulatedOrg, account_id: str, region: str) -> None:
        self.org = org
        self.account_id = account_id
        self.region = region
        self.ec2 = org.client("ec2", account_id, region)
        self._network: Network | None = None

    def network(self) -> Network:
        if self._network is None:
            self._network = self.create_network()
        return self._network

    def create_network(self, cidr: str = "10.20.0.0/16") -> Network:
        vpc = self.ec2.create_vpc(CidrBlock=cidr, AmazonProvidedIpv6CidrBlock=True)["Vpc"]
        vpc_id = vpc["VpcId"]
        base = cidr.split(".")
        subnets = []
        for i, az in enumerate(("a", "b")):
            sub = self.ec2.create_subnet(
                VpcId=vpc_id,
                CidrBlock=f"{base[0]}.{base[1]}.{i}.0/24",
                AvailabilityZone=f"{self.region}{az}",
            )["Subnet"]
            subnets.append(sub["SubnetId"])
        app = self.ec2.create_security_group(GroupName="app", Description="app tier", VpcId=vpc_id)
        db = self.ec2.create_security_group(GroupName="db", Description="db tier", VpcId=vpc_id)
        self.ec2.authorize_security_group_ingress(
            GroupId=app["GroupId"],
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
            ],
        )
        return Network(vpc_id, subnets, app["GroupId"], db["GroupId"])

    def run_instance(
        self,
        *,
        enis: int = 1,
        extra_volumes: int = 0,
        profile: bool = False,
        tags: dict[str, str] | None = None,
        groups: Sequence[str] | None = None,
        name: str | None = None,
    ) -> Instance:
        """An instance with ``enis`` network interfaces and ``extra_volumes`` EBS data volumes.

        ENIs are declared explicitly (moto otherwise displays the instance's launch groups on
        every ENI); the first ENI has the app and db groups, later ones the db group.
        """
        net = self.network()
        group_sets = (
            [list(groups)] * enis
            if groups
            else [[net.app_group_id, net.db_group_id]] + [[net.db_group_id]] * (enis - 1)
        )
        nics = [
            {
                "DeviceIndex": i,
                "SubnetId": net.subnet_ids[0],
                "Groups": group_sets[i],
                "DeleteOnTermination": i == 0,
            }
            for i in range(enis)
        ]
        bdm: list[Any] = [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8, "DeleteOnTermination": True}}]
        bdm += [
            {
                "DeviceName": f"/dev/sd{chr(ord('f') + i)}",
                "Ebs": {"VolumeSize": 1, "DeleteOnTermination": True},
            }
            for i in range(extra_volumes)
        ]
        all_tags = {"Name": name or f"web-{next(self._serial)}", **(tags or {})}
        kwargs: dict[str, Any] = {
            "ImageId": AMI,
            "InstanceType": "t3.micro",
            "MinCount": 1,
            "MaxCount": 1,
            "NetworkInterfaces": nics,
            "BlockDeviceMappings": bdm,
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()]}
            ],
        }
        profile_arn = None
        if profile:
            profile_arn = self.create_instance_profile()
            kwargs["IamInstanceProfile"] = {"Arn": profile_arn}
        inst = self.ec2.run_instances(**kwargs)["Instances"][0]
        return self._describe(inst["InstanceId"], profile_arn=profile_arn)

    def _describe(self, instance_id: str, **extra: Any) -> Instance:
        inst = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        enis = sorted(inst["NetworkInterfaces"], key=lambda n: n["Attachment"]["DeviceIndex"])
        return Instance(
            instance_id=instance_id,
            account_id=self.account_id,
            region=self.region,
            vpc_id=inst["VpcId"],
            eni_ids=[n["NetworkInterfaceId"] for n in enis],
            groups=[g["GroupId"] for g in enis[0]["Groups"]],
            volume_ids=[b["Ebs"]["VolumeId"] for b in inst.get("BlockDeviceMappings", [])],
            **extra,
        )

    def create_instance_profile(self) -> str:
        iam = self.org.client("iam", self.account_id, self.region)
        n = next(self._serial)
        role = f"app-role-{n}"
        iam.create_role(
            RoleName=role,
            AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
            '"Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}',
        )
        prof = iam.create_instance_profile(InstanceProfileName=f"app-profile-{n}")["InstanceProfile"]
        iam.add_role_to_instance_profile(InstanceProfileName=prof["InstanceProfileName"], RoleName=role)
        return str(prof["Arn"])

    def run_asg_behind_alb(self, *, desired: int = 2) -> list[Instance]:
        """An Auto Scaling group of ``desired`` instances registered in an ALB target group."""
        net = self.network()
        n = next(self._serial)
        elbv2 = self.org.client("elbv2", self.account_id, self.region)
        asg = self.org.client("autoscaling", self.account_id, self.region)
        lb = elbv2.create_load_balancer(
            Name=f"alb-{n}", Subnets=net.subnet_ids, SecurityGroups=[net.app_group_id]
        )
        tg = elbv2.create_target_group(
            Name=f"tg-{n}", Protocol="HTTP", Port=80, VpcId=net.vpc_id, TargetType="instance"
        )["TargetGroups"][0]
        elbv2.create_listener(
            LoadBalancerArn=lb["LoadBalancers"][0]["LoadBalancerArn"],
            Protocol="HTTP",
            Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
        )
        lt = self.ec2.create_launch_template(
            LaunchTemplateName=f"lt-{n}",
            LaunchTemplateData={
                "ImageId": AMI,
                "InstanceType": "t3.micro",
                "SecurityGroupIds": [net.app_group_id],
            },
        )["LaunchTemplate"]
        name = f"asg-{n}"
        asg.create_auto_scaling_group(
            AutoScalingGroupName=name,
            MinSize=1,
            MaxSize=desired + 2,
            DesiredCapacity=desired,
            LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"], "Version": "$Latest"},
            VPCZoneIdentifier=",".join(net.subnet_ids),
            TargetGroupARNs=[tg["TargetGroupArn"]],
        )
        ids = [
            i["InstanceId"]
            for i in asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0][
                "Instances"
            ]
        ]
        return [self._describe(i, asg_name=name, target_group_arn=tg["TargetGroupArn"]) for i in ids]


class EmulatedOrg:
    """A moto-backed AWS Organization.

    Layout (names are stable, ids come from moto)::

        root
        ├── Security             security (hub + GuardDuty delegated admin) [, audit]
        ├── Workloads            dev
        │   └── Prod (nested)    prod-a, prod-b
        └── Sandbox              sandbox

    With ``separate_guardduty_admin=True`` an ``audit`` account in Security is the GuardDuty
    delegated admin and ``security`` only hosts the hub.
    """

    def __init__(
        self,
        *,
        regions: Sequence[str] = DEFAULT_REGIONS,
        separate_guardduty_admin: bool = False,
        extra_members: int = 0,
        endpoint_url: str | None = None,
    ) -> None:
        self.regions = tuple(regions)
        self.endpoint_url = endpoint_url
        self.management_account_id = MANAGEMENT_ACCOUNT_ID
        self._sessions: dict[tuple[str, str], boto3.Session] = {}
        self._clients: dict[tuple[str, str, str], Any] = {}
        patch_moto()
        mgmt = self._mgmt("organizations")
        org = mgmt.create_organization(FeatureSet="ALL")["Organization"]
        self.organization_id: str = org["Id"]
        self.root_id: str = mgmt.list_roots()["Roots"][0]["Id"]
        self.ous: dict[str, str] = {}
        self.ous["Security"] = self._ou("Security", self.root_id)
        self.ous["Workloads"] = self._ou("Workloads", self.root_id)
        self.ous["Prod"] = self._ou("Prod", self.ous["Workloads"])
        self.ous["Sandbox"] = self._ou("Sandbox", self.root_id)
        self.accounts: dict[str, str] = {}
        self.account_ou: dict[str, str] = {}
        self.add_account("security", "Security")
        if separate_guardduty_admin:
            self.add_account("audit", "Security")
        self.add_account("dev", "Workloads")
        self.add_account("prod-a", "Prod")
        self.add_account("prod-b", "Prod")
        self.add_account("sandbox", "Sandbox")
        for i in range(extra_members):
            self.add_account(f"member-{i + 1:03d}", ("Prod", "Workloads", "Sandbox")[i % 3])
        self.hub_account_id = self.accounts["security"]
        self.guardduty_admin_id = self.accounts["audit" if separate_guardduty_admin else "security"]
        mgmt.enable_aws_service_access(ServicePrincipal="guardduty.amazonaws.com")
        mgmt.enable_aws_service_access(ServicePrincipal="member.org.stacksets.cloudformation.amazonaws.com")
        mgmt.register_delegated_administrator(
            AccountId=self.guardduty_admin_id, ServicePrincipal="guardduty.amazonaws.com"
        )

    # ---- organization ------------------------------------------------------------------------
    def _mgmt(self, service: str, region: str = "us-east-1") -> Any:
        key = ("mgmt", service, region)
        if key not in self._clients:
            self._clients[key] = boto3.client(  # type: ignore[call-overload]
                service, region_name=region, endpoint_url=self.endpoint_url, config=_BOTO_CONFIG
            )
        return self._clients[key]

    def management_client(self, service: str, region: str = "us-east-1") -> Any:
        return self._mgmt(service, region)

    def _ou(self, name: str, parent: str) -> str:
        ou = self._mgmt("organizations").create_organizational_unit(ParentId=parent, Name=name)
        return str(ou["OrganizationalUnit"]["Id"])

    def add_account(self, name: str, ou: str) -> str:
        """Create an account in OU ``ou`` (by name); returns its id."""
        org = self._mgmt("organizations")
        status = org.create_account(Email=f"{name}@example.com", AccountName=name)["CreateAccountStatus"]
        account_id = str(status["AccountId"])
        org.move_account(AccountId=account_id, SourceParentId=self.root_id, DestinationParentId=self.ous[ou])
        self.accounts[name] = account_id
        self.account_ou[account_id] = ou
        return account_id

    def move_account(self, name: str, ou: str) -> None:
        account_id = self.accounts[name]
        self._mgmt("organizations").move_account(
            AccountId=account_id,
            SourceParentId=self.ous[self.account_ou[account_id]],
            DestinationParentId=self.ous[ou],
        )
        self.account_ou[account_id] = ou

    @property
    def member_ids(self) -> list[str]:
        """Member accounts that run workloads (not the security/audit accounts)."""
        return [a for n, a in self.accounts.items() if n not in ("security", "audit")]

    def ou_path(self, account_id: str) -> list[str]:
        """OU ids from the root down to the account's OU (the shape `simulate --org` takes)."""
        path: list[str] = []
        org = self._mgmt("organizations")
        child = account_id
        while True:
            parent = org.list_parents(ChildId=child)["Parents"][0]
            if parent["Type"] == "ROOT":
                return list(reversed(path))
            path.append(parent["Id"])
            child = parent["Id"]

    def org_map(self) -> dict[str, list[str]]:
        return {a: self.ou_path(a) for a in self.accounts.values()}

    # ---- sessions in member accounts -----------------------------------------------------------
    def session(
        self, account_id: str, role_name: str = ACCESS_ROLE, session_name: str = "orgcontain-test"
    ) -> boto3.Session:
        """A boto3 Session in ``account_id`` obtained through sts:AssumeRole, as the hub does."""
        key = (account_id, role_name)
        if key not in self._sessions:
            if account_id == self.management_account_id:
                self._sessions[key] = boto3.Session()
            else:
                creds = self._mgmt("sts").assume_role(
                    RoleArn=f"arn:aws:iam::{account_id}:role/{role_name}", RoleSessionName=session_name
                )["Credentials"]
                self._sessions[key] = boto3.Session(
                    aws_access_key_id=creds["AccessKeyId"],
                    aws_secret_access_key=creds["SecretAccessKey"],
                    aws_session_token=creds["SessionToken"],
                )
        return self._sessions[key]

    def client(self, service: str, account_id: str, region: str = "us-east-1") -> Any:
        key = (account_id, service, region)
        if key not in self._clients:
            self._clients[key] = self.session(account_id).client(  # type: ignore[call-overload]
                service, region_name=region, endpoint_url=self.endpoint_url, config=_BOTO_CONFIG
            )
        return self._clients[key]

    def workload(self, account: str, region: str | None = None) -> Workload:
        """Workload builder in ``account`` (a name such as ``prod-a`` or an id)."""
        account_id = self.accounts.get(account, account)
        return Workload(self, account_id, region or self.regions[0])

    def organizations_client_as_delegated_admin(self, account_id: str | None = None) -> Any:
        """An Organizations client in the hub account that sees the whole org.

        moto lists the org only to the management account, while AWS lists it to a delegated
        admin too; the hook routes the reads to the management backend (docs/moto.md).
        """
        client = self.session(account_id or self.hub_account_id).client(
            "organizations", region_name="us-east-1", endpoint_url=self.endpoint_url, config=_BOTO_CONFIG
        )
        mgmt = self.management_account_id

        def as_management(request: Any, **_: Any) -> None:
            request.headers["x-moto-account-id"] = mgmt

        client.meta.events.register("before-sign.organizations.*", as_management)
        return client


def iter_instances(ec2: Any, filters: list[dict[str, Any]] | None = None) -> Iterator[dict[str, Any]]:
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters or []):
        for res in page["Reservations"]:
            yield from res["Instances"]
