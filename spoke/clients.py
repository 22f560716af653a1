"""boto3 clients for one member account and region, created on first use and cached.

The hub builds one :class:`SpokeClients` per (account, region) from the assumed spoke-role session
and keeps it while the credentials last. Retries come from botocore's ``standard`` mode (it retries
``RequestLimitExceeded`` and transient errors with capped exponential backoff and a retry quota),
never from hand-written loops; EC2 throttles per account and region, so the default raises the
attempt count above botocore's 3.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from botocore.config import Config

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_elb import ElasticLoadBalancingClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_iam import IAMClient

# botocore's ``max_attempts`` counts retries: 6 retries, 7 attempts in all (standard mode's own
# default is 3 attempts), with its capped exponential backoff and retry quota.
DEFAULT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 6},
    connect_timeout=5,
    read_timeout=20,
    user_agent_extra="orgcontain-spoke",
)


class SpokeClients:
    """Lazily creates and caches boto3 clients (ec2, autoscaling, elbv2, elb, iam) for ONE account+region.

    A caller-supplied ``config`` is merged over :data:`DEFAULT_CONFIG`, so it keeps the standard
    retry mode unless it says otherwise. Thread-safe: the hub may share it across worker threads.
    """

    def __init__(
        self,
        session: boto3.Session,
        region: str,
        *,
        endpoint_url: str | None = None,
        config: Config | None = None,
    ) -> None:
        self.session = session
        self.region = region
        self.endpoint_url = endpoint_url
        self.config = DEFAULT_CONFIG.merge(config) if config is not None else DEFAULT_CONFIG
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _client(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is None:
            with self._lock:
                client = self._clients.get(service)
                if client is None:
                    client = self.session.client(  # type: ignore[call-overload]
                        service,
                        region_name=self.region,
                        endpoint_url=self.endpoint_url,
                        config=self.config,
                    )
                    self._clients[service] = client
        return client

    @property
    def ec2(self) -> EC2Client:
        return self._client("ec2")  # type: ignore[no-any-return]

    @property
    def autoscaling(self) -> AutoScalingClient:
        return self._client("autoscaling")  # type: ignore[no-any-return]

    @property
    def elbv2(self) -> ElasticLoadBalancingv2Client:
        return self._client("elbv2")  # type: ignore[no-any-return]

    @property
    def elb(self) -> ElasticLoadBalancingClient:
        return self._client("elb")  # type: ignore[no-any-return]

    @property
    def iam(self) -> IAMClient:
        return self._client("iam")  # type: ignore[no-any-return]

    def created(self) -> tuple[str, ...]:
        """Services whose client exists already (for tests and diagnostics)."""
        return tuple(self._clients)
