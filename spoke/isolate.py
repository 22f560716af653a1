"""Contain one instance: every step of DESIGN.md "Containment, in order", each recorded.

Order, for speed (docs/containment.md has the call counts):

1. describe (skipped when the caller passes the pre-state it described);
2. leave the Auto Scaling group (only for an instance in one: before the network change, or the
   group terminates the evidence once health checks fail);
3. our groups ready (cache, one lookup, or creation), then the network change on every ENI:
   the first mutating call for an instance outside an ASG;
4. connection-tracking timeouts to their minimums;
5. discover what the later steps change, hand the complete pre-state to ``checkpoint``;
6. termination protection, shutdown behaviour, DeleteOnTermination, load balancers, profile
   (and optional session revocation), snapshots, group drift, tags.

A failure before the network change completes means ``failed`` (the hub retries); a later one
means ``partial`` with the step recorded (a retry with ``result.pre_state`` completes only what
is missing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from spoke.describe import GONE_STATES, carry_originals, describe, validate_instance_id
from spoke.errors import PreStateMismatch
from spoke.groups import GroupCache
from spoke.models import (
    STATUS_QUARANTINED,
    STATUS_TAG,
    ContainmentPlan,
    IsolationResult,
    IsolationStatus,
    PreState,
    StepOutcome,
)
from spoke.steps.autoscaling import AutoScaling
from spoke.steps.base import ALREADY, COMPLETED, DONE, FAILED, SKIPPED, IsolateRun, LaterStep
from spoke.steps.evidence import Snapshots
from spoke.steps.loadbalancers import LoadBalancers
from spoke.steps.network import Conntrack, Network, ReconcileGroups, SecurityGroups
from spoke.steps.profile import InstanceProfile, RevokeSessions
from spoke.steps.protection import DeleteOnTermination, ShutdownBehavior, TerminationProtection
from spoke.steps.tags import Tags

if TYPE_CHECKING:
    from spoke.clients import SpokeClients

# After the network change, in DESIGN order. Discovery runs over the same list, before any apply.
LATER_STEPS: tuple[type[LaterStep], ...] = (
    TerminationProtection,
    ShutdownBehavior,
    DeleteOnTermination,
    LoadBalancers,
    InstanceProfile,
    RevokeSessions,
    Snapshots,
)
# Steps whose completion a resume may skip (describe and group lookup always run again).
_NOT_CARRIED = frozenset({"describe", "security-groups"})


def isolate(
    clients: SpokeClients,
    plan: ContainmentPlan,
    *,
    pre_state: PreState | None = None,
    groups: GroupCache | None = None,
    dry_run: bool = False,
    checkpoint: Callable[[PreState], None] | None = None,
) -> IsolationResult:
    """Full containment in DESIGN order (see the module docstring and docs/containment.md).

    ``pre_state``: what the caller described (then no second DescribeInstances is made before the
    network change), or the recorded pre-state of an earlier run (a resume: when it says the
    network step completed, the instance is described again to see where it stands). Never
    records orgcontain's groups as an ENI's original groups. ``checkpoint`` receives the complete
    pre-state after the network change and before any later step mutates. ``dry_run``: read-only
    calls, mutating steps reported as ``would``.
    """
    validate_instance_id(plan.instance_id)
    if pre_state is not None and pre_state.instance_id != plan.instance_id:
        raise PreStateMismatch(f"pre-state of {pre_state.instance_id} given for {plan.instance_id}")
    run = IsolateRun(
        clients, dry_run=dry_run, plan=plan, groups=groups if groups is not None else GroupCache()
    )

    if pre_state is None or "network" in pre_state.steps_completed:
        found: list[PreState | None] = []
        if not run.attempt("describe", lambda: found.append(describe(clients, plan.instance_id))):
            # Throttled past the retries or denied: nothing was changed, the hub retries.
            return _result(run, IsolationStatus.FAILED, "describe failed")
        current = found[0]
        if current is None:
            return _gone(run, pre_state)
        run.record("describe", DONE, f"{current.state}, {len(current.enis)} ENI(s)")
        live_tags = dict(current.tags)
        if pre_state is not None:
            run.resumed = True
            current = carry_originals(current, pre_state)
        pre_state = current
    else:
        run.record("describe", SKIPPED, "pre-state given by the caller")
        live_tags = dict(pre_state.tags)
    run.pre = pre_state
    run.live_tags = live_tags
    if pre_state.state in GONE_STATES:
        return _gone(run, pre_state)
    if not run.resumed and _quarantined_before(pre_state):
        run.record("network", ALREADY, "every ENI already on the quarantine group")
        return _result(run, IsolationStatus.ALREADY_ISOLATED, "quarantined by an earlier containment")

    if run.due(AutoScaling.name):
        run.attempt(AutoScaling.name, lambda: AutoScaling.isolate(run))
    # The network change: nothing slow stands before it.
    if not run.attempt(SecurityGroups.name, lambda: SecurityGroups.isolate(run)) or _failed(
        run, SecurityGroups.name
    ):
        return _result(run, IsolationStatus.FAILED, "no usable quarantine group")
    run.attempt(Network.name, lambda: Network.isolate(run))
    network = run.outcome(Network.name)
    if network is None or network.status == FAILED:
        if network is not None and network.error_code == "all-enis-gone":
            return _gone(run, run.s)
        return _result(run, IsolationStatus.FAILED, network.detail if network else "network step not run")

    if run.due(Conntrack.name):
        run.attempt(Conntrack.name, lambda: Conntrack.isolate(run))

    later = [s for s in LATER_STEPS if s.name not in run.s.steps_completed]
    for step in later:
        reason = step.skip_reason(run)
        if (
            reason is None
            and step.name not in run.s.discovered
            and run.attempt(step.name, lambda step=step: step.discover(run))  # type: ignore[misc]
        ):
            run.update(discovered=(*run.s.discovered, step.name))
    run.update(
        complete=all(s.skip_reason(run) is not None or s.name in run.s.discovered for s in LATER_STEPS),
        steps_completed=_completed(run),
    )
    if checkpoint is not None and not dry_run:
        checkpoint(run.s)

    for step in LATER_STEPS:
        if not run.due(step.name):
            continue
        reason = step.skip_reason(run)
        if reason is not None:
            run.record(step.name, SKIPPED, reason)
        elif step.name in run.s.discovered:
            run.attempt(step.name, lambda step=step: step.apply(run))  # type: ignore[misc]
        # else: discovery failed and recorded the step as failed; nothing to apply blind.
    if run.due(ReconcileGroups.name):
        run.attempt(ReconcileGroups.name, lambda: ReconcileGroups.isolate(run))
    if run.due(Tags.name):
        run.attempt(Tags.name, lambda: Tags.isolate(run))
    run.update(steps_completed=_completed(run))
    return _result(run, _final_status(run))


def prepare_groups(
    clients: SpokeClients, plan: ContainmentPlan, vpc_ids: Iterable[str], groups: GroupCache
) -> StepOutcome:
    """The ``security-groups`` step on its own: fill ``groups`` for ``vpc_ids`` ahead of isolate.

    The hub may run it alongside its describe (the VPC is known from the finding), so that the swap
    finds the ids cached. Safe to race with a containment: creation adopts a concurrent creator's
    group. Returns the step's outcome (AWS errors included, never raised).
    """
    vpcs = tuple(dict.fromkeys(v for v in vpc_ids if v))
    run = IsolateRun(clients, plan=plan, groups=groups)
    if not vpcs:
        return run.record(SecurityGroups.name, SKIPPED, "no VPC given")
    run.attempt(SecurityGroups.name, lambda: SecurityGroups.isolate(run, vpcs))
    outcome = run.outcome(SecurityGroups.name)
    assert outcome is not None
    return outcome


def _quarantined_before(pre: PreState) -> bool:
    """A fresh describe of an instance an earlier containment finished (its last step tags it)."""
    movable = [e for e in pre.enis if not e.requester_managed and not e.not_modified]
    return (
        pre.tags.get(STATUS_TAG) == STATUS_QUARANTINED
        and bool(movable)
        and all(e.found_on == "quarantine" for e in movable)
    )


def _failed(run: IsolateRun, step: str) -> bool:
    outcome = run.outcome(step)
    return outcome is not None and outcome.status == FAILED


def _completed(run: IsolateRun) -> tuple[str, ...]:
    done = [o.step for o in run.outcomes if o.status in COMPLETED and o.step not in _NOT_CARRIED]
    return tuple(dict.fromkeys([*run.s.steps_completed, *done]))


def _final_status(run: IsolateRun) -> IsolationStatus:
    if run.dry_run:
        return IsolationStatus.DRY_RUN
    if any(o.status == FAILED for o in run.outcomes) or _not_isolated(run):
        return IsolationStatus.PARTIAL
    if not any(o.status == DONE for o in run.outcomes if o.step != "describe"):
        return IsolationStatus.ALREADY_ISOLATED
    return IsolationStatus.ISOLATED


def _not_isolated(run: IsolateRun) -> tuple[str, ...]:
    if run.pre is None:
        return ()
    return tuple(e.eni_id for e in run.s.enis if e.not_modified or e.requester_managed)


def _result(run: IsolateRun, status: IsolationStatus, detail: str = "") -> IsolationResult:
    groups = run.vpc_groups.get(run.s.vpc_id) if run.pre is not None else None
    failed = [f"{o.step}: {o.error_code or o.detail}" for o in run.outcomes if o.status == FAILED]
    not_isolated = _not_isolated(run)
    if not detail:
        parts = []
        if not_isolated:
            parts.append(f"partly contained: {', '.join(not_isolated)} not isolated")
        if failed:
            parts.append("failed " + "; ".join(failed))
        detail = ". ".join(parts)
    return IsolationResult(
        instance_id=run.p.instance_id,
        status=status,
        pre_state=run.pre,
        steps=tuple(run.outcomes),
        quarantine_group_id=groups.quarantine_id if groups else None,
        transition_group_id=groups.transition_id if groups else None,
        snapshot_ids=run.snapshot_ids,
        network_isolated_at=run.network_isolated_at,
        detail=detail,
        enis_not_isolated=not_isolated,
    )


def _gone(run: IsolateRun, pre: PreState | None) -> IsolationResult:
    run.record("describe", DONE, "instance gone (terminated, shutting down or not found)")
    run.pre = pre
    # A result for an instance that is gone still carries what was recorded (release skips it).
    return _result(run, IsolationStatus.GONE, "instance gone")
