"""The organization as the hub sees it: account status and OU path, cached with a TTL.

The hub runs in the security account, a delegated administrator: it can read the org. Lookups
are cached per warm container (findings for one account come in bursts) and repeated only after
the TTL, so a suspended or moved account is noticed within minutes. Lookup failures other than
"not in the organization" raise :class:`OrgLookupFailed`: trust that cannot be verified is a
retryable failure, never a pass.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from typing import Any

from botocore.exceptions import ClientError

NOT_IN_ORG_CODES = frozenset({"AccountNotFoundException", "ChildNotFoundException"})


class OrgLookupFailed(RuntimeError):
    """The Organizations lookup failed for a reason other than "no such account"."""

    def __init__(self, account_id: str, code: str, message: str) -> None:
        self.account_id = account_id
        self.code = code
        super().__init__(f"Organizations lookup for account {account_id} failed: {code}: {message}")


class NotInOrganization(OrgLookupFailed):
    """The account (or OU) is not part of the organization."""


class OrgView:
    def __init__(
        self,
        client_factory: Callable[[], Any],
        *,
        ttl_seconds: float = 300.0,
        negative_ttl_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = client_factory
        self._client: Any = None
        self._ttl = ttl_seconds
        self._negative_ttl = negative_ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._status: dict[str, tuple[float, str | None]] = {}
        self._parent: dict[str, tuple[float, tuple[str, str]]] = {}  # child -> (expiry, (id, type))

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._factory()
            return self._client

    def cached_status(self, account_id: str) -> tuple[bool, str | None]:
        """(hit, status) from the cache only, without a call."""
        entry = self._status.get(account_id)
        if entry is not None and entry[0] > self._clock():
            return True, entry[1]
        return False, None

    def account_status(self, account_id: str) -> str | None:
        """``ACTIVE``, ``SUSPENDED``, ``PENDING_CLOSURE``...; None when not in the organization."""
        hit, status = self.cached_status(account_id)
        if hit:
            return status
        try:
            account = self.client.describe_account(AccountId=account_id)["Account"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in NOT_IN_ORG_CODES:
                self._status[account_id] = (self._clock() + self._negative_ttl, None)
                return None
            raise OrgLookupFailed(account_id, code, str(exc)) from exc
        # Newer responses carry State (ACTIVE, SUSPENDED, PENDING_CLOSURE, CLOSED...); older Status.
        status = str(account.get("State") or account.get("Status") or "UNKNOWN")
        self._status[account_id] = (self._clock() + self._ttl, status)
        return status

    def _parent_of(self, child: str, account_id: str) -> tuple[str, str]:
        entry = self._parent.get(child)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        try:
            parents = self.client.list_parents(ChildId=child)["Parents"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in NOT_IN_ORG_CODES:
                raise NotInOrganization(account_id, code, str(exc)) from exc
            raise OrgLookupFailed(account_id, code, str(exc)) from exc
        if not parents:
            raise OrgLookupFailed(account_id, "NoParent", f"{child} has no parent")
        parent = (str(parents[0]["Id"]), str(parents[0]["Type"]))
        self._parent[child] = (self._clock() + self._ttl, parent)
        return parent

    def ou_path(self, account_id: str, stop_at: Collection[str] = ()) -> tuple[str, ...]:
        """OU ids from the root down to the account's OU.

        With ``stop_at`` (the OUs the config names) the walk up stops at the first of them: the
        nearest configured OU is all the policy needs, and each level costs a round trip when
        cold. The result is then the path from that OU down.
        """
        path: list[str] = []
        child = account_id
        for _ in range(8):  # Organizations nests OUs at most five deep under the root
            parent_id, parent_type = self._parent_of(child, account_id)
            if parent_type == "ROOT":
                break
            path.append(parent_id)
            if parent_id in stop_at:
                break
            child = parent_id
        return tuple(reversed(path))

    def invalidate(self) -> None:
        self._status.clear()
        self._parent.clear()
