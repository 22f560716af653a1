"""Config + finding -> the spoke's ContainmentPlan (pure)."""

from __future__ import annotations

from datetime import datetime

from hub.config import IngressRule, OrgContainConfig
from spoke.models import ContainmentPlan, IngressPermission


def ingress_permissions(rules: list[IngressRule]) -> tuple[IngressPermission, ...]:
    """One quarantine ingress permission per (source, port): the SOC's forensic access."""
    permissions: list[IngressPermission] = []
    for rule in rules:
        for port in rule.ports:
            permissions.append(
                IngressPermission(
                    protocol=rule.protocol,
                    from_port=port,
                    to_port=port,
                    cidr_ipv4=rule.cidr if rule.cidr is not None and not rule.is_ipv6 else None,
                    cidr_ipv6=rule.cidr if rule.is_ipv6 else None,
                    prefix_list_id=rule.prefix_list,
                    security_group_id=rule.security_group,
                    description=rule.description,
                )
            )
    return tuple(permissions)


def build_plan(
    config: OrgContainConfig,
    *,
    instance_id: str,
    finding_id: str,
    quarantined_at: datetime,
    reason: str = "",
) -> ContainmentPlan:
    """What the spoke should do to ``instance_id``, from ``config.response``."""
    response = config.response
    return ContainmentPlan(
        instance_id=instance_id,
        finding_id=finding_id,
        reason=reason,
        quarantined_at=quarantined_at,
        quarantine_ingress=ingress_permissions(response.quarantine_ingress),
        sever_tracked_connections=response.sever_tracked_connections,
        detach_from_autoscaling=response.detach_from_autoscaling,
        autoscaling_action=response.autoscaling_action,
        deregister_from_load_balancers=response.deregister_from_load_balancers,
        termination_protection=response.termination_protection,
        detach_instance_profile=response.detach_instance_profile,
        revoke_role_sessions=response.revoke_role_sessions,
        snapshot_volumes=response.snapshot_volumes,
    )
