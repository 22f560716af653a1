"""Throughput and peak memory of ``orgcontain simulate`` on N generated findings (JSON Lines).

The findings are built from the real GuardDuty samples in ``tests/fixtures/guardduty/`` (their
full bodies, 1.6-4.8 KB compact), varied the way an organization's feed varies: many accounts
(a few noisy ones), several regions (some not covered), EC2 and non-EC2 types, a realistic
severity mix, repeat instances, instance tags (a few ``orgcontain:mode`` exemptions), a few
archived and sample findings, 30 % wrapped in EventBridge envelopes, one line in a thousand
malformed.

Two measurements, each in a fresh child process so that its peak RSS is its own:

- ``engine``: ``hub.simulate.simulate`` writing every ``--json`` row to /dev/null, timed around the
  loop: ``findings_per_s`` is per CPU-second (one core's throughput, whatever else the machine
  runs), ``wall_findings_per_s`` per wall-clock second; ``peak_rss_mb`` is that process's peak;
- ``cli``: the real command ``orgcontain simulate --config ... --org ... --json FILE > /dev/null``,
  wall time from process start (interpreter and imports included).

    python benchmarks/simulate_bench.py [N] [--baseline]   # default 100000; prints JSON

``run(n)`` returns ``{"findings": n, "findings_per_s": ..., "peak_rss_mb": ..., ...}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "guardduty"
CONFIG = ROOT / "config" / "orgcontain.yaml"

# Real EC2 finding types (GuardDuty UG "GuardDuty EC2 finding types"), weighted by how often a
# typical feed shows them: scans and brute force dominate, C&C and mining are rarer.
EC2_TYPES = [
    ("Recon:EC2/PortProbeUnprotectedPort", 25),
    ("UnauthorizedAccess:EC2/SSHBruteForce", 15),
    ("UnauthorizedAccess:EC2/RDPBruteForce", 6),
    ("Recon:EC2/Portscan", 5),
    ("UnauthorizedAccess:EC2/TorClient", 4),
    ("UnauthorizedAccess:EC2/MaliciousIPCaller.Custom", 4),
    ("CryptoCurrency:EC2/BitcoinTool.B!DNS", 4),
    ("CryptoCurrency:EC2/BitcoinTool.B", 2),
    ("Backdoor:EC2/C&CActivity.B!DNS", 3),
    ("Backdoor:EC2/C&CActivity.B", 2),
    ("Trojan:EC2/DNSDataExfiltration", 2),
    ("Trojan:EC2/DropPoint!DNS", 2),
    ("Trojan:EC2/DGADomainRequest.B", 2),
    ("Impact:EC2/WinRMBruteForce", 2),
    ("Impact:EC2/PortSweep", 2),
    ("Backdoor:EC2/DenialOfService.Tcp", 1),
    ("Backdoor:EC2/Spambot", 1),
    ("UnauthorizedAccess:EC2/TorRelay", 1),
    ("Canary:EC2/Stateless.IntegTest", 1),
]
REGIONS = [
    ("us-east-1", 45),
    ("eu-west-1", 30),
    ("us-west-2", 10),  # not in config/orgcontain.yaml's regions: region-not-covered
    ("eu-central-1", 8),
    ("ap-southeast-2", 7),
]
SEVERITIES = [(2.0, 30), (3.0, 5), (5.0, 25), (5.5, 5), (6.0, 5), (7.0, 8), (8.0, 15), (8.5, 4), (9.0, 3)]
TAG_KEYS = ["Name", "env", "team", "cost-center", "app", "owner", "aws:autoscaling:groupName", "backup"]
MODE_TAG_VALUES = ["notify", "off", "dry-run", "Notify", "disabled"]
ADMIN_ACCOUNT = "222222222222"
OVERRIDE_OU = "ou-exam-ple11111"  # dry-run in config/orgcontain.yaml
OVERRIDE_ACCOUNTS = ["333333333333", "444444444444"]  # notify / off in config/orgcontain.yaml


def _templates() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Camel-case findings from the fixtures: (instance findings, other findings)."""
    from pydantic import ValidationError

    from hub.models import Finding

    instance: list[dict[str, Any]] = []
    other: list[dict[str, Any]] = []
    for path in sorted(FIXTURES.glob("*.json")):
        data = json.loads(path.read_text())
        detail = data.get("detail", data)
        try:
            finding = Finding.model_validate(detail)
        except ValidationError:
            continue  # ASFF, PascalCase, MozDef-normalised, masked ids: not event-shaped
        if len(json.dumps(detail, separators=(",", ":"))) > 5000:
            continue  # keep findings in the 2-4 KB band on average
        (instance if finding.is_instance_finding else other).append(detail)
    return instance, other


