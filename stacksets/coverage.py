"""`orgcontain coverage`: is every active account x configured region reachable by the hub?

One row per ACTIVE account x configured region, from three paginated listings run concurrently
(the organization's accounts, the spoke StackSet's instances, the GuardDuty admin's members per
region), plus the OU tree only when an OU override could opt an account out. Statuses:

- ``covered``: the spoke stack instance is CURRENT (or, for the management account, a
  self-managed ``orgcontain-spoke`` stack exists);
- ``outdated``: an instance exists but the last operation has not brought it up to date;
- ``failed``: the last operation on the instance failed (``detail`` has CloudFormation's reason);
- ``missing``: no instance (e.g. a new account or region not deployed yet);
- ``opted-out``: the config's effective mode for the account is ``off`` (nothing to cover);
- ``management-account``: service-managed StackSets never deploy to the management account.

Every status but ``covered`` and ``opted-out`` is a gap (``coverage`` then exits 1).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from hub.config import Mode, OrgContainConfig
from stacksets.aws import Aws
from stacksets.org import OrgTree, list_accounts, management_account_id, walk
from stacksets.templates import SPOKE_STACK_SET

DEFAULT_ACCESS_ROLE = "OrganizationAccountAccessRole"
MANAGEMENT_STACK_NAME = SPOKE_STACK_SET  # the self-managed stack that covers the management account


class Status(StrEnum):
    COVERED = "covered"
    OUTDATED = "outdated"
    FAILED = "failed"
    MISSING = "missing"
    OPTED_OUT = "opted-out"
    MANAGEMENT_ACCOUNT = "management-account"


GAPS = frozenset({Status.OUTDATED, Status.FAILED, Status.MISSING, Status.MANAGEMENT_ACCOUNT})


@dataclass(frozen=True)
class Row:
    account_id: str
    account_name: str
    region: str
    status: Status
    detail: str
    guardduty: str

    @property
    def is_gap(self) -> bool:
        return self.status in GAPS

    def to_json(self) -> dict[str, str]:
        return {
            "account_id": self.account_id,
            "account_name": self.account_name,
            "region": self.region,
            "status": str(self.status),
            "detail": self.detail,
            "guardduty": self.guardduty,
        }


@dataclass
class Report:
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    api_calls: int = 0
    seconds: float = 0.0

    @property
    def gaps(self) -> list[Row]:
        return [r for r in self.rows if r.is_gap]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.rows:
            out[str(row.status)] = out.get(str(row.status), 0) + 1
        return out


# ---- the pieces ---------------------------------------------------------------------------------


def stack_instances(
    cfn: Any, stack_set: str, call_as: str
) -> tuple[dict[tuple[str, str], dict[str, Any]], str | None]:
    """(account, region) -> instance summary; the note says why it is empty when the set is absent."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        for page in cfn.get_paginator("list_stack_instances").paginate(
            StackSetName=stack_set, CallAs=call_as
        ):
            for summary in page["Summaries"]:
                found[(str(summary["Account"]), str(summary["Region"]))] = summary
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "StackSetNotFoundException":
            raise
        return {}, f"StackSet {stack_set} does not exist: run `orgcontain deploy`"
    return found, None


@dataclass(frozen=True)
class GuardDutyView:
    """One region's GuardDuty membership as the admin sees it; ``members`` None = unknown."""

    members: dict[str, str] | None
    absent: str = "not-member"  # what an account missing from ``members`` is

    def of(self, account_id: str) -> str:
        if self.members is None:
            return "unknown"
        return self.members.get(account_id, self.absent)


def _guardduty_region(gd: Any, admin_id: str) -> tuple[GuardDutyView, str | None]:
    """Member account -> relationship with the admin's detector in one region."""
    detectors = gd.list_detectors().get("DetectorIds", [])
    if not detectors:
        return GuardDutyView({}, absent="disabled"), "no GuardDuty detector in the admin account"
    members = {admin_id: "enabled"}
    try:
        for page in gd.get_paginator("list_members").paginate(
            DetectorId=detectors[0], OnlyAssociated="false"
        ):
            for member in page.get("Members", []):
                members[str(member["AccountId"])] = str(member.get("RelationshipStatus", "unknown")).lower()
    except ClientError as exc:
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404 or err.get("Code") in ("404", "NotImplemented"):
            # moto 5.2 does not implement the members API: say "unknown" rather than guess.
            return GuardDutyView(
                None
            ), "GuardDuty ListMembers is not available here (moto does not implement it)"
        if err.get("Code") in ("AccessDeniedException", "AccessDenied", "BadRequestException"):
            return GuardDutyView(
                None
            ), f"cannot list GuardDuty members: {err.get('Message', err.get('Code'))}"
        raise
    return GuardDutyView(members), None


def guardduty_members(
    aws: Aws, admin_id: str, regions: list[str], role: str, pool: ThreadPoolExecutor
) -> tuple[dict[str, GuardDutyView], list[str]]:
    notes: list[str] = []
    try:
        admin = aws.assume(admin_id, role, "orgcontain-coverage")
    except ClientError as exc:
        msg = exc.response["Error"].get("Message", "")
        return {r: GuardDutyView(None) for r in regions}, [
            f"GuardDuty: cannot reach admin account {admin_id}: {msg}"
        ]
    futures = {r: pool.submit(_guardduty_region, admin.client("guardduty", r), admin_id) for r in regions}
    out: dict[str, GuardDutyView] = {}
    for region, fut in futures.items():
        members, note = fut.result()
        out[region] = members
        if note:
            notes.append(f"GuardDuty {region}: {note}")
    return out, notes


