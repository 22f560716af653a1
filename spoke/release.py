"""Undo a containment from its recorded pre-state.

One describe shows where the instance stands now; then each ENI gets its own original groups and
connection-tracking timeouts back, the profile is associated again, the target groups and classic
ELBs get the instance back, termination protection, shutdown behaviour and DeleteOnTermination
return to their recorded values, the Auto Scaling group takes it back only when asked, and the
instance is tagged ``orgcontain:status=released``. The quarantine and transition groups stay
(other instances may use them; the next containment in the VPC finds them). Evidence snapshots
and a session-revocation policy stay too. Every step checks the live value first, so running
release twice changes nothing the second time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spoke.describe import describe, validate_instance_id
from spoke.errors import PreStateMismatch
from spoke.models import PreState, ReleaseResult, ReleaseStatus
from spoke.steps.autoscaling import AutoScaling
from spoke.steps.base import DONE, FAILED, ReleaseRun
from spoke.steps.evidence import Snapshots
from spoke.steps.loadbalancers import LoadBalancers
from spoke.steps.network import Conntrack, Network
from spoke.steps.profile import InstanceProfile, RevokeSessions
from spoke.steps.protection import DeleteOnTermination, ShutdownBehavior, TerminationProtection
from spoke.steps.tags import Tags

if TYPE_CHECKING:
    from spoke.clients import SpokeClients

# Network first (the instance is reachable again), the Auto Scaling group last but one (its health
# checks must find a working instance), tags last.
RELEASE_STEPS = (
    Network,
    Conntrack,
    InstanceProfile,
    TerminationProtection,
    ShutdownBehavior,
    DeleteOnTermination,
    LoadBalancers,
    AutoScaling,
    RevokeSessions,
    Snapshots,
    Tags,
)


def release(
    clients: SpokeClients,
    pre_state: PreState,
    *,
    reattach_asg: bool = False,
    finding_id: str | None = None,
) -> ReleaseResult:
    """Restore what :func:`spoke.isolate.isolate` changed, from ``pre_state`` (the ledger's record)."""
    validate_instance_id(pre_state.instance_id)
    run = ReleaseRun(clients, pre=pre_state, reattach_asg=reattach_asg, finding_id=finding_id)
    found: list[PreState | None] = []
    if not run.attempt("describe", lambda: found.append(describe(clients, pre_state.instance_id))):
        return _result(run, ReleaseStatus.PARTIAL, "describe failed: nothing restored")
    if found[0] is None:
        run.record("describe", DONE, "instance gone")
        return _result(run, ReleaseStatus.GONE, "instance gone: nothing to restore")
    if found[0].instance_id != pre_state.instance_id:
        raise PreStateMismatch(found[0].instance_id)
    run.live = found[0]
    run.record("describe", DONE, found[0].state)
    for step in RELEASE_STEPS:
        run.attempt(step.name, lambda step=step: step.restore(run))  # type: ignore[misc]
    failed = [o for o in run.outcomes if o.status == FAILED]
    detail = "; ".join(f"{o.step}: {o.error_code or o.detail}" for o in failed)
    return _result(run, ReleaseStatus.PARTIAL if failed else ReleaseStatus.RELEASED, detail)


def _result(run: ReleaseRun, status: ReleaseStatus, detail: str) -> ReleaseResult:
    return ReleaseResult(
        instance_id=run.s.instance_id, status=status, steps=tuple(run.outcomes), detail=detail
    )
