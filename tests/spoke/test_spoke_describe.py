"""describe(): one DescribeInstances call -> PreState; gone, missing and malformed instances."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from spoke.clients import SpokeClients
from spoke.describe import carry_originals, describe, pre_state_from_instance
from spoke.errors import InvalidInstanceId
from spoke.models import ConntrackTimeouts, EniState
from tests.spoke.helpers import Member, Recorder


def _instance(**over: Any) -> dict[str, Any]:
    inst: dict[str, Any] = {
        "InstanceId": "i-0123456789abcdef0",
        "State": {"Name": "running"},
        "VpcId": "vpc-1",
        "SubnetId": "subnet-1",
        "Tags": [{"Key": "aws:autoscaling:groupName", "Value": "web-asg"}],
        "IamInstanceProfile": {"Arn": "arn:aws:iam::111111111111:instance-profile/app"},
        "BlockDeviceMappings": [
            {"DeviceName": "/dev/xvda", "Ebs": {"VolumeId": "vol-1", "DeleteOnTermination": True}},
            {"DeviceName": "/dev/sdf", "Ebs": {"VolumeId": "vol-2", "DeleteOnTermination": False}},
        ],
        "NetworkInterfaces": [
            {
                "NetworkInterfaceId": "eni-b",
                "VpcId": "vpc-2",
                "Attachment": {"DeviceIndex": 1},
                "Groups": [{"GroupId": "sg-db", "GroupName": "db"}],
            },
            {
                "NetworkInterfaceId": "eni-a",
                "VpcId": "vpc-1",
                "Attachment": {"DeviceIndex": 0},
                "Groups": [
                    {"GroupId": "sg-app", "GroupName": "app"},
                    {"GroupId": "sg-db", "GroupName": "db"},
                ],
                "ConnectionTrackingConfiguration": {
                    "TcpEstablishedTimeout": 3600,
                    "UdpStreamTimeout": 120,
                    "UdpTimeout": 45,
                },
            },
        ],
    }
    inst.update(over)
    return inst


def test_pre_state_holds_everything_release_needs_from_one_describe() -> None:
    pre = pre_state_from_instance(_instance())
    assert pre is not None
    assert [e.eni_id for e in pre.enis] == ["eni-a", "eni-b"]  # by device index
    assert pre.enis[0].groups == ("sg-app", "sg-db")
    assert pre.enis[0].conntrack == ConntrackTimeouts(tcp_established=3600, udp_stream=120, udp=45)
    assert pre.enis[0].vpc_id is None and pre.enis[1].vpc_id == "vpc-2"  # multi-VPC attachment
    assert pre.vpc_ids == ("vpc-1", "vpc-2")
    assert pre.autoscaling_group == "web-asg"
    assert pre.instance_profile_arn.endswith("instance-profile/app")  # type: ignore[union-attr]
    assert [(v.volume_id, v.delete_on_termination) for v in pre.volumes] == [
        ("vol-1", True),
        ("vol-2", False),
    ]
    assert all(e.found_on == "original" for e in pre.enis)


@pytest.mark.parametrize("state", ["shutting-down", "terminated"])
def test_terminated_or_shutting_down_is_gone(state: str) -> None:
    assert pre_state_from_instance(_instance(State={"Name": state})) is None


@pytest.mark.parametrize("state", ["pending", "running", "stopping", "stopped"])
def test_live_states_are_contained(state: str) -> None:
    pre = pre_state_from_instance(_instance(State={"Name": state}))
    assert pre is not None and pre.state == state


def test_our_groups_are_never_reported_as_originals() -> None:
    inst = _instance(
        Tags=[{"Key": "orgcontain:original-groups:eni-a", "Value": "sg-app sg-db"}],
        NetworkInterfaces=[
            {
                "NetworkInterfaceId": "eni-a",
                "Attachment": {"DeviceIndex": 0},
                "Groups": [{"GroupId": "sg-q", "GroupName": "orgcontain-quarantine"}],
                "ConnectionTrackingConfiguration": {"TcpEstablishedTimeout": 60},
            },
            {
                "NetworkInterfaceId": "eni-b",
                "Attachment": {"DeviceIndex": 1},
                "Groups": [{"GroupId": "sg-t", "GroupName": "orgcontain-transition"}],
            },
            {
                "NetworkInterfaceId": "eni-c",
                "Attachment": {"DeviceIndex": 2},
                "Groups": [
                    {"GroupId": "sg-q", "GroupName": "orgcontain-quarantine"},
                    {"GroupId": "sg-x", "GroupName": "x"},
                ],
            },
        ],
    )
    pre = pre_state_from_instance(inst)
    assert pre is not None
    a, b, c = pre.enis
    assert (a.found_on, a.groups, a.conntrack) == ("quarantine", ("sg-app", "sg-db"), None)  # from the tag
    assert (b.found_on, b.groups) == ("transition", ())  # no tag: unknown, never sg-t
    assert (c.found_on, c.groups) == ("original", ("sg-x",))


def test_carry_originals_keeps_the_record_and_takes_the_live_facts() -> None:
    recorded = pre_state_from_instance(_instance())
    assert recorded is not None
    recorded = recorded.model_copy(update={"disable_api_termination": False, "steps_completed": ("network",)})
    live = recorded.model_copy(
        update={
            "state": "stopped",
            "enis": (
                EniState(eni_id="eni-a", groups=(), found_on="quarantine"),
                EniState(eni_id="eni-new", device_index=2, groups=("sg-new",)),
            ),
        }
    )
    merged = carry_originals(live, recorded)
    assert merged.state == "stopped"
    assert [(e.eni_id, e.groups, e.found_on) for e in merged.enis] == [
        ("eni-a", ("sg-app", "sg-db"), "quarantine"),
        ("eni-new", ("sg-new",), "original"),
    ]
    assert merged.disable_api_termination is False and merged.steps_completed == ("network",)


def test_describe_is_one_call_through_the_assumed_role(member_eu: Member) -> None:
    inst = member_eu.workload.run_instance(enis=2, profile=True, extra_volumes=2)
    rec = Recorder()
    clients, _ = member_eu.spoke(rec)
    pre = describe(clients, inst.instance_id)
    assert rec.names() == ["DescribeInstances"]
    assert pre is not None
    assert [e.eni_id for e in pre.enis] == inst.eni_ids
    assert pre.enis[0].groups == tuple(inst.groups)
    assert len(pre.volumes) == 3 and pre.instance_profile_arn == inst.profile_arn


def test_describe_missing_instance_is_none(member_us: Member) -> None:
    member_us.workload.network()
    clients, _ = member_us.spoke()
    assert describe(clients, "i-0123456789abcdef0") is None


def test_describe_instance_of_another_account_is_none(org: Any, member_us: Member) -> None:
    inst = member_us.workload.run_instance()
    from tests.spoke.helpers import member_in

    other = member_in(org, "dev", "us-east-1")
    clients, _ = other.spoke()
    assert describe(clients, inst.instance_id) is None


BAD_IDS = [
    "",
    "i-123",
    "I-0123456789ABCDEF0",
    "vol-0123456789abcdef0",
    "i-0123456789abcdef0 ",
    "i-0123456789abcdeg0",
]


def test_malformed_ids_are_a_clear_error_before_any_call(aws: None) -> None:
    rec = Recorder()
    session = boto3.Session(region_name="us-east-1")
    session.events.register("before-parameter-build", rec)
    clients = SpokeClients(session, "us-east-1")
    for bad in BAD_IDS:
        with pytest.raises(InvalidInstanceId, match="not an EC2 instance id"):
            describe(clients, bad)
    assert rec.calls == []
