"""Operator commands: break-glass `isolate`, `release`, `status` of incidents, `redrive` of the DLQ.

`isolate` and `release` run the hub's own engine (:class:`hub.responder.Responder`): the same
spoke role, ledger, lock, notifications and result events as the Lambda; nothing here decides or
contains. What this module adds is the operator's side: input checked before any AWS call (usage
errors exit 2), the caller's identity (``sts:GetCallerIdentity``) recorded with the reason, the
operator's name in the role session names, tables for people, JSON for machines, and one clear
line with exit 1 for every failure (never a traceback).

Where the hub's table, topic, bus and queues are: :mod:`hub.cli.hubenv`.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.markup import escape

from hub.cli.app import app
from hub.cli.common import (
    CliError,
    ConfigOpt,
    EndpointOpt,
    JsonOpt,
    ProfileOpt,
    RegionOpt,
    print_json,
    stderr,
)
from hub.cli.hubenv import AwsContext, HubResources, operator_name

if TYPE_CHECKING:
    import boto3

    from hub.config import OrgContainConfig
    from hub.ledger import Incident, Ledger
    from hub.outcome import Outcome
    from hub.responder import Responder
    from hub.session import SpokeSessions
    from spoke.clients import SpokeClients

DEFAULT_CONFIG = "config/orgcontain.yaml"
ACCOUNT_RE = re.compile(r"^\d{12}$")
INSTANCE_RE = re.compile(r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
WIDE = 200  # table width when stdout is not a terminal (pipes, CI logs): no wrapped ids

# redrive
PEEK_VISIBILITY_SECONDS = 30  # how long peeked DLQ messages stay hidden (reset to 0 right after)
MOVE_VISIBILITY_SECONDS = 120  # fallback: time to send one batch on and delete it from the DLQ
MOVE_TASK_POLL_SECONDS = 2.0
MOVE_TASK_DONE = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
# Codes with which SQS (or an endpoint that emulates it) says the move-task API is not there.
MOVE_TASK_UNSUPPORTED = frozenset(
    {"UnsupportedOperation", "InvalidAction", "NotImplemented", "InternalFailure", "InternalError"}
)

CLIENT_HINTS = {
    "ExpiredToken": "the credentials have expired: refresh them (e.g. `aws sso login`) and retry",
    "ExpiredTokenException": "the credentials have expired: refresh them (e.g. `aws sso login`) and retry",
    "InvalidClientTokenId": "the credentials are not valid here: check --profile and --region",
    "UnrecognizedClientException": "the credentials are not valid here: check --profile and --region",
    "SignatureDoesNotMatch": "the secret key does not match: check --profile",
    "AccessDenied": "these credentials lack that permission (the operator role has it: --operator-role)",
    "AccessDeniedException": "these credentials lack that permission (the operator role: --operator-role)",
    "ResourceNotFoundException": "is the hub deployed in this account and region (--region, --profile)?",
    "AWS.SimpleQueueService.NonExistentQueue": "is the hub deployed in this account and region?",
    "QueueDoesNotExist": "is the hub deployed in this account and region?",
}

OperatorRoleOpt = Annotated[
    str | None,
    typer.Option(
        "--operator-role",
        envvar="ORGCONTAIN_OPERATOR_ROLE",
        help="Assume this role in the hub account first (name or ARN): the break-glass role the spoke "
        "roles trust, or orgcontain-hub. Default: use the credentials as they are.",
    ),
]
ReasonOpt = Annotated[
    str,
    typer.Option("--reason", help="Why (recorded in the ledger and the notification).", show_default=False),
]


# ---- shared: failures, config, AWS --------------------------------------------------------------


def fail(message: str, code: int = 1) -> NoReturn:
    """One red line on stderr, then exit ``code`` (1: failure)."""
    stderr.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def usage(message: str, param: str) -> NoReturn:
    """A usage error (exit 2), raised before any AWS call."""
    raise typer.BadParameter(message, param_hint=param)


def say(message: str) -> None:
    """Progress and notes for people: stderr, so stdout stays clean for --json."""
    stderr.print(escape(message), highlight=False, soft_wrap=True)


def client_error_line(exc: Any) -> str:
    err = exc.response.get("Error", {})
    code = str(err.get("Code", "") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    message = str(err.get("Message", "")).strip()
    op = getattr(exc, "operation_name", "") or "AWS call"
    line = f"{op} failed: {code}" + (f": {message}" if message else "")
    hint = CLIENT_HINTS.get(code)
    return f"{line} ({hint})" if hint else line


def quiet_library_logs() -> None:
    """The engine logs for CloudWatch; on a terminal its warnings would repeat, unformatted, what the
    command prints itself (Python's last-resort handler prints WARNING records of an unconfigured
    logger). A NullHandler stops that; a logging setup of the caller's own still gets the records."""
    import logging

    for name in ("hub", "spoke"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())


