"""The org-wide blast-radius breaker (pure part).

State lives in one ledger item (``pk=BREAKER``, ``sk=ORG``): a version number and the epoch
timestamps of the isolations inside the rolling window. The ledger writes the new state in the
same TransactWriteItems as the incident lock, conditioned on the version it read, so two hub
invocations can never both take the last slot (optimistic concurrency; see hub/ledger.py).
"""

from __future__ import annotations

from dataclasses import dataclass

BREAKER_PK = "BREAKER"
BREAKER_SK = "ORG"


@dataclass(frozen=True)
class BreakerState:
    version: int = 0  # 0 = the item does not exist yet
    stamps: tuple[float, ...] = ()


@dataclass(frozen=True)
class BreakerVerdict:
    allowed: bool
    in_window: int  # isolations inside the window before this one
    limit: int
    new_state: BreakerState  # what to write when allowed (also prunes old stamps)
    reopens_at: float | None = None  # when the oldest stamp leaves the window (if not allowed)


def evaluate(
    state: BreakerState, *, now: float, max_isolations: int, window_seconds: float
) -> BreakerVerdict:
    """May one more isolation happen now? Stamps older than the window no longer count."""
    floor = now - window_seconds
    recent = tuple(sorted(s for s in state.stamps if s > floor))
    if len(recent) >= max_isolations:
        # Open: the oldest stamp that must leave the window before a slot frees up.
        reopen = recent[len(recent) - max_isolations] + window_seconds
        return BreakerVerdict(False, len(recent), max_isolations, state, reopens_at=reopen)
    return BreakerVerdict(True, len(recent), max_isolations, BreakerState(state.version + 1, (*recent, now)))
