"""Every AWS operation the spoke engine makes is an IAM action declared by the step that made it."""

from __future__ import annotations

import re

import botocore.session

from spoke.isolate import isolate
from spoke.models import IsolationStatus, ReleaseStatus
from spoke.permissions import ISOLATE_ACTIONS, RELEASE_ACTIONS, STEP_ACTIONS, required_actions
from spoke.release import release
from tests.spoke.helpers import Member, Recorder, make_plan

# Permission-only actions (no API operation of that name): AssociateIamInstanceProfile needs it.
PERMISSION_ONLY = {"iam:PassRole"}
# IAM prefix -> botocore services that sign with it.
SERVICES = {
    "ec2": ["ec2"],
    "autoscaling": ["autoscaling"],
    "elasticloadbalancing": ["elbv2", "elb"],
    "iam": ["iam"],
}
# Declared for paths a normal containment and release do not take (kept honest by name here).
ERROR_PATH_ONLY = {
    "ec2:DescribeSnapshots": "a resumed containment looking for its earlier snapshots",
    "ec2:AuthorizeSecurityGroupEgress": "repairing a transition group that lost an egress rule",
    "ec2:RevokeSecurityGroupIngress": "removing an ingress rule that drifted into the quarantine group",
}


def _flows(member: Member, rec: Recorder) -> None:
    clients, _ = member.spoke(rec)
    # An Auto Scaling instance behind an ALB and a classic ELB, put in standby, then back.
    asg_member = member.workload.run_asg_behind_alb(desired=1)[0]
    net = member.workload.network()
    elb = member.client("elb")
    elb.create_load_balancer(
        LoadBalancerName="legacy",
        Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}],
        Subnets=[net.subnet_ids[0]],
        SecurityGroups=[net.app_group_id],
    )
    elb.register_instances_with_load_balancer(
        LoadBalancerName="legacy", Instances=[{"InstanceId": asg_member.instance_id}]
    )
    a = isolate(clients, make_plan(asg_member.instance_id, autoscaling_action="standby"))
    assert a.status == IsolationStatus.ISOLATED and a.pre_state is not None
    assert release(clients, a.pre_state, reattach_asg=True).status == ReleaseStatus.RELEASED
    # A detached one, re-attached.
    other = member.workload.run_asg_behind_alb(desired=1)[0]
    b = isolate(clients, make_plan(other.instance_id, autoscaling_action="detach"))
    assert b.pre_state is not None
    assert release(clients, b.pre_state, reattach_asg=True).status == ReleaseStatus.RELEASED
    # A standalone two-ENI instance with a profile, volumes, shutdown behaviour terminate,
    # and session revocation; dry-run first.
    inst = member.workload.run_instance(enis=2, profile=True, extra_volumes=1)
    member.ec2.modify_instance_attribute(
        InstanceId=inst.instance_id, InstanceInitiatedShutdownBehavior={"Value": "terminate"}
    )
    plan = make_plan(inst.instance_id, revoke_role_sessions=True)
    assert isolate(clients, plan, dry_run=True).status == IsolationStatus.DRY_RUN
    c = isolate(clients, plan)
    assert c.status == IsolationStatus.ISOLATED and c.pre_state is not None
    assert release(clients, c.pre_state).status == ReleaseStatus.RELEASED


def test_every_call_maps_to_an_action_its_step_declares(member_us: Member) -> None:
    rec = Recorder()
    _flows(member_us, rec)
    assert rec.calls
    unattributed = [c.action for c in rec.calls if c.step is None]
    assert unattributed == []
    undeclared = sorted(
        {f"{c.step}: {c.action}" for c in rec.calls if c.action not in STEP_ACTIONS[c.step or ""]}
    )
    assert undeclared == []
    # Nothing is declared that the code never needs (except the documented error paths).
    used = {c.action for c in rec.calls} | PERMISSION_ONLY
    assert required_actions() - used == set(ERROR_PATH_ONLY)


def test_declared_actions_are_real_operations() -> None:
    session = botocore.session.get_session()
    models = {
        prefix: {op for svc in services for op in session.get_service_model(svc).operation_names}
        for prefix, services in SERVICES.items()
    }
    for step, actions in STEP_ACTIONS.items():
        assert re.fullmatch(r"[a-z0-9-]+", step)
        for action in actions - PERMISSION_ONLY:
            prefix, _, operation = action.partition(":")
            assert operation in models[prefix], f"{step}: {action}"


def test_step_actions_cover_both_paths() -> None:
    assert set(STEP_ACTIONS) >= {
        "describe",
        "autoscaling",
        "security-groups",
        "network",
        "conntrack",
        "termination-protection",
        "shutdown-behavior",
        "delete-on-termination",
        "load-balancers",
        "instance-profile",
        "revoke-sessions",
        "snapshots",
        "reconcile-groups",
        "tags",
    }
    for step, actions in STEP_ACTIONS.items():
        assert actions == ISOLATE_ACTIONS.get(step, frozenset()) | RELEASE_ACTIONS.get(step, frozenset())
    assert "ec2:ModifyNetworkInterfaceAttribute" in STEP_ACTIONS["network"]
    assert "ec2:ModifyInstanceAttribute" not in STEP_ACTIONS["network"]  # never the instance-level swap
    assert required_actions() == frozenset().union(*STEP_ACTIONS.values())
    assert not any(a.endswith("*") for a in required_actions())
