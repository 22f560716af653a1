"""The emulated organization behaves like AWS where the product depends on it."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from hub.demo.org import EmulatedOrg


def test_org_has_management_hub_members_and_nested_ou(org: EmulatedOrg) -> None:
    orgs = org.management_client("organizations")
    accounts = {a["Id"]: a for a in orgs.list_accounts()["Accounts"]}
    assert org.management_account_id in accounts
    assert org.hub_account_id == org.guardduty_admin_id
    assert len(org.member_ids) >= 4
    assert len({org.account_ou[a] for a in org.member_ids}) >= 3
    prod_a = org.accounts["prod-a"]
    assert org.ou_path(prod_a) == [org.ous["Workloads"], org.ous["Prod"]]
    admins = orgs.list_delegated_administrators(ServicePrincipal="guardduty.amazonaws.com")
    assert [a["Id"] for a in admins["DelegatedAdministrators"]] == [org.guardduty_admin_id]


def test_separate_guardduty_admin_variant(org_separate_admin: EmulatedOrg) -> None:
    org = org_separate_admin
    assert org.guardduty_admin_id != org.hub_account_id
    assert org.guardduty_admin_id == org.accounts["audit"]


def test_assumed_role_session_lands_in_the_member_account(org: EmulatedOrg) -> None:
    for name in ("dev", "prod-a"):
        account = org.accounts[name]
        ident = org.client("sts", account).get_caller_identity()
        assert ident["Account"] == account
        assert ":assumed-role/OrganizationAccountAccessRole/" in ident["Arn"]


def test_instance_in_one_member_is_invisible_from_another(org: EmulatedOrg) -> None:
    inst = org.workload("prod-a", "eu-west-1").run_instance()
    mine = org.client("ec2", org.accounts["prod-a"], "eu-west-1")
    assert mine.describe_instances(InstanceIds=[inst.instance_id])["Reservations"]
    other = org.client("ec2", org.accounts["prod-b"], "eu-west-1")
    with pytest.raises(ClientError) as err:
        other.describe_instances(InstanceIds=[inst.instance_id])
    assert err.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"
    # ... and from the same account in the other region.
    with pytest.raises(ClientError):
        org.client("ec2", org.accounts["prod-a"], "us-east-1").describe_instances(
            InstanceIds=[inst.instance_id]
        )


def test_multi_eni_instance_keeps_groups_per_eni(org: EmulatedOrg) -> None:
    w = org.workload("dev")
    inst = w.run_instance(enis=3)
    assert len(inst.eni_ids) == 3
    enis = w.ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [inst.instance_id]}]
    )["NetworkInterfaces"]
    groups = {e["NetworkInterfaceId"]: sorted(g["GroupId"] for g in e["Groups"]) for e in enis}
    net = w.network()
    assert groups[inst.eni_ids[0]] == sorted([net.app_group_id, net.db_group_id])
    assert groups[inst.eni_ids[1]] == [net.db_group_id]


def test_instance_with_profile_and_volumes(org: EmulatedOrg) -> None:
    w = org.workload("prod-b", "us-east-1")
    inst = w.run_instance(profile=True, extra_volumes=3)
    assert len(inst.volume_ids) == 4
    assocs = w.ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [inst.instance_id]}]
    )["IamInstanceProfileAssociations"]
    assert assocs[0]["IamInstanceProfile"]["Arn"] == inst.profile_arn


def test_asg_instances_are_registered_in_the_target_group(org: EmulatedOrg) -> None:
    w = org.workload("dev", "eu-west-1")
    members = w.run_asg_behind_alb(desired=2)
    assert len(members) == 2
    elbv2 = org.client("elbv2", org.accounts["dev"], "eu-west-1")
    health = elbv2.describe_target_health(TargetGroupArn=members[0].target_group_arn)
    assert {t["Target"]["Id"] for t in health["TargetHealthDescriptions"]} == {m.instance_id for m in members}
    tags = {
        t["Key"]: t["Value"]
        for t in w.ec2.describe_instances(InstanceIds=[members[0].instance_id])["Reservations"][0][
            "Instances"
        ][0]["Tags"]
    }
    assert tags["aws:autoscaling:groupName"] == members[0].asg_name


def test_delegated_admin_view_lists_the_org_from_the_hub(org: EmulatedOrg) -> None:
    client = org.organizations_client_as_delegated_admin()
    ids = {a["Id"] for a in client.list_accounts()["Accounts"]}
    assert set(org.accounts.values()) <= ids
