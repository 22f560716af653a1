"""The demo's fleet: EC2 instances in every workload account and both regions.

Every workload account gets a ``web`` instance in each region; a few accounts get the instances the
scenario needs: a 3-ENI database with an instance profile and a data volume, a 2-ENI API server in
the second region, an Auto Scaling group of two behind an ALB target group, and a legacy instance
tagged ``orgcontain:mode=notify`` (milder than its account). Built through each account's assumed
role, with :class:`hub.demo.org.Workload`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hub.demo.org import AMI, EmulatedOrg, Instance, Workload

MODE_TAG = "orgcontain:mode"
MILDER_TAG = {MODE_TAG: "notify"}


@dataclass
class FleetInstance:
    key: str  # "<account name>/<region>/<role>[-n]"
    role: str  # web | db | api | asg | legacy
    account_name: str
    account_id: str
    region: str
    instance_id: str
    vpc_id: str
    eni_ids: tuple[str, ...]
    asg_name: str | None = None
    target_group_arn: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    # ENI id -> group ids, read after the fleet was built (what "untouched" is checked against).
    before: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class Fleet:
    instances: list[FleetInstance] = field(default_factory=list)

    def find(self, account_name: str, region: str, role: str) -> FleetInstance:
        for inst in self.instances:
            if (inst.account_name, inst.region, inst.role) == (account_name, region, role):
                return inst
        raise KeyError(f"no {role} instance in {account_name}/{region}")

    def by_id(self, instance_id: str) -> FleetInstance | None:
        return next((i for i in self.instances if i.instance_id == instance_id), None)

    def in_account_region(self) -> dict[tuple[str, str], list[FleetInstance]]:
        groups: dict[tuple[str, str], list[FleetInstance]] = {}
        for inst in self.instances:
            groups.setdefault((inst.account_id, inst.region), []).append(inst)
        return groups


def eni_groups(ec2: Any, instance_ids: Iterable[str]) -> dict[str, dict[str, tuple[str, ...]]]:
    """instance id -> {ENI id -> sorted group ids}, in one filtered call per account and region."""
    ids = list(instance_ids)
    out: dict[str, dict[str, tuple[str, ...]]] = {i: {} for i in ids}
    if not ids:
        return out
    pages = ec2.get_paginator("describe_network_interfaces").paginate(
        Filters=[{"Name": "attachment.instance-id", "Values": ids}]
    )
    for page in pages:
        for eni in page["NetworkInterfaces"]:
            owner = eni.get("Attachment", {}).get("InstanceId")
            if owner in out:
                out[owner][eni["NetworkInterfaceId"]] = tuple(sorted(g["GroupId"] for g in eni["Groups"]))
    return out


def _asg_behind_alb(org: EmulatedOrg, work: Workload, desired: int = 2) -> list[Instance]:
    """An Auto Scaling group behind an ALB target group; its instances' ENIs carry the app group.

    The launch template declares the network interface with its group (no instance-level groups:
    moto would otherwise show them on the ENI next to the quarantine group). moto ignores the
    template's interface groups, so they are set on the launched ENIs afterwards.
    """
    net = work.network()
    elbv2 = org.client("elbv2", work.account_id, work.region)
    autoscaling = org.client("autoscaling", work.account_id, work.region)
    lb = elbv2.create_load_balancer(Name="web-alb", Subnets=net.subnet_ids, SecurityGroups=[net.app_group_id])
    tg = elbv2.create_target_group(
        Name="web-tg", Protocol="HTTP", Port=80, VpcId=net.vpc_id, TargetType="instance"
    )["TargetGroups"][0]
    elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancers"][0]["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )
    lt = work.ec2.create_launch_template(
        LaunchTemplateName="web-lt",
        LaunchTemplateData={
            "ImageId": AMI,
            "InstanceType": "t3.micro",
            "NetworkInterfaces": [
                {"DeviceIndex": 0, "Groups": [net.app_group_id], "DeleteOnTermination": True}
            ],
        },
    )["LaunchTemplate"]
    name = "web-asg"
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        MinSize=1,
        MaxSize=desired + 2,
        DesiredCapacity=desired,
        LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"], "Version": "$Latest"},
        VPCZoneIdentifier=",".join(net.subnet_ids),
        TargetGroupARNs=[tg["TargetGroupArn"]],
    )
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    ids = [i["InstanceId"] for i in group["Instances"]]
    enis = work.ec2.describe_network_interfaces(Filters=[{"Name": "attachment.instance-id", "Values": ids}])
    for eni in enis["NetworkInterfaces"]:
        work.ec2.modify_network_interface_attribute(
            NetworkInterfaceId=eni["NetworkInterfaceId"], Groups=[net.app_group_id]
        )
    return [
        Instance(
            instance_id=i,
            account_id=work.account_id,
            region=work.region,
            vpc_id=net.vpc_id,
            eni_ids=[e["NetworkInterfaceId"] for e in enis["NetworkInterfaces"] if _attached_to(e, i)],
            groups=[net.app_group_id],
            asg_name=name,
            target_group_arn=tg["TargetGroupArn"],
        )
        for i in ids
    ]


def _attached_to(eni: dict[str, Any], instance_id: str) -> bool:
    return bool(eni.get("Attachment", {}).get("InstanceId") == instance_id)


def build_fleet(org: EmulatedOrg, progress: Callable[[str], None] | None = None) -> Fleet:
    """Instances in every workload account x region, plus the scenario's special ones."""
    names = {account_id: name for name, account_id in org.accounts.items()}
    first, second = org.regions[0], org.regions[1]
    fleet = Fleet()

    def add(work: Workload, account_name: str, role: str, inst: Instance, tags: dict[str, str]) -> None:
        same = sum(1 for i in fleet.instances if i.key.startswith(f"{account_name}/{work.region}/{role}"))
        fleet.instances.append(
            FleetInstance(
                key=f"{account_name}/{work.region}/{role}" + (f"-{same + 1}" if role == "asg" else ""),
                role=role,
                account_name=account_name,
                account_id=work.account_id,
                region=work.region,
                instance_id=inst.instance_id,
                vpc_id=inst.vpc_id,
                eni_ids=tuple(inst.eni_ids),
                asg_name=inst.asg_name,
                target_group_arn=inst.target_group_arn,
                tags=tags,
            )
        )

    for account_id in org.member_ids:
        account_name = names[account_id]
        for region in org.regions:
            if progress is not None:
                progress(f"{account_name} {region}")
            work = org.workload(account_id, region)
            tags = {"Name": f"web-{account_name}", "app": "web"}
            add(work, account_name, "web", work.run_instance(name=tags["Name"], tags={"app": "web"}), tags)
            if account_name == "prod-a" and region == first:
                tags = {"Name": "db-prod-a", "app": "db"}
                db = work.run_instance(
                    enis=3, extra_volumes=1, profile=True, name=tags["Name"], tags={"app": "db"}
                )
                add(work, account_name, "db", db, tags)
            if account_name == "prod-a" and region == second:
                tags = {"Name": "legacy-prod-a", "app": "legacy", **MILDER_TAG}
                legacy = work.run_instance(name=tags["Name"], tags={"app": "legacy", **MILDER_TAG})
                add(work, account_name, "legacy", legacy, tags)
            if account_name == "prod-b" and region == second:
                tags = {"Name": "api-prod-b", "app": "api"}
                api = work.run_instance(enis=2, profile=True, name=tags["Name"], tags={"app": "api"})
                add(work, account_name, "api", api, tags)
            if account_name == "prod-b" and region == first:
                for inst in _asg_behind_alb(org, work):
                    add(work, account_name, "asg", inst, {"aws:autoscaling:groupName": inst.asg_name or ""})
    snapshot(org, fleet)
    return fleet


def snapshot(org: EmulatedOrg, fleet: Fleet) -> None:
    """Record every instance's ENI groups as they are now (``FleetInstance.before``)."""
    for (account_id, region), members in fleet.in_account_region().items():
        current = eni_groups(org.client("ec2", account_id, region), [m.instance_id for m in members])
        for member in members:
            member.before = current[member.instance_id]
