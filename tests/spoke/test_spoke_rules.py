"""The quarantine rule model and its pure desired-vs-actual diff."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from spoke.models import IngressPermission
from spoke.rules import (
    ALL_TRAFFIC,
    TRANSITION_RULES,
    GroupRules,
    Rule,
    apply_diff,
    diff_group,
    diff_rules,
    quarantine_rules,
    rule,
    rules_from_ingress,
    rules_from_permissions,
    to_ip_permissions,
)


def test_ingress_config_becomes_one_rule_per_source() -> None:
    rules = rules_from_ingress(
        [
            IngressPermission(from_port=22, to_port=22, cidr_ipv4="10.0.0.10/32", description="bastion"),
            IngressPermission(from_port=22, to_port=22, prefix_list_id="pl-0123456789abcdef0"),
            IngressPermission(from_port=443, to_port=443, security_group_id="sg-0123456789abcdef0"),
            IngressPermission(protocol="udp", from_port=514, to_port=514, cidr_ipv6="2001:DB8::/64"),
            # The same rule twice with another description: one rule.
            IngressPermission(from_port=22, to_port=22, cidr_ipv4="10.0.0.10/32", description="again"),
        ]
    )
    assert rules == {
        Rule("tcp", 22, 22, "cidr_ipv4", "10.0.0.10/32"),
        Rule("tcp", 22, 22, "prefix_list", "pl-0123456789abcdef0"),
        Rule("tcp", 443, 443, "security_group", "sg-0123456789abcdef0"),
        Rule("udp", 514, 514, "cidr_ipv6", "2001:db8::/64"),
    }


def test_aws_permissions_are_flattened_and_normalised() -> None:
    described = [
        {
            "IpProtocol": "6",
            "FromPort": 22,
            "ToPort": 22,
            "IpRanges": [{"CidrIp": "10.0.0.10/32"}, {"CidrIp": "10.0.0.20/32", "Description": "x"}],
            "PrefixListIds": [{"PrefixListId": "pl-1"}],
            "UserIdGroupPairs": [{"GroupId": "sg-1", "UserId": "111111111111"}],
        },
        {"IpProtocol": "-1", "FromPort": -1, "ToPort": -1, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
    ]
    assert rules_from_permissions(described) == {
        Rule("tcp", 22, 22, "cidr_ipv4", "10.0.0.10/32"),
        Rule("tcp", 22, 22, "cidr_ipv4", "10.0.0.20/32"),
        Rule("tcp", 22, 22, "prefix_list", "pl-1"),
        Rule("tcp", 22, 22, "security_group", "sg-1"),
        Rule("-1", None, None, "cidr_ipv6", "::/0"),
    }


def test_quarantine_diff_removes_default_egress_and_adds_soc_ingress() -> None:
    created = GroupRules(frozenset(), ALL_TRAFFIC)  # a new group: AWS's allow-all egress (v4 + v6)
    soc = [IngressPermission(from_port=22, to_port=22, cidr_ipv4="10.0.0.10/32")]
    change = diff_group(quarantine_rules(soc), created)
    assert set(change.egress.revoke) == ALL_TRAFFIC
    assert change.ingress.authorize == (Rule("tcp", 22, 22, "cidr_ipv4", "10.0.0.10/32"),)
    assert not change.ingress.revoke and not change.egress.authorize


def test_transition_group_is_open_both_ways_in_both_families() -> None:
    assert {(r.kind, r.source) for r in TRANSITION_RULES.ingress} == {
        ("cidr_ipv4", "0.0.0.0/0"),
        ("cidr_ipv6", "::/0"),
    }
    assert TRANSITION_RULES.egress == TRANSITION_RULES.ingress
    assert all(r.protocol == "-1" for r in TRANSITION_RULES.ingress)


def test_description_change_is_not_drift() -> None:
    a = rule("tcp", 22, 22, "cidr_ipv4", "10.0.0.10/32", "old")
    b = rule("tcp", 22, 22, "cidr_ipv4", "10.0.0.10/32", "new")
    assert not diff_rules([a], [b])


def test_ip_permissions_shape_for_each_source() -> None:
    perms = to_ip_permissions(
        [
            rule("tcp", 22, 22, "security_group", "sg-1", "soc", owner="111111111111"),
            rule("-1", None, None, "cidr_ipv6", "::/0"),
        ]
    )
    assert perms == [
        {"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
        {
            "IpProtocol": "tcp",
            "FromPort": 22,
            "ToPort": 22,
            "UserIdGroupPairs": [{"GroupId": "sg-1", "Description": "soc", "UserId": "111111111111"}],
        },
    ]


# ---- properties -----------------------------------------------------------------------------------

_v4 = st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(8, 32)).map(
    lambda t: f"10.{t[0]}.{t[1]}.0/{min(t[2], 24)}"
)
_v6 = st.integers(0, 0xFFFF).map(lambda n: f"2001:db8:{n:x}::/64")
_source = st.one_of(
    st.tuples(st.just("cidr_ipv4"), _v4),
    st.tuples(st.just("cidr_ipv6"), _v6),
    st.tuples(st.just("prefix_list"), st.integers(0, 50).map(lambda n: f"pl-{n:08x}")),
    st.tuples(st.just("security_group"), st.integers(0, 50).map(lambda n: f"sg-{n:08x}")),
)


@st.composite
def _rules(draw: Any) -> Rule:
    proto = draw(st.sampled_from(["tcp", "udp", "-1"]))
    lo = draw(st.integers(0, 65535))
    hi = draw(st.integers(lo, 65535))
    kind, source = draw(_source)
    return rule(proto, lo, hi, kind, source, draw(st.sampled_from(["", "soc", "x"])))


rule_sets = st.frozensets(_rules(), max_size=12)


@settings(max_examples=60, deadline=None)
@given(rule_sets, rule_sets)
def test_applying_the_diff_yields_exactly_the_desired_rules(
    desired: frozenset[Rule], actual: frozenset[Rule]
) -> None:
    change = diff_rules(desired, actual)
    assert apply_diff(actual, change) == desired
    # Minimal: never touches a rule that is already right.
    assert not set(change.revoke) & desired
    assert not set(change.authorize) & actual
    # Idempotent: once applied, nothing is left to do.
    assert not diff_rules(desired, apply_diff(actual, change))


@settings(max_examples=60, deadline=None)
@given(rule_sets)
def test_rules_survive_the_round_trip_through_aws_permissions(rules: frozenset[Rule]) -> None:
    assert rules_from_permissions(to_ip_permissions(rules)) == rules


@settings(max_examples=60, deadline=None)
@given(rule_sets)
def test_flattening_ignores_how_aws_groups_sources(rules: frozenset[Rule]) -> None:
    # AWS returns one IpPermission per (protocol, ports) with every source listed in it.
    grouped: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(dict)
    for perm in to_ip_permissions(rules):
        key = (perm["IpProtocol"], perm.get("FromPort"), perm.get("ToPort"))
        merged = grouped[key]
        for k, v in perm.items():
            if isinstance(v, list):
                merged.setdefault(k, []).extend(v)
            else:
                merged[k] = v
    assert rules_from_permissions(list(grouped.values())) == rules


@settings(max_examples=60, deadline=None)
@given(rule_sets, rule_sets)
def test_quarantine_tightening_never_adds_and_full_diff_converges(
    desired_ingress: frozenset[Rule], actual_ingress: frozenset[Rule]
) -> None:
    from spoke.groups import after, tightening

    desired = GroupRules(desired_ingress, frozenset())
    actual = GroupRules(actual_ingress, ALL_TRAFFIC)
    first = tightening(diff_group(desired, actual))
    assert not first.ingress.authorize and not first.egress.authorize
    mid = after(actual, first)
    assert mid.egress == frozenset()  # nothing leaves a quarantined ENI, before SOC rules are added
    assert mid.ingress <= actual.ingress
    assert after(mid, diff_group(desired, mid)) == desired
