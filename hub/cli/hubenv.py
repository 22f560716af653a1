"""Where the hub's resources are, for the operator commands (`isolate`, `release`, `status`, `redrive`).

The CLI finds the hub's ledger table, topic and result bus from the same environment variables as
the hub Lambda (``ORGCONTAIN_LEDGER_TABLE``, ``ORGCONTAIN_TOPIC_ARN``, ``ORGCONTAIN_EVENT_BUS``)
when they are set, else from the outputs of the ``orgcontain-hub`` stack in the hub account and
home region. The queues only `redrive` needs are stack outputs too (``QueueUrl``,
``DeadLetterQueueUrl``); ``ORGCONTAIN_QUEUE_URL`` / ``ORGCONTAIN_DEAD_LETTER_QUEUE_URL`` override
them for local runs.

The stack is read only when a value the command needs is not in the environment, and then once;
a value set in the environment always wins over the stack's.

:class:`AwsContext` is the one place the operator commands make boto3 sessions and clients
(``--profile``, ``--region``, ``--endpoint-url``; botocore ``standard`` retries). Functions in
:data:`SESSION_HOOKS` are called with every session it makes, before any client exists: tests
register botocore event handlers there (fault injection, stubs for operations moto lacks), as they
would on a client.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hub.cli.common import CliError

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config

STACK_NAME = "orgcontain-hub"
MAX_ATTEMPTS = 5  # botocore standard retry mode: throttling and transient errors


def client_config(max_attempts: int = MAX_ATTEMPTS) -> Config:
    """The CLI's client settings (botocore imported here, not when the CLI starts)."""
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=30,
        user_agent_extra="orgcontain-cli",
    )


SessionHook = Callable[["boto3.Session"], None]
SESSION_HOOKS: list[SessionHook] = []


@dataclass(frozen=True)
class Resource:
    """One hub resource: its attribute here, its environment variable, its stack output."""

    key: str
    env: str | None
    output: str
    what: str


RESOURCES: tuple[Resource, ...] = (
    Resource("table", "ORGCONTAIN_LEDGER_TABLE", "LedgerTableName", "ledger table"),
    Resource("topic_arn", "ORGCONTAIN_TOPIC_ARN", "TopicArn", "notification topic"),
    Resource("bus", "ORGCONTAIN_EVENT_BUS", "CentralBusArn", "result event bus"),
    Resource("queue_url", "ORGCONTAIN_QUEUE_URL", "QueueUrl", "findings queue"),
    Resource("dlq_url", "ORGCONTAIN_DEAD_LETTER_QUEUE_URL", "DeadLetterQueueUrl", "dead-letter queue"),
    Resource("hub_role_arn", None, "HubRoleArn", "hub function role"),
    Resource("function_name", None, "FunctionName", "hub function"),
)
_BY_KEY = {r.key: r for r in RESOURCES}


class HubEnvError(CliError):
    """The hub's resources could not be found; the message says where we looked and what to set."""


@dataclass(frozen=True)
class HubResources:
    table: str | None = None
    topic_arn: str | None = None
    bus: str | None = None
    queue_url: str | None = None
    dlq_url: str | None = None
    hub_role_arn: str | None = None
    function_name: str | None = None
    # resource key -> where its value came from ("env ORGCONTAIN_..." or "stack orgcontain-hub")
    sources: dict[str, str] = field(default_factory=dict)


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The resources the environment names (empty values count as unset)."""
    env = os.environ if environ is None else environ
    found: dict[str, str] = {}
    for res in RESOURCES:
        if res.env and env.get(res.env):
            found[res.key] = env[res.env]
    return found


def stack_outputs(cloudformation: Any, stack_name: str = STACK_NAME) -> dict[str, str] | None:
    """The stack's outputs by key, or None when there is no such stack."""
    from botocore.exceptions import ClientError

    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        err = exc.response.get("Error", {})
        # CloudFormation answers a missing stack with a ValidationError naming it.
        if err.get("Code") == "ValidationError" and "does not exist" in str(err.get("Message", "")):
            return None
        raise
    if not stacks:
        return None
    return {str(o["OutputKey"]): str(o.get("OutputValue", "")) for o in stacks[0].get("Outputs", [])}


