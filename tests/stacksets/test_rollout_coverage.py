"""`orgcontain coverage` on the emulated organization.

moto notes: a new account moved into a target OU gets no stack instance until deploy runs again
(moto ignores auto-deployment; AWS would add it within minutes, and coverage reports it `missing`
meanwhile, as here); GuardDuty's members API is not implemented by moto (404), so `guardduty` is
`unknown` here, and `failed`/`outdated` instances never occur (moto's operations always succeed):
their mapping is checked on AWS-shaped instance summaries.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from rollout_support import Deployed, config_for, run_cli

from hub.config import parse_config
from hub.demo.org import EmulatedOrg
from stacksets.aws import Aws
from stacksets.coverage import Status, _instance_status, coverage

pytestmark = pytest.mark.usefixtures("aws")


def _coverage_json(d: Deployed) -> tuple[int, list[dict[str, Any]], str]:
    result = run_cli("coverage", "--config", str(d.config_path), "--json")
    return result.exit_code, json.loads(result.stdout), result.stderr


def _by_account(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["account_id"], r["region"]): r for r in rows}


def test_every_member_is_covered_and_the_management_account_is_a_gap(
    org: EmulatedOrg, deployed_factory: Any
) -> None:
    d: Deployed = deployed_factory(org)
    code, rows, err = _coverage_json(d)
    assert code == 1  # the management account is never covered by the StackSet
    assert all(
        set(r) == {"account_id", "account_name", "region", "status", "detail", "guardduty"} for r in rows
    )
    table = _by_account(rows)
    assert len(rows) == len(org.accounts) * len(org.regions) + len(org.regions)  # + management account
    for account in [*org.member_ids, org.hub_account_id]:
        for region in org.regions:
            assert table[(account, region)]["status"] == "covered"
    for region in org.regions:
        mgmt = table[(org.management_account_id, region)]
        assert mgmt["status"] == "management-account"
        assert "--cover-management-account" in mgmt["detail"]
    names = {r["account_name"] for r in rows}
    assert {"prod-a", "sandbox", "security"} <= names
    assert "management-account" in err or "not covered" in err


def test_management_account_remedies_opt_out_or_self_managed_stack(
    org: EmulatedOrg, deployed_factory: Any
) -> None:
    sandbox = org.accounts["sandbox"]
    d: Deployed = deployed_factory(
        org,
        accounts={
            org.management_account_id: {"mode": "off", "reason": "management account: no workloads"},
            sandbox: {"mode": "off", "reason": "sandbox"},
        },
    )
    code, rows, _ = _coverage_json(d)
    table = _by_account(rows)
    assert table[(org.management_account_id, org.regions[0])]["status"] == "opted-out"
    assert table[(sandbox, org.regions[1])] == {
        "account_id": sandbox,
        "account_name": "sandbox",
        "region": org.regions[1],
        "status": "opted-out",
        "detail": "sandbox",
        "guardduty": table[(sandbox, org.regions[1])]["guardduty"],
    }
    assert code == 0

    # The other remedy: plain spoke stacks in the management account.
    d.config_path.write_text(json.dumps(config_for(org)))
    result = d.invoke(*d.deploy_args("--cover-management-account"))
    assert result.exit_code == 0, result.output
    mgmt_iam = org.management_client("iam")
    for region in org.regions:
        mgmt_iam.get_role(RoleName=f"orgcontain-spoke-{region}")
    code, rows, _ = _coverage_json(d)
    assert code == 0
    mgmt = _by_account(rows)[(org.management_account_id, org.regions[0])]
    assert (mgmt["status"], mgmt["detail"]) == ("covered", "self-managed stack orgcontain-spoke")


def test_new_account_is_missing_until_deploy_covers_it(org: EmulatedOrg, deployed_factory: Any) -> None:
    d: Deployed = deployed_factory(
        org, accounts={org.management_account_id: {"mode": "off", "reason": "no workloads"}}
    )
    assert _coverage_json(d)[0] == 0
    new = org.add_account("payments", "Workloads")  # created and moved into a target OU
    code, rows, err = _coverage_json(d)
    assert code == 1
    table = _by_account(rows)
    for region in org.regions:
        assert table[(new, region)]["status"] == "missing"
        assert table[(new, region)]["account_name"] == "payments"
    assert "2 account-region(s) not covered" in err
    # moto ignores auto-deployment: deploy adds exactly the missing instances (AWS would on its own)
    result = d.invoke(*d.deploy_args())
    assert result.exit_code == 0, result.output
    instances = next(
        c for c in json.loads(result.stdout)["changes"] if c["target"] == "orgcontain-spoke instances"
    )
    assert instances["action"] == "add"
    assert instances["detail"].startswith("2 to add")
    code, rows, _ = _coverage_json(d)
    assert code == 0
    assert {_by_account(rows)[(new, r)]["status"] for r in org.regions} == {"covered"}


def test_ou_override_off_opts_the_accounts_below_out(org: EmulatedOrg, deployed_factory: Any) -> None:
    d: Deployed = deployed_factory(
        org,
        organizational_units={
            org.ous["Workloads"]: {"mode": "off", "reason": "workloads paused"},
            org.ous["Prod"]: {"mode": "notify", "reason": "prod notify"},  # nearer OU wins
        },
    )
    _, rows, _ = _coverage_json(d)
    table = _by_account(rows)
    region = org.regions[0]
    assert table[(org.accounts["dev"], region)]["status"] == "opted-out"
    assert table[(org.accounts["dev"], region)]["detail"] == "workloads paused"
    assert table[(org.accounts["prod-a"], region)]["status"] == "covered"


def test_guardduty_membership_is_unknown_where_moto_lacks_the_api(
    org: EmulatedOrg, deployed_factory: Any
) -> None:
    d: Deployed = deployed_factory(org)
    # A detector in the admin account in the first region only.
    org.client("guardduty", org.guardduty_admin_id, org.regions[0]).create_detector(Enable=True)
    _, rows, err = _coverage_json(d)
    table = _by_account(rows)
    member = org.accounts["dev"]
    assert table[(member, org.regions[0])]["guardduty"] == "unknown"  # ListMembers: 404 in moto
    assert table[(member, org.regions[1])]["guardduty"] == "disabled"  # no detector in the admin
    assert table[(org.guardduty_admin_id, org.regions[1])]["guardduty"] == "disabled"
    assert "moto does not implement it" in err


def test_coverage_before_any_deploy_reports_everything_missing(org: EmulatedOrg, tmp_path: Any) -> None:
    config = parse_config(config_for(org))
    report = coverage(Aws.from_profile(profile=None, region=org.regions[0]), config)
    assert {r.status for r in report.rows} == {Status.MISSING, Status.MANAGEMENT_ACCOUNT}
    assert any("does not exist" in n for n in report.notes)
    assert report.api_calls > 0


@pytest.mark.parametrize(
    ("summary", "status", "detail"),
    [
        ({"Status": "CURRENT", "StackInstanceStatus": {"DetailedStatus": "SUCCEEDED"}}, Status.COVERED, ""),
        (
            {
                "Status": "OUTDATED",
                "StatusReason": "Account 1 should have 'AWSCloudFormationStackSetExecutionRole'",
                "StackInstanceStatus": {"DetailedStatus": "FAILED"},
            },
            Status.FAILED,
            "Account 1 should have 'AWSCloudFormationStackSetExecutionRole'",
        ),
        (
            {"Status": "OUTDATED", "StackInstanceStatus": {"DetailedStatus": "RUNNING"}},
            Status.OUTDATED,
            "an operation on this instance is in progress",
        ),
        ({"Status": "OUTDATED", "StackInstanceStatus": {"DetailedStatus": "CANCELLED"}}, Status.FAILED, None),
        (
            {"Status": "INOPERABLE", "StackInstanceStatus": {"DetailedStatus": "INOPERABLE"}},
            Status.FAILED,
            None,
        ),
        (
            {"Status": "OUTDATED", "StackInstanceStatus": {"DetailedStatus": "SKIPPED_SUSPENDED_ACCOUNT"}},
            Status.OUTDATED,
            None,
        ),
    ],
)
def test_instance_summaries_map_to_statuses(
    summary: dict[str, Any], status: Status, detail: str | None
) -> None:
    got_status, got_detail = _instance_status(summary)
    assert got_status is status
    if detail is not None:
        assert got_detail == detail
    else:
        assert got_detail  # always says why


def test_coverage_cost_grows_with_pages_not_accounts(org: EmulatedOrg, deployed_factory: Any) -> None:
    """API calls are listings (pages), not per-account calls: 30 more accounts add a few pages."""
    d: Deployed = deployed_factory(org)
    config = parse_config(config_for(org))
    before = coverage(Aws.from_profile(profile=None, region=org.regions[0]), config)
    for i in range(30):
        org.add_account(f"extra-{i:02d}", "Sandbox")
    assert d.invoke(*d.deploy_args()).exit_code == 0
    after = coverage(Aws.from_profile(profile=None, region=org.regions[0]), config)
    assert len(after.rows) == len(before.rows) + 30 * len(org.regions)
    assert {r.status for r in after.rows if r.account_name.startswith("extra-")} == {Status.COVERED}
    assert after.api_calls - before.api_calls <= 6, (before.api_calls, after.api_calls)
