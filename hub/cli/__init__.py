"""`orgcontain` command line. Each command group lives in its own module of this package."""

from __future__ import annotations

import sys

# Importing the modules registers their commands on `app`.
from hub.cli import configcmd, demo, ops, rollout, simulate  # noqa: F401
from hub.cli.app import app
from hub.cli.common import CliError, stderr


def main() -> None:
    try:
        app()
    except CliError as exc:
        stderr.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)
