"""The IAM actions the spoke engine calls, per step: what the spoke role must grant, no more.

Each step class declares the actions its code calls (isolate and release paths); this module
imports them all. A test records every operation a containment and a release make under moto and
checks each one maps to an action declared by the step that made it; another holds the spoke
role's policy (stacksets/spoke.yaml) against :func:`required_actions`.
"""

from __future__ import annotations

from spoke import describe as _describe
from spoke.steps import autoscaling, evidence, loadbalancers, network, profile, protection, tags
from spoke.steps.base import Step

_MODULES = (_describe, autoscaling, evidence, loadbalancers, network, profile, protection, tags)

STEP_ACTIONS: dict[str, frozenset[str]] = dict(
    {name: cls.actions | cls.release_actions for name, cls in sorted(Step.registry.items())}
)
"""Step name -> IAM actions it calls (isolate and release paths)."""

ISOLATE_ACTIONS: dict[str, frozenset[str]] = dict(
    {name: cls.actions for name, cls in sorted(Step.registry.items()) if cls.actions}
)
RELEASE_ACTIONS: dict[str, frozenset[str]] = dict(
    {name: cls.release_actions for name, cls in sorted(Step.registry.items()) if cls.release_actions}
)


def required_actions() -> frozenset[str]:
    """Every action the spoke role must allow (the union over all steps)."""
    return frozenset().union(*STEP_ACTIONS.values())