@contextmanager
def boundary() -> Iterator[None]:
    """Every expected failure of an operator command ends here as one line and exit 1."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
        ReadTimeoutError,
    )

    from hub.ledger import LockConflict
    from hub.orgview import OrgLookupFailed
    from hub.responder import ResponderError
    from hub.session import SpokeAccessDenied

    quiet_library_logs()
    try:
        yield
    except NoCredentialsError:
        fail("no AWS credentials: pass --profile or set AWS_PROFILE (or log in, e.g. `aws sso login`)")
    except PartialCredentialsError as exc:
        fail(f"incomplete AWS credentials ({exc}): check --profile or the AWS_* variables")
    except ProfileNotFound as exc:
        fail(f"{exc}: pass an existing --profile (`aws configure list-profiles` lists them)")
    except NoRegionError:
        fail("no AWS region: pass --region or set hub.region in the config")
    except EndpointConnectionError as exc:
        fail(f"cannot reach {exc.kwargs.get('endpoint_url')}: check --endpoint-url, --region and the network")
    except (ConnectTimeoutError, ReadTimeoutError) as exc:
        fail(f"AWS did not answer in time ({exc}); try again")
    except ClientError as exc:
        fail(client_error_line(exc))
    except BotoCoreError as exc:
        fail(f"AWS call failed: {exc}")
    except (ResponderError, CliError, OrgLookupFailed, SpokeAccessDenied) as exc:
        fail(str(exc))
    except LockConflict as exc:
        fail(f"the ledger changed under us ({exc}); run `orgcontain status` and try again")


def load_config(path: str) -> OrgContainConfig:
    """The validated config; a missing file is a usage error (2), an invalid one a failure (1)."""
    from hub.config import ConfigError, load_config_file

    if not Path(path).is_file():
        usage(f"config file {path} not found (pass --config FILE)", "'--config'")
    try:
        return load_config_file(path)
    except ConfigError as exc:
        first = str(exc.issues[0]) if exc.issues else "invalid"
        more = f" (+{len(exc.issues) - 1} more)" if len(exc.issues) > 1 else ""
        fail(
            f"{path} is not a valid orgcontain config: {first}{more}; see `orgcontain config validate {path}`"
        )


def check_target(config: OrgContainConfig, account: str, region: str, instance: str) -> None:
    """ACCOUNT, REGION and INSTANCE as an operator typed them: usage errors, before any AWS call."""
    if not ACCOUNT_RE.fullmatch(account):
        usage(f"{account!r} is not an AWS account id (12 digits)", "'ACCOUNT'")
    if region not in config.regions:
        usage(
            f"{region!r} is not one of the config's regions ({', '.join(config.regions)}): "
            "no spoke role there",
            "'REGION'",
        )
    check_instance_id(instance)


def check_instance_id(instance: str) -> None:
    if not INSTANCE_RE.fullmatch(instance):
        usage(f"{instance!r} is not an EC2 instance id (i- and 8 or 17 hex digits)", "'INSTANCE'")


def check_reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        usage("say why (it is recorded with your identity)", "'--reason'")
    return text


def release_command(account: str, region: str, instance: str) -> str:
    return f'orgcontain release {account} {region} {instance} --reason "<why it is safe to release>"'


def stdout_console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else WIDE, highlight=False)


def operator_sessions(hub_session: boto3.Session, *, operator: str, **kwargs: Any) -> SpokeSessions:
    """The hub's spoke sessions, with the operator's name in every role session name.

    CloudTrail in the member account then shows who acted (``orgcontain-operator-<name>``), not a
    made-up finding id. (The class is made here so that the CLI starts without botocore.)
    """
    from hub.session import SpokeSessions

    class OperatorSessions(SpokeSessions):
        def clients(
            self, account_id: str, region: str, finding_id: str, role_prefix: str | None = None
        ) -> SpokeClients:
            return super().clients(account_id, region, f"operator-{operator}", role_prefix)

    return OperatorSessions(hub_session, **kwargs)


@dataclass
class Operator:
    """Who acts, and through which hub-account credentials."""

    caller_arn: str
    name: str
    hub: AwsContext  # the caller's context, or the assumed operator role's
    via_role: str | None = None


def operator_context(ctx: AwsContext, config: OrgContainConfig, operator_role: str | None) -> Operator:
    """The caller's identity; with ``operator_role``, that role assumed in the hub account."""
    from hub.session import role_session_name

    identity = ctx.identity()
    caller, name = identity["Arn"], operator_name(identity["Arn"])
    if not operator_role:
        if identity["Account"] != config.hub.account_id:
            say(
                f"warning: these credentials are for account {identity['Account']}; the config's hub "
                f"account is {config.hub.account_id} (pass --profile or --operator-role)"
            )
        return Operator(caller, name, ctx)
    role_arn = (
        operator_role
        if operator_role.startswith("arn:")
        else f"arn:{ctx.partition}:iam::{config.hub.account_id}:role/{operator_role}"
    )
    say(f"assuming {role_arn} as {name} ...")
    creds = ctx.client("sts").assume_role(
        RoleArn=role_arn, RoleSessionName=role_session_name(f"operator-{name}"), DurationSeconds=3600
    )["Credentials"]
    return Operator(caller, name, ctx.with_credentials(creds), via_role=role_arn)


