"""GuardDuty findings for the demo, made from real published findings (``hub/demo/samples/``).

The samples are copies of ``tests/fixtures/guardduty/`` (provenance in that folder's SOURCES.md),
shipped as package data so the demo runs from a plain install. Each demo finding is one sample with
what GuardDuty would have written for *this* organization: a new finding id per run, the member
account and region, the detector's ARN, the instance as GuardDuty saw it (id, type, image, zone,
profile, tags and every ENI with its subnet, VPC and groups, read from the emulated account), and
the times. Everything else (the action, the threat intelligence, the evidence) stays as published.

GuardDuty *sample* findings (``service.additionalInfo.sample``) are skipped by the hub by design;
the demo clears that flag on the findings it means to be real, and keeps it on the one that shows
the rule.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any

# Files in hub/demo/samples/ (byte-for-byte copies of the test fixtures).
BITCOIN = "elastic-ec2-bitcointool-b-sample-count4.json"  # CryptoCurrency:EC2/BitcoinTool.B, 8
C2 = "elastic-ec2-cc-activity-b-sample-count4.json"  # Backdoor:EC2/C&CActivity.B, 8
TOR_RELAY = "sekoia-ec2-torrelay-sample-bare.json"  # UnauthorizedAccess:EC2/TorRelay, 8
BITCOIN_DNS_REAL = "lab39-ec2-bitcointool-b-dns-REAL-eventbridge-envelope.json"  # real, with envelope
TOR_CLIENT = "elastic-ec2-torclient-sample-count4.json"  # UnauthorizedAccess:EC2/TorClient, 8
SSH_BRUTE_FORCE_LOW = "elastic-ec2-sshbruteforce-sample-count4-low.json"  # SSHBruteForce, 2 (low)
S3_EXFILTRATION = "elastic-s3-exfiltration-maliciousipcaller-sample-count4.json"  # S3Bucket, 8
ATTACK_SEQUENCE = "panther-attacksequence-iam-compromisedcredentials-bare.json"  # critical, 9

_cache: dict[str, dict[str, Any]] = {}


def load_sample(name: str) -> dict[str, Any]:
    """The bare finding of sample ``name`` (an EventBridge envelope is unwrapped)."""
    if name not in _cache:
        text = resources.files("hub.demo").joinpath("samples", name).read_text(encoding="utf-8")
        data = json.loads(text)
        if isinstance(data, dict) and "detail" in data and "source" in data:
            data = data["detail"]
        _cache[name] = data
    return copy.deepcopy(_cache[name])


def iso(ts: float) -> str:
    """GuardDuty's timestamp format: ISO 8601 UTC with milliseconds and a Z."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class EniView:
    eni_id: str
    subnet_id: str
    vpc_id: str
    private_ip: str
    groups: tuple[tuple[str, str], ...]  # (name, id)


@dataclass(frozen=True)
class InstanceView:
    """An instance as GuardDuty describes it in ``resource.instanceDetails``."""

    instance_id: str
    instance_type: str
    image_id: str
    availability_zone: str
    launch_time: str
    profile_arn: str | None
    tags: dict[str, str]
    enis: tuple[EniView, ...] = field(default=())

    @classmethod
    def describe(cls, ec2: Any, instance_id: str) -> InstanceView:
        """Read the instance in its own account (one DescribeInstances)."""
        inst = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        enis = sorted(inst.get("NetworkInterfaces", []), key=lambda n: n["Attachment"]["DeviceIndex"])
        launch = inst.get("LaunchTime")
        return cls(
            instance_id=instance_id,
            instance_type=str(inst.get("InstanceType", "")),
            image_id=str(inst.get("ImageId", "")),
            availability_zone=str(inst.get("Placement", {}).get("AvailabilityZone", "")),
            launch_time=iso(launch.timestamp()) if isinstance(launch, datetime) else str(launch or ""),
            profile_arn=(inst.get("IamInstanceProfile") or {}).get("Arn"),
            tags={t["Key"]: t["Value"] for t in inst.get("Tags", [])},
            enis=tuple(
                EniView(
                    eni_id=n["NetworkInterfaceId"],
                    subnet_id=n.get("SubnetId", ""),
                    vpc_id=n.get("VpcId", ""),
                    private_ip=n.get("PrivateIpAddress", ""),
                    groups=tuple((g["GroupName"], g["GroupId"]) for g in n.get("Groups", [])),
                )
                for n in enis
            ),
        )


