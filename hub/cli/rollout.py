"""orgcontain CLI: rollout commands (`package`, `deploy`, `coverage`).

The work is done in :mod:`stacksets`; this module parses options, renders progress on stderr and
turns every expected failure into one line and exit code 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hub.cli.app import app
from hub.cli.common import ConfigOpt, EndpointOpt, JsonOpt, ProfileOpt, RegionOpt, print_json, stderr

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from hub.config import OrgContainConfig
    from stacksets.aws import Aws
    from stacksets.deploy import Change

DEFAULT_PACKAGE = Path("dist/orgcontain-lambda.zip")


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Expected failures end as one red line and exit 1, never a traceback."""
    from botocore.exceptions import BotoCoreError, ClientError
    from rich.markup import escape

    from hub.cli.common import CliError
    from hub.config import ConfigError
    from stacksets.deploy import DeployError
    from stacksets.package import PackageError

    def fail(message: str) -> typer.Exit:
        stderr.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
        return typer.Exit(1)

    try:
        yield
    except ConfigError as exc:
        raise fail(
            f"invalid orgcontain config {exc.source}: " + "; ".join(str(i) for i in exc.issues)
        ) from None
    except (CliError, DeployError, PackageError, BotoCoreError) as exc:
        raise fail(str(exc)) from None
    except ClientError as exc:
        err = exc.response.get("Error", {})
        op = getattr(exc, "operation_name", "AWS call")
        raise fail(f"{op} failed: {err.get('Code', '')}: {err.get('Message', '')}") from None


def _load_config(path: str) -> OrgContainConfig:
    from hub.config import load_config_file

    return load_config_file(path)


def _aws(config: OrgContainConfig, profile: str | None, region: str | None, endpoint_url: str | None) -> Aws:
    from botocore.exceptions import ProfileNotFound

    from hub.cli.common import CliError
    from stacksets.aws import Aws

    try:
        return Aws.from_profile(
            profile=profile, region=region or config.hub.region, endpoint_url=endpoint_url
        )
    except ProfileNotFound as exc:
        raise CliError(str(exc)) from None


# ---- package ------------------------------------------------------------------------------------


