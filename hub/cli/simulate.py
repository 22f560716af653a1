"""`orgcontain simulate`: what would the policy do with these findings? (offline, no AWS)

Tune ``min_severity``, type filters and overrides against a folder of past findings before
pushing a config. The engine (readers, normalisation, tallies) is ``hub.simulate``; the decision
is ``hub.policy.decide``, the hub's own.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hub import simulate as engine
from hub.cli.app import app
from hub.cli.common import ConfigOpt, JsonOpt, stderr
from hub.config import ConfigError, OrgContainConfig, load_config_file
from hub.models import Decision
from hub.simulate import Summary

# Below this much input the progress bar would only flicker.
PROGRESS_MIN_BYTES = 4 * 1024 * 1024
TABLE_ROWS = 20
SUMMARY_WIDTH = 160
MALFORMED_SHOWN = 50

_DECISION_ORDER = [d.value for d in Decision]
_DECISION_STYLE = {
    Decision.ISOLATED.value: "bold red",
    Decision.DRY_RUN.value: "yellow",
    Decision.NOTIFIED.value: "cyan",
    Decision.SKIPPED.value: "dim",
}


def fail(message: str, code: int = 1) -> NoReturn:
    """One clear line on stderr and a non-zero exit (no traceback for a user's mistake)."""
    stderr.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def simulate(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Files or folders of findings (EventBridge events, bare findings, "
            "`aws guardduty get-findings` output, JSON Lines); folders are searched for "
            "*.json, *.jsonl, *.ndjson. `-` reads standard input.",
            show_default=False,
        ),
    ],
    config: ConfigOpt,
    org: Annotated[
        Path | None,
        typer.Option(
            "--org",
            help="ORG.json: account id -> list of OU ids from the root down (for OU overrides).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    json_out: JsonOpt = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when any entry is malformed (default: report, exit 0).")
    ] = False,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Progress bar on stderr (default: when stderr is a terminal and the input is large).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Evaluate the response policy offline on findings and show what it would do.

    With --json, one JSON object per finding on stdout, one a line: finding_id, account_id,
    region, instance_id, type, severity, decision, reason. Without it, a summary on stderr: the
    findings that would be isolated first, then counts by decision, reason, account and type.
    Malformed entries are reported on stderr with file and line, counted, and never stop the run.
    Instance tags (orgcontain:mode) are taken from the finding's instanceDetails.tags.

    JSON Lines are streamed (memory stays flat however many findings); a single JSON document is
    read whole, so convert a large dump first: jq -c '.Findings[]' dump.json > findings.jsonl.
    Only the response policy is simulated, not the hub's trust checks on the event envelope.
    """
    try:
        cfg = load_config_file(config)
    except ConfigError as exc:
        for issue in exc.issues:
            where = f"{exc.source}:{issue.line}" if issue.line else exc.source
            stderr.print(
                f"{escape(where)}: {escape(issue.path or '(top level)')}: {escape(issue.message)}",
                highlight=False,
                soft_wrap=True,
            )
        fail(f"{config} is not a valid orgcontain config")
    try:
        files = engine.discover(paths)
    except engine.InputError as exc:
        fail(str(exc), code=2)  # the arguments name nothing to read: a usage error
    try:
        org_map = engine.load_org_map(org) if org is not None else {}
    except engine.InputError as exc:
        fail(str(exc))
    if cfg.organizational_units and org is None:
        stderr.print(
            "[yellow]note:[/yellow] the config has OU overrides; without --org ORG.json none applies.",
            highlight=False,
            soft_wrap=True,
        )

    shown = 0

    def on_malformed(item: engine.Malformed) -> None:
        nonlocal shown
        shown += 1
        if shown <= MALFORMED_SHOWN:
            stderr.print(f"[yellow]malformed:[/yellow] {escape(str(item))}", highlight=False, soft_wrap=True)

    on_outcome = engine.write_rows(sys.stdout) if json_out else None
    total = engine.input_size(files)
    if progress is None:
        progress = stderr.is_terminal and (total is None or total >= PROGRESS_MIN_BYTES)

    try:
        summary = _run(files, cfg, org_map, on_outcome, on_malformed, progress=progress, total=total)
        sys.stdout.flush()
    except BrokenPipeError:
        # `orgcontain simulate --json ... | head`: the reader left; stop quietly, no traceback.
        _silence_stdout()
        raise typer.Exit(1) from None

    if summary.malformed > MALFORMED_SHOWN:
        stderr.print(
            f"[yellow]malformed:[/yellow] {summary.malformed - MALFORMED_SHOWN} more not shown",
            highlight=False,
        )
    if not json_out:
        _print_summary(summary)
    stderr.print(_footer(summary), highlight=False, soft_wrap=True)

    if summary.findings == 0 and summary.malformed > 0:
        raise typer.Exit(1)  # nothing at all could be read: the input is not what it should be
    if strict and summary.malformed:
        raise typer.Exit(1)


def _run(
    files: list[Path],
    cfg: OrgContainConfig,
    org_map: dict[str, tuple[str, ...]],
    on_outcome: Callable[[engine.Outcome], None] | None,
    on_malformed: Callable[[engine.Malformed], None],
    *,
    progress: bool,
    total: int | None,
) -> Summary:
    if not progress:
        return engine.simulate(files, cfg, org_map, on_outcome=on_outcome, on_malformed=on_malformed)
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    ) as bar:
        task = bar.add_task("simulating", total=total)
        return engine.simulate(
            files,
            cfg,
            org_map,
            on_outcome=on_outcome,
            on_malformed=on_malformed,
            on_progress=lambda done: bar.update(task, completed=done),
        )


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (an in-process test runner)
        pass


def _footer(summary: Summary) -> str:
    rate = f" ({summary.rate:,.0f} findings/s)" if summary.seconds >= 0.05 else ""
    bad = f"; [yellow]{summary.malformed:,} malformed[/yellow]" if summary.malformed else ""
    files = f"{summary.files:,} file" + ("s" if summary.files != 1 else "")
    return f"{summary.findings:,} findings from {files} in {summary.seconds:.2f} s{rate}{bad}"


def _summary_console() -> Console:
    """stderr; when it is not a terminal (CI logs, files), wide enough that ids never wrap."""
    if stderr.is_terminal:
        return stderr
    return Console(stderr=True, width=max(stderr.width, SUMMARY_WIDTH))


def _print_summary(summary: Summary) -> None:
    out = _summary_console()
    top = summary.would_isolate_top()
    if summary.would_isolate:
        table = Table(title=f"Would isolate: {summary.would_isolate:,} findings", title_justify="left")
        for col in ("severity", "account", "region", "instance", "type", "finding"):
            table.add_column(col, justify="right" if col == "severity" else "left", overflow="fold")
        for o in top:
            table.add_row(
                f"{o.severity:g}", o.account_id, o.region, o.instance_id or "-", o.type, o.finding_id
            )
        if summary.would_isolate > len(top):
            more = summary.would_isolate - len(top)
            table.caption = f"highest severity first; {more:,} more not shown (--json lists every finding)"
        out.print(table)
    else:
        out.print("[bold]Would isolate:[/bold] nothing", highlight=False)

    if not summary.findings:
        return
    table = Table(title="By decision", title_justify="left")
    table.add_column("decision")
    table.add_column("findings", justify="right")
    table.add_column("share", justify="right")
    for decision in _ordered(summary.decisions):
        n = summary.decisions[decision]
        style = _DECISION_STYLE.get(decision, "")
        table.add_row(f"[{style}]{decision}[/]" if style else decision, f"{n:,}", _pct(n, summary.findings))
    out.print(table)

    table = Table(title="By reason", title_justify="left")
    table.add_column("decision")
    table.add_column("reason")
    table.add_column("findings", justify="right")
    for (decision, reason), n in sorted(
        summary.reasons.items(), key=lambda kv: (_rank(kv[0][0]), -kv[1], kv[0][1])
    ):
        table.add_row(decision, reason, f"{n:,}")
    out.print(table)

    for title, groups, label in (
        ("By account", summary.by_account, "account"),
        ("By finding type", summary.by_type, "type"),
    ):
        out.print(_group_table(title, label, groups, summary.decisions))


def _group_table(title: str, label: str, groups: dict[str, Counter[str]], seen: Counter[str]) -> Table:
    columns = _ordered(seen)
    table = Table(title=title, title_justify="left")
    table.add_column(label, overflow="fold")
    table.add_column("total", justify="right")
    for decision in columns:
        table.add_column(decision, justify="right")
    # Most isolations first: that is where a threshold change bites.
    ranked = sorted(
        groups.items(),
        key=lambda kv: (-kv[1][Decision.ISOLATED.value], -sum(kv[1].values()), kv[0]),
    )
    for key, counts in ranked[:TABLE_ROWS]:
        table.add_row(
            key, f"{sum(counts.values()):,}", *(f"{counts[d]:,}" if counts[d] else "" for d in columns)
        )
    if len(ranked) > TABLE_ROWS:
        table.caption = f"{len(ranked) - TABLE_ROWS:,} more not shown"
    return table


def _rank(decision: str) -> int:
    return _DECISION_ORDER.index(decision) if decision in _DECISION_ORDER else len(_DECISION_ORDER)


def _ordered(counts: Counter[str]) -> list[str]:
    return sorted(counts, key=_rank)


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "-"
