"""Reads of the AWS Organization that deploy and coverage need: accounts, OUs, the management account.

All listings are paginated; the OU tree is walked breadth-first with a small thread pool, because
an organization of a few hundred accounts has tens of OUs and each level costs a round trip.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

# Organizations allows about 1 request per second sustained per account for some calls and
# throttles bursts; a handful of workers is plenty.
_WORKERS = 4


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    status: str


@dataclass
class OrgTree:
    """Accounts and OUs below one parent: ``ou_path[account]`` is the OU ids from the root down."""

    root_id: str
    children: dict[str, list[str]] = field(default_factory=dict)  # parent -> child OU ids
    accounts: dict[str, list[str]] = field(default_factory=dict)  # parent -> account ids
    ou_path: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def accounts_under(self, parent_ids: Iterable[str]) -> set[str]:
        """Every account in the given OUs (or root) and all OUs nested in them, as StackSets targets."""
        found: set[str] = set()
        stack = list(parent_ids)
        seen: set[str] = set()
        while stack:
            parent = stack.pop()
            if parent in seen:
                continue
            seen.add(parent)
            found.update(self.accounts.get(parent, []))
            stack.extend(self.children.get(parent, []))
        return found

    def ous(self) -> set[str]:
        return {ou for kids in self.children.values() for ou in kids}


def list_accounts(orgs: Any) -> list[Account]:
    accounts = []
    for page in orgs.get_paginator("list_accounts").paginate():
        for acc in page["Accounts"]:
            accounts.append(Account(str(acc["Id"]), str(acc.get("Name", "")), str(acc.get("Status", ""))))
    return accounts


def root_id(orgs: Any) -> str:
    return str(orgs.list_roots()["Roots"][0]["Id"])


def management_account_id(orgs: Any) -> str:
    return str(orgs.describe_organization()["Organization"]["MasterAccountId"])


def _children(orgs: Any, parent: str) -> tuple[list[str], list[str]]:
    ous = [
        str(ou["Id"])
        for page in orgs.get_paginator("list_organizational_units_for_parent").paginate(ParentId=parent)
        for ou in page["OrganizationalUnits"]
    ]
    accounts = [
        str(acc["Id"])
        for page in orgs.get_paginator("list_accounts_for_parent").paginate(ParentId=parent)
        for acc in page["Accounts"]
    ]
    return ous, accounts


def walk(orgs: Any, root: str | None = None) -> OrgTree:
    """The OU tree under ``root`` (default: the organization root), level by level."""
    top = root or root_id(orgs)
    tree = OrgTree(root_id=top)
    paths: dict[str, tuple[str, ...]] = {top: ()}
    level = [top]
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        while level:
            results = list(pool.map(lambda parent: _children(orgs, parent), level))
            next_level: list[str] = []
            for parent, (ous, accounts) in zip(level, results, strict=True):
                tree.children[parent] = ous
                tree.accounts[parent] = accounts
                base = paths[parent]
                for ou in ous:
                    paths[ou] = (*base, ou)
                for account in accounts:
                    tree.ou_path[account] = base
                next_level.extend(ous)
            level = next_level
    return tree
