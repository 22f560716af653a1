"""Record every AWS call a process makes: name, scope (hub or member account), start and end.

Hooks on botocore's event system (``before-parameter-build`` / ``after-call`` /
``after-call-error``), attached to each boto3 Session (or client) the hub and the spoke create:
nothing is mocked, the calls really go to moto. Optionally each call waits ``latency`` seconds
before it is sent (a ``before-send`` hook that returns nothing), so that calls issued together
overlap in time as they do over a real network, where in-process timing would blur them.

Round trips are counted on the longest chain of calls that each start after the previous one
ended: calls made concurrently count once, and a call that waits for another counts again.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

SWAP = "ec2.ModifyNetworkInterfaceAttribute+groups"


@dataclass(frozen=True)
class Call:
    start: float
    end: float
    name: str  # "service.Operation", "+groups" for an ENI's group swap
    scope: str  # "hub" or "member"
    ok: bool = True


class CallLog:
    """Thread-safe list of :class:`Call`; attach it to sessions' or clients' event systems."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def attach(self, events: Any, scope: str) -> None:
        """Record every call made through ``events`` (``session.events`` or ``client.meta.events``)."""

        def before(model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            name = f"{model.service_model.service_name}.{model.name}"
            if model.name == "ModifyNetworkInterfaceAttribute" and "Groups" in params:
                name += "+groups"
            context["orgcontain_bench"] = (time.perf_counter(), name)

        def after(context: dict[str, Any], **kw: Any) -> None:
            started = context.pop("orgcontain_bench", None)
            if started is None:
                return
            call = Call(started[0], time.perf_counter(), started[1], scope, ok="exception" not in kw)
            with self._lock:
                self.calls.append(call)

        events.register("before-parameter-build.*.*", before)
        events.register("after-call.*.*", after)
        events.register("after-call-error.*.*", after)
        if self.latency:
            delay = self.latency

            def wait(**_: Any) -> None:
                time.sleep(delay)  # releases the GIL, as waiting on a socket does

            events.register_first("before-send.*.*", wait)

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()

    def snapshot(self) -> list[Call]:
        with self._lock:
            return sorted(self.calls, key=lambda c: (c.start, c.end))


def until_last(calls: list[Call], name: str = SWAP) -> list[Call]:
    """The calls that started up to the last call named ``name`` (in start order)."""
    ordered = sorted(calls, key=lambda c: (c.start, c.end))
    last = max((i for i, c in enumerate(ordered) if c.name == name), default=-1)
    if last < 0:
        raise ValueError(f"no {name} call recorded")
    end = ordered[last].end
    # Calls still in flight or started after the last swap ended are not on the path to it.
    return [c for c in ordered[: last + 1] if c.end <= end]


def _depths(calls: list[Call]) -> list[tuple[int, Call]]:
    ordered = sorted(calls, key=lambda c: (c.start, c.end))
    depth: list[int] = []
    for i, call in enumerate(ordered):
        before = [depth[j] for j in range(i) if ordered[j].end <= call.start]
        depth.append(1 + max(before, default=0))
    return list(zip(depth, ordered, strict=True))


def chain_length(calls: list[Call]) -> int:
    """Round trips on the longest chain of calls, each starting after the previous one ended."""
    return max((d for d, _ in _depths(calls)), default=0)


def round_trips(calls: list[Call]) -> list[list[str]]:
    """The calls by round trip: a call's round trip is one more than the latest one among the
    calls that ended before it started (so concurrent calls share one)."""
    levels: dict[int, list[str]] = {}
    for depth, call in _depths(calls):
        levels.setdefault(depth, []).append(call.name)
    return [sorted(levels[d]) for d in sorted(levels)]