def _instance_details(template: dict[str, Any], view: InstanceView) -> dict[str, Any]:
    details = copy.deepcopy(template)
    nic_template = (details.get("networkInterfaces") or [{}])[0]
    nics = []
    for eni in view.enis:
        nic = copy.deepcopy(nic_template)
        for key in ("publicIp", "publicDnsName"):  # the demo's instances have no public address
            nic.pop(key, None)
        dns = f"ip-{eni.private_ip.replace('.', '-')}.ec2.internal" if eni.private_ip else ""
        nic.update(
            networkInterfaceId=eni.eni_id,
            subnetId=eni.subnet_id,
            vpcId=eni.vpc_id,
            privateIpAddress=eni.private_ip,
            privateDnsName=dns,
            privateIpAddresses=[{"privateIpAddress": eni.private_ip, "privateDnsName": dns}],
            securityGroups=[{"groupName": name, "groupId": gid} for name, gid in eni.groups],
            ipv6Addresses=[],
        )
        nics.append(nic)
    details.update(
        instanceId=view.instance_id,
        instanceType=view.instance_type,
        imageId=view.image_id,
        availabilityZone=view.availability_zone,
        launchTime=view.launch_time,
        instanceState="running",
        outpostArn=None,
        productCodes=[],
        iamInstanceProfile=(
            {"arn": view.profile_arn, "id": "AIPA" + view.instance_id[2:].upper()}
            if view.profile_arn
            else None
        ),
        tags=[{"key": k, "value": v} for k, v in view.tags.items()],
        networkInterfaces=nics,
    )
    return details


def _sample_flag(info: dict[str, Any], sample: bool) -> dict[str, Any]:
    """``additionalInfo`` with GuardDuty's sample marker set or cleared (both of its forms: the
    ``sample`` key and the JSON string in ``value``)."""
    info = dict(info)
    value = info.get("value")
    decoded: Any = None
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            decoded = None
    if sample:
        info["sample"] = True
        return info
    info.pop("sample", None)
    if isinstance(decoded, dict) and "sample" in decoded:
        decoded.pop("sample")
        if decoded:
            info["value"] = json.dumps(decoded, separators=(",", ":"))
        else:
            info.pop("value", None)
            info.pop("type", None)
    return info


def build_finding(
    sample_name: str,
    *,
    finding_id: str,
    account_id: str,
    region: str,
    detector_id: str,
    when: float,
    instance: InstanceView | None = None,
    instance_id: str | None = None,
    severity: float | None = None,
    sample: bool = False,
    archived: bool = False,
    count: int = 1,
    created: float | None = None,
) -> dict[str, Any]:
    """The event ``detail`` GuardDuty would publish for this sample in this organization.

    ``instance`` (read from the account) fills ``instanceDetails``; ``instance_id`` alone names an
    instance that does not exist (a finding about an account outside the organization).
    """
    raw = load_sample(sample_name)
    old_account = str(raw.get("accountId", ""))
    old_instance = str(((raw.get("resource") or {}).get("instanceDetails") or {}).get("instanceId") or "")
    text = json.dumps(raw)
    # Identifiers of the sample's own account and instance appear in ARNs, titles, descriptions.
    if old_account:
        text = text.replace(old_account, account_id)
    new_instance = instance.instance_id if instance is not None else instance_id
    if old_instance and new_instance:
        text = text.replace(old_instance, new_instance)
    finding: dict[str, Any] = json.loads(text)
    finding.update(
        id=finding_id,
        accountId=account_id,
        region=region,
        partition="aws",
        arn=f"arn:aws:guardduty:{region}:{account_id}:detector/{detector_id}/finding/{finding_id}",
        createdAt=iso(created if created is not None else when),
        updatedAt=iso(when),
    )
    if severity is not None:
        finding["severity"] = severity
    service = finding.setdefault("service", {})
    service.update(
        detectorId=detector_id,
        eventFirstSeen=iso(created if created is not None else when),
        eventLastSeen=iso(when),
        archived=archived,
        count=count,
    )
    service["additionalInfo"] = _sample_flag(service.get("additionalInfo") or {}, sample)
    resource = finding.get("resource") or {}
    if instance is not None and resource.get("resourceType") == "Instance":
        resource["instanceDetails"] = _instance_details(resource.get("instanceDetails") or {}, instance)
    elif instance_id is not None and isinstance(resource.get("instanceDetails"), dict):
        resource["instanceDetails"]["instanceId"] = instance_id
    return finding


def event_envelope(detail: dict[str, Any], *, account: str, event_id: str, when: float) -> dict[str, Any]:
    """An EventBridge event as delivered to a target (used for the message put straight on the queue)."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": account,
        "time": iso(when)[:19] + "Z",
        "region": str(detail.get("region", "us-east-1")),
        "resources": [],
        "detail": detail,
    }
