"""`orgcontain demo`: containment end to end on an embedded emulated organization (moto, in process).

Progress, the live table and the summary go to stderr; ``--json`` prints one JSON document on
stdout. Exit code 1 when any of the demo's own checks fails. Nothing reaches AWS: the demo runs on
dummy credentials inside moto.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hub.cli.app import app
from hub.cli.common import fail, print_json, stderr


@app.command()
def demo(
    accounts: Annotated[
        int,
        typer.Option(
            "--accounts", min=5, max=200, help="Member accounts in the emulated organization (at least 5)."
        ),
    ] = 5,
    findings: Annotated[
        int,
        typer.Option(
            "--findings",
            min=1,
            max=5000,
            help=(
                "Findings to feed: the scenario's mix (15) first, then high/critical ones about "
                "random instances."
            ),
        ),
    ] = 24,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Repeat a run: same ids and choices (default: a new seed, printed)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Run orgcontain end to end on an emulated organization (moto, in process): deploy the
    templates, launch a fleet, feed GuardDuty findings, check that the right instances are contained."""
    from hub.demo.runner import DemoError, DemoOptions, run_demo
    from hub.demo.view import RichView, print_summary

    stderr.print(
        "[bold]orgcontain demo[/bold]: an emulated organization in moto, in this process; "
        "nothing reaches AWS",
        highlight=False,
    )
    view = RichView(stderr)
    try:
        result = run_demo(DemoOptions(accounts=accounts, findings=findings, seed=seed), view)
    except DemoError as exc:
        fail(str(exc))
    finally:
        view.close()
    print_summary(stderr, result.document, result.log_problems)
    if json_out:
        print_json(result.document)
    if not result.passed:
        raise typer.Exit(1)
