"""`orgcontain deploy`: the hub stack, the spoke and forwarder StackSets, the package and the config.

Run with management-account credentials (or a StackSets delegated administrator's). The hub
account is reached through ``--hub-role`` (default ``OrganizationAccountAccessRole``) unless the
caller is already there. In order:

1. the artifact bucket ``orgcontain-artifacts-<hub>-<region>`` and the Lambda package, stored
   under a content-addressed key (an unchanged package is neither uploaded nor redeployed);
2. the config, as canonical JSON, in the SSM parameter the hub reads;
3. the hub stack ``orgcontain-hub`` (created, or updated through a change set);
4. the service-managed StackSet ``orgcontain-spoke`` (auto-deployment on) and its instances in
   every ACTIVE account under the target OUs x configured region;
5. the StackSet ``orgcontain-forwarder``: the GuardDuty admin account (the config's first
   trusted event account) in every configured region.

Every step first compares what exists with what is wanted, so a second run with nothing changed
makes no change, and ``dry_run`` only reads and reports the plan.
"""

from __future__ import annotations

import ast
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError

from hub.config import OrgContainConfig
from stacksets.aws import Aws
from stacksets.org import OrgTree, list_accounts, walk
from stacksets.package import Package
from stacksets.templates import FORWARDER_STACK_SET, HUB_STACK_NAME, SPOKE_STACK_SET, forwarder, hub, spoke

DEFAULT_ACCESS_ROLE = "OrganizationAccountAccessRole"
DEFAULT_CONFIG_PARAMETER = "/orgcontain/config"
HUB_ROLE_NAME = "orgcontain-hub"
MANAGEMENT_STACK_NAME = SPOKE_STACK_SET
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]
MAX_OUS_PER_CALL = 50  # CreateStackInstances limit

# Spoke rollout: regions in parallel, a quarter of the accounts at a time, and a failing account
# (an SCP, an opt-in region not enabled) must not stop the rest of the organization.
SPOKE_PREFERENCES: dict[str, Any] = {
    "RegionConcurrencyType": "PARALLEL",
    "FailureTolerancePercentage": 10,
    "MaxConcurrentPercentage": 25,
    "ConcurrencyMode": "SOFT_FAILURE_TOLERANCE",
}
# Forwarder: one account; every region at once; any failure is an error.
FORWARDER_PREFERENCES: dict[str, Any] = {
    "RegionConcurrencyType": "PARALLEL",
    "FailureToleranceCount": 0,
    "MaxConcurrentCount": 1,
}

_STACK_DONE_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}
_STACK_FAILED = {
    "CREATE_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "UPDATE_ROLLBACK_COMPLETE",
    "UPDATE_ROLLBACK_FAILED",
    "UPDATE_FAILED",
    "DELETE_COMPLETE",
    "DELETE_FAILED",
}


class DeployError(RuntimeError):
    """A deployment step failed; the message is one line, for the CLI."""


@dataclass(frozen=True)
class Change:
    target: str
    action: str  # create | update | add | unchanged
    detail: str = ""

    @property
    def changes_something(self) -> bool:
        return self.action != "unchanged"


class Reporter(Protocol):
    def start(self, what: str) -> None: ...

    def update(self, text: str) -> None: ...

    def finish(self, change: Change) -> None: ...


class NullReporter:
    def start(self, what: str) -> None:
        pass

    def update(self, text: str) -> None:
        pass

    def finish(self, change: Change) -> None:
        pass


@dataclass
class DeployOptions:
    package: Package | None = None
    hub_role: str = DEFAULT_ACCESS_ROLE
    target_ous: Sequence[str] = ()  # empty = the organization root
    operator_role: str = ""
    config_parameter: str = DEFAULT_CONFIG_PARAMETER
    cover_management_account: bool = False
    dry_run: bool = False
    poll_seconds: float = 5.0
    timeout_seconds: float = 3600.0


@dataclass
class DeployResult:
    changes: list[Change] = field(default_factory=list)
    hub_outputs: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(c.changes_something for c in self.changes)


# ---- helpers ----------------------------------------------------------------------------------


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: ClientError) -> str:
    err = exc.response.get("Error", {})
    return str(err.get("Message") or err.get("Code") or exc)


