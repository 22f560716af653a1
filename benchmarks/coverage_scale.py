"""Figure 8: ``orgcontain coverage`` on a large organization: wall time and API calls.

An emulated organization of ``accounts`` member accounts (spread over three OUs) on a moto
server, the spoke StackSet (the real ``stacksets/spoke.yaml``) deployed service-managed to the
OUs in two regions, a GuardDuty detector in the admin account; then ``stacksets.coverage.coverage``
(what the command runs) from the management account, timed, its calls counted by the rollout
clients' own :class:`stacksets.aws.CallCounter`. Repeated, medians.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from typing import Any

from benchmarks.server import reset


def run(endpoint: str, *, accounts: int = 200, repeats: int = 3) -> dict[str, Any]:
    import boto3

    from benchmarks.emulated import config_data
    from hub.config import parse_config
    from hub.demo.org import EmulatedOrg
    from stacksets.aws import Aws
    from stacksets.coverage import coverage
    from stacksets.deploy import CAPABILITIES
    from stacksets.templates import SPOKE_STACK_SET, spoke

    reset(endpoint)
    regions = ("us-east-1", "eu-west-1")
    built = time.perf_counter()
    # EmulatedOrg makes security + 4 named members; the rest are spread over Prod, Workloads, Sandbox.
    org = EmulatedOrg(regions=regions, extra_members=max(0, accounts - 4), endpoint_url=endpoint)
    cfn = org.management_client("cloudformation", regions[0])
    cfn.create_stack_set(
        StackSetName=SPOKE_STACK_SET,
        TemplateBody=spoke().body(),
        Parameters=[
            {"ParameterKey": "OrganizationId", "ParameterValue": org.organization_id},
            {"ParameterKey": "HubAccountId", "ParameterValue": org.hub_account_id},
        ],
        Capabilities=CAPABILITIES,
        PermissionModel="SERVICE_MANAGED",
        AutoDeployment={"Enabled": True, "RetainStacksOnAccountRemoval": False},
    )
    # moto expands a target OU to its accounts and those of its direct child OUs (Prod under Workloads).
    cfn.create_stack_instances(
        StackSetName=SPOKE_STACK_SET,
        DeploymentTargets={
            "OrganizationalUnitIds": [org.ous[n] for n in ("Security", "Workloads", "Sandbox")]
        },
        Regions=list(regions),
    )
    admin = org.session(org.guardduty_admin_id)
    for region in regions:
        admin.client("guardduty", region_name=region, endpoint_url=endpoint).create_detector(Enable=True)
    setup_s = time.perf_counter() - built

    data = config_data(org, ou_override=False)
    data["organizational_units"] = {
        org.ous["Sandbox"]: {"mode": "off", "reason": "sandbox"}
    }  # walks the OU tree
    config = parse_config(data)
    seconds: list[float] = []
    calls: list[int] = []
    report = None
    for _ in range(repeats):
        aws = Aws(boto3.Session(), region=regions[0], endpoint_url=endpoint)
        started = time.perf_counter()
        report = coverage(aws, config)
        seconds.append(time.perf_counter() - started)
        calls.append(aws.counter.total)
    assert report is not None
    return {
        "accounts": len({r.account_id for r in report.rows}),
        "regions": len(regions),
        "rows": len(report.rows),
        "repeats": repeats,
        "setup_s": round(setup_s, 1),
        "seconds": round(statistics.median(seconds), 2),
        "api_calls": int(statistics.median(calls)),
        "by_status": dict(Counter(str(r.status) for r in report.rows)),
        "calls_by_operation": dict(aws.counter.counts),
    }


def report(fig: dict[str, Any]) -> list[str]:
    ops = ", ".join(f"{n} {op}" for op, n in sorted(fig["calls_by_operation"].items(), key=lambda x: -x[1]))
    return [
        f"8. coverage: {fig['accounts']} accounts x {fig['regions']} regions ({fig['rows']} rows) in "
        f"{fig['seconds']:.2f} s and {fig['api_calls']} API calls (median of {fig['repeats']}, moto server)",
        f"   statuses: {fig['by_status']}",
        f"   calls: {ops}",
    ]
