"""orgcontain's benchmarks, one entry point: ``python benchmarks/run.py [--quick] [--json]``.

Runs every figure of issue #8 on the emulated organization (moto in-process, and moto's server on
127.0.0.1 where round trips matter) and prints each; ``--json`` prints one JSON object on stdout
(the report goes to stderr). ``--only 1,6`` runs some figures. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.emulated import quiet_environment  # noqa: E402

# (figure number, name) -> (full parameters, quick parameters)
PARAMS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "critical_path": ({"repeats": 5}, {"repeats": 1}),
    "api_cost": ({"repeats": 7}, {"repeats": 3}),
    "cold_start": ({"repeats": 9}, {"repeats": 3}),
    "hub_cpu": ({"n": 2000, "repeats": 5}, {"n": 500, "repeats": 2}),
    # baseline=1: the straightforward version side by side (about 20 KB of memory per finding).
    "simulate": ({"n": 100_000, "repeats": 3, "baseline": 1}, {"n": 10_000, "repeats": 1, "baseline": 0}),
    "burst": ({"findings": 1000, "accounts": 50}, {"findings": 40, "accounts": 4, "workers": (1, 4)}),
    "coverage": ({"accounts": 200, "repeats": 3}, {"accounts": 40, "repeats": 1}),
}
FIGURES = {
    1: "critical_path",
    2: "api_cost",
    3: "api_cost",
    4: "cold_start",
    5: "hub_cpu",
    6: "simulate",
    7: "burst",
    8: "coverage",
}


def _print(lines: list[str], out: Any) -> None:
    print("\n".join(lines), file=out, flush=True)


def run(
    figures: set[int],
    *,
    quick: bool,
    out: Any = sys.stdout,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run ``figures`` (numbers 1-8); print each as it is done to ``out``; return the results.

    ``overrides`` replaces parameters: ``{"simulate": {"n": 2000}}``."""
    quiet_environment()
    from benchmarks import api_cost, burst, cold_start, coverage_scale, critical_path, hub_cpu, simulate_bench
    from benchmarks.server import MotoServer, reset

    def params(name: str) -> dict[str, Any]:
        full, short = PARAMS[name]
        return {**(short if quick else full), **(overrides or {}).get(name, {})}

    results: dict[str, Any] = {
        "quick": quick,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "figures": {},
    }
    figs: dict[str, Any] = results["figures"]
    started = time.perf_counter()
    needs_server = figures & {1, 2, 3, 7, 8}
    server = MotoServer()
    with server if needs_server else nullcontext():
        endpoint = server.endpoint

        # (figure, name in the results, what measures it, what reports it, fresh moto state first)
        steps: list[tuple[int, str, Callable[[], Any], Callable[[Any], list[str]], bool]] = [
            (1, "critical_path", lambda: critical_path.run(endpoint, **params("critical_path")),
             critical_path.report, True),
            (2, "api_cost", lambda: api_cost.scenarios(endpoint), api_cost.report_scenarios, True),
            (3, "versus_seed", lambda: api_cost.versus_seed(endpoint, **params("api_cost")),
             api_cost.report_seed, True),
            (4, "cold_start", lambda: cold_start.run(**params("cold_start")), cold_start.report, False),
            (5, "hub_cpu", lambda: hub_cpu.run(**params("hub_cpu")), hub_cpu.report, False),
            (6, "simulate", lambda: simulate_bench.run(**params("simulate")), simulate_bench.report, False),
            (7, "burst", lambda: burst.run(server, **params("burst")), burst.report, False),
            (8, "coverage", lambda: coverage_scale.run(endpoint, **params("coverage")),
             coverage_scale.report, False),
        ]  # fmt: skip
        for number, name, body, report, fresh in steps:
            if number not in figures:
                continue
            if fresh:
                reset(endpoint)
            t = time.perf_counter()
            figs[name] = body()
            figs[name]["bench_seconds"] = round(time.perf_counter() - t, 1)
            _print(report(figs[name]), out)
    results["seconds"] = round(time.perf_counter() - started, 1)
    results.update(_headline(figs))
    return results