def build_responder(op: Operator, config: OrgContainConfig, res: HubResources) -> Responder:
    """The hub's Responder on the operator's credentials (clients are made on first use)."""
    from hub.ledger import Ledger
    from hub.notify import Notifier
    from hub.orgview import OrgView
    from hub.responder import Responder

    hub = op.hub
    if res.table is None:  # callers ask for it as a needed resource
        raise CliError("the hub's ledger table is unknown")
    return Responder(
        config=config,
        org=OrgView(lambda: hub.client("organizations")),
        sessions=operator_sessions(
            hub.session,
            operator=op.name,
            role_prefix=config.spoke_role_prefix,
            partition=hub.partition,
            endpoint_url=hub.endpoint_url,
        ),
        ledger=Ledger(res.table, hub.client("dynamodb")),
        notifier=Notifier(topic_arn=res.topic_arn, bus=res.bus, client_factory=hub.client),
    )


def hub_resources(ctx: AwsContext, need: Sequence[str]) -> HubResources:
    res = ctx.resources(need)
    where = sorted(set(res.sources.values()))
    say(f"hub resources from {', '.join(where) or 'nowhere'}")
    return res


# ---- rendering ---------------------------------------------------------------------------------


def _steps_table(steps: Iterable[Mapping[str, Any]]) -> Any:
    from rich.table import Table

    table = Table("step", "status", "detail", box=None, pad_edge=False)
    colour = {"done": "green", "already": "green", "failed": "red", "would": "yellow", "skipped": "dim"}
    for step in steps:
        status = str(step.get("status", ""))
        detail = str(step.get("detail") or "")
        if step.get("error_code"):
            detail = f"[{step['error_code']}] {detail}".strip()
        table.add_row(
            escape(str(step.get("step", ""))),
            f"[{colour.get(status, 'white')}]{escape(status)}[/]",
            escape(detail),
        )
    return table


def _print_action(outcome: Outcome) -> None:
    """What an isolate / release did, for people (stdout)."""
    from hub.models import Decision

    out = stdout_console()
    where = f"account {outcome.account_id} region {outcome.region}"
    incident = outcome.incident
    iid = outcome.instance_id or "?"
    if outcome.action == "release":
        if outcome.decision is Decision.FAILED:
            out.print(f"release of {iid} in {where} is incomplete: {escape(outcome.detail)}")
        else:
            out.print(f"released {iid} in {where}: restored from the ledger")
        steps = [s.model_dump(mode="json") for s in outcome.release.steps] if outcome.release else []
    else:
        if outcome.decision is Decision.ISOLATED:
            out.print(f"isolated {iid} in {where} ({outcome.reason})")
        elif outcome.decision is Decision.ALREADY_ISOLATED:
            out.print(f"{iid} in {where} is already contained: {escape(outcome.detail)}")
        else:
            out.print(f"{outcome.decision.value} {iid} in {where}: {outcome.reason} {escape(outcome.detail)}")
        steps = [s.model_dump(mode="json") for s in outcome.result.steps] if outcome.result else []
        if outcome.result is not None:
            if outcome.result.quarantine_group_id:
                out.print(f"  quarantine group  {outcome.result.quarantine_group_id}")
            if outcome.result.snapshot_ids:
                out.print(f"  snapshots         {', '.join(outcome.result.snapshot_ids)}")
    if incident is not None:
        out.print(f"  incident          {incident.incident_id} ({incident.status})")
    if outcome.finding_id:
        out.print(f"  finding           {outcome.finding_id}")
    out.print(
        f"  recorded as       {outcome.caller or 'unknown caller'}: {escape(outcome.operator_reason or '')}"
    )
    if steps:
        out.print(_steps_table(steps))
    if incident is not None and incident.is_open and outcome.account_id and outcome.region:
        out.print("release with:")
        out.print(f"  {escape(release_command(outcome.account_id, outcome.region, iid))}", soft_wrap=True)


# ---- isolate / release ------------------------------------------------------------------------


