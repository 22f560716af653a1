"""AWS access for the rollout commands: one session, cached clients, other accounts by AssumeRole.

Every client uses botocore's ``standard`` retry mode (CloudFormation and Organizations throttle
hard on large organizations) and counts its API calls, so ``coverage`` can report what it cost.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 10},
    connect_timeout=10,
    read_timeout=60,
    user_agent_extra="orgcontain-rollout",
    max_pool_connections=32,
)


@dataclass
class CallCounter:
    """Thread-safe count of API calls by ``service.Operation`` (shared by assumed sessions)."""

    counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.counts[f"{model.service_model.service_name}.{model.name}"] += 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())


class Aws:
    """A boto3 session in one account, with clients created on first use and cached per region."""

    def __init__(
        self,
        session: boto3.Session,
        *,
        region: str,
        endpoint_url: str | None = None,
        counter: CallCounter | None = None,
        account_id: str | None = None,
    ) -> None:
        self.session = session
        self.region = region
        self.endpoint_url = endpoint_url
        self.counter = counter or CallCounter()
        self._account_id = account_id
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_profile(cls, *, profile: str | None, region: str, endpoint_url: str | None = None) -> Aws:
        return cls(boto3.Session(profile_name=profile), region=region, endpoint_url=endpoint_url)

    def client(self, service: str, region: str | None = None) -> Any:
        key = (service, region or self.region)
        client = self._clients.get(key)
        if client is None:
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    client = self.session.client(  # type: ignore[call-overload]
                        service, region_name=key[1], endpoint_url=self.endpoint_url, config=DEFAULT_CONFIG
                    )
                    client.meta.events.register("before-call", self.counter)
                    self._clients[key] = client
        return client

    @property
    def account_id(self) -> str:
        if self._account_id is None:
            self._account_id = str(self.client("sts").get_caller_identity()["Account"])
        return self._account_id

    def assume(self, account_id: str, role_name: str, session_name: str = "orgcontain-rollout") -> Aws:
        """This session's view of ``account_id`` through ``role_name`` (itself when already there)."""
        if account_id == self.account_id:
            return self
        partition = "aws"
        if self.region.startswith("cn-"):
            partition = "aws-cn"
        elif self.region.startswith("us-gov-"):
            partition = "aws-us-gov"
        creds = self.client("sts").assume_role(
            RoleArn=f"arn:{partition}:iam::{account_id}:role/{role_name}", RoleSessionName=session_name
        )["Credentials"]
        session = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )
        return Aws(
            session,
            region=self.region,
            endpoint_url=self.endpoint_url,
            counter=self.counter,
            account_id=account_id,
        )
