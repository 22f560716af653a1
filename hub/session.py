"""Spoke sessions: the ONE place the hub assumes ``arn:<partition>:iam::<account>:role/<prefix>-<region>``.

- regional STS endpoint of the target region (tokens from the global endpoint are v1, invalid in
  opt-in regions unless the account opts in to v2 tokens);
- role session name ``orgcontain-<finding id>``, sanitised to STS's charset and at most 64 chars;
- credentials cached per (account, region, role) until shortly before they expire, with the
  :class:`spoke.clients.SpokeClients` built on them (so clients are reused across invocations);
  the cached session keeps the name of the finding that opened it: later findings in the same
  account and region reuse it (CloudTrail ties each call to the hub role either way);
- botocore ``standard`` retries; ``AccessDenied`` on AssumeRole raises :class:`SpokeAccessDenied`
  (the role is missing, e.g. a new account the StackSet has not reached yet, or its trust is
  wrong): the finding fails and is retried, with an alarmable metric, never "done".
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.config import Config
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    import boto3

    from spoke.clients import SpokeClients

STS_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=10)
# Refresh this long before expiry, so a containment never runs on credentials about to lapse.
REFRESH_MARGIN_SECONDS = 300.0
# Role chaining (the hub Lambda's role assuming a spoke role) caps sessions at one hour.
SESSION_SECONDS = 3600
_STS_CHARSET = re.compile(r"[^\w+=,.@-]")
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "NoSuchEntity", "NotFoundException"})


class SpokeAccessDenied(RuntimeError):
    """AssumeRole into the spoke role was refused: the role is missing or does not trust the hub."""

    def __init__(self, role_arn: str, code: str, message: str) -> None:
        self.role_arn = role_arn
        self.code = code
        super().__init__(f"cannot assume {role_arn}: {code}: {message}")


def role_session_name(finding_id: str, prefix: str = "orgcontain") -> str:
    """``<prefix>-<finding id>`` in STS's charset ``[\\w+=,.@-]``, 2-64 characters."""
    cleaned = _STS_CHARSET.sub("-", finding_id) or "manual"
    return f"{prefix}-{cleaned}"[:64]


def role_arn(partition: str, account_id: str, role_name: str) -> str:
    return f"arn:{partition}:iam::{account_id}:role/{role_name}"


@dataclass
class _Entry:
    clients: SpokeClients
    expires_at: float  # epoch seconds


class SpokeSessions:
    """Cache of spoke clients per (account, region, role), refreshed before the credentials expire."""

    def __init__(
        self,
        hub_session: boto3.Session | None = None,
        *,
        role_prefix: str = "orgcontain-spoke",
        partition: str = "aws",
        endpoint_url: str | None = None,
        client_config: Config | None = None,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = REFRESH_MARGIN_SECONDS,
        session_factory: Callable[..., boto3.Session] | None = None,
    ) -> None:
        self._hub_session = hub_session
        # Builds the boto3 Session from assumed-role credentials (tests add botocore hooks here).
        self._session_factory = session_factory
        self.role_prefix = role_prefix
        self.partition = partition
        self.endpoint_url = endpoint_url
        self.client_config = client_config
        self._clock = clock
        self._margin = refresh_margin
        self._entries: dict[tuple[str, str, str], _Entry] = {}
        self._sts: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str, str], threading.Lock] = {}

    def _session(self) -> boto3.Session:
        if self._hub_session is None:
            import boto3

            self._hub_session = boto3.Session()
        return self._hub_session

    def _sts_client(self, region: str) -> Any:
        with self._lock:
            client = self._sts.get(region)
            if client is None:
                # The target region's own STS endpoint (botocore resolves sts.<region>.<dns suffix>).
                client = self._session().client(
                    "sts", region_name=region, endpoint_url=self.endpoint_url, config=STS_CONFIG
                )
                self._sts[region] = client
            return client

    def role_name(self, region: str, role_prefix: str | None = None) -> str:
        return f"{role_prefix or self.role_prefix}-{region}"

    def cached(self, account_id: str, region: str, role_prefix: str | None = None) -> SpokeClients | None:
        entry = self._entries.get((account_id, region, self.role_name(region, role_prefix)))
        if entry is not None and entry.expires_at - self._margin > self._clock():
            return entry.clients
        return None

    def clients(
        self, account_id: str, region: str, finding_id: str, role_prefix: str | None = None
    ) -> SpokeClients:
        """Spoke clients for ``account_id``/``region`` (AssumeRole only when nothing valid is cached).

        ``role_prefix`` is the config's ``spoke_role_prefix`` (the config may change at run time)."""
        role = self.role_name(region, role_prefix)
        key = (account_id, region, role)
        found = self.cached(account_id, region, role_prefix)
        if found is not None:
            return found
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one AssumeRole per key even when a batch has several findings for it
            found = self.cached(account_id, region, role_prefix)
            if found is not None:
                return found
            entry = self._assume(account_id, region, role, finding_id)
            self._entries[key] = entry
            return entry.clients

    def _assume(self, account_id: str, region: str, role: str, finding_id: str) -> _Entry:
        from spoke.clients import SpokeClients

        arn = role_arn(self.partition, account_id, role)
        try:
            creds = self._sts_client(region).assume_role(
                RoleArn=arn,
                RoleSessionName=role_session_name(finding_id),
                DurationSeconds=SESSION_SECONDS,
            )["Credentials"]
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in DENIED_CODES:
                raise SpokeAccessDenied(
                    arn, code, str(exc.response.get("Error", {}).get("Message", ""))
                ) from exc
            raise
        factory = self._session_factory or self._member_session
        session = factory(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=region,
        )
        expiration = creds["Expiration"]
        expires_at = expiration.timestamp() if hasattr(expiration, "timestamp") else self._clock() + 900
        clients = SpokeClients(session, region, endpoint_url=self.endpoint_url, config=self.client_config)
        return _Entry(clients, expires_at)

    def _member_session(self, **credentials: Any) -> boto3.Session:
        """A member-account session sharing the hub session's botocore data loader: a new
        botocore session otherwise parses the service models (EC2's is megabytes of JSON) again,
        about 60-100 ms of CPU per account and region on the cold path (issue #8)."""
        import boto3
        import botocore.session

        core = botocore.session.Session()
        core.register_component("data_loader", self._session()._session.get_component("data_loader"))
        return boto3.Session(botocore_session=core, **credentials)

    def forget(self, account_id: str, region: str) -> None:
        self._entries.pop((account_id, region, self.role_name(region)), None)
