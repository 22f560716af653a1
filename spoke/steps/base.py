"""What every step shares: the registry, the per-run state, and the AWS-error boundary.

A step's AWS calls happen inside :meth:`Run.attempt`, which catches ``ClientError`` (and only
that) and records it as a failed step with the AWS error code. Conditions that mean "already in
that state" are caught inside the step, by code, and recorded as ``already``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from botocore.exceptions import ClientError

from spoke.errors import error_code
from spoke.models import ContainmentPlan, PreState, StepOutcome, StepStatus

if TYPE_CHECKING:
    from spoke.clients import SpokeClients
    from spoke.groups import GroupCache, VpcGroups
    from spoke.rules import GroupRules

# The step whose code is running (read by tests that attribute every AWS call to a step).
CURRENT_STEP: ContextVar[str | None] = ContextVar("orgcontain_spoke_step", default=None)

DONE, ALREADY, SKIPPED, FAILED, WOULD = (
    StepStatus.DONE,
    StepStatus.ALREADY,
    StepStatus.SKIPPED,
    StepStatus.FAILED,
    StepStatus.WOULD,
)
COMPLETED = frozenset({DONE, ALREADY, SKIPPED})


class Step:
    """A named containment step and the IAM actions its code calls."""

    name: ClassVar[str]
    actions: ClassVar[frozenset[str]] = frozenset()
    release_actions: ClassVar[frozenset[str]] = frozenset()
    registry: ClassVar[dict[str, type[Step]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if isinstance(name, str):
            if name in Step.registry and Step.registry[name] is not cls:
                raise TypeError(f"two steps named {name!r}")
            Step.registry[name] = cls

    @classmethod
    def restore(cls, run: ReleaseRun) -> None:
        """Undo this step from the recorded pre-state (release)."""
        raise NotImplementedError(cls.name)


@dataclass
class Run:
    """Outcomes of one isolate or release call, and the AWS-error boundary."""

    clients: SpokeClients
    dry_run: bool = False
    outcomes: list[StepOutcome] = field(default_factory=list)

    def record(
        self, step: str, status: StepStatus, detail: str = "", error: str | None = None
    ) -> StepOutcome:
        outcome = StepOutcome(step=step, status=status, detail=detail, error_code=error)
        self.outcomes = [o for o in self.outcomes if o.step != step] + [outcome]
        return outcome

    def outcome(self, step: str) -> StepOutcome | None:
        return next((o for o in self.outcomes if o.step == step), None)

    def attempt(self, step: str, body: Callable[[], None]) -> bool:
        """Run ``body`` as step ``step``; an AWS error becomes a failed outcome. True if none."""
        token = CURRENT_STEP.set(step)
        try:
            body()
            return True
        except ClientError as exc:
            self.record(step, FAILED, _short(exc), error_code(exc))
            return False
        finally:
            CURRENT_STEP.reset(token)


def _short(exc: ClientError) -> str:
    err = exc.response.get("Error", {})
    return f"{exc.operation_name}: {err.get('Message', '')}".strip()


@dataclass
class IsolateRun(Run):
    plan: ContainmentPlan | None = None
    pre: PreState | None = None
    groups: GroupCache | None = None
    vpc_groups: dict[str, VpcGroups] = field(default_factory=dict)
    # Rules of our groups as read (or left) during this run: reconciling them needs no describe.
    known_rules: dict[str, GroupRules] = field(default_factory=dict)
    # A containment that got past the network step earlier is being resumed.
    resumed: bool = False
    network_isolated_at: datetime | None = None
    snapshot_ids: tuple[str, ...] = ()
    swapped_enis: tuple[str, ...] = ()
    # Tags as seen now (a resume compares them before tagging again).
    live_tags: dict[str, str] = field(default_factory=dict)
    # Facts a step's discovery leaves for its apply (e.g. a truncated target-group scan).
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def p(self) -> ContainmentPlan:
        assert self.plan is not None
        return self.plan

    @property
    def s(self) -> PreState:
        assert self.pre is not None
        return self.pre

    def update(self, **changes: object) -> None:
        self.pre = self.s.model_copy(update=changes)

    def due(self, step: str) -> bool:
        """False when an earlier run completed ``step`` (recorded in the pre-state)."""
        if step in self.s.steps_completed:
            self.record(step, ALREADY, "completed by an earlier run")
            return False
        return True


@dataclass
class ReleaseRun(Run):
    pre: PreState | None = None
    live: PreState | None = None
    reattach_asg: bool = False
    finding_id: str | None = None

    @property
    def s(self) -> PreState:
        assert self.pre is not None
        return self.pre


class LaterStep(Step):
    """A step after the network change: its original values are discovered (and checkpointed)
    before any of these steps mutates, then applied; release restores them."""

    @classmethod
    def skip_reason(cls, run: IsolateRun) -> str | None:
        """Why the plan or the instance makes this step moot (None: it applies)."""
        return None

    @classmethod
    def discover(cls, run: IsolateRun) -> None:
        """Read the values this step will change into ``run.pre`` (read-only calls)."""

    @classmethod
    def apply(cls, run: IsolateRun) -> None:
        raise NotImplementedError(cls.name)
