"""Security-group rules as plain values, and the pure desired-vs-actual diff.

AWS describes a group's rules as ``IpPermissions``: one entry per (protocol, port range) carrying
lists of sources, in whatever grouping the rules were written with. Comparing those structures
directly is fragile, so both sides are flattened into :class:`Rule` values (one source each,
normalised CIDRs and protocols) and compared as sets. The diff is pure; applying it is
:mod:`spoke.groups`' job. Descriptions are carried along but never compared: a rule whose
description differs is the same rule.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from spoke.models import IngressPermission

SourceKind = Literal["cidr_ipv4", "cidr_ipv6", "prefix_list", "security_group"]

# IANA numbers AWS may return instead of names.
_PROTOCOL_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6", "all": "-1"}


@dataclass(frozen=True, order=True)
class Rule:
    """One security-group rule: a protocol, a port range (None for all traffic), one source."""

    protocol: str
    from_port: int | None
    to_port: int | None
    kind: SourceKind
    source: str
    description: str = field(default="", compare=False)
    # Account owning a referenced group (needed to revoke a cross-account reference).
    owner: str | None = field(default=None, compare=False)


def normalise_protocol(protocol: str | int) -> str:
    text = str(protocol).lower()
    return _PROTOCOL_NAMES.get(text, text)


def normalise_cidr(cidr: str) -> str:
    return str(ipaddress.ip_network(cidr, strict=False))


def _ports(protocol: str, from_port: int | None, to_port: int | None) -> tuple[int | None, int | None]:
    # AWS omits ports for "all traffic" and ignores any that were sent.
    if protocol == "-1":
        return None, None
    return from_port, to_port


def rule(
    protocol: str | int,
    from_port: int | None,
    to_port: int | None,
    kind: SourceKind,
    source: str,
    description: str = "",
    owner: str | None = None,
) -> Rule:
    """A normalised :class:`Rule` (protocol names, canonical CIDRs, no ports for all traffic)."""
    proto = normalise_protocol(protocol)
    lo, hi = _ports(proto, from_port, to_port)
    if kind in ("cidr_ipv4", "cidr_ipv6"):
        source = normalise_cidr(source)
    return Rule(proto, lo, hi, kind, source, description, owner)


ALL_TRAFFIC: frozenset[Rule] = frozenset(
    {rule("-1", None, None, "cidr_ipv4", "0.0.0.0/0"), rule("-1", None, None, "cidr_ipv6", "::/0")}
)


def rules_from_ingress(permissions: Iterable[IngressPermission]) -> frozenset[Rule]:
    """The configured quarantine ingress as rules (duplicates collapse; first description wins)."""
    out: dict[Rule, Rule] = {}
    for p in permissions:
        sources: list[tuple[SourceKind, str | None]] = [
            ("cidr_ipv4", p.cidr_ipv4),
            ("cidr_ipv6", p.cidr_ipv6),
            ("prefix_list", p.prefix_list_id),
            ("security_group", p.security_group_id),
        ]
        for kind, value in sources:
            if value is not None:
                r = rule(p.protocol, p.from_port, p.to_port, kind, value, p.description)
                out.setdefault(r, r)
    return frozenset(out)


def rules_from_permissions(permissions: Sequence[Mapping[str, Any]]) -> frozenset[Rule]:
    """Flatten AWS ``IpPermissions`` (as DescribeSecurityGroups returns them) into rules."""
    out: set[Rule] = set()
    for perm in permissions:
        proto = str(perm.get("IpProtocol", "-1"))
        lo, hi = perm.get("FromPort"), perm.get("ToPort")
        for r4 in perm.get("IpRanges", ()):
            out.add(rule(proto, lo, hi, "cidr_ipv4", r4["CidrIp"], r4.get("Description", "")))
        for r6 in perm.get("Ipv6Ranges", ()):
            out.add(rule(proto, lo, hi, "cidr_ipv6", r6["CidrIpv6"], r6.get("Description", "")))
        for pl in perm.get("PrefixListIds", ()):
            out.add(rule(proto, lo, hi, "prefix_list", pl["PrefixListId"], pl.get("Description", "")))
        for pair in perm.get("UserIdGroupPairs", ()):
            if "GroupId" in pair:
                out.add(
                    rule(
                        proto,
                        lo,
                        hi,
                        "security_group",
                        pair["GroupId"],
                        pair.get("Description", ""),
                        pair.get("UserId"),
                    )
                )
    return frozenset(out)


def to_ip_permissions(rules: Iterable[Rule]) -> list[dict[str, Any]]:
    """One ``IpPermission`` per rule, in a stable order (the shape Authorize/Revoke calls take)."""
    perms: list[dict[str, Any]] = []
    for r in sorted(rules):
        perm: dict[str, Any] = {"IpProtocol": r.protocol}
        if r.from_port is not None:
            perm["FromPort"] = r.from_port
        if r.to_port is not None:
            perm["ToPort"] = r.to_port
        desc = {"Description": r.description} if r.description else {}
        if r.kind == "cidr_ipv4":
            perm["IpRanges"] = [{"CidrIp": r.source, **desc}]
        elif r.kind == "cidr_ipv6":
            perm["Ipv6Ranges"] = [{"CidrIpv6": r.source, **desc}]
        elif r.kind == "prefix_list":
            perm["PrefixListIds"] = [{"PrefixListId": r.source, **desc}]
        else:
            pair: dict[str, Any] = {"GroupId": r.source, **desc}
            if r.owner:
                pair["UserId"] = r.owner
            perm["UserIdGroupPairs"] = [pair]
        perms.append(perm)
    return perms


@dataclass(frozen=True)
class RuleDiff:
    """What to add and what to remove so that the actual rules equal the desired ones."""

    authorize: tuple[Rule, ...] = ()
    revoke: tuple[Rule, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.authorize or self.revoke)


def diff_rules(desired: Iterable[Rule], actual: Iterable[Rule]) -> RuleDiff:
    """Pure: rules to authorize (desired, missing) and to revoke (present, not desired).

    Revocations keep the actual rule (its owner), authorizations the desired one (its description).
    """
    want = {r: r for r in desired}
    have = {r: r for r in actual}
    return RuleDiff(
        authorize=tuple(sorted(want[r] for r in want.keys() - have.keys())),
        revoke=tuple(sorted(have[r] for r in have.keys() - want.keys())),
    )


def apply_diff(actual: Iterable[Rule], change: RuleDiff) -> frozenset[Rule]:
    """Pure: the rules a group holds after ``change`` is applied to ``actual``."""
    return (frozenset(actual) - frozenset(change.revoke)) | frozenset(change.authorize)


@dataclass(frozen=True)
class GroupRules:
    """A group's rules, both directions."""

    ingress: frozenset[Rule] = frozenset()
    egress: frozenset[Rule] = frozenset()

    @classmethod
    def from_description(cls, group: Mapping[str, Any]) -> GroupRules:
        return cls(
            rules_from_permissions(group.get("IpPermissions", ())),
            rules_from_permissions(group.get("IpPermissionsEgress", ())),
        )


@dataclass(frozen=True)
class GroupDiff:
    ingress: RuleDiff = RuleDiff()
    egress: RuleDiff = RuleDiff()

    def __bool__(self) -> bool:
        return bool(self.ingress or self.egress)


def diff_group(desired: GroupRules, actual: GroupRules) -> GroupDiff:
    return GroupDiff(diff_rules(desired.ingress, actual.ingress), diff_rules(desired.egress, actual.egress))


def quarantine_rules(ingress: Iterable[IngressPermission]) -> GroupRules:
    """The quarantine group: exactly the configured ingress, no egress at all."""
    return GroupRules(rules_from_ingress(ingress), frozenset())


TRANSITION_RULES = GroupRules(ALL_TRAFFIC, ALL_TRAFFIC)
"""The transition group: all traffic both ways, IPv4 and IPv6 (what makes flows untracked)."""
