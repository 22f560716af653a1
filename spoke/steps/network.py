"""The network steps: our groups ready, every ENI swapped, conntrack shortened, drift repaired.

Speed matters here, so the order is deliberate (docs/containment.md, "Critical path"):

1. ``security-groups``: ids from the :class:`~spoke.groups.GroupCache` (warm: no call), or one
   DescribeSecurityGroups by tag and VPC (cold), or creation (first containment in the VPC). Only
   what a group must not carry is fixed before use (a quarantine rule that should not be there, a
   transition group not fully open); missing SOC ingress is added after the swap.
2. ``network``: per ENI (``ModifyInstanceAttribute(Groups)`` fails on multi-ENI instances), the
   transition group then at once the quarantine group, back to back.
3. ``conntrack``: each quarantined ENI's idle timeouts to their minimums.
4. ``reconcile-groups`` (after the slow steps): the full desired-vs-actual diff of both groups.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from spoke.errors import error_code
from spoke.groups import (
    VpcGroups,
    apply_group_diff,
    create_group,
    describe_groups,
    lookup,
    tightening,
)
from spoke.models import (
    CONNTRACK_DEFAULTS,
    CONNTRACK_MINIMUMS,
    QUARANTINE_ROLE,
    TRANSITION_ROLE,
    ConntrackTimeouts,
    EniState,
)
from spoke.rules import TRANSITION_RULES, GroupRules, diff_group, quarantine_rules
from spoke.steps.base import ALREADY, DONE, FAILED, SKIPPED, WOULD, IsolateRun, ReleaseRun, Step

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# The ENI belongs to another service (requester-managed: ECS, EKS, ...) or the account may not
# modify it: record it, isolate the others, report the instance as partly contained.
NOT_MODIFIABLE = frozenset({"UnauthorizedOperation", "AuthFailure", "OperationNotPermitted"})
ENI_GONE = "InvalidNetworkInterfaceID.NotFound"
# Instance types or ENIs without configurable connection tracking.
CONNTRACK_UNSUPPORTED = frozenset({"UnsupportedOperation", "InvalidParameterCombination"})
PLANNED_GROUP = "(new group)"


def _vpc(run: IsolateRun, eni: EniState) -> str:
    return eni.vpc_id or run.s.vpc_id


class SecurityGroups(Step):
    name = "security-groups"
    actions = frozenset(
        {
            "ec2:DescribeSecurityGroups",
            "ec2:CreateSecurityGroup",
            "ec2:CreateTags",  # tag-on-create of the groups
            "ec2:RevokeSecurityGroupEgress",
            "ec2:RevokeSecurityGroupIngress",
            "ec2:AuthorizeSecurityGroupEgress",
            "ec2:AuthorizeSecurityGroupIngress",
        }
    )

    @classmethod
    def isolate(cls, run: IsolateRun, vpcs: tuple[str, ...] | None = None, *, use_cache: bool = True) -> None:
        """Make the quarantine (and, when severing, the transition) group usable in each VPC."""
        assert run.groups is not None
        need_transition = run.p.sever_tracked_connections
        todo: list[str] = []
        for vpc in vpcs or run.s.vpc_ids:
            cached = run.groups.get(vpc) if use_cache else None
            if cached and (cached.transition_id or not need_transition):
                run.vpc_groups[vpc] = cached
            else:
                todo.append(vpc)
        if not todo:
            run.record(cls.name, ALREADY, "group ids from the cache")
            return
        ec2 = run.clients.ec2
        found = lookup(ec2, todo)
        notes: list[str] = []
        changed = False
        pending: dict[str, tuple[str, str]] = {}  # group id -> (vpc, role) needing a describe
        chosen: dict[str, dict[str, str]] = {v: {} for v in todo}
        for vpc in todo:
            roles = [QUARANTINE_ROLE] + ([TRANSITION_ROLE] if need_transition else [])
            for role in roles:
                group = found[vpc].get(role)
                if group is not None:
                    gid = str(group["GroupId"])
                    chosen[vpc][role] = gid
                    run.known_rules[gid] = GroupRules.from_description(group)
                elif run.dry_run:
                    chosen[vpc][role] = PLANNED_GROUP
                    notes.append(f"would create the {role} group in {vpc}")
                else:
                    gid, created = create_group(ec2, vpc, role)
                    chosen[vpc][role] = gid
                    pending[gid] = (vpc, role)
                    changed = changed or created
                    notes.append(f"{'created' if created else 'adopted'} {role} group {gid} in {vpc}")
            # A transition group made earlier is used even when this plan does not sever.
            if TRANSITION_ROLE not in chosen[vpc] and TRANSITION_ROLE in found[vpc]:
                chosen[vpc][TRANSITION_ROLE] = str(found[vpc][TRANSITION_ROLE]["GroupId"])
        for gid, desc in describe_groups(ec2, pending).items():
            run.known_rules[gid] = GroupRules.from_description(desc)
        failed: list[str] = []
        for vpc in todo:
            vpc_unsafe = False
            for role, gid in chosen[vpc].items():
                if gid == PLANNED_GROUP or gid not in run.known_rules:
                    continue
                desired = (
                    quarantine_rules(run.p.quarantine_ingress)
                    if role == QUARANTINE_ROLE
                    else TRANSITION_RULES
                )
                actual = run.known_rules[gid]
                change = diff_group(desired, actual)
                # Before use: a quarantine group loses what it must not have; a transition group
                # gets fully open (else flows stay tracked). Missing SOC ingress can wait.
                before_use = tightening(change) if role == QUARANTINE_ROLE else change
                if not before_use:
                    continue
                if run.dry_run:
                    notes.append(f"would fix {role} group {gid} before use")
                    continue
                report = apply_group_diff(ec2, gid, actual, before_use)
                run.known_rules[gid] = report.rules_after
                changed = changed or report.changed > 0
                notes.append(f"fixed {role} group {gid} before use ({report.changed} rule changes)")
                if report.failures and role == QUARANTINE_ROLE:
                    vpc_unsafe = True
                    failed.append(f"{gid}: {'; '.join(report.failures)}")
                elif report.failures:
                    notes.append(f"transition group {gid} incomplete: {'; '.join(report.failures)}")
            if vpc_unsafe:
                continue
            q = chosen[vpc].get(QUARANTINE_ROLE)
            if q is None:
                continue
            groups = VpcGroups(q, chosen[vpc].get(TRANSITION_ROLE))
            run.vpc_groups[vpc] = groups
            if PLANNED_GROUP not in groups.ids:
                run.groups.put(vpc, groups)
        if failed:
            run.record(cls.name, FAILED, "quarantine group unsafe to use: " + " | ".join(failed))
        elif run.dry_run and notes:
            run.record(cls.name, WOULD, "; ".join(notes))
        else:
            run.record(cls.name, DONE if changed else ALREADY, "; ".join(notes) or "found by tag")


class Network(Step):
    name = "network"
    actions = frozenset({"ec2:ModifyNetworkInterfaceAttribute"})
    release_actions = frozenset({"ec2:ModifyNetworkInterfaceAttribute"})

    @classmethod
    def isolate(cls, run: IsolateRun) -> None:
        if not run.s.enis:
            run.record(cls.name, FAILED, "the instance has no network interface to isolate", "no-eni")
            return
        moved: list[str] = []
        already: list[str] = []
        unmoved: list[str] = []
        gone: list[str] = []
        would: list[str] = []
        failures: list[tuple[str, str]] = []  # (detail, error code) of ENIs that stop the step
        todo: list[tuple[str, str]] = []  # (eni id, vpc) to swap
        for listed in run.s.enis:
            if listed.requester_managed or listed.not_modified:
                unmoved.append(f"{listed.eni_id} ({listed.not_modified or 'requester-managed'})")
                continue
            vpc = _vpc(run, listed)
            vg = run.vpc_groups.get(vpc)
            if vg is None:
                run.record(cls.name, FAILED, f"no usable quarantine group in {vpc}", "no-quarantine-group")
                return
            eni = _classify(listed, vg)
            _set_eni(run, eni)
            if eni.found_on == "quarantine":
                already.append(eni.eni_id)
            elif run.dry_run:
                via = f" via {vg.transition_id}" if _via_transition(run, eni, vg) else ""
                would.append(f"{eni.eni_id} {list(eni.groups)} -> {vg.quarantine_id}{via}")
            else:
                todo.append((eni.eni_id, vpc))
        refreshed: set[str] = set()
        while todo:
            # Every ENI at once, each its two calls back to back: the instance is contained in two
            # round trips whatever its ENI count (docs/containment.md, "The critical path").
            results = _swap_all(run, [(_current(run, e), run.vpc_groups[vpc]) for e, vpc in todo])
            retry: list[tuple[str, str]] = []
            for (eni_id, vpc), (on, exc) in zip(todo, results, strict=True):
                if on != _current(run, eni_id).found_on:
                    _set_eni(run, _current(run, eni_id).model_copy(update={"found_on": on}))
                if exc is None:
                    moved.append(eni_id)
                    continue
                code = error_code(exc)
                if code == "InvalidGroup.NotFound" and vpc not in refreshed:
                    retry.append((eni_id, vpc))  # a cached group was deleted: looked up again below
                elif code in NOT_MODIFIABLE:
                    _set_eni(run, _current(run, eni_id).model_copy(update={"not_modified": code}))
                    unmoved.append(f"{eni_id} ({code})")
                elif code == ENI_GONE:
                    gone.append(eni_id)
                else:
                    where = "LEFT ON THE TRANSITION GROUP" if on == "transition" else "unchanged"
                    failures.append((f"{eni_id} {where}: {exc}", code))
            todo = []
            for vpc in dict.fromkeys(v for _, v in retry):
                # Look the VPC's groups up again (or recreate them), then try its ENIs once more.
                refreshed.add(vpc)
                assert run.groups is not None
                run.groups.invalidate(vpc)
                run.vpc_groups.pop(vpc, None)
                run.attempt(
                    SecurityGroups.name, partial(SecurityGroups.isolate, run, (vpc,), use_cache=False)
                )
            for eni_id, vpc in retry:
                if vpc in run.vpc_groups:
                    todo.append((eni_id, vpc))
                else:
                    failures.append(
                        (f"{eni_id} unchanged: no usable quarantine group in {vpc}", "InvalidGroup.NotFound")
                    )
        run.update(enis=tuple(e for e in run.s.enis if e.eni_id not in gone))
        if failures:
            # Stop: the hub retries the whole containment soon; carrying on into a throttled API
            # only drains the bucket further.
            run.record(cls.name, FAILED, "; ".join(d for d, _ in failures), failures[0][1])
            return
        if run.dry_run:
            run.record(
                cls.name, WOULD if would else ALREADY, "; ".join(would) or "every ENI already quarantined"
            )
            return
        detail = (
            f"moved {len(moved)} ENI(s), {len(already)} already quarantined"
            + (f"; NOT isolated: {', '.join(unmoved)}" if unmoved else "")
            + (f"; detached meanwhile: {', '.join(gone)}" if gone else "")
        )
        if not moved and not already:
            run.record(
                cls.name, FAILED, detail, "all-enis-gone" if gone and not unmoved else "no-eni-isolated"
            )
            return
        run.swapped_enis = tuple(moved)
        run.network_isolated_at = datetime.now(UTC)
        run.record(cls.name, DONE if moved else ALREADY, detail)

    @classmethod
    def restore(cls, run: ReleaseRun) -> None:
        live = {e.eni_id: e for e in (run.live.enis if run.live else ())}
        ec2 = run.clients.ec2
        restored: list[str] = []
        skipped: list[str] = []
        failed: list[str] = []
        codes: list[str] = []
        for eni in run.s.enis:
            now = live.get(eni.eni_id)
            if eni.requester_managed or eni.not_modified:
                skipped.append(f"{eni.eni_id} (never moved)")
            elif now is None:
                skipped.append(f"{eni.eni_id} (no longer attached)")
            elif not eni.groups:
                failed.append(f"{eni.eni_id} (original groups unknown; left quarantined)")
                codes.append("originals-unknown")
            elif now.found_on == "original" and set(now.groups) == set(eni.groups):
                skipped.append(f"{eni.eni_id} (already on its groups)")
            else:
                try:
                    ec2.modify_network_interface_attribute(
                        NetworkInterfaceId=eni.eni_id, Groups=list(eni.groups)
                    )
                    restored.append(eni.eni_id)
                except ClientError as exc:
                    if error_code(exc) == ENI_GONE:
                        skipped.append(f"{eni.eni_id} (no longer exists)")
                        continue
                    failed.append(f"{eni.eni_id} ({error_code(exc)})")
                    codes.append(error_code(exc))
        detail = "; ".join(
            p
            for p in (
                f"restored {', '.join(restored)}" if restored else "",
                f"skipped {', '.join(skipped)}" if skipped else "",
                f"failed {', '.join(failed)}" if failed else "",
            )
            if p
        )
        if failed:
            run.record(cls.name, FAILED, detail, codes[0])
        else:
            run.record(cls.name, DONE if restored else ALREADY, detail)


# ENIs swapped at once for one instance (the largest types take 15 or more; the
# ModifyNetworkInterfaceAttribute bucket holds 100 tokens per account and region).
MAX_PARALLEL_SWAPS = 8


def _swap_all(
    run: IsolateRun, enis: list[tuple[EniState, VpcGroups]]
) -> list[tuple[str, ClientError | None]]:
    """Swap every ENI concurrently; per ENI: (where it was left, the AWS error or None).

    Workers only make the calls; the caller updates the run's state from their results.
    """
    ec2 = run.clients.ec2
    jobs = [(eni.eni_id, _via_transition(run, eni, vg), eni.found_on, vg) for eni, vg in enis]
    if len(jobs) == 1:
        return [_swap_one(ec2, *jobs[0])]
    with ThreadPoolExecutor(
        max_workers=min(MAX_PARALLEL_SWAPS, len(jobs)), thread_name_prefix="orgcontain-swap"
    ) as pool:
        # Each worker runs in a copy of the caller's context (CURRENT_STEP attributes its calls).
        contexts = [contextvars.copy_context() for _ in jobs]
        return list(pool.map(lambda ctx, job: ctx.run(_swap_one, ec2, *job), contexts, jobs))


def _swap_one(
    ec2: EC2Client, eni_id: str, via_transition: bool, found_on: str, vg: VpcGroups
) -> tuple[str, ClientError | None]:
    on = found_on
    try:
        if via_transition:
            assert vg.transition_id is not None
            ec2.modify_network_interface_attribute(NetworkInterfaceId=eni_id, Groups=[vg.transition_id])
            on = "transition"
        # At once: between the two calls the ENI accepts all traffic.
        ec2.modify_network_interface_attribute(NetworkInterfaceId=eni_id, Groups=[vg.quarantine_id])
        return "quarantine", None
    except ClientError as exc:
        return on, exc


def _current(run: IsolateRun, eni_id: str) -> EniState:
    return next(e for e in run.s.enis if e.eni_id == eni_id)


def _set_eni(run: IsolateRun, eni: EniState) -> None:
    run.update(enis=tuple(eni if e.eni_id == eni.eni_id else e for e in run.s.enis))


def _classify(eni: EniState, vg: VpcGroups) -> EniState:
    """Never keep our groups as originals, whoever built the pre-state; say where the ENI is."""
    ours = set(vg.ids)
    if not ours & set(eni.groups):
        return eni
    others = tuple(g for g in eni.groups if g not in ours)
    if others:
        return eni.model_copy(update={"groups": others})
    on = "quarantine" if set(eni.groups) == {vg.quarantine_id} else "transition"
    return eni.model_copy(update={"groups": (), "found_on": on})


def _via_transition(run: IsolateRun, eni: EniState, vg: VpcGroups) -> bool:
    # An ENI already on the transition group has no tracked flows left to cut.
    return run.p.sever_tracked_connections and vg.transition_id is not None and eni.found_on == "original"


def _spec(t: ConntrackTimeouts) -> Any:
    return {"TcpEstablishedTimeout": t.tcp_established, "UdpStreamTimeout": t.udp_stream, "UdpTimeout": t.udp}


def _effective(t: ConntrackTimeouts | None) -> ConntrackTimeouts:
    if t is None:
        return CONNTRACK_DEFAULTS
    return ConntrackTimeouts(
        tcp_established=t.tcp_established or CONNTRACK_DEFAULTS.tcp_established,
        udp_stream=t.udp_stream or CONNTRACK_DEFAULTS.udp_stream,
        udp=t.udp or CONNTRACK_DEFAULTS.udp,
    )


class Conntrack(Step):
    name = "conntrack"
    actions = frozenset({"ec2:ModifyNetworkInterfaceAttribute"})
    release_actions = frozenset({"ec2:ModifyNetworkInterfaceAttribute"})

    @classmethod
    def isolate(cls, run: IsolateRun) -> None:
        if not run.p.minimise_conntrack_timeouts:
            run.record(cls.name, SKIPPED, "off (plan.minimise_conntrack_timeouts)")
            return
        targets = [
            e
            for e in run.s.enis
            if (e.found_on == "quarantine" or run.dry_run)
            and not e.not_modified
            and not e.requester_managed
            # Timeouts read before containment are the live ones only for ENIs swapped now.
            and not (e.eni_id in run.swapped_enis and _effective(e.conntrack) == CONNTRACK_MINIMUMS)
        ]
        if not targets:
            run.record(cls.name, ALREADY, "timeouts already at their minimums")
            return
        if run.dry_run:
            run.record(
                cls.name, WOULD, f"would set minimum timeouts on {', '.join(e.eni_id for e in targets)}"
            )
            return
        done, unsupported = _set_conntrack(run.clients.ec2, [(e.eni_id, CONNTRACK_MINIMUMS) for e in targets])
        if done:
            run.record(
                cls.name,
                DONE,
                f"tcp-established 60 s, udp-stream 60 s, udp 30 s on {', '.join(done)}"
                + (f"; unsupported on {', '.join(unsupported)}" if unsupported else ""),
            )
        else:
            run.record(cls.name, SKIPPED, f"connection tracking not configurable on {', '.join(unsupported)}")

    @classmethod
    def restore(cls, run: ReleaseRun) -> None:
        live = {e.eni_id: e for e in (run.live.enis if run.live else ())}
        todo = [
            (e.eni_id, _effective(e.conntrack))
            for e in run.s.enis
            if e.eni_id in live and not e.not_modified and not e.requester_managed
        ]
        # Skip only when the describe shows the original timeouts back (AWS shows them once set;
        # an ENI that shows none may still carry containment's).
        todo = [
            (eni, t) for eni, t in todo if live[eni].conntrack is None or _effective(live[eni].conntrack) != t
        ]
        if not todo:
            run.record(cls.name, ALREADY, "nothing to restore")
            return
        done, unsupported = _set_conntrack(run.clients.ec2, todo)
        run.record(
            cls.name,
            DONE if done else SKIPPED,
            f"restored on {', '.join(done)}"
            + (f"; unsupported on {', '.join(unsupported)}" if unsupported else ""),
        )


def _set_conntrack(ec2: EC2Client, todo: list[tuple[str, ConntrackTimeouts]]) -> tuple[list[str], list[str]]:
    done: list[str] = []
    unsupported: list[str] = []
    for eni_id, timeouts in todo:
        try:
            ec2.modify_network_interface_attribute(
                NetworkInterfaceId=eni_id, ConnectionTrackingSpecification=_spec(timeouts)
            )
            done.append(eni_id)
        except ClientError as exc:
            if error_code(exc) in CONNTRACK_UNSUPPORTED:
                unsupported.append(f"{eni_id} ({error_code(exc)})")
            elif error_code(exc) == ENI_GONE:
                continue
            else:
                raise
    return done, unsupported


class ReconcileGroups(Step):
    name = "reconcile-groups"
    actions = frozenset(
        {
            "ec2:DescribeSecurityGroups",
            "ec2:RevokeSecurityGroupEgress",
            "ec2:RevokeSecurityGroupIngress",
            "ec2:AuthorizeSecurityGroupEgress",
            "ec2:AuthorizeSecurityGroupIngress",
        }
    )

    @classmethod
    def isolate(cls, run: IsolateRun) -> None:
        assert run.groups is not None
        ec2 = run.clients.ec2
        desired_q = quarantine_rules(run.p.quarantine_ingress)
        notes: list[str] = []
        failures: list[str] = []
        changed = 0
        would = 0
        for vpc, vg in sorted(run.vpc_groups.items()):
            ids = [g for g in vg.ids if g != PLANNED_GROUP]
            unknown = [g for g in ids if g not in run.known_rules]
            if unknown and not run.groups.reconcile_due(vpc):
                notes.append(f"{vpc} reconciled recently")
                continue
            try:
                described = describe_groups(ec2, unknown)
            except ClientError as exc:
                if error_code(exc) == "InvalidGroup.NotFound":
                    # Deleted since it was cached: the next containment looks it up again.
                    run.groups.invalidate(vpc)
                raise
            for gid, desc in described.items():
                run.known_rules[gid] = GroupRules.from_description(desc)
            vpc_failed = False
            for gid in ids:
                desired = desired_q if gid == vg.quarantine_id else TRANSITION_RULES
                actual = run.known_rules[gid]
                change = diff_group(desired, actual)
                if not change:
                    continue
                n = sum(len(x) for x in (change.ingress.authorize, change.ingress.revoke)) + sum(
                    len(x) for x in (change.egress.authorize, change.egress.revoke)
                )
                if run.dry_run:
                    would += n
                    notes.append(f"would apply {n} rule change(s) to {gid}")
                    continue
                report = apply_group_diff(ec2, gid, actual, change)
                run.known_rules[gid] = report.rules_after
                changed += report.changed
                notes.append(f"{gid}: {report.changed} rule change(s)")
                if report.failures:
                    vpc_failed = True
                    failures.append(f"{gid}: {'; '.join(report.failures)}")
            if not vpc_failed and not run.dry_run:
                run.groups.mark_reconciled(vpc)
        if failures:
            run.record(cls.name, FAILED, " | ".join(failures), "rule-not-applied")
        elif run.dry_run:
            run.record(cls.name, WOULD if would else ALREADY, "; ".join(notes) or "rules as configured")
        else:
            run.record(cls.name, DONE if changed else ALREADY, "; ".join(notes) or "rules as configured")