def _weighted(rng: random.Random, pairs: list[tuple[Any, int]]) -> Any:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def generate(path: Path, n: int, seed: int = 7) -> dict[str, Any]:
    """Write ``n`` findings as JSON Lines to ``path`` and ORG.json next to it; return stats."""
    rng = random.Random(seed)
    instance_templates, other_templates = _templates()
    accounts = [f"{rng.randrange(10**11, 10**12)}" for _ in range(500)] + OVERRIDE_ACCOUNTS
    # A few accounts are far noisier than the rest (Zipf-like), as in a real organization.
    account_weights = [1.0 / (i + 1) ** 0.8 for i in range(len(accounts))]
    instances = [f"i-{rng.getrandbits(68):017x}"[:19] for _ in range(20_000)]
    detectors = {a: f"{rng.getrandbits(128):032x}" for a in accounts}
    ec2_types = [t for t, _ in EC2_TYPES]
    ec2_weights = [w for _, w in EC2_TYPES]

    org = {
        a: ["r-ab12", "ou-ab12-workload1", *([OVERRIDE_OU] if i % 3 == 0 else [])]
        for i, a in enumerate(accounts)
    }
    (path.parent / "org.json").write_text(json.dumps(org))

    total_bytes = 0
    with path.open("w", encoding="utf-8") as out:
        for _ in range(n):
            is_instance = rng.random() < 0.75
            template = rng.choice(instance_templates if is_instance else other_templates)
            account = rng.choices(accounts, weights=account_weights)[0]
            region = _weighted(rng, REGIONS)
            fid = f"{rng.getrandbits(128):032x}"
            finding = dict(template)
            finding["accountId"] = account
            finding["region"] = region
            finding["id"] = fid
            detector = detectors[account]
            finding["arn"] = f"arn:aws:guardduty:{region}:{account}:detector/{detector}/finding/{fid}"
            severity = _weighted(rng, SEVERITIES)
            if finding["type"].startswith("AttackSequence:"):
                severity = 9.0
            finding["severity"] = severity
            resource = dict(finding["resource"])
            if is_instance:
                finding["type"] = rng.choices(ec2_types, weights=ec2_weights)[0]
                details = dict(resource["instanceDetails"])
                details["instanceId"] = rng.choice(instances)
                tags = [
                    {"key": k, "value": f"{k}-{rng.randrange(50)}"}
                    for k in rng.sample(TAG_KEYS, rng.randrange(1, 7))
                ]
                if rng.random() < 0.03:
                    tags.append({"key": "orgcontain:mode", "value": rng.choice(MODE_TAG_VALUES)})
                details["tags"] = tags
                resource["instanceDetails"] = details
            finding["resource"] = resource
            service = dict(finding.get("service") or {})
            service["count"] = rng.randrange(1, 500)
            service["archived"] = rng.random() < 0.02
            # Real feeds carry few samples: drop the sample flag from all but 2 %.
            if rng.random() >= 0.02:
                service["additionalInfo"] = {"value": '{"unusual":{}}', "type": "default"}
            finding["service"] = service
            if rng.random() < 0.001:
                finding["accountId"] = "XXXXXXXXXXXX"  # masked: malformed, reported with its line
            record: dict[str, Any] = finding
            if rng.random() < 0.30:
                record = {
                    "version": "0",
                    "id": f"{rng.getrandbits(128):032x}",
                    "detail-type": "GuardDuty Finding",
                    "source": "aws.guardduty",
                    "account": ADMIN_ACCOUNT,
                    "time": "2025-06-01T12:00:00Z",
                    "region": region,
                    "resources": [],
                    "detail": finding,
                }
            line = json.dumps(record, separators=(",", ":")) + "\n"
            total_bytes += len(line)
            out.write(line)
    return {"input_mb": round(total_bytes / 1e6, 1), "mean_finding_bytes": round(total_bytes / max(n, 1))}