def _params(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


def _param_value(value: Any) -> str:
    """A described parameter value as it was passed (moto renders lists as a Python list)."""
    text = str(value)
    if text.startswith("[") and text.endswith("]"):
        try:
            items = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        if isinstance(items, list):
            return ",".join(str(i) for i in items)
    return text


def _param_diff(current: list[dict[str, Any]] | None, wanted: dict[str, str]) -> list[str]:
    have = {p["ParameterKey"]: _param_value(p.get("ParameterValue", "")) for p in current or []}
    return sorted(k for k, v in wanted.items() if have.get(k) != v)


def config_document(config: OrgContainConfig) -> str:
    """The config as the hub reads it from SSM: canonical JSON (JSON is YAML, so the loader takes it)."""
    return json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def _format_number(value: float) -> str:
    return format(value, "g")


def artifact_bucket_name(account_id: str, region: str) -> str:
    return f"orgcontain-artifacts-{account_id}-{region}"


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def central_bus_arn(config: OrgContainConfig) -> str:
    """The hub bus ARN (deterministic: the bus is named ``orgcontain``)."""
    region = config.hub.region
    return f"arn:{_partition(region)}:events:{region}:{config.hub.account_id}:event-bus/orgcontain"


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


class Deployer:
    def __init__(
        self,
        aws: Aws,
        config: OrgContainConfig,
        options: DeployOptions,
        reporter: Reporter | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.aws = aws
        self.config = config
        self.opts = options
        self.reporter = reporter or NullReporter()
        self._sleep = sleep
        self._clock = clock
        self.result = DeployResult()
        self.call_as = "SELF"
        self.management_account = ""
        self._tree: OrgTree | None = None
        self._active: set[str] | None = None

    # ---- plumbing ----
    def _record(self, change: Change) -> Change:
        self.result.changes.append(change)
        self.reporter.finish(change)
        return change

    def _wait(self, what: str, poll: Callable[[], tuple[bool, str]]) -> None:
        """Poll until ``poll`` says done; it raises on failure and returns (done, status text)."""
        deadline = self._clock() + self.opts.timeout_seconds
        while True:
            done, status = poll()
            self.reporter.update(f"{what}: {status}")
            if done:
                return
            if self._clock() > deadline:
                raise DeployError(f"timed out waiting for {what} (last status {status})")
            self._sleep(self.opts.poll_seconds)

    @property
    def mgmt_cfn(self) -> Any:
        # StackSets live in the management (or delegated admin) account, in the hub's home region.
        return self.aws.client("cloudformation", self.config.hub.region)

    def tree(self) -> OrgTree:
        if self._tree is None:
            self._tree = walk(self.aws.client("organizations"))
        return self._tree

    def active_accounts(self) -> set[str]:
        if self._active is None:
            self._active = {
                a.id for a in list_accounts(self.aws.client("organizations")) if a.status == "ACTIVE"
            }
        return self._active

    # ---- 0. where are we ----
    def preflight(self) -> Aws:
        orgs = self.aws.client("organizations")
        try:
            org = orgs.describe_organization()["Organization"]
        except ClientError as exc:
            raise DeployError(
                f"cannot read the organization with these credentials: {_message(exc)}"
            ) from None
        if org["Id"] != self.config.organization_id:
            raise DeployError(
                f"these credentials belong to organization {org['Id']}, the config names "
                f"{self.config.organization_id}"
            )
        self.management_account = str(org["MasterAccountId"])
        caller = self.aws.account_id
        self.call_as = "SELF" if caller == self.management_account else "DELEGATED_ADMIN"
        admin = self.config.trusted_event_accounts[0]
        if admin == self.management_account:
            raise DeployError(
                f"the GuardDuty admin {admin} is the management account, which service-managed "
                "StackSets cannot deploy to: delegate GuardDuty administration to a member account"
            )
        tree = self.tree()
        unknown = [t for t in self.opts.target_ous if t != tree.root_id and t not in tree.ous()]
        if unknown:
            raise DeployError(f"target OU(s) not in the organization: {', '.join(unknown)}")
        if admin not in tree.ou_path:
            raise DeployError(f"the GuardDuty admin account {admin} is not in the organization")
        try:
            return self.aws.assume(self.config.hub.account_id, self.opts.hub_role, "orgcontain-deploy")
        except ClientError as exc:
            raise DeployError(
                f"cannot reach the hub account {self.config.hub.account_id} through role "
                f"{self.opts.hub_role}: {_message(exc)}"
            ) from None

    # ---- 1. package ----
    def upload_package(self, hub_aws: Aws) -> tuple[str, str]:
        package = self.opts.package
        if package is None:
            raise DeployError("no Lambda package to deploy")
        region = self.config.hub.region
        s3 = hub_aws.client("s3", region)
        bucket = artifact_bucket_name(self.config.hub.account_id, region)
        self.reporter.start(f"artifact bucket {bucket}")
        exists = True
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise DeployError(f"artifact bucket {bucket} is not usable: {_message(exc)}") from None
            exists = False
        if exists:
            self._record(Change(f"artifact bucket {bucket}", "unchanged"))
        else:
            if not self.opts.dry_run:
                self._create_bucket(s3, bucket, region)
            self._record(Change(f"artifact bucket {bucket}", "create"))

        key = package.s3_key
        self.reporter.start(f"Lambda package s3://{bucket}/{key}")
        present = False
        if exists:
            try:
                s3.head_object(Bucket=bucket, Key=key)
                present = True
            except ClientError as exc:
                if _code(exc) not in ("404", "NoSuchKey", "NotFound"):
                    raise DeployError(f"cannot read s3://{bucket}/{key}: {_message(exc)}") from None
        if present:
            self._record(
                Change(f"Lambda package s3://{bucket}/{key}", "unchanged", f"sha256 {package.sha256}")
            )
        else:
            if not self.opts.dry_run:
                with package.path.open("rb") as body:
                    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/zip")
            self._record(
                Change(
                    f"Lambda package s3://{bucket}/{key}",
                    "create",
                    f"{package.size} bytes, sha256 {package.sha256}",
                )
            )
        return bucket, key

    @staticmethod
    def _create_bucket(s3: Any, bucket: str, region: str) -> None:
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )

    # ---- 2. config ----
    def push_config(self, hub_aws: Aws) -> None:
        ssm = hub_aws.client("ssm", self.config.hub.region)
        name = self.opts.config_parameter
        target = f"config parameter {name}"
        self.reporter.start(target)
        document = config_document(self.config)
        try:
            current = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except ClientError as exc:
            if _code(exc) != "ParameterNotFound":
                raise DeployError(f"cannot read {name}: {_message(exc)}") from None
            current = None
        if current == document:
            self._record(Change(target, "unchanged"))
            return
        if not self.opts.dry_run:
            ssm.put_parameter(
                Name=name,
                Value=document,
                Type="String",
                Overwrite=True,
                Tier="Intelligent-Tiering",
                Description="orgcontain configuration (written by orgcontain deploy / config push)",
            )
        self._record(Change(target, "create" if current is None else "update", f"{len(document)} bytes"))

    # ---- 3. stacks ----
    def _describe_stack(self, cfn: Any, name: str) -> dict[str, Any] | None:
        try:
            return dict(cfn.describe_stacks(StackName=name)["Stacks"][0])
        except ClientError as exc:
            if _code(exc) == "ValidationError" and "does not exist" in _message(exc):
                return None
            raise

    def _stack_failure(self, cfn: Any, name: str) -> str:
        try:
            events = cfn.describe_stack_events(StackName=name)["StackEvents"]
        except ClientError:
            return ""
        for ev in reversed(events):
            if str(ev.get("ResourceStatus", "")).endswith("_FAILED") and ev.get("ResourceStatusReason"):
                return f"{ev.get('LogicalResourceId')}: {ev['ResourceStatusReason']}"
        return ""

    def _wait_stack(self, cfn: Any, name: str, what: str) -> dict[str, Any]:
        final: dict[str, Any] = {}

        def poll() -> tuple[bool, str]:
            stack = self._describe_stack(cfn, name)
            status = str(stack["StackStatus"]) if stack else "DELETE_COMPLETE"
            if status in _STACK_FAILED:
                reason = self._stack_failure(cfn, name)
                raise DeployError(f"{what} ended {status}" + (f": {reason}" if reason else ""))
            if status in _STACK_DONE_OK:
                final.update(stack or {})
                return True, status
            return False, status

        self._wait(what, poll)
        return final

    def ensure_stack(
        self, cfn: Any, name: str, body: str, params: dict[str, str], what: str
    ) -> dict[str, Any]:
        """Create or update a stack so it has this template and these parameters; returns it."""
        self.reporter.start(what)
        stack = self._describe_stack(cfn, name)
        if stack is not None and stack["StackStatus"] == "ROLLBACK_COMPLETE":
            raise DeployError(
                f"{what} is in ROLLBACK_COMPLETE after a failed creation: "
                f"delete stack {name} and run deploy again"
            )
        if stack is None:
            if self.opts.dry_run:
                self._record(Change(what, "create"))
                return {}
            cfn.create_stack(
                StackName=name,
                TemplateBody=body,
                Parameters=_params(params),
                Capabilities=CAPABILITIES,
                EnableTerminationProtection=True,
                Tags=[{"Key": "orgcontain:component", "Value": name}],
            )
            created = self._wait_stack(cfn, name, what)
            self._record(Change(what, "create"))
            return created
        changed_params = _param_diff(stack.get("Parameters"), params)
        current_body = cfn.get_template(StackName=name, TemplateStage="Original")["TemplateBody"]
        template_changed = current_body != body
        if not changed_params and not template_changed:
            self._record(Change(what, "unchanged"))
            return stack
        detail = ", ".join(
            (["template"] if template_changed else []) + [f"parameter {p}" for p in changed_params]
        )
        if self.opts.dry_run:
            self._record(Change(what, "update", detail))
            return stack
        change_set = f"orgcontain-{int(self._clock() * 1000)}"
        cfn.create_change_set(
            StackName=name,
            ChangeSetName=change_set,
            ChangeSetType="UPDATE",
            TemplateBody=body,
            Parameters=_params(params),
            Capabilities=CAPABILITIES,
        )
        empty = False

        def change_set_ready() -> tuple[bool, str]:
            nonlocal empty
            cs = cfn.describe_change_set(StackName=name, ChangeSetName=change_set)
            status = str(cs["Status"])
            if status == "FAILED":
                reason = str(cs.get("StatusReason", ""))
                if "didn't contain changes" in reason or "No updates" in reason:
                    empty = True
                    return True, "no changes"
                raise DeployError(f"change set for {what} failed: {reason}")
            return status == "CREATE_COMPLETE", status

        self._wait(f"{what} change set", change_set_ready)
        if empty:
            cfn.delete_change_set(StackName=name, ChangeSetName=change_set)
            self._record(Change(what, "unchanged"))
            return stack
        cfn.execute_change_set(StackName=name, ChangeSetName=change_set)
        updated = self._wait_stack(cfn, name, what)
        self._record(Change(what, "update", detail))
        return updated

    def deploy_hub(self, hub_aws: Aws, bucket: str, key: str) -> dict[str, str]:
        cfn = hub_aws.client("cloudformation", self.config.hub.region)
        params = {
            "OrganizationId": self.config.organization_id,
            "TrustedEventAccounts": ",".join(self.config.trusted_event_accounts),
            "MinSeverity": _format_number(self.config.response.min_severity),
            "SpokeRolePrefix": self.config.spoke_role_prefix,
            "CodeS3Bucket": bucket,
            "CodeS3Key": key,
            "ConfigParameterName": self.opts.config_parameter,
        }
        stack = self.ensure_stack(cfn, HUB_STACK_NAME, hub().body(), params, f"hub stack {HUB_STACK_NAME}")
        outputs = {str(o["OutputKey"]): str(o["OutputValue"]) for o in stack.get("Outputs", [])}
        self.result.hub_outputs = outputs
        return outputs

    # ---- 4/5. StackSets ----
    def _describe_stack_set(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.mgmt_cfn.describe_stack_set(StackSetName=name, CallAs=self.call_as)["StackSet"])
        except ClientError as exc:
            if _code(exc) == "StackSetNotFoundException":
                return None
            raise

    def _wait_operation(self, name: str, operation_id: str, what: str) -> None:
        cfn = self.mgmt_cfn

        def poll() -> tuple[bool, str]:
            op = cfn.describe_stack_set_operation(
                StackSetName=name, OperationId=operation_id, CallAs=self.call_as
            )["StackSetOperation"]
            status = str(op["Status"])
            if status in ("FAILED", "STOPPED"):
                failures = self._op_failures(name, operation_id)
                raise DeployError(f"{what}: StackSet operation {operation_id} {status}{failures}")
            return status == "SUCCEEDED", status

        self._wait(what, poll)

    def _op_failures(self, name: str, operation_id: str) -> str:
        try:
            results = self.mgmt_cfn.list_stack_set_operation_results(
                StackSetName=name, OperationId=operation_id, CallAs=self.call_as
            )["Summaries"]
        except ClientError:
            return ""
        failed = [r for r in results if r.get("Status") == "FAILED"]
        if not failed:
            return ""
        first = failed[0]
        return (
            f" ({len(failed)} instance(s) failed; first {first.get('Account')}/{first.get('Region')}: "
            f"{first.get('StatusReason', '')})"
        )

    def ensure_stack_set(
        self, name: str, body: str, params: dict[str, str], auto_deploy: bool, preferences: dict[str, Any]
    ) -> None:
        what = f"StackSet {name}"
        self.reporter.start(what)
        current = self._describe_stack_set(name)
        auto = {"Enabled": auto_deploy}
        if auto_deploy:
            auto["RetainStacksOnAccountRemoval"] = False
        if current is None:
            if not self.opts.dry_run:
                self.mgmt_cfn.create_stack_set(
                    StackSetName=name,
                    Description=f"orgcontain: {name}",
                    TemplateBody=body,
                    Parameters=_params(params),
                    Capabilities=CAPABILITIES,
                    PermissionModel="SERVICE_MANAGED",
                    AutoDeployment=auto,
                    ManagedExecution={"Active": True},
                    CallAs=self.call_as,
                )
            self._record(Change(what, "create"))
            return
        changed = _param_diff(current.get("Parameters"), params)
        template_changed = current.get("TemplateBody") != body
        current_auto = current.get("AutoDeployment")  # moto does not return it
        auto_changed = current_auto is not None and bool(current_auto.get("Enabled")) != auto_deploy
        if not changed and not template_changed and not auto_changed:
            self._record(Change(what, "unchanged"))
            return
        detail = ", ".join(
            (["template"] if template_changed else [])
            + [f"parameter {p}" for p in changed]
            + (["auto-deployment"] if auto_changed else [])
        )
        if not self.opts.dry_run:
            op = self.mgmt_cfn.update_stack_set(
                StackSetName=name,
                TemplateBody=body,
                Parameters=_params(params),
                Capabilities=CAPABILITIES,
                AutoDeployment=auto,
                OperationPreferences=preferences,
                CallAs=self.call_as,
            )
            self._wait_operation(name, str(op["OperationId"]), f"{what} update")
        self._record(Change(what, "update", detail + " (all instances)"))

    def _instances(self, name: str) -> set[tuple[str, str]]:
        if self.opts.dry_run and self._describe_stack_set(name) is None:
            return set()
        pairs: set[tuple[str, str]] = set()
        paginator = self.mgmt_cfn.get_paginator("list_stack_instances")
        for page in paginator.paginate(StackSetName=name, CallAs=self.call_as):
            for s in page["Summaries"]:
                pairs.add((str(s["Account"]), str(s["Region"])))
        return pairs

    def ensure_instances(
        self,
        name: str,
        wanted: set[tuple[str, str]],
        targets: dict[str, Any],
        preferences: dict[str, Any],
    ) -> None:
        what = f"{name} instances"
        self.reporter.start(what)
        missing = sorted(wanted - self._instances(name))
        if not missing:
            self._record(Change(what, "unchanged", f"{len(wanted)} account-region(s)"))
            return
        accounts = sorted({a for a, _ in missing})
        regions = sorted({r for _, r in missing})
        detail = f"{len(missing)} to add: " + ", ".join(f"{a}/{r}" for a, r in missing[:20])
        if len(missing) > 20:
            detail += f", ... ({len(missing) - 20} more)"
        if not self.opts.dry_run:
            ous = list(targets["OrganizationalUnitIds"])
            for batch in _chunks(ous, MAX_OUS_PER_CALL):
                op = self.mgmt_cfn.create_stack_instances(
                    StackSetName=name,
                    DeploymentTargets={**targets, "OrganizationalUnitIds": batch},
                    Regions=regions,
                    OperationPreferences=preferences,
                    CallAs=self.call_as,
                )
                self._wait_operation(name, str(op["OperationId"]), f"{what} ({len(accounts)} account(s))")
        self._record(Change(what, "add", detail))

    def deploy_spoke(self) -> None:
        params = {
            "OrganizationId": self.config.organization_id,
            "HubAccountId": self.config.hub.account_id,
            "HubRoleName": HUB_ROLE_NAME,
            "OperatorRoleName": self.opts.operator_role,
            "RolePrefix": self.config.spoke_role_prefix,
            "AllowRoleSessionRevocation": str(self.config.response.revoke_role_sessions).lower(),
        }
        self.ensure_stack_set(SPOKE_STACK_SET, spoke().body(), params, True, SPOKE_PREFERENCES)
        tree = self.tree()
        targets = list(self.opts.target_ous) or [tree.root_id]
        accounts = (tree.accounts_under(targets) & self.active_accounts()) - {self.management_account}
        wanted = {(a, r) for a in accounts for r in self.config.regions}
        self.ensure_instances(SPOKE_STACK_SET, wanted, {"OrganizationalUnitIds": targets}, SPOKE_PREFERENCES)

    def deploy_forwarder(self, bus_arn: str) -> None:
        params = {
            "CentralBusArn": bus_arn,
            "MinSeverity": _format_number(self.config.response.min_severity),
        }
        self.ensure_stack_set(FORWARDER_STACK_SET, forwarder().body(), params, False, FORWARDER_PREFERENCES)
        admin = self.config.trusted_event_accounts[0]
        tree = self.tree()
        path = tree.ou_path[admin]
        parent = path[-1] if path else tree.root_id
        targets = {
            "OrganizationalUnitIds": [parent],
            "Accounts": [admin],
            "AccountFilterType": "INTERSECTION",
        }
        wanted = {(admin, r) for r in self.config.regions}
        self.ensure_instances(FORWARDER_STACK_SET, wanted, targets, FORWARDER_PREFERENCES)

    def cover_management_account(self) -> None:
        """The remedy for the StackSets gap: a plain spoke stack per region in the management account."""
        if self.aws.account_id != self.management_account:
            raise DeployError("--cover-management-account needs the management account's credentials")
        params = {
            "OrganizationId": self.config.organization_id,
            "HubAccountId": self.config.hub.account_id,
            "HubRoleName": HUB_ROLE_NAME,
            "OperatorRoleName": self.opts.operator_role,
            "RolePrefix": self.config.spoke_role_prefix,
            "AllowRoleSessionRevocation": str(self.config.response.revoke_role_sessions).lower(),
        }
        body = spoke().body()
        for region in self.config.regions:
            cfn = self.aws.client("cloudformation", region)
            self.ensure_stack(
                cfn,
                MANAGEMENT_STACK_NAME,
                body,
                params,
                f"management-account stack {MANAGEMENT_STACK_NAME} ({region})",
            )

    def run(self) -> DeployResult:
        hub_aws = self.preflight()
        bucket, key = self.upload_package(hub_aws)
        self.push_config(hub_aws)
        outputs = self.deploy_hub(hub_aws, bucket, key)
        self.deploy_spoke()
        self.deploy_forwarder(outputs.get("CentralBusArn") or central_bus_arn(self.config))
        if self.opts.cover_management_account:
            self.cover_management_account()
        return self.result


def deploy(
    aws: Aws,
    config: OrgContainConfig,
    options: DeployOptions,
    reporter: Reporter | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployResult:
    return Deployer(aws, config, options, reporter, sleep=sleep).run()


def package_from_file(path: Path) -> Package:
    """A prebuilt zip (``deploy --package``) as a :class:`Package`."""
    from stacksets.package import sha256_of

    if not path.is_file():
        raise DeployError(f"package {path} does not exist (build it with `orgcontain package`)")
    return Package(path=path, sha256=sha256_of(path), size=path.stat().st_size, files=0)