def management_stacks(aws: Aws, regions: list[str]) -> dict[str, str]:
    """Region -> status of the self-managed spoke stack in the management account (caller's own)."""
    found: dict[str, str] = {}
    for region in regions:
        try:
            stacks = aws.client("cloudformation", region).describe_stacks(StackName=MANAGEMENT_STACK_NAME)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ValidationError":  # "Stack ... does not exist"
                continue
            raise
        found[region] = str(stacks["Stacks"][0]["StackStatus"])
    return found


def effective_mode(config: OrgContainConfig, account_id: str, ou_path: tuple[str, ...]) -> tuple[Mode, str]:
    """The mode the hub would apply to the account (without instance tags) and the reason."""
    ceiling = config.response.mode
    override = config.accounts.get(account_id)
    if override is None:
        for ou in reversed(ou_path):  # nearest OU wins
            if ou in config.organizational_units:
                override = config.organizational_units[ou]
                break
    if override is None:
        return ceiling, ""
    return Mode.mildest(ceiling, override.mode), override.reason


def _needs_ou_tree(config: OrgContainConfig) -> bool:
    return any(o.mode is Mode.OFF for o in config.organizational_units.values())


def _instance_status(summary: dict[str, Any]) -> tuple[Status, str]:
    status = str(summary.get("Status", ""))
    detailed = str(summary.get("StackInstanceStatus", {}).get("DetailedStatus", ""))
    reason = str(summary.get("StatusReason", "") or "")
    if status == "CURRENT":
        return Status.COVERED, ""
    if status == "INOPERABLE" or detailed in ("FAILED", "CANCELLED", "FAILED_IMPORT"):
        return Status.FAILED, reason or f"stack instance {status.lower()} ({detailed.lower()})"
    if detailed in ("PENDING", "RUNNING"):
        return Status.OUTDATED, reason or "an operation on this instance is in progress"
    return Status.OUTDATED, reason or f"stack instance {status.lower()}"


# ---- the report ------------------------------------------------------------------------------------


def coverage(
    aws: Aws,
    config: OrgContainConfig,
    *,
    admin_role: str = DEFAULT_ACCESS_ROLE,
    call_as: str | None = None,
    workers: int = 8,
    clock: Callable[[], float] = time.perf_counter,
) -> Report:
    """Coverage of every ACTIVE account x configured region (``aws`` = management or delegated admin)."""
    start = clock()
    calls_before = aws.counter.total
    regions = list(config.regions)
    orgs = aws.client("organizations")
    cfn = aws.client("cloudformation", config.hub.region)
    admin_id = config.trusted_event_accounts[0]
    notes: list[str] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        f_accounts = pool.submit(list_accounts, orgs)
        f_mgmt = pool.submit(management_account_id, orgs)
        caller = aws.account_id
        mgmt = f_mgmt.result()
        role = call_as or ("SELF" if caller == mgmt else "DELEGATED_ADMIN")
        f_instances = pool.submit(stack_instances, cfn, SPOKE_STACK_SET, role)
        f_tree: Future[OrgTree] | None = pool.submit(walk, orgs) if _needs_ou_tree(config) else None
        f_mgmt_stacks = pool.submit(management_stacks, aws, regions) if caller == mgmt else None
        gd, gd_notes = guardduty_members(aws, admin_id, regions, admin_role, pool)
        notes.extend(gd_notes)
        accounts = f_accounts.result()
        instances, note = f_instances.result()
        if note:
            notes.append(note)
        tree = f_tree.result() if f_tree is not None else None
        mgmt_stacks = f_mgmt_stacks.result() if f_mgmt_stacks is not None else None
    if mgmt_stacks is None:
        notes.append(
            "the management account's own spoke stacks can only be checked with its credentials "
            "(this caller is a delegated administrator)"
        )

    rows: list[Row] = []
    inactive = 0
    for acc in sorted(accounts, key=lambda a: (a.name, a.id)):
        if acc.status != "ACTIVE":
            inactive += 1
            continue
        path = tree.ou_path.get(acc.id, ()) if tree is not None else ()
        mode, reason = effective_mode(config, acc.id, path)
        for region in regions:
            view = gd.get(region)
            guardduty = view.of(acc.id) if view is not None else "unknown"
            if mode is Mode.OFF:
                status, detail = Status.OPTED_OUT, reason or "effective mode off"
            elif acc.id == mgmt:
                stack_status = (mgmt_stacks or {}).get(region, "")
                if stack_status.endswith("_COMPLETE") and "ROLLBACK" not in stack_status:
                    status, detail = Status.COVERED, f"self-managed stack {MANAGEMENT_STACK_NAME}"
                else:
                    status = Status.MANAGEMENT_ACCOUNT
                    detail = (
                        "service-managed StackSets never deploy to the management account: run "
                        "`orgcontain deploy --cover-management-account`, or opt it out in the config "
                        f'(accounts: {{"{acc.id}": {{mode: "off"}}}})'
                    )
            elif (acc.id, region) in instances:
                status, detail = _instance_status(instances[(acc.id, region)])
            else:
                status, detail = Status.MISSING, f"no {SPOKE_STACK_SET} stack instance"
            rows.append(Row(acc.id, acc.name, region, status, detail, guardduty))
    if inactive:
        notes.append(f"{inactive} account(s) not ACTIVE (suspended or closing) were skipped")
    return Report(rows=rows, notes=notes, api_calls=aws.counter.total - calls_before, seconds=clock() - start)
