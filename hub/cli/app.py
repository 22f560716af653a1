"""The `orgcontain` Typer application and the options every AWS-facing command shares."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="orgcontain",
    help="Event-driven GuardDuty EC2 containment for AWS Organizations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Validate and publish the responder's configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
