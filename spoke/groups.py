"""orgcontain's two security groups per VPC: find by tag, create on first use, keep their rules right.

- quarantine (tag ``orgcontain:role=quarantine``, name ``orgcontain-quarantine``): no egress at all,
  ingress exactly the configured SOC / forensic sources;
- transition (tag ``orgcontain:role=transition``, name ``orgcontain-transition``): all traffic both
  ways, IPv4 and IPv6. An ENI that passes through it has its tracked flows turned into untracked
  ones, which the quarantine group then drops (docs/containment.md).

Security groups are VPC-scoped, so both exist once per account and VPC. The :class:`GroupCache`
(one per account and region, kept by the hub across invocations) remembers their ids, so a warm
containment makes no lookup at all. Creation is race-safe: the group name is unique per VPC, so a
concurrent creator gets ``InvalidGroup.Duplicate`` and adopts the winner's group; whoever uses a
group first makes sure its egress is gone (an adopted group may still carry the default rule).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from spoke.errors import error_code
from spoke.models import (
    QUARANTINE_GROUP_NAME,
    QUARANTINE_ROLE,
    ROLE_TAG,
    TRANSITION_GROUP_NAME,
    TRANSITION_ROLE,
)
from spoke.rules import GroupDiff, GroupRules, Rule, RuleDiff, apply_diff, to_ip_permissions

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

GROUP_NAMES = {QUARANTINE_ROLE: QUARANTINE_GROUP_NAME, TRANSITION_ROLE: TRANSITION_GROUP_NAME}
GROUP_DESCRIPTIONS = {
    QUARANTINE_ROLE: "orgcontain quarantine: no egress, ingress only from the SOC / forensic sources",
    TRANSITION_ROLE: "orgcontain transition: all traffic both ways, held for milliseconds to untrack flows",
}
# Reconciling again sooner than this is skipped on the warm path (the cold path reconciles for free).
DEFAULT_RECONCILE_INTERVAL = 300.0


@dataclass(frozen=True)
class VpcGroups:
    quarantine_id: str
    transition_id: str | None = None

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(g for g in (self.quarantine_id, self.transition_id) if g)


class GroupCache:
    """Per account+region: vpc_id -> (quarantine_group_id, transition_group_id).

    Filled on first lookup or creation; thread-safe. ``reconcile_interval`` (seconds) bounds how
    often a warm containment re-reads the groups to repair drift.
    """

    def __init__(
        self,
        *,
        reconcile_interval: float = DEFAULT_RECONCILE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reconcile_interval = reconcile_interval
        self._clock = clock
        self._groups: dict[str, VpcGroups] = {}
        self._reconciled_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, vpc_id: str) -> VpcGroups | None:
        with self._lock:
            return self._groups.get(vpc_id)

    def put(self, vpc_id: str, groups: VpcGroups) -> None:
        with self._lock:
            if self._groups.get(vpc_id) != groups:
                self._reconciled_at.pop(vpc_id, None)
            self._groups[vpc_id] = groups

    def invalidate(self, vpc_id: str) -> None:
        with self._lock:
            self._groups.pop(vpc_id, None)
            self._reconciled_at.pop(vpc_id, None)

    def reconcile_due(self, vpc_id: str) -> bool:
        with self._lock:
            last = self._reconciled_at.get(vpc_id)
        return last is None or self._clock() - last >= self.reconcile_interval

    def mark_reconciled(self, vpc_id: str) -> None:
        with self._lock:
            self._reconciled_at[vpc_id] = self._clock()

    def __contains__(self, vpc_id: object) -> bool:
        with self._lock:
            return vpc_id in self._groups

    def __len__(self) -> int:
        with self._lock:
            return len(self._groups)

    def snapshot(self) -> dict[str, VpcGroups]:
        with self._lock:
            return dict(self._groups)


def choose(candidates: Sequence[Mapping[str, Any]], role: str) -> Mapping[str, Any] | None:
    """The one group of ``role`` everyone uses when several carry the tag: the canonical name
    first, then the smallest id (deterministic, so concurrent runners agree)."""
    if not candidates:
        return None
    name = GROUP_NAMES[role]
    return min(candidates, key=lambda g: (g.get("GroupName") != name, str(g["GroupId"])))


def lookup(ec2: EC2Client, vpc_ids: Iterable[str]) -> dict[str, dict[str, Mapping[str, Any]]]:
    """One DescribeSecurityGroups (filtered by our tag and the VPCs): vpc -> role -> group."""
    vpcs = sorted(set(vpc_ids))
    found: dict[str, dict[str, list[Mapping[str, Any]]]] = {v: {} for v in vpcs}
    pages = ec2.get_paginator("describe_security_groups").paginate(
        Filters=[
            {"Name": f"tag:{ROLE_TAG}", "Values": [QUARANTINE_ROLE, TRANSITION_ROLE]},
            {"Name": "vpc-id", "Values": vpcs},
        ]
    )
    for page in pages:
        for group in page.get("SecurityGroups", []):
            role = next((t["Value"] for t in group.get("Tags", []) if t["Key"] == ROLE_TAG), None)
            vpc = group.get("VpcId")
            if role in GROUP_NAMES and vpc in found:
                found[vpc].setdefault(str(role), []).append(dict(group))
    out: dict[str, dict[str, Mapping[str, Any]]] = {}
    for vpc, roles in found.items():
        out[vpc] = {}
        for role, groups in roles.items():
            chosen = choose(groups, role)
            if chosen is not None:
                out[vpc][role] = chosen
    return out


def describe_groups(ec2: EC2Client, group_ids: Iterable[str]) -> dict[str, Mapping[str, Any]]:
    ids = sorted(set(group_ids))
    if not ids:
        return {}
    resp = ec2.describe_security_groups(GroupIds=ids)
    return {str(g["GroupId"]): dict(g) for g in resp.get("SecurityGroups", [])}


def create_group(ec2: EC2Client, vpc_id: str, role: str) -> tuple[str, bool]:
    """Create the ``role`` group in ``vpc_id``, tagged at creation. Returns (group id, created).

    A concurrent creator that won the race makes AWS answer ``InvalidGroup.Duplicate`` (the name is
    unique per VPC): adopt that group instead of making a second one.
    """
    name = GROUP_NAMES[role]
    try:
        resp = ec2.create_security_group(
            GroupName=name,
            Description=GROUP_DESCRIPTIONS[role],
            VpcId=vpc_id,
            TagSpecifications=[
                {"ResourceType": "security-group", "Tags": [{"Key": ROLE_TAG, "Value": role}]}
            ],
        )
        return str(resp["GroupId"]), True
    except ClientError as exc:
        if error_code(exc) != "InvalidGroup.Duplicate":
            raise
    existing = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc_id]}]
    )["SecurityGroups"]
    group = existing[0]
    if not any(t["Key"] == ROLE_TAG for t in group.get("Tags", [])):
        # A group of our name without our tag (made by hand): tag it so lookups find it.
        ec2.create_tags(Resources=[group["GroupId"]], Tags=[{"Key": ROLE_TAG, "Value": role}])
    return str(group["GroupId"]), False


# Errors that concern one rule of a batch: retry the batch rule by rule to apply the rest.
_TOLERATED = {"authorize": "InvalidPermission.Duplicate", "revoke": "InvalidPermission.NotFound"}


@dataclass(frozen=True)
class ApplyReport:
    rules_after: GroupRules
    changed: int
    failures: tuple[str, ...]


def _call(ec2: EC2Client, verb: str, direction: str, group_id: str, rules: Sequence[Rule]) -> None:
    perms: Any = to_ip_permissions(rules)
    if verb == "authorize" and direction == "ingress":
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=perms)
    elif verb == "authorize":
        ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=perms)
    elif direction == "ingress":
        ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=perms)
    else:
        ec2.revoke_security_group_egress(GroupId=group_id, IpPermissions=perms)


def _apply_rules(
    ec2: EC2Client, verb: str, direction: str, group_id: str, rules: Sequence[Rule]
) -> tuple[set[Rule], list[str]]:
    """Apply ``rules`` in one call; if it fails, rule by rule (so one bad rule cannot block the
    rest). "Already there" / "already gone" count as applied. Returns (applied, failures)."""
    if not rules:
        return set(), []
    try:
        _call(ec2, verb, direction, group_id, rules)
        return set(rules), []
    except ClientError as exc:
        if len(rules) == 1:
            if error_code(exc) == _TOLERATED[verb]:
                return set(rules), []
            return set(), [f"{verb} {direction} {_describe_rule(rules[0])}: {error_code(exc)}"]
    applied: set[Rule] = set()
    failures: list[str] = []
    for r in rules:
        got, failed = _apply_rules(ec2, verb, direction, group_id, [r])
        applied |= got
        failures += failed
    return applied, failures


def _describe_rule(r: Rule) -> str:
    ports = "all" if r.from_port is None else f"{r.from_port}-{r.to_port}"
    return f"{r.protocol}:{ports} {r.source}"


def apply_group_diff(ec2: EC2Client, group_id: str, actual: GroupRules, change: GroupDiff) -> ApplyReport:
    """Apply ``change``: revocations first (they only ever tighten), then authorizations."""
    failures: list[str] = []
    ingress, egress = set(actual.ingress), set(actual.egress)
    changed = 0
    for verb, direction, rules in (
        ("revoke", "egress", change.egress.revoke),
        ("revoke", "ingress", change.ingress.revoke),
        ("authorize", "egress", change.egress.authorize),
        ("authorize", "ingress", change.ingress.authorize),
    ):
        applied, failed = _apply_rules(ec2, verb, direction, group_id, list(rules))
        failures += failed
        changed += len(applied)
        target = ingress if direction == "ingress" else egress
        if verb == "revoke":
            target -= applied
        else:
            target |= applied
    return ApplyReport(GroupRules(frozenset(ingress), frozenset(egress)), changed, tuple(failures))


def tightening(change: GroupDiff) -> GroupDiff:
    """Only the revocations of ``change``: what must happen before a quarantine group is used."""
    return GroupDiff(RuleDiff(revoke=change.ingress.revoke), RuleDiff(revoke=change.egress.revoke))


def after(actual: GroupRules, change: GroupDiff) -> GroupRules:
    """Pure: the rules after ``change`` fully applies."""
    return GroupRules(apply_diff(actual.ingress, change.ingress), apply_diff(actual.egress, change.egress))