def _operator_action(
    action: str,
    account: str,
    region: str,
    instance: str,
    reason: str,
    config_path: str,
    profile: str | None,
    hub_region: str | None,
    endpoint_url: str | None,
    operator_role: str | None,
    json_out: bool,
    reattach_asg: bool = False,
) -> None:
    from hub.models import Decision

    why = check_reason(reason)
    if not ACCOUNT_RE.fullmatch(account):  # before the config: the cheapest check first
        usage(f"{account!r} is not an AWS account id (12 digits)", "'ACCOUNT'")
    check_instance_id(instance)
    config = load_config(config_path)
    check_target(config, account, region, instance)
    ctx = AwsContext(profile=profile, region=hub_region or config.hub.region, endpoint_url=endpoint_url)
    with boundary():
        op = operator_context(ctx, config, operator_role)
        res = hub_resources(op.hub, ["table"])
        if not res.topic_arn:
            say("note: no notification topic known (ORGCONTAIN_TOPIC_ARN / stack output): no SNS message")
        responder = build_responder(op, config, res)
        try:
            say(
                f"{'isolating' if action == 'isolate' else 'releasing'} {instance} in account {account} "
                f"region {region} as {op.caller_arn} through {config.role_name(region)} ..."
            )
            if action == "isolate":
                outcome = responder.isolate_instance(account, region, instance, why, op.caller_arn)
            else:
                outcome = responder.release_instance(
                    account, region, instance, why, op.caller_arn, reattach_asg=reattach_asg
                )
        finally:
            responder.close()
    if json_out:
        print_json(outcome.to_json())
    else:
        _print_action(outcome)
    if outcome.notification:
        say(f"warning: the notification was not delivered ({outcome.notification}); the ledger has it")
    if outcome.decision is Decision.FAILED:
        fail(f"{action} of {instance} did not complete: {outcome.reason}: {outcome.detail}".rstrip(": "))
    if outcome.decision not in (Decision.ISOLATED, Decision.ALREADY_ISOLATED, Decision.NOTIFIED):
        fail(f"{action} of {instance}: {outcome.decision.value} ({outcome.reason}) {outcome.detail}".strip())


