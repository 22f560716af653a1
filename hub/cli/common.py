"""What the CLI commands share: AWS options, output helpers, errors that end in one clear line."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

stderr = Console(stderr=True)

ProfileOpt = Annotated[str | None, typer.Option("--profile", help="AWS named profile.", envvar="AWS_PROFILE")]
RegionOpt = Annotated[
    str | None, typer.Option("--region", help="AWS region (default: the hub's home region).")
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="Send every AWS call to this endpoint (e.g. a moto server).",
        envvar="AWS_ENDPOINT_URL",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
ConfigOpt = Annotated[str, typer.Option("--config", "-c", help="Config file (YAML).")]


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 1 (no traceback)."""


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear line on stderr and exit (1: failure, 2: usage). Works under CliRunner too."""
    stderr.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@dataclass(frozen=True)
class AwsOptions:
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None

    def session(self) -> Any:
        import boto3

        return boto3.Session(profile_name=self.profile, region_name=self.region)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str, sort_keys=False) + "\n")