@app.command()
def package(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the zip.")] = DEFAULT_PACKAGE,
    no_deps: Annotated[
        bool, typer.Option("--no-deps", help="Package orgcontain's code only (no dependency fetch).")
    ] = False,
    deps_dir: Annotated[
        Path | None,
        typer.Option(
            "--deps-dir", help="Include this already-installed dependency folder instead of fetching."
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Build the hub Lambda zip (reproducible: same inputs, same sha256)."""
    from stacksets.package import build

    with _one_line_errors():
        if not no_deps and deps_dir is None:
            stderr.print("fetching dependencies for python3.12 / arm64 ...", highlight=False, soft_wrap=True)
        pkg = build(out, deps_dir=deps_dir, with_deps=not no_deps)
    if json_out:
        print_json({"path": str(pkg.path), "size": pkg.size, "sha256": pkg.sha256, "files": pkg.files})
    else:
        typer.echo(f"{pkg.path}  {pkg.size} bytes  {pkg.files} files  sha256 {pkg.sha256}")


# ---- deploy -------------------------------------------------------------------------------------


class _RichReporter:
    """Deploy progress on stderr: one line per step, a spinner while waiting."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.what = ""

    def start(self, what: str) -> None:
        self.what = what
        self.task = self.progress.add_task(what, total=None)

    def update(self, text: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, description=text)

    def finish(self, change: Change) -> None:
        text = f"{change.action:<9} {change.target}" + (f"  ({change.detail})" if change.detail else "")
        if self.task is None:
            self.task = self.progress.add_task(text, total=1)
        self.progress.update(self.task, description=text, total=1, completed=1)
        self.task = None


@app.command()
def deploy(
    config: ConfigOpt,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
    hub_role: Annotated[
        str, typer.Option("--hub-role", help="Role assumed into the hub and GuardDuty admin accounts.")
    ] = "OrganizationAccountAccessRole",
    target_ou: Annotated[
        list[str] | None,
        typer.Option(
            "--target-ou", help="OU (or root) to deploy spoke roles to; repeatable. Default: the root."
        ),
    ] = None,
    operator_role: Annotated[
        str,
        typer.Option("--operator-role", help="Break-glass role in the hub account the spokes also trust."),
    ] = "",
    package_path: Annotated[
        Path | None,
        typer.Option("--package", help="Deploy this prebuilt zip (default: build one with dependencies)."),
    ] = None,
    config_parameter: Annotated[
        str, typer.Option("--config-parameter", help="SSM parameter the hub reads its config from.")
    ] = "/orgcontain/config",
    cover_management_account: Annotated[
        bool,
        typer.Option(
            "--cover-management-account",
            help="Also deploy the spoke role to the management account as plain stacks (StackSets cannot).",
        ),
    ] = False,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    endpoint_url: EndpointOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Deploy (or update) the hub stack, the spoke and forwarder StackSets, the package and the config."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from stacksets.deploy import Deployer, DeployOptions, package_from_file
    from stacksets.package import build

    with _one_line_errors():
        cfg = _load_config(config)
        if package_path is not None:
            pkg = package_from_file(package_path)
        else:
            stderr.print("building the Lambda package ...", highlight=False, soft_wrap=True)
            pkg = build(DEFAULT_PACKAGE)
        options = DeployOptions(
            package=pkg,
            hub_role=hub_role,
            target_ous=tuple(target_ou or ()),
            operator_role=operator_role,
            config_parameter=config_parameter,
            cover_management_account=cover_management_account,
            dry_run=dry_run,
        )
        aws = _aws(cfg, profile, region, endpoint_url)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=stderr,
            transient=False,
        ) as progress:
            result = Deployer(aws, cfg, options, _RichReporter(progress)).run()
    if json_out:
        print_json(
            {
                "dry_run": dry_run,
                "changed": result.changed,
                "changes": [
                    {"target": c.target, "action": c.action, "detail": c.detail} for c in result.changes
                ],
            }
        )
        return
    title = "plan (dry run, nothing changed)" if dry_run else "deployed"
    typer.echo(f"{title}:")
    for c in result.changes:
        typer.echo(f"  {c.action:<9} {c.target}" + (f"  ({c.detail})" if c.detail else ""))
    if not result.changed:
        typer.echo("nothing to change")


# ---- coverage -----------------------------------------------------------------------------------


@app.command()
def coverage(
    config: ConfigOpt,
    admin_role: Annotated[
        str,
        typer.Option("--admin-role", help="Role assumed into the GuardDuty admin account to read members."),
    ] = "OrganizationAccountAccessRole",
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    endpoint_url: EndpointOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Which account x region the hub can reach; exit 1 when one that should be covered is not."""
    from rich.table import Table

    from stacksets.coverage import coverage as run_coverage

    with _one_line_errors():
        cfg = _load_config(config)
        report = run_coverage(_aws(cfg, profile, region, endpoint_url), cfg, admin_role=admin_role)
    if json_out:
        print_json([row.to_json() for row in report.rows])
    else:
        from rich.console import Console

        table = Table("account", "name", "region", "status", "guardduty", "detail", box=None)
        for row in report.rows:
            colour = "green" if row.status == "covered" else "dim" if not row.is_gap else "red"
            table.add_row(
                row.account_id,
                row.account_name,
                row.region,
                f"[{colour}]{row.status}[/]",
                row.guardduty,
                row.detail,
            )
        Console(soft_wrap=True).print(table)
    for note in report.notes:
        stderr.print(f"note: {note}", highlight=False, soft_wrap=True)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(report.counts().items()))
    stderr.print(
        f"{len(report.rows)} account-regions: {counts or 'none'}; "
        f"{report.api_calls} API calls in {report.seconds:.2f} s",
        highlight=False,
        soft_wrap=True,
    )
    if report.gaps:
        stderr.print(
            f"[red]{len(report.gaps)} account-region(s) not covered[/red]", highlight=False, soft_wrap=True
        )
        raise typer.Exit(1)