@app.command()
def isolate(
    account: Annotated[
        str, typer.Argument(metavar="ACCOUNT", help="Member account id (12 digits).", show_default=False)
    ],
    region: Annotated[
        str,
        typer.Argument(
            metavar="REGION", help="The instance's region (one of the config's).", show_default=False
        ),
    ],
    instance: Annotated[
        str, typer.Argument(metavar="INSTANCE", help="Instance id (i-...).", show_default=False)
    ],
    reason: ReasonOpt,
    config: ConfigOpt = DEFAULT_CONFIG,
    operator_role: OperatorRoleOpt = None,
    profile: ProfileOpt = None,
    hub_region: RegionOpt = None,
    endpoint_url: EndpointOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Break-glass: isolate an instance now, with the hub's engine, ledger and notifications.

    Not gated by the policy or the breaker (a person decided); your identity and reason are recorded.
    """
    _operator_action(
        "isolate", account, region, instance, reason, config, profile, hub_region, endpoint_url,
        operator_role, json_out,
    )  # fmt: skip


@app.command()
def release(
    account: Annotated[
        str, typer.Argument(metavar="ACCOUNT", help="Member account id (12 digits).", show_default=False)
    ],
    region: Annotated[
        str, typer.Argument(metavar="REGION", help="The instance's region.", show_default=False)
    ],
    instance: Annotated[
        str, typer.Argument(metavar="INSTANCE", help="Instance id (i-...).", show_default=False)
    ],
    reason: ReasonOpt,
    config: ConfigOpt = DEFAULT_CONFIG,
    reattach_asg: Annotated[
        bool, typer.Option("--reattach-asg", help="Also put the instance back in its Auto Scaling group.")
    ] = False,
    operator_role: OperatorRoleOpt = None,
    profile: ProfileOpt = None,
    hub_region: RegionOpt = None,
    endpoint_url: EndpointOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Undo a containment exactly as the ledger recorded it; later updates of its findings are skipped."""
    _operator_action(
        "release", account, region, instance, reason, config, profile, hub_region, endpoint_url,
        operator_role, json_out, reattach_asg=reattach_asg,
    )  # fmt: skip


# ---- status -----------------------------------------------------------------------------------


def _operator_reason(ledger: Ledger, incident: Incident) -> str | None:
    """The free-text reason of a break-glass isolation (kept on its decision record)."""
    if incident.trigger != "manual":
        return None
    records = ledger.decisions(incident.account_id, incident.region, incident.first_finding_id)
    for record in sorted(records, key=lambda r: r.decided_at):
        if record.action == "isolate" and record.data.get("operator_reason"):
            return str(record.data["operator_reason"])
    return None


def _incident_json(incident: Incident, operator_reason: str | None, *, full: bool) -> dict[str, Any]:
    data = incident.public()
    if not full:
        data.pop("pre_state", None)
        data.pop("steps", None)
    data["operator_reason"] = operator_reason
    data["release_command"] = (
        release_command(incident.account_id, incident.region, incident.instance_id)
        if incident.is_open
        else None
    )
    return data


def _why(incident: Incident, operator_reason: str | None) -> str:
    if incident.trigger == "manual":
        return f"manual by {incident.caller or 'unknown'}: {operator_reason or incident.reason}"
    what = incident.finding_type or "finding"
    severity = f" (severity {incident.severity:g})" if incident.severity is not None else ""
    return f"{what}{severity}: {incident.reason}"


def _print_incident_list(incidents: Sequence[tuple[Incident, str | None]]) -> None:
    from rich.table import Table

    out = stdout_console()
    table = Table(
        "instance", "account", "region", "status", "since", "why", "finding", box=None, pad_edge=False
    )
    for inc, op_reason in incidents:
        more = f" (+{len(set(inc.finding_ids) - {inc.first_finding_id})})" if len(inc.finding_ids) > 1 else ""
        colour = "red" if inc.status == "isolated" else "yellow"
        table.add_row(
            inc.instance_id,
            inc.account_id,
            inc.region,
            f"[{colour}]{inc.status}[/]",
            inc.network_isolated_at or inc.opened_at,
            escape(_why(inc, op_reason)),
            escape(inc.first_finding_id + more),
        )
    out.print(table)
    out.print("release with:")
    for inc, _ in incidents:
        out.print(f"  {escape(release_command(inc.account_id, inc.region, inc.instance_id))}")


def _print_incident(incident: Incident, operator_reason: str | None) -> None:
    out = stdout_console()
    rows: list[tuple[str, str]] = [
        ("instance", f"{incident.instance_id} in account {incident.account_id} region {incident.region}"),
        ("status", incident.status),
        ("opened", incident.opened_at),
    ]
    if incident.network_isolated_at:
        rows.append(("network isolated", incident.network_isolated_at))
    rows.append(("why", _why(incident, operator_reason)))
    if incident.trigger == "manual":
        rows.append(("isolated by", incident.caller or "unknown"))
    findings = sorted(set(incident.finding_ids) | {incident.first_finding_id})
    rows.append(("findings", ", ".join(findings)))
    if incident.quarantine_group_id:
        rows.append(("quarantine group", incident.quarantine_group_id))
    if incident.snapshot_ids:
        rows.append(("snapshots", ", ".join(incident.snapshot_ids)))
    if incident.last_error:
        rows.append(("last error", incident.last_error))
    if incident.released_at:
        rows.append(
            ("released", f"{incident.released_at} by {incident.released_by}: {incident.release_reason}")
        )
    out.print(f"incident {incident.incident_id}")
    for key, value in rows:
        out.print(f"  {key:<17} {escape(value)}")
    pre = incident.pre_state
    if pre is not None:
        out.print("recorded pre-isolation state (what release restores):")
        for eni in pre.enis:
            out.print(f"  {eni.eni_id:<21} groups {', '.join(eni.groups) or '(none)'}")
        if pre.instance_profile_arn:
            out.print(f"  instance profile      {pre.instance_profile_arn}")
        if pre.autoscaling_group:
            out.print(f"  auto scaling group    {pre.autoscaling_group}")
        for tg in pre.target_groups:
            out.print(f"  target group          {tg.target_group_arn}")
        for lb in pre.classic_load_balancers:
            out.print(f"  classic ELB           {lb}")
    if incident.steps:
        out.print("steps:")
        out.print(_steps_table(incident.steps))
    if incident.is_open:
        out.print("release with:")
        out.print(f"  {escape(release_command(incident.account_id, incident.region, incident.instance_id))}")


@app.command()
def status(
    instance: Annotated[
        str | None,
        typer.Argument(
            metavar="[INSTANCE]",
            help="One instance id: its incident in full, with its steps.",
            show_default=False,
        ),
    ] = None,
    account: Annotated[str | None, typer.Option("--account", help="Only this member account.")] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    profile: ProfileOpt = None,
    hub_region: RegionOpt = None,
    endpoint_url: EndpointOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Open incidents (quarantined instances): when, why, which finding, how to release."""
    if account is not None and not ACCOUNT_RE.fullmatch(account):
        usage(f"{account!r} is not an AWS account id (12 digits)", "'--account'")
    if instance is not None:
        check_instance_id(instance)
    cfg = load_config(config)
    ctx = AwsContext(profile=profile, region=hub_region or cfg.hub.region, endpoint_url=endpoint_url)
    with boundary():
        res = hub_resources(ctx, ["table"])
        responder = build_responder(Operator("", "status", ctx), cfg, res)
        try:
            if instance is None:
                incidents = [i for i in responder.open_incidents() if account in (None, i.account_id)]
            else:
                incidents = [i for i in responder.find_incidents(instance) if account in (None, i.account_id)]
            incidents.sort(key=lambda i: (i.opened_at, i.instance_id))
            rows = [(i, _operator_reason(responder.ledger, i)) for i in incidents]
        finally:
            responder.close()
    if instance is not None and not rows:
        scope = f" in account {account}" if account else ""
        fail(f"no incident for instance {instance}{scope} in the ledger ({res.table}): it was never isolated")
    if json_out:
        if instance is None:
            print_json([_incident_json(i, r, full=False) for i, r in rows])
        else:
            # One instance id is normally one incident; print an object then, a list if ids collide.
            full = [_incident_json(i, r, full=True) for i, r in rows]
            print_json(full[0] if len(full) == 1 else full)
        return
    if instance is None:
        if not rows:
            say(f"no open incidents{' in account ' + account if account else ''}")
            return
        _print_incident_list(rows)
        say(f"{len(rows)} open incident{'s' if len(rows) != 1 else ''}")
    else:
        for inc, reason in rows:
            _print_incident(inc, reason)


# ---- redrive ----------------------------------------------------------------------------------


@dataclass
class DeadLetter:
    """One DLQ message, as far as we can tell what it was and why it failed."""

    message_id: str
    receive_count: int
    finding_id: str | None = None
    account_id: str | None = None
    region: str | None = None
    instance_id: str | None = None
    finding_type: str | None = None
    severity: float | None = None
    last_decision: str | None = None
    last_reason: str | None = None
    last_error: str | None = None
    delivery_error: str | None = None  # EventBridge's ERROR_CODE/ERROR_MESSAGE (rule could not deliver)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class MoveResult:
    method: str  # message-move-task | receive-send-delete
    moved: int = 0
    failed: int = 0
    to_move: int | None = None
    task_handle: str | None = None
    status: str | None = None
    fallback_reason: str | None = None
    failure_reason: str | None = None
    remaining: int | None = None
    notes: list[str] = field(default_factory=list)


def _parse_dead_letter(message: Mapping[str, Any]) -> DeadLetter:
    import json

    attrs = message.get("Attributes", {})
    letter = DeadLetter(
        message_id=str(message.get("MessageId", "")),
        # Receives before our own look: the hub's attempts (and any earlier look by an operator).
        receive_count=max(int(attrs.get("ApproximateReceiveCount", "1") or 1) - 1, 0),
    )
    msg_attrs = message.get("MessageAttributes", {})
    code = msg_attrs.get("ERROR_CODE", {}).get("StringValue")
    text = msg_attrs.get("ERROR_MESSAGE", {}).get("StringValue")
    if code or text:
        letter.delivery_error = f"{code or ''}: {text or ''}".strip(": ")
    try:
        body = json.loads(str(message.get("Body", "")))
    except ValueError:
        return letter
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, dict):
        return letter
    letter.finding_id = _str(detail.get("id"))
    letter.account_id = _str(detail.get("accountId"))
    letter.region = _str(detail.get("region"))
    letter.finding_type = _str(detail.get("type"))
    severity = detail.get("severity")
    letter.severity = float(severity) if isinstance(severity, int | float) else None
    resource = detail.get("resource")
    if isinstance(resource, dict):
        details = resource.get("instanceDetails")
        if isinstance(details, dict):
            letter.instance_id = _str(details.get("instanceId"))
    return letter


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _annotate(letter: DeadLetter, ledger: Ledger) -> None:
    """The ledger's last decision on the finding, and the incident's last error."""
    if not (letter.finding_id and letter.account_id and letter.region):
        return
    records = ledger.decisions(letter.account_id, letter.region, letter.finding_id)
    if records:
        last = max(records, key=lambda r: r.decided_at)
        letter.last_decision, letter.last_reason = last.decision, last.reason
        if last.decision == "failed" and last.detail:
            letter.last_error = last.detail
    if letter.instance_id:
        incident = ledger.incident(letter.account_id, letter.region, letter.instance_id)
        if incident is not None and incident.last_error and incident.is_open:
            letter.last_error = incident.last_error


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def peek(sqs: Any, dlq_url: str, limit: int) -> list[DeadLetter]:
    """Up to ``limit`` DLQ messages, looked at and put back at once (visibility reset to 0)."""
    seen: dict[str, Mapping[str, Any]] = {}
    handles: list[str] = []
    while len(seen) < limit:
        got = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=min(10, limit - len(seen)),
            VisibilityTimeout=PEEK_VISIBILITY_SECONDS,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            break
        for message in got:
            handles.append(message["ReceiptHandle"])
            seen.setdefault(message["MessageId"], message)
    for chunk in _chunks(handles, 10):
        sqs.change_message_visibility_batch(
            QueueUrl=dlq_url,
            Entries=[{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0} for i, h in enumerate(chunk)],
        )
    return [_parse_dead_letter(m) for m in seen.values()]


def _move_task(sqs: Any, dlq_arn: str, queue_arn: str, wait: float) -> MoveResult | str:
    """Start an SQS message move task and follow it; a string says why it is not available."""
    from botocore.exceptions import ClientError

    try:
        handle = sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=queue_arn)["TaskHandle"]
    except NotImplementedError:  # moto in-process
        return "the endpoint does not implement StartMessageMoveTask"
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in MOVE_TASK_UNSUPPORTED or status in (500, 501):
            return f"StartMessageMoveTask is not available here ({code or status})"
        raise
    result = MoveResult("message-move-task", task_handle=str(handle), status="RUNNING")
    deadline = time.monotonic() + wait
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10).get("Results", [])
        task = next((t for t in tasks if t.get("TaskHandle") == handle), tasks[0] if tasks else None)
        if task is not None:
            result.status = str(task.get("Status", "RUNNING"))
            result.moved = int(task.get("ApproximateNumberOfMessagesMoved", 0) or 0)
            to_move = task.get("ApproximateNumberOfMessagesToMove")
            result.to_move = int(to_move) if to_move is not None else None
            result.failure_reason = task.get("FailureReason")
        if result.status in MOVE_TASK_DONE or time.monotonic() >= deadline:
            return result
        time.sleep(MOVE_TASK_POLL_SECONDS)


def _send_receive_delete(sqs: Any, dlq_url: str, queue_url: str, limit: int) -> MoveResult:
    """Move up to ``limit`` messages by receive -> send -> delete, ten at a time.

    A message is deleted from the DLQ only after SQS accepted its copy; a failed send stays in the
    DLQ (visible again after MOVE_VISIBILITY_SECONDS). The limit (the DLQ's count at the start)
    stops a message that fails again straight back into the DLQ from being moved in circles.
    """
    result = MoveResult("receive-send-delete")
    fifo = queue_url.endswith(".fifo")
    while result.moved + result.failed < limit:
        got = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=min(10, limit - result.moved - result.failed),
            VisibilityTimeout=MOVE_VISIBILITY_SECONDS,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            break
        entries = []
        for i, message in enumerate(got):
            entry: dict[str, Any] = {"Id": str(i), "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                entry["MessageAttributes"] = {
                    k: {kk: vv for kk, vv in v.items() if kk in ("DataType", "StringValue", "BinaryValue")}
                    for k, v in message["MessageAttributes"].items()
                }
            if fifo:
                attrs = message.get("Attributes", {})
                entry["MessageGroupId"] = attrs.get("MessageGroupId", "orgcontain-redrive")
                entry["MessageDeduplicationId"] = attrs.get("MessageDeduplicationId", message["MessageId"])
            entries.append(entry)
        sent = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        ok = {e["Id"] for e in sent.get("Successful", [])}
        for failed in sent.get("Failed", []):
            result.notes.append(f"message {got[int(failed['Id'])]['MessageId']}: {failed.get('Code')}")
        result.failed += len(got) - len(ok)
        done = [
            {"Id": str(i), "ReceiptHandle": message["ReceiptHandle"]}
            for i, message in enumerate(got)
            if str(i) in ok
        ]
        if done:
            deleted = sqs.delete_message_batch(QueueUrl=dlq_url, Entries=done)
            for failed in deleted.get("Failed", []):
                # Sent but still in the DLQ: it would be sent twice on the next run; say so.
                result.notes.append(f"copied but not deleted from the DLQ: entry {failed['Id']}")
        result.moved += len(ok)
    return result


def _queue_attributes(sqs: Any, url: str) -> dict[str, str]:
    attrs: dict[str, str] = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["QueueArn", "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return attrs


def _source_queue(sqs: Any, dlq_url: str) -> str:
    sources = sqs.list_dead_letter_source_queues(QueueUrl=dlq_url).get("queueUrls", [])
    if len(sources) != 1:
        raise CliError(
            f"the DLQ {dlq_url} is the dead-letter queue of {len(sources)} queues; "
            "set ORGCONTAIN_QUEUE_URL to the one to redrive to"
        )
    return str(sources[0])


def _print_dead_letters(letters: Sequence[DeadLetter], total: int) -> None:
    from rich.table import Table

    out = stdout_console()
    table = Table(
        "finding", "account", "region", "instance", "receives", "last decision", "why it failed",
        box=None, pad_edge=False,
    )  # fmt: skip
    for d in letters:
        decision = f"{d.last_decision} ({d.last_reason})" if d.last_decision else "-"
        why = d.last_error or d.delivery_error or ("not a finding event" if d.finding_id is None else "-")
        table.add_row(
            escape(d.finding_id or d.message_id),
            d.account_id or "-",
            d.region or "-",
            d.instance_id or "-",
            str(d.receive_count),
            escape(decision),
            escape(why),
        )
    out.print(table)
    if total > len(letters):
        out.print(f"(showing {len(letters)} of about {total} messages)")


@app.command()
def redrive(
    config: ConfigOpt = DEFAULT_CONFIG,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what failed; move nothing.")] = False,
    show: Annotated[
        int, typer.Option("--show", min=0, max=1000, help="How many DLQ messages to look at and list.")
    ] = 20,
    wait: Annotated[
        float, typer.Option("--wait", min=0, help="Seconds to follow the move task before returning.")
    ] = 120.0,
    profile: ProfileOpt = None,
    hub_region: RegionOpt = None,
    endpoint_url: EndpointOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Move the hub's dead-letter messages back to its queue, after showing what failed and why."""
    cfg = load_config(config)
    ctx = AwsContext(profile=profile, region=hub_region or cfg.hub.region, endpoint_url=endpoint_url)
    with boundary():
        res = hub_resources(ctx, ["dlq_url"])
        dlq_url = str(res.dlq_url)
        sqs = ctx.client("sqs")
        dlq = _queue_attributes(sqs, dlq_url)
        total = int(dlq.get("ApproximateNumberOfMessages", "0") or 0)
        in_flight = int(dlq.get("ApproximateNumberOfMessagesNotVisible", "0") or 0)
        queue_url = res.queue_url or _source_queue(sqs, dlq_url)
        queue_arn = _queue_attributes(sqs, queue_url)["QueueArn"]
        letters = peek(sqs, dlq_url, min(show, total)) if total else []
        if res.table:
            from hub.ledger import Ledger

            ledger = Ledger(res.table, ctx.client("dynamodb"))
            for letter in letters:
                _annotate(letter, ledger)
        elif letters:
            say("note: the ledger table is unknown (ORGCONTAIN_LEDGER_TABLE): last errors not shown")
        moved: MoveResult | None = None
        if total and not dry_run:
            say(f"moving {total} message{'s' if total != 1 else ''} from {dlq_url} to {queue_url} ...")
            # One retry at most: when the move-task API fails, receive -> send -> delete still works.
            mover = ctx.client("sqs", max_attempts=2)
            attempt = _move_task(mover, dlq["QueueArn"], queue_arn, wait)
            if isinstance(attempt, str):
                say(f"note: {attempt}; moving by receive -> send -> delete instead (batches of 10)")
                moved = _send_receive_delete(sqs, dlq_url, queue_url, total)
                moved.fallback_reason = attempt
            else:
                moved = attempt
            after = _queue_attributes(sqs, dlq_url)
            moved.remaining = int(after.get("ApproximateNumberOfMessages", "0") or 0)
    report: dict[str, Any] = {
        "dead_letter_queue": dlq_url,
        "queue": queue_url,
        "messages": total,
        "in_flight": in_flight,
        "dead_letters": [d.to_json() for d in letters],
        "dry_run": dry_run,
        "move": moved.__dict__ if moved is not None else None,
    }
    if json_out:
        print_json(report)
    elif letters:
        _print_dead_letters(letters, total)
    if not total:
        say(
            f"the dead-letter queue is empty{f' ({in_flight} in flight)' if in_flight else ''}: "
            "nothing to redrive"
        )
        return
    if dry_run:
        say(f"dry run: {total} message{'s' if total != 1 else ''} left in the dead-letter queue")
        return
    assert moved is not None
    for note in moved.notes:
        say(f"note: {note}")
    if moved.method == "message-move-task":
        counts = f"{moved.moved} of {moved.to_move if moved.to_move is not None else total}"
        say(f"message move task {moved.task_handle}: {moved.status}, {counts} moved")
        if moved.status == "FAILED":
            fail(f"the message move task failed: {moved.failure_reason or 'no reason given'}")
        if moved.status not in MOVE_TASK_DONE:
            say("still running: `aws sqs list-message-move-tasks --source-arn <DLQ arn>` follows it")
    else:
        say(
            f"moved {moved.moved} by receive -> send -> delete; {moved.failed} failed; {moved.remaining} left"
        )
        if moved.failed:
            fail(f"{moved.failed} message(s) could not be sent back to {queue_url}; they stay in the DLQ")