def _headline(figs: dict[str, Any]) -> dict[str, Any]:
    """The figures as flat numbers (the keys issue #8 names); absent when not run."""
    out: dict[str, Any] = {}
    if "critical_path" in figs:
        f = figs["critical_path"]
        out["calls_to_isolation_warm"] = f["warm"]["member_calls"]
        out["calls_to_isolation_cold"] = f["cold"]["member_calls"]
        out["e2e_round_trips_to_isolation_warm"] = f["warm"]["round_trips"]
        out["e2e_round_trips_to_isolation_cold"] = f["cold"]["round_trips"]
        out["e2e_round_trips_to_isolation_warm_3_enis"] = f["warm_3_enis_concurrent"]["round_trips"]
    if "api_cost" in figs:
        f = figs["api_cost"]["scenarios"]
        out["calls_full_containment"] = f["1_eni"]["containment"]["total"]
        out["calls_release"] = f["1_eni"]["release"]["total"]
    if "versus_seed" in figs:
        f = figs["versus_seed"]
        out["seed_calls"] = f["seed_calls"]
        out["seed_ms"] = f["seed_ms"]
        out["orgcontain_ms_full_containment"] = f["orgcontain_ms"]
        out["orgcontain_ms_to_network_isolation"] = f["orgcontain_ms_to_network_isolation"]
    if "cold_start" in figs:
        out["import_ratio_vs_boto3"] = figs["cold_start"]["ratio"]
    if "hub_cpu" in figs:
        out["hub_cpu_ms_per_finding"] = figs["hub_cpu"]["cpu_ms_per_finding"]
    if "simulate" in figs:
        out["simulate_findings_per_s"] = figs["simulate"]["findings_per_s"]
        out["simulate_peak_rss_mb"] = figs["simulate"]["peak_rss_mb"]
        if "baseline_findings_per_s" in figs["simulate"]:
            out["simulate_speedup_vs_straightforward"] = figs["simulate"]["speedup_vs_baseline"]
    if "burst" in figs:
        runs = {r["workers"]: r for r in figs["burst"]["runs"]}
        if 4 in runs:
            out["burst_speedup_4_workers"] = runs[4]["speedup"]
        out["burst_cpu_bound_speedup"] = figs["burst"]["cpu_bound_speedup"]
        out["duplicate_containments"] = figs["burst"]["duplicate_containments"]
    if "coverage" in figs:
        out["coverage_seconds"] = figs["coverage"]["seconds"]
        out["coverage_api_calls"] = figs["coverage"]["api_calls"]
    return out


def _param_names() -> str:
    return ", ".join(f"{name}.{key}" for name, (full, _) in PARAMS.items() for key in full)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller inputs, fewer repeats (under 2 minutes)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout; the report on stderr")
    parser.add_argument("--only", default="", help="comma-separated figure numbers (1-8); default all")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME.PARAM=N",
        help=f"override one parameter, e.g. simulate.n=5000 (names: {', '.join(PARAMS)})",
    )
    args = parser.parse_args(argv)
    overrides: dict[str, dict[str, Any]] = {}
    for item in args.set:
        target, _, value = item.partition("=")
        name, _, key = target.partition(".")
        if name not in PARAMS or key not in PARAMS[name][0] or not value:
            parser.error(f"--set {item}: expected NAME.PARAM=N with one of {_param_names()}")
        try:
            overrides.setdefault(name, {})[key] = int(value)
        except ValueError:
            parser.error(f"--set {item}: {value!r} is not a whole number")
    figures = {int(x) for x in args.only.split(",") if x.strip()} or set(FIGURES)
    unknown = figures - set(FIGURES)
    if unknown:
        parser.error(f"no figure {sorted(unknown)}: choose from 1-8")
    out = sys.stderr if args.json else sys.stdout
    results = run(figures, quick=args.quick, out=out, overrides=overrides)
    _print([f"done in {results['seconds']:.0f} s"], out)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
