"""`orgcontain config validate` and `orgcontain config push`.

``push`` stores the validated config in the SSM parameter the hub reads (``ORGCONTAIN_CONFIG`` =
``ssm:<name>``) as canonical JSON: keys sorted, two-space indent, only the keys the file sets
(defaults are left to the hub's version, as when the YAML itself is read), normalised values
(CIDRs in canonical form, ports sorted). JSON rather than the YAML text because it is compact
(the shipped, commented YAML alone is over the 4 KB Standard-tier limit), diffs key by key, and
reads back with the same loader (JSON is YAML). Comments stay in the file under version control.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
import yaml
from rich.markup import escape

from hub.cli.app import config_app
from hub.cli.common import AwsOptions, ConfigOpt, EndpointOpt, ProfileOpt, RegionOpt, stderr
from hub.config import ConfigError, OrgContainConfig, load_config_file

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

DEFAULT_CONFIG = Path("config/orgcontain.yaml")
DEFAULT_PARAMETER = "/orgcontain/config"
STANDARD_TIER_LIMIT = 4096  # bytes; SSM Standard parameters hold up to 4 KB, Advanced up to 8 KB
ADVANCED_TIER_LIMIT = 8192


def _fail(message: str, code: int = 1) -> NoReturn:
    stderr.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _say(message: str) -> None:
    stderr.print(message, highlight=False, soft_wrap=True)


def _load_or_report(path: Path, refusing: str = "") -> OrgContainConfig:
    """The validated config, or every problem as ``FILE:LINE: key.path: message`` and exit 1."""
    try:
        return load_config_file(path)
    except ConfigError as exc:
        for issue in exc.issues:
            where = f"{path}:{issue.line}" if issue.line else str(path)
            _say(f"{escape(where)}: {escape(issue.path or '(top level)')}: {escape(issue.message)}")
        n = len(exc.issues)
        _fail(f"{refusing}{path} is not a valid orgcontain config ({n} problem{'s' if n != 1 else ''})")


@config_app.command("validate")
def validate(
    file: Annotated[
        Path,
        typer.Argument(help="Config file to check.", exists=True, dir_okay=False, readable=True),
    ] = DEFAULT_CONFIG,
) -> None:
    """Check a config file: unknown keys, ranges, ids, CIDRs; errors name the key path and line."""
    cfg = _load_or_report(file)
    overrides = len(cfg.organizational_units) + len(cfg.accounts)
    typer.echo(
        f"{file}: valid (mode {cfg.response.mode.value}, min_severity {cfg.response.min_severity:g}, "
        f"{len(cfg.regions)} region{'s' if len(cfg.regions) != 1 else ''}, "
        f"{overrides} override{'s' if overrides != 1 else ''})"
    )


def render_parameter(cfg: OrgContainConfig) -> str:
    """The parameter value for ``cfg``: canonical JSON of the keys the file sets."""
    data = cfg.model_dump(mode="json", exclude_unset=True)
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key in value:
            out.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def key_diff(old: Any, new: Any) -> list[str]:
    """What changed, one key path a line: ``+ added``, ``- removed``, ``~ changed: old -> new``."""
    before, after = _flatten(old), _flatten(new)
    lines = []
    for key in sorted(before.keys() | after.keys()):
        if key not in before:
            lines.append(f"+ {key}: {_show(after[key])}")
        elif key not in after:
            lines.append(f"- {key}: {_show(before[key])}")
        elif before[key] != after[key]:
            lines.append(f"~ {key}: {_show(before[key])} -> {_show(after[key])}")
    return lines


def describe_change(name: str, stored: str | None, new_text: str) -> list[str]:
    """Lines describing the change from the stored parameter value to ``new_text``."""
    if stored is None:
        return [f"+ {line}" for line in _flatten_lines(json.loads(new_text))]
    try:
        old = yaml.safe_load(stored)  # JSON as pushed here, or YAML someone stored by hand
    except yaml.YAMLError:
        old = None
    if isinstance(old, dict):
        return key_diff(old, json.loads(new_text))
    # Not a mapping: show the text change instead.
    return [
        line.rstrip("\n")
        for line in difflib.unified_diff(
            stored.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=f"{name} (stored)",
            tofile=f"{name} (new)",
        )
    ]


def _flatten_lines(data: Any) -> list[str]:
    return [f"{k}: {_show(v)}" for k, v in sorted(_flatten(data).items())]


def _ssm(options: AwsOptions) -> SSMClient:
    from botocore.config import Config

    session = options.session()
    client: SSMClient = session.client(
        "ssm",
        endpoint_url=options.endpoint_url,
        config=Config(retries={"mode": "standard", "max_attempts": 5}),
    )
    return client


def _stored(client: SSMClient, name: str) -> tuple[str | None, int | None, str | None]:
    """(value, version, tier) of the parameter; all None when it does not exist yet."""
    from botocore.exceptions import ClientError

    try:
        param = client.get_parameter(Name=name)["Parameter"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None, None, None
        raise
    tier = None
    described = client.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}]
    )["Parameters"]
    if described:
        tier = described[0].get("Tier")
    return param.get("Value"), param.get("Version"), tier


def _caller_account(options: AwsOptions) -> str | None:
    from botocore.config import Config

    sts = options.session().client(
        "sts", endpoint_url=options.endpoint_url, config=Config(retries={"mode": "standard"})
    )
    account: str | None = sts.get_caller_identity().get("Account")
    return account


@config_app.command("push")
def push(
    config: ConfigOpt,
    parameter_name: Annotated[
        str,
        typer.Option("--parameter-name", help="SSM parameter the hub reads (ORGCONTAIN_CONFIG=ssm:<name>)."),
    ] = DEFAULT_PARAMETER,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; write nothing.")
    ] = False,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Validate the config, then store it in the hub's SSM parameter and show what changed.

    An invalid config is refused. The parameter lives in the hub's home region (hub.region)
    unless --region says otherwise; the value is canonical JSON (Advanced tier above 4 KB).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    cfg = _load_or_report(Path(config), refusing="refusing to push: ")
    if not parameter_name.startswith("/") and "/" in parameter_name:
        _fail(f"parameter name {parameter_name!r}: a hierarchical name must start with '/'")
    value = render_parameter(cfg)
    size = len(value.encode())
    if size > ADVANCED_TIER_LIMIT:
        _fail(f"the config is {size} bytes as JSON; an SSM parameter holds at most {ADVANCED_TIER_LIMIT}")
    options = AwsOptions(profile=profile, region=region or cfg.hub.region, endpoint_url=endpoint_url)
    try:
        client = _ssm(options)
        account = _caller_account(options)
        if account is not None and account != cfg.hub.account_id:
            _say(
                f"[yellow]warning:[/yellow] these credentials are for account {account}; "
                f"the config's hub account is {cfg.hub.account_id}"
            )
        stored, version, tier = _stored(client, parameter_name)
        changes = describe_change(parameter_name, stored, value)
        where = f"{parameter_name} in {options.region}"
        if stored is not None and not changes and stored == value:
            typer.echo(f"no change: {where} (version {version}) already holds this config")
            return
        if stored is None:
            typer.echo(f"new parameter {where}:")
        else:
            typer.echo(f"changes to {where} (version {version}):")
        for line in changes or ["(formatting only: same keys and values)"]:
            typer.echo(f"  {line}")
        if dry_run:
            _say("dry run: nothing written")
            return
        # Advanced above 4 KB; an Advanced parameter cannot go back to Standard by overwrite.
        new_tier: Literal["Advanced", "Standard"] = (
            "Advanced" if size > STANDARD_TIER_LIMIT or tier == "Advanced" else "Standard"
        )
        result = client.put_parameter(
            Name=parameter_name,
            Value=value,
            Type="String",
            Overwrite=True,
            Tier=new_tier,
            Description="orgcontain responder config (canonical JSON, written by `orgcontain config push`)",
        )
    except ClientError as exc:
        err = exc.response.get("Error", {})
        _fail(f"AWS refused: {err.get('Code', 'error')}: {err.get('Message', exc)}")
    except BotoCoreError as exc:
        _fail(f"AWS call failed: {exc}")
    typer.echo(f"pushed {where}: version {result.get('Version')}, {new_tier} tier, {size} bytes")