def find_hub_resources(
    cloudformation: Callable[[], Any],
    *,
    need: Collection[str],
    environ: Mapping[str, str] | None = None,
    stack_name: str = STACK_NAME,
    where: Callable[[], str] | str = "",
) -> HubResources:
    """The hub's resources: the environment first, the stack's outputs for what it leaves unset.

    ``need`` lists the keys (see :data:`RESOURCES`) the command cannot work without; the stack is
    read only when one of them is missing from the environment. ``where`` (account and region)
    (account and region, or a function that says it) goes into the error message.
    """
    unknown = set(need) - set(_BY_KEY)
    if unknown:
        raise ValueError(f"unknown hub resources: {', '.join(sorted(unknown))}")
    values = from_environment(environ)
    sources = {key: f"env {_BY_KEY[key].env}" for key in values}
    missing = [key for key in need if key not in values]
    if missing:
        outputs = stack_outputs(cloudformation(), stack_name)
        if outputs is None:
            where = where() if callable(where) else where
            names = ", ".join(str(_BY_KEY[k].env) for k in missing if _BY_KEY[k].env)
            raise HubEnvError(
                f"no stack {stack_name}{' in ' + where if where else ''} to read the hub's "
                f"{', '.join(_BY_KEY[k].what for k in missing)} from: deploy the hub "
                f"(`orgcontain deploy`), pass the hub's --region/--profile, or set {names}"
            )
        for res in RESOURCES:
            if res.key not in values and outputs.get(res.output):
                values[res.key] = outputs[res.output]
                sources[res.key] = f"stack {stack_name} output {res.output}"
        still = [key for key in need if key not in values]
        if still:
            where = where() if callable(where) else where
            raise HubEnvError(
                f"stack {stack_name}{' in ' + where if where else ''} has no output "
                + ", ".join(_BY_KEY[k].output for k in still)
                + ": is it an orgcontain hub stack, and fully created?"
            )
    return HubResources(**values, sources=sources)


class AwsContext:
    """The operator's AWS session and clients (``--profile``/``--region``/``--endpoint-url``)."""

    def __init__(
        self, *, profile: str | None = None, region: str | None = None, endpoint_url: str | None = None
    ) -> None:
        self.profile = profile
        self.region = region
        self.endpoint_url = endpoint_url
        self._session: boto3.Session | None = None
        self._clients: dict[tuple[str, str | None, int | None], Any] = {}
        self._identity: dict[str, str] | None = None
        self._lock = threading.Lock()

    @property
    def session(self) -> boto3.Session:
        if self._session is None:
            import boto3

            self._session = hooked(boto3.Session(profile_name=self.profile, region_name=self.region))
            if self.region is None:
                self.region = self._session.region_name
        return self._session

    def client(self, service: str, region: str | None = None, *, max_attempts: int | None = None) -> Any:
        """A client, made on first use and cached; ``max_attempts`` overrides the retry budget."""
        key = (service, region or self.region, max_attempts)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self.session.client(  # type: ignore[call-overload]
                    service,
                    region_name=region or self.region,
                    endpoint_url=self.endpoint_url,
                    config=client_config(max_attempts or MAX_ATTEMPTS),
                )
                self._clients[key] = client
            return client

    def with_credentials(self, credentials: Mapping[str, Any]) -> AwsContext:
        """A context in the same region and endpoint on other credentials (an assumed role's)."""
        import boto3

        other = AwsContext(region=self.region, endpoint_url=self.endpoint_url)
        other._session = hooked(
            boto3.Session(
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
                region_name=self.region,
            )
        )
        return other

    def identity(self) -> dict[str, str]:
        """``sts:GetCallerIdentity`` of these credentials (Account, Arn, UserId), once."""
        if self._identity is None:
            got = self.client("sts").get_caller_identity()
            self._identity = {k: str(got.get(k, "")) for k in ("Account", "Arn", "UserId")}
        return self._identity

    @property
    def partition(self) -> str:
        """The partition of the region (no call): ``aws``, ``aws-cn`` or ``aws-us-gov``."""
        region = self.region or self.session.region_name or ""
        if region.startswith("cn-"):
            return "aws-cn"
        if region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

    def resources(self, need: Collection[str], environ: Mapping[str, str] | None = None) -> HubResources:
        return find_hub_resources(
            lambda: self.client("cloudformation"),
            need=need,
            environ=environ,
            where=self.describe_location,
        )

    def describe_location(self) -> str:
        """``account A region R`` for messages (the account only when STS can say it)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            account: str | None = self.identity()["Account"]
        except (ClientError, BotoCoreError):
            account = None
        region = self.region or "(no region)"
        return f"account {account} region {region}" if account else f"region {region}"


def hooked(session: boto3.Session) -> boto3.Session:
    """Run the :data:`SESSION_HOOKS` on a session the CLI made (tests register event handlers)."""
    for hook in SESSION_HOOKS:
        hook(session)
    return session


def operator_name(caller_arn: str) -> str:
    """Who the caller is, for session names: the user, or the session of an assumed role.

    ``arn:aws:iam::1:user/alice`` -> ``alice``; ``arn:aws:sts::1:assumed-role/Ops/alice@x`` ->
    ``alice@x``; ``arn:aws:iam::1:root`` -> ``root``.
    """
    resource = caller_arn.split(":", 5)[-1] if caller_arn.count(":") >= 5 else caller_arn
    return resource.rsplit("/", 1)[-1] or "operator"
