"""Figure 4: import time of ``hub.handler`` against ``import boto3`` alone, in fresh interpreters.

Each measurement is a new ``python -X importtime -c "import X"``; the figure is the sum of the
top-level imports' cumulative times, minus what the interpreter imports at start-up anyway
(measured with ``-c pass``). The two imports alternate, ``repeats`` times each, and the ratio is
taken between their medians (same machine, same moment).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Everything the first finding loads on top (the handler defers these to the first invocation).
FIRST_INVOCATION = "import hub.handler, hub.responder, hub.notify, spoke.isolate, spoke.release, boto3"


def _import_us(statement: str, startup: frozenset[str]) -> int:
    """Microseconds spent importing for ``statement`` in a fresh interpreter (startup excluded)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "POWERTOOLS_TRACE_DISABLED": "true"}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=True,
    )
    total = 0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = line.removeprefix("import time:").split("|")
        if name.startswith("  "):  # nested: already inside its parent's cumulative time
            continue
        module = name.strip()
        if module not in startup:
            total += int(cumulative)
    return total


def _startup_modules() -> frozenset[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, text=True, check=True
    )
    return frozenset(
        line.split("|")[2].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")
    )


def run(repeats: int = 7) -> dict[str, Any]:
    startup = _startup_modules()
    handler: list[int] = []
    boto3: list[int] = []
    first: list[int] = []
    for _ in range(repeats):
        handler.append(_import_us("import hub.handler", startup))
        boto3.append(_import_us("import boto3", startup))
        first.append(_import_us(FIRST_INVOCATION, startup))
    h, b, f = statistics.median(handler), statistics.median(boto3), statistics.median(first)
    return {
        "repeats": repeats,
        "hub_handler_ms": round(h / 1000, 1),
        "boto3_ms": round(b / 1000, 1),
        "ratio": round(h / b, 2),
        "first_invocation_imports_ms": round(f / 1000, 1),
        "first_invocation_ratio": round(f / b, 2),
    }


def report(fig: dict[str, Any]) -> list[str]:
    return [
        f"4. cold start: import hub.handler {fig['hub_handler_ms']:.0f} ms vs import boto3 "
        f"{fig['boto3_ms']:.0f} ms = {fig['ratio']:.2f}x (target <= 1.5x; medians of {fig['repeats']} "
        "fresh interpreters each, alternating)",
        f"   plus what the first invocation imports (boto3, pydantic models, spoke): "
        f"{fig['first_invocation_imports_ms']:.0f} ms = {fig['first_invocation_ratio']:.2f}x boto3",
    ]