def _child_engine(jsonl: str, org_path: str) -> None:
    """Runs in a fresh process: the engine loop alone, as ``--json`` runs it."""
    from hub.config import load_config_file
    from hub.simulate import discover, load_org_map, simulate, write_rows

    config = load_config_file(CONFIG)
    org = load_org_map(org_path)
    from hub.simulate import FileReader

    def validate_only() -> float:
        cpu = time.process_time()
        validated = sum(1 for _ in FileReader(Path(jsonl)))
        return validated / (time.process_time() - cpu)

    # Side by side, same process and input: reading and validating alone (``FileReader``: lines
    # -> ``Finding`` via pydantic-core; no policy, no rows), before and after the real run (so
    # neither gets the warm start): the ratio says what the policy and the rows cost on top.
    before = validate_only()
    with open(os.devnull, "w") as sink:
        summary = simulate(discover([jsonl]), config, org, on_outcome=write_rows(sink))
    after = validate_only()
    print(
        json.dumps(
            {
                "findings": summary.findings,
                "malformed": summary.malformed,
                "seconds": summary.seconds,
                "cpu_seconds": summary.cpu_seconds,
                "decisions": dict(summary.decisions),
                "validate_only_per_s": (before + after) / 2,
            }
        )
    )


def _child_baseline(jsonl: str, org_path: str) -> None:
    """The straightforward version, for scale: decode every line with ``json.loads`` into memory,
    validate the dicts, decide, build every row with ``json.dumps``, then print."""
    from hub.config import load_config_file
    from hub.models import Finding
    from hub.policy import decide

    config = load_config_file(CONFIG)
    org = json.loads(Path(org_path).read_text())
    started, cpu = time.perf_counter(), time.process_time()
    with open(jsonl, "rb") as fh:
        docs = [json.loads(raw) for raw in fh]
    findings = []
    for doc in docs:
        with contextlib.suppress(ValueError):  # the malformed lines
            findings.append(Finding.model_validate(doc.get("detail", doc)))
    rows = []
    for f in findings:
        pd = decide(f, config, org.get(f.account_id, ()))
        rows.append(
            json.dumps(
                {
                    "finding_id": f.id,
                    "account_id": f.account_id,
                    "region": f.region,
                    "instance_id": f.instance_id,
                    "type": f.type,
                    "severity": f.severity,
                    "decision": pd.decision.value,
                    "reason": pd.reason,
                }
            )
        )
    with open(os.devnull, "w") as sink:
        sink.write("\n".join(rows))
    print(
        json.dumps(
            {
                "findings": len(findings),
                "seconds": time.perf_counter() - started,
                "cpu_seconds": time.process_time() - cpu,
            }
        )
    )


# Peak RSS is read inside each child (``VmHWM``: this process image's high-water mark), printed to
# stderr at exit. Not ``wait4``'s ``ru_maxrss``: Linux carries the parent's peak over fork + exec
# (subprocess forks with vfork), so a child of a 200 MB benchmark process would "peak" at 200 MB.
PEAK_MARK = "orgcontain-bench-peak-rss-kb"
_REPORT_PEAK = (
    "import atexit, sys\n"
    "def _peak():\n"
    "    with open('/proc/self/status') as fh:\n"
    "        kb = next(line.split()[1] for line in fh if line.startswith('VmHWM:'))\n"
    f"    print('{PEAK_MARK}', kb, file=sys.stderr, flush=True)\n"
    "atexit.register(_peak)\n"
)


