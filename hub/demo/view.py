"""How `orgcontain demo` looks on a terminal: setup progress, a live table of findings, a summary.

Everything goes to the console it is given (stderr in the CLI), so ``--json`` keeps stdout clean.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.status import Status
from rich.table import Table
from rich.text import Text

from hub.demo.scenario import Row

DECISION_STYLE = {
    "isolated": "bold red",
    "already-isolated": "red",
    "dry-run": "yellow",
    "notified": "cyan",
    "skipped": "bright_black",
    "rejected": "magenta",
    "failed": "bold white on red",
}
STATE_TEXT = {
    "planned": ("", "bright_black"),
    "sent": ("on its way", "bright_black"),
    "filtered": ("not forwarded", "bright_black"),
    "failed": ("failed", "bold white on red"),
}


def steps_text(steps: list[dict[str, Any]]) -> str:
    """Step outcomes in a few characters: ``9 done 3 skip``, ``8 would``, ``1 FAILED``."""
    counts: dict[str, int] = {}
    for step in steps:
        status = str(step.get("status", ""))
        counts[status] = counts.get(status, 0) + 1
    labels = (
        ("done", "done"),
        ("already", "already"),
        ("would", "would"),
        ("skipped", "skip"),
        ("failed", "FAILED"),
    )
    return " ".join(f"{counts[k]} {label}" for k, label in labels if counts.get(k))


def findings_table(rows: list[Row], title: str = "findings") -> Table:
    table = Table(
        title=title, title_justify="left", expand=False, pad_edge=False, box=None, header_style="bold"
    )
    table.add_column("#", justify="right", style="bright_black")
    table.add_column("finding")
    table.add_column("account / region")
    table.add_column("instance", style="bright_black", no_wrap=True)
    table.add_column("decision / reason")
    table.add_column("steps")
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("", justify="center")
    for row in rows:
        sev = row.effective_severity
        finding = Text(row.label, style="bold")
        finding.append(
            f"\n{row.finding_type or '-'}" + (f"  sev {sev:g}" if sev is not None else ""),
            style="bright_black",
        )
        if row.decision and row.state in ("decided", "failed"):
            decision = Text(row.decision, style=DECISION_STYLE.get(row.decision, ""))
            decision.append(f"\n{row.reason or ''}", style="")
        else:
            label, style = STATE_TEXT.get(row.state, (row.state, ""))
            decision = Text(label, style=style)
            if row.state == "filtered":
                decision.append("\nbelow the forwarder's severity", style=style)
        seconds = row.seconds
        if row.state in ("planned", "sent"):
            mark = Text("")
        else:
            mark = Text("✓", style="green") if row.ok else Text("✗", style="bold red")
        table.add_row(
            str(row.n),
            finding,
            f"{row.account_name}\n{row.region}",
            row.target_instance_id or "-",
            decision,
            steps_text(row.steps),
            f"{seconds:.2f}s" if seconds is not None else "",
            mark,
        )
    return table


class RichView:
    """Spinner lines for the setup phases, then the live findings table."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._status: Status | None = None
        self._live: Live | None = None
        self._rows: list[Row] = []
        self._phase = ""

    def phase(self, name: str) -> None:
        self.close()
        self._phase = name
        self._status = self.console.status(f"[bold]{name}[/bold] …")
        self._status.start()

    def step(self, text: str) -> None:
        if self._status is not None:
            self._status.update(f"[bold]{self._phase}[/bold] {escape(text)}")

    def phase_done(self, name: str, summary: str, seconds: float) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        self.console.print(
            f"[green]✓[/green] [bold]{name:<12}[/bold] {seconds:6.1f}s  {escape(summary)}", highlight=False
        )

    def _window(self) -> Table:
        """The rows in flight and the latest decided ones, as many as the terminal shows."""
        started = [r for r in self._rows if r.state != "planned"]
        fit = max(4, (self.console.size.height - 8) // 3)
        shown = started[-fit:]
        title = f"findings {len(started)}/{len(self._rows)}"
        return findings_table(shown, title)

    def findings_start(self, rows: list[Row]) -> None:
        self.close()
        self._rows = rows
        # Transient: the complete table is printed once at the end.
        self._live = Live(self._window(), console=self.console, refresh_per_second=4, transient=True)
        self._live.start()

    def rows_changed(self) -> None:
        if self._live is not None:
            self._live.update(self._window())

    def findings_done(self) -> None:
        self.close()
        self.console.print(findings_table(self._rows))

    def close(self) -> None:
        """Stop whatever is animating (also when the run fails half-way)."""
        if self._status is not None:
            self._status.stop()
            self._status = None
        if self._live is not None:
            self._live.stop()
            self._live = None


def print_summary(console: Console, document: dict[str, Any], log_problems: list[str]) -> None:
    """The closing summary: decisions, containment, timing, checks, and what moto could not do."""
    s = document["summary"]
    console.print()
    decisions = ", ".join(f"{n} {d}" for d, n in sorted(s["decisions"].items(), key=lambda kv: -kv[1]))
    lines = [
        Text.from_markup(
            f"[bold]{s['findings']} findings[/bold]: {s['decided']} decided by the hub ({decisions}); "
            f"{s['filtered_before_the_hub']} stopped by the forwarder rule"
        ),
        Text(
            f"{s['isolated_instances']} instances isolated "
            f"({s['quarantined_enis']} ENIs on quarantine groups); {s['notifications']} SNS notifications; "
            f"{s['lambda_invocations']} Lambda invocations"
        ),
    ]
    to_net = s["seconds_to_network_isolation"]
    e2e = s["seconds_put_to_decided"]
    if e2e["median"] is not None:
        lines.append(
            Text(
                f"finding put on the bus -> its Lambda invocation returned: median {e2e['median']:.2f}s, "
                f"max {e2e['max']:.2f}s"
                + (
                    f"; finding -> all ENIs isolated (the hub's metric): median {to_net['median']:.2f}s"
                    if to_net["median"] is not None
                    else ""
                )
            )
        )
    phases = ", ".join(f"{k} {v:.1f}s" for k, v in s["phases_seconds"].items())
    lines.append(Text(f"time: {s['total_seconds']:.1f}s ({phases}); seed {document['seed']}"))
    console.print(Group(*lines))
    console.print()
    for check in document["checks"]:
        mark = "[green]✓[/green]" if check["passed"] else "[bold red]✗[/bold red]"
        console.print(f"{mark} {check['name']}: {escape(check['detail'])}", highlight=False, soft_wrap=True)
    console.print()
    console.print(
        "[bright_black]moto, not AWS: gaps on this path and how the demo bridges them[/bright_black]"
    )
    for gap in document["moto_gaps"]:
        console.print(
            f"[bright_black]- {escape(gap['gap'])}: {escape(gap['bridge'])}[/bright_black]",
            highlight=False,
            soft_wrap=True,
        )
    if not document["passed"]:
        console.print()
        console.print("[bold red]demo checks failed[/bold red]")
        for line in log_problems:
            console.print(
                f"[bright_black]lambda log: {escape(line)}[/bright_black]", highlight=False, soft_wrap=True
            )
    else:
        console.print()
        console.print("[bold green]all checks passed[/bold green]")
