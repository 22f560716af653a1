"""The spoke role as deployed allows every call a real containment and release make.

The role is created from stacksets/spoke.yaml by CloudFormation in a member account, assumed as
the hub assumes it, and a full containment (ASG + target group, instance profile, two ENIs, extra
volume, session revocation on) and a release run through it while every API call is recorded.

moto does not evaluate IAM (it ignores conditions and resource ARNs), so the check is ours: each
recorded operation's IAM action must be in the deployed role's policy, in a statement whose
conditions the call satisfies (region pin, orgcontain tag keys, tagged groups). Implicit actions a
recorder cannot see (iam:PassRole behind AssociateIamInstanceProfile) are checked statically in
test_rollout_templates.py.
"""

from __future__ import annotations

import ast
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from hub.demo.org import EmulatedOrg
from stacksets import templates

isolate_mod = pytest.importorskip("spoke.isolate", reason="spoke/isolate.py does not exist yet")
release_mod = pytest.importorskip("spoke.release", reason="spoke/release.py does not exist yet")

pytestmark = pytest.mark.usefixtures("aws")

# botocore signing name -> IAM service prefix
_PREFIX = {
    "elasticloadbalancing": "elasticloadbalancing",
    "ec2": "ec2",
    "autoscaling": "autoscaling",
    "iam": "iam",
}


@dataclass
class Recorded:
    action: str
    region: str
    params: dict[str, Any]


@dataclass
class Recorder:
    region: str
    calls: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.signing_name or model.service_model.endpoint_prefix
        with self.lock:
            self.calls.append(
                Recorded(f"{_PREFIX.get(service, service)}:{model.name}", self.region, dict(params))
            )


def _deploy_spoke_role(org: EmulatedOrg, account: str, region: str) -> None:
    cfn = org.client("cloudformation", account, region)
    params = {
        "OrganizationId": org.organization_id,
        "HubAccountId": org.hub_account_id,
        "AllowRoleSessionRevocation": "true",
    }
    cfn.create_stack(
        StackName="orgcontain-spoke",
        TemplateBody=templates.spoke().body(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )


def _deployed_statements(org: EmulatedOrg, account: str, region: str) -> list[dict[str, Any]]:
    iam = org.client("iam", account)
    doc = iam.get_role_policy(RoleName=f"orgcontain-spoke-{region}", PolicyName="orgcontain-containment")[
        "PolicyDocument"
    ]
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except json.JSONDecodeError:
            doc = ast.literal_eval(doc)  # moto's CloudFormation stores a Python repr
    return list(doc["Statement"])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _tag_keys(call: Recorded) -> set[str]:
    tags = call.params.get("Tags", [])
    return {t["Key"] for t in tags}


def _satisfies(stmt: dict[str, Any], call: Recorded, group_roles: dict[str, str]) -> bool:
    """Our reading of the statement's conditions for this call (what IAM would evaluate)."""
    cond = stmt.get("Condition", {})
    equals = cond.get("StringEquals", {})
    if "aws:RequestedRegion" in equals and equals["aws:RequestedRegion"] != call.region:
        return False
    keys_like = cond.get("ForAllValues:StringLike", {}).get("aws:TagKeys")
    if keys_like is not None and not all(
        any(k.startswith(p.rstrip("*")) for p in _as_list(keys_like)) for k in _tag_keys(call)
    ):
        return False
    if "aws:ResourceTag/orgcontain:role" in equals:
        group = call.params.get("GroupId")
        if group_roles.get(group) not in _as_list(equals["aws:ResourceTag/orgcontain:role"]):
            return False
    if "aws:RequestTag/orgcontain:role" in equals:
        wanted = _as_list(equals["aws:RequestTag/orgcontain:role"])
        tags = {t["Key"]: t["Value"] for t in call.params.get("Tags", [])}
        for spec in call.params.get("TagSpecifications", []):
            tags.update({t["Key"]: t["Value"] for t in spec["Tags"]})
        if tags.get("orgcontain:role") not in wanted:
            return False
    # tag-on-create grants never cover a standalone CreateTags call
    return "ec2:CreateAction" not in equals


def _resource_kinds(stmt: dict[str, Any]) -> set[str]:
    kinds = set()
    for res in _as_list(stmt["Resource"]):
        tail = str(res).split(":")[-1]
        kinds.add(tail.split("/")[0] if "/" in tail else "*")
    return kinds


def _call_resource_kind(call: Recorded) -> str | None:
    """For actions granted per resource type, which type this call acts on."""
    if call.action in ("ec2:CreateTags", "ec2:DeleteTags"):
        ids = call.params["Resources"]
        return (
            "instance"
            if ids[0].startswith("i-")
            else "security-group"
            if ids[0].startswith("sg-")
            else "snapshot"
        )
    if call.action == "ec2:CreateSecurityGroup":
        return "security-group"
    return None


def test_every_call_of_a_containment_and_release_is_allowed_by_the_deployed_role(org: EmulatedOrg) -> None:
    from hub.demo.org import Workload  # noqa: F401 - the builders below
    from spoke.clients import SpokeClients
    from spoke.models import ContainmentPlan, IngressPermission

    account, region = org.accounts["prod-a"], org.regions[1]
    _deploy_spoke_role(org, account, region)
    work = org.workload("prod-a", region)
    asg_member = work.run_asg_behind_alb(desired=2)[0]
    single = work.run_instance(enis=2, extra_volumes=1, profile=True)

    creds = org.management_client("sts", region).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/orgcontain-spoke-{region}", RoleSessionName="orgcontain-hub"
    )["Credentials"]
    session = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    recorder = Recorder(region)
    session.events.register("before-parameter-build", recorder)
    clients = SpokeClients(session, region)

    ingress = (IngressPermission(from_port=22, to_port=22, cidr_ipv4="10.0.0.10/32", description="SOC"),)
    for inst in (asg_member, single):
        plan = ContainmentPlan(
            instance_id=inst.instance_id,
            finding_id="f" * 32,
            quarantined_at=datetime(2026, 1, 1, tzinfo=UTC),
            quarantine_ingress=ingress,
            revoke_role_sessions=True,
        )
        result = isolate_mod.isolate(clients, plan)
        assert result.status.value in ("isolated", "partial"), result
        assert result.pre_state is not None
        released = release_mod.release(
            clients, result.pre_state, reattach_asg=True, finding_id=plan.finding_id
        )
        assert released.status.value == "released", released

    actions = {c.action for c in recorder.calls}
    assert {
        "ec2:ModifyNetworkInterfaceAttribute",
        "ec2:CreateSnapshots",
        "autoscaling:DetachInstances",
    } <= actions

    statements = _deployed_statements(org, account, region)
    ec2 = org.client("ec2", account, region)
    group_roles = {
        g["GroupId"]: t["Value"]
        for g in ec2.describe_security_groups()["SecurityGroups"]
        for t in g.get("Tags", [])
        if t["Key"] == "orgcontain:role"
    }
    denied = []
    for call in recorder.calls:
        kind = _call_resource_kind(call)
        allowing = [
            s
            for s in statements
            if s["Effect"] == "Allow"
            and call.action in _as_list(s["Action"])
            and (kind is None or kind in _resource_kinds(s))
            and _satisfies(s, call, group_roles)
        ]
        if not allowing:
            denied.append(f"{call.action} {json.dumps(call.params, default=str)[:200]}")
    assert denied == []
