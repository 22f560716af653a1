"""The breaker's pure logic (hypothesis) and the plan built from the config."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.breaker import BreakerState, evaluate
from hub.config import parse_config
from hub.plan import build_plan


def test_breaker_allows_up_to_the_limit_then_opens_then_resets() -> None:
    state = BreakerState()
    t = 1_000_000.0
    for i in range(3):
        v = evaluate(state, now=t + i, max_isolations=3, window_seconds=600)
        assert v.allowed and v.in_window == i
        state = v.new_state
    assert state.version == 3
    blocked = evaluate(state, now=t + 10, max_isolations=3, window_seconds=600)
    assert not blocked.allowed and blocked.in_window == 3
    assert blocked.reopens_at == t + 600
    assert blocked.new_state == state  # nothing to write
    assert not evaluate(state, now=t + 599.9, max_isolations=3, window_seconds=600).allowed
    again = evaluate(state, now=t + 600.5, max_isolations=3, window_seconds=600)
    assert again.allowed and again.in_window == 2
    assert len(again.new_state.stamps) == 3  # the expired stamp was pruned


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=10_000, allow_nan=False), max_size=60),
    st.integers(min_value=1, max_value=10),
    st.integers(min_value=1, max_value=3000),
)
def test_admitted_isolations_never_exceed_the_limit_in_any_window(
    arrivals: list[float], limit: int, window: int
) -> None:
    state = BreakerState()
    admitted: list[float] = []
    for t in sorted(arrivals):
        v = evaluate(state, now=t, max_isolations=limit, window_seconds=window)
        if v.allowed:
            admitted.append(t)
            state = v.new_state
            assert state.version == len(admitted)
    for t in admitted:
        in_window = [a for a in admitted if t - window < a <= t]
        assert len(in_window) <= limit


def test_plan_follows_the_config() -> None:
    config = parse_config(
        {
            "organization_id": "o-exampleorg1",
            "hub": {"account_id": "111111111111", "region": "us-east-1"},
            "trusted_event_accounts": ["222222222222"],
            "regions": ["us-east-1"],
            "response": {
                "sever_tracked_connections": False,
                "snapshot_volumes": False,
                "autoscaling_action": "standby",
                "revoke_role_sessions": True,
                "quarantine_ingress": [
                    {"cidr": "10.0.0.20/32", "ports": [22, 443], "description": "forensics"},
                    {"cidr": "2001:db8::/48", "ports": [22]},
                    {"prefix_list": "pl-0123456789abcdef0", "ports": [22], "protocol": "tcp"},
                    {"security_group": "sg-0123456789abcdef0", "ports": [5986]},
                ],
            },
        }
    )
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    plan = build_plan(
        config, instance_id="i-0123456789abcdef0", finding_id="f1", quarantined_at=at, reason="r"
    )
    assert plan.instance_id == "i-0123456789abcdef0" and plan.finding_id == "f1" and plan.quarantined_at == at
    assert not plan.sever_tracked_connections and not plan.snapshot_volumes
    assert plan.autoscaling_action == "standby" and plan.revoke_role_sessions
    rules = {
        (p.cidr_ipv4, p.cidr_ipv6, p.prefix_list_id, p.security_group_id, p.from_port)
        for p in plan.quarantine_ingress
    }
    assert rules == {
        ("10.0.0.20/32", None, None, None, 22),
        ("10.0.0.20/32", None, None, None, 443),
        (None, "2001:db8::/48", None, None, 22),
        (None, None, "pl-0123456789abcdef0", None, 22),
        (None, None, None, "sg-0123456789abcdef0", 5986),
    }
    assert all(p.from_port == p.to_port for p in plan.quarantine_ingress)