def _run_child(args: list[str], stdout: Any) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB, exit code) of one child process that reports its peak."""
    started = time.perf_counter()
    proc = subprocess.run(args, stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT, check=False)
    wall = time.perf_counter() - started
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{args[1:3]} exited {proc.returncode}: {err[-2000:]}")
    peaks = [line.split()[1] for line in err.splitlines() if line.startswith(PEAK_MARK)]
    if not peaks:
        raise RuntimeError(f"{args[1:3]} did not report its peak RSS: {err[-2000:]}")
    return wall, int(peaks[-1]) / 1024, proc.returncode


def run(n: int, *, repeats: int = 1, baseline: bool = False) -> dict[str, Any]:
    """Generate ``n`` findings, simulate them ``repeats`` times (fresh processes), and measure
    findings/s (median) and peak RSS (the highest).

    ``baseline`` also times the straightforward version (everything decoded into memory) on the
    same input, to put the figures in scale on this machine; it needs about 20 KB per finding.
    """
    with tempfile.TemporaryDirectory(prefix="orgcontain-simbench-") as tmp:
        jsonl = Path(tmp) / "findings.jsonl"
        org_path = Path(tmp) / "org.json"
        stats = generate(jsonl, n)

        engines: list[dict[str, Any]] = []
        engine_rss = 0.0
        for _ in range(repeats):
            with tempfile.TemporaryFile() as out:
                _wall, rss, _ = _run_child(
                    [sys.executable, __file__, "--child-engine", str(jsonl), str(org_path)], out
                )
                out.seek(0)
                engines.append(json.loads(out.read()))
            engine_rss = max(engine_rss, rss)
        with open(os.devnull, "w") as sink:
            cli_wall, cli_rss, _ = _run_child(
                [
                    sys.executable,
                    "-c",
                    _REPORT_PEAK + "from hub.cli import main; main()",
                    "simulate",
                    "--config",
                    str(CONFIG),
                    "--org",
                    str(org_path),
                    "--json",
                    "--no-progress",
                    str(jsonl),
                ],
                sink,
            )
        extra: dict[str, Any] = {}
        if baseline:
            with tempfile.TemporaryFile() as out:
                _wall, base_rss, _ = _run_child(
                    [sys.executable, __file__, "--child-baseline", str(jsonl), str(org_path)], out
                )
                out.seek(0)
                base = json.loads(out.read())
            extra = {
                "baseline_findings_per_s": round(base["findings"] / base["cpu_seconds"]),
                "baseline_peak_rss_mb": round(base_rss, 1),
            }
    engine = engines[-1]
    rates = [e["findings"] / e["cpu_seconds"] for e in engines]
    if extra:
        # The machine-independent figure: the same input, the same machine, minutes apart.
        extra["speedup_vs_baseline"] = round(statistics.median(rates) / extra["baseline_findings_per_s"], 1)
    validate_rates = [e["validate_only_per_s"] for e in engines]
    return {
        "findings": n,
        "repeats": repeats,
        # Per CPU-second of the (single-threaded) simulating process: one core's throughput,
        # whatever else the machine runs (though a busy sibling core still slows it). The
        # wall-clock rate is next to it.
        "findings_per_s": round(statistics.median(rates)),
        "findings_per_s_runs": [round(r) for r in rates],
        "validate_only_per_s": round(statistics.median(validate_rates)),
        "ratio_to_validate_only": round(
            statistics.median(r / v for r, v in zip(rates, validate_rates, strict=True)), 2
        ),
        "peak_rss_mb": round(engine_rss, 1),
        "wall_findings_per_s": round(statistics.median(e["findings"] / e["seconds"] for e in engines)),
        "malformed": engine["malformed"],
        "decisions": engine["decisions"],
        "cli_seconds": round(cli_wall, 2),
        "cli_findings_per_s": round(n / cli_wall),
        "cli_peak_rss_mb": round(cli_rss, 1),
        **stats,
        **extra,
    }


def report(fig: dict[str, Any]) -> list[str]:
    lines = [
        f"6. simulate: {fig['findings']:,} findings ({fig['input_mb']} MB JSON Lines): "
        f"{fig['findings_per_s']:,} findings/s per CPU-second (target >= 40,000 on one core), "
        f"{fig['wall_findings_per_s']:,}/s wall, peak RSS {fig['peak_rss_mb']:.0f} MB (target < 200 MB); "
        f"median of {fig['repeats']} fresh processes",
        f"   side by side, reading + validating alone (no policy, no rows): "
        f"{fig['validate_only_per_s']:,}/s; simulate runs at {fig['ratio_to_validate_only']:.2f}x that",
        f"   the CLI end to end (interpreter, imports, --json to /dev/null): {fig['cli_seconds']:.1f} s, "
        f"{fig['cli_findings_per_s']:,} findings/s, peak RSS {fig['cli_peak_rss_mb']:.0f} MB",
    ]
    if "baseline_findings_per_s" in fig:
        lines.append(
            f"   straightforward version (json.loads everything into memory, then validate, decide, "
            f"rows), one run: {fig['baseline_findings_per_s']:,}/s, peak RSS "
            f"{fig['baseline_peak_rss_mb']:.0f} MB; simulate is {fig['speedup_vs_baseline']}x faster"
        )
    return lines


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("--child-"):
        exec(_REPORT_PEAK)
    if len(sys.argv) > 1 and sys.argv[1] == "--child-engine":
        _child_engine(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-baseline":
        _child_baseline(sys.argv[2], sys.argv[3])
    else:
        args = [a for a in sys.argv[1:] if a != "--baseline"]
        count = int(args[0]) if args else 100_000
        print(json.dumps(run(count, baseline="--baseline" in sys.argv), indent=2))
