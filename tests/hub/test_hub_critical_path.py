"""The calls the hub makes before the last ENI is quarantined, counted in round trips (calls that
overlap in time count once). Issue #8 measures latency; this guards the shape of the path."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3

from tests.hub.conftest import HubEnv

# Seconds added to every call, so that calls in flight together overlap as they do on a network
# (in-process moto answers faster than boto3 builds a client, which would hide the overlap).
LATENCY = 0.25


class CallLog:
    """Every AWS call's start, end and name (with ``+groups`` for an ENI's group swap)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float, str]] = []
        self._open: dict[int, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def attach(self, events: Any) -> None:
        events.register("before-parameter-build.*.*", self._before)
        events.register_first("before-send.*.*", self._latency)
        events.register("after-call.*.*", self._after)
        events.register("after-call-error.*.*", self._after)

    @staticmethod
    def _latency(**_: Any) -> None:
        time.sleep(LATENCY)  # releases the GIL, as waiting on a socket does

    def _before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        name = f"{model.service_model.service_name}.{model.name}"
        if model.name == "ModifyNetworkInterfaceAttribute" and "Groups" in params:
            name += "+groups"
        with self._lock:
            self._open[threading.get_ident()] = (time.perf_counter(), name)

    def _after(self, **_: Any) -> None:
        with self._lock:
            start, name = self._open.pop(threading.get_ident(), (time.perf_counter(), "?"))
            self.calls.append((start, time.perf_counter(), name))

    def until_last(self, name: str) -> list[tuple[float, float, str]]:
        calls = sorted(self.calls)
        last = max(i for i, c in enumerate(calls) if c[2] == name)
        return calls[: last + 1]


SWAP = "ec2.ModifyNetworkInterfaceAttribute+groups"


def round_trips(calls: list[tuple[float, float, str]]) -> list[list[str]]:
    """Group calls into round trips: a call that starts before the previous group ended joins it."""
    groups: list[list[str]] = []
    end = -1.0
    for start, stop, name in sorted(calls):
        if groups and start < end:
            groups[-1].append(name)
            end = max(end, stop)
        else:
            groups.append([name])
            end = stop
    return groups


def chain_length(calls: list[tuple[float, float, str]]) -> int:
    """Round trips on the longest chain of calls, each starting after the previous one ended."""
    ordered = sorted(calls)
    depth: list[int] = []
    for start, _stop, _name in ordered:
        before = [d for (_s, stop, _n), d in zip(ordered, depth, strict=False) if stop <= start]
        depth.append(1 + max(before, default=0))
    return max(depth, default=0)


def test_round_trips_before_the_network_change(hub_env: HubEnv) -> None:
    env = hub_env
    log = CallLog()

    def member_session(**kw: Any) -> boto3.Session:
        session = boto3.Session(**kw)
        log.attach(session.events)
        return session

    hub_session = boto3.Session(**_creds(env.org.session(env.org.hub_account_id)), region_name="us-east-1")
    log.attach(hub_session.events)

    def org_client() -> Any:
        client = env.org.organizations_client_as_delegated_admin()
        log.attach(client.meta.events)
        return client

    env.rewire(
        hub_session=hub_session, spoke_session_factory=member_session, organizations_client_factory=org_client
    )

    w = env.org.workload("prod-a", "eu-west-1")
    first, second, third = w.run_instance(enis=2), w.run_instance(), w.run_instance(enis=2)

    env.invoke(env.event(env.finding("prod-a", "eu-west-1", first.instance_id)))
    cold = round_trips(log.until_last(SWAP))
    log.calls.clear()
    env.invoke(env.event(env.finding("prod-a", "eu-west-1", second.instance_id)))
    warm_calls = log.until_last(SWAP)
    warm = round_trips(warm_calls)
    log.calls.clear()
    env.invoke(env.event(env.finding("prod-a", "eu-west-1", third.instance_id)))
    two_enis_calls = log.until_last(SWAP)
    warm_two_enis = round_trips(two_enis_calls)
    for inst in (first, second, third):
        assert env.quarantined("prod-a", "eu-west-1", inst.instance_id)
    print("cold (2 ENIs):", len(cold), cold)
    print("warm (1 ENI):", len(warm), warm)
    print("warm (2 ENIs):", len(warm_two_enis), warm_two_enis)

    # Warm, one ENI: describe || ledger prefetch, the lock transaction, the two swaps.
    assert [sorted(rt) for rt in warm] == [
        ["dynamodb.BatchGetItem", "ec2.DescribeInstances"],
        ["dynamodb.TransactWriteItems"],
        [SWAP],
        [SWAP],
    ]
    # Further ENIs are swapped concurrently (each ENI's two calls back to back): still four round
    # trips on the longest chain of calls, whatever the ENI count.
    assert [sorted(rt) for rt in warm_two_enis[:2]] == [sorted(rt) for rt in warm[:2]]
    assert [c for rt in warm_two_enis[2:] for c in rt] == [SWAP] * 4
    assert chain_length(warm_calls) == chain_length(two_enis_calls) == 4
    # Cold: Organizations, AssumeRole and the prefetch together, then the describe, then the lock
    # with the group lookup beside it: the hub's share stays three round trips.
    assert {"organizations.DescribeAccount", "sts.AssumeRole", "dynamodb.BatchGetItem"} <= set(cold[0])
    assert cold[1] == ["ec2.DescribeInstances"]
    assert "dynamodb.TransactWriteItems" in cold[2] and "ec2.DescribeSecurityGroups" in cold[2]
    flat = [c for rt in cold for c in rt]
    assert flat.count("ec2.DescribeInstances") == 1  # no second describe before the change
    assert not any(c.startswith(("sns.", "events.")) for c in flat)  # all of that comes after
    mutating = [c for c in flat if c.startswith("ec2.") and not c.startswith("ec2.Describe")]
    assert mutating[0] == "ec2.CreateSecurityGroup" and SWAP in mutating
    assert not any(c.startswith(("sts.", "organizations.")) for rt in warm for c in rt)


def _creds(session: boto3.Session) -> dict[str, Any]:
    frozen = session.get_credentials().get_frozen_credentials()  # type: ignore[union-attr]
    return {
        "aws_access_key_id": frozen.access_key,
        "aws_secret_access_key": frozen.secret_key,
        "aws_session_token": frozen.token,
    }
