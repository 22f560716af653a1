"""`orgcontain simulate`: every input shape, malformed input, summaries, exit codes.

Driven through the real Typer app (CliRunner); the decisions come from hub.policy.decide.
"""

from __future__ import annotations

import copy
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hub.cli import app
from hub.config import load_config_file
from hub.models import Finding
from hub.simulate import (
    ROW_KEYS,
    Malformed,
    Outcome,
    discover,
    pascal_to_camel,
    read_document,
    read_items,
    row_json,
    simulate,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "guardduty"
CONFIG = ROOT / "config" / "orgcontain.yaml"

SAMPLE = ("skipped", "sample-finding")
MALFORMED = "malformed"

# Every fixture file and what simulate makes of it under config/orgcontain.yaml (min_severity 7,
# mode isolate, regions us-east-1 + eu-west-1). Most public findings are GuardDuty samples, and
# the policy checks the sample flag before the resource type; the same findings without the
# flag are checked in test_fixture_findings_without_the_sample_flag.
EXPECTED: dict[str, tuple[str, str]] = {
    "asff-securityhub-stealth-cloudtrailloggingdisabled.json": (MALFORMED, "Security Hub (ASFF)"),
    "autoresp-ec2-canary-integtest-bare.json": ("skipped", "below-threshold"),  # real, severity 5
    "autoresp-iam-recon-maliciousipcaller-custom-sample-bare.json": ("skipped", "archived"),
    "autoresp-s3-pentest-parrotlinux-sample-bare.json": ("skipped", "archived"),
    "awscli-getfindings-iam-recon-userpermissions-count5.json": ("skipped", "below-threshold"),
    "custodian-ec2-backdoor-cc-dns-sample.json": SAMPLE,
    "custodian-iam-toripcaller-sample.json": SAMPLE,
    "elastic-ec2-bitcointool-b-sample-count4.json": SAMPLE,
    "elastic-ec2-cc-activity-b-sample-count4.json": SAMPLE,
    "elastic-ec2-impact-winrmbruteforce-actor-sample-count4.json": SAMPLE,
    "elastic-ec2-sshbruteforce-sample-count4-low.json": SAMPLE,
    "elastic-ec2-torclient-sample-count4.json": SAMPLE,
    "elastic-ec2-trojan-droppoint-dns-sample-count4.json": SAMPLE,
    "elastic-iam-instancecredentialexfiltration-outsideaws-sample-count4.json": SAMPLE,
    "elastic-rds-credentialaccess-anomalous-successfullogin-sample.json": SAMPLE,
    # Edited by its source: accountId "123456789" is not an account id.
    "elastic-runtime-container-dockersocketaccessed-on-ec2-EDITED.json": (MALFORMED, "accountId"),
    "elastic-s3-exfiltration-maliciousipcaller-sample-count4.json": SAMPLE,
    "elastic-s3-impact-maliciousipcaller-sample-count4.json": SAMPLE,
    "elastic-s3-policy-bucketblockpublicaccessdisabled-sample-count4.json": SAMPLE,
    # Its author masked the account as XXXXXXXXXXXX.
    "lab39-ec2-bitcointool-b-dns-REAL-eventbridge-envelope.json": (MALFORMED, "detail.accountId"),
    # MozDef renamed GuardDuty's `service` block: not the GuardDuty shape any more.
    "mozdef-ec2-backdoor-dos-tcp-sample-count21-normalized.json": (MALFORMED, "service: required"),
    "mozdef-ec2-bitcointool-b-dns-sample-count21-normalized.json": (MALFORMED, "service: required"),
    "mozdef-ec2-portprobe-real-count13793-normalized.json": (MALFORMED, "service: required"),
    "mozdef-ec2-rdpbruteforce-real-normalized.json": (MALFORMED, "service: required"),
    "mozdef-ec2-torclient-sample-count21-normalized.json": (MALFORMED, "service: required"),
    "mozdef-ec2-trojan-dgadomainrequest-b-sample-count21-normalized.json": (MALFORMED, "service: required"),
    "o7-ec2-backdoor-spambot-sample-eventbridge-envelope.json": SAMPLE,
    "panther-attacksequence-iam-compromisedcredentials-bare.json": ("notified", "attack-sequence"),
    "panther-attacksequence-s3-compromiseddata-sample-bare.json": SAMPLE,
    "sekoia-container-execution-suspiciousfile-sample-bare.json": SAMPLE,
    "sekoia-ec2-portprobeunprotectedport-sample-bare.json": SAMPLE,
    "sekoia-ec2-torrelay-sample-bare.json": SAMPLE,
    "sekoia-ecs-execution-maliciousfile-sample-bare.json": SAMPLE,
    "sekoia-eks-policy-adminaccesstodefaultsa-sample-bare.json": SAMPLE,
    "sekoia-iam-exfiltration-anomalousbehavior-sample-bare.json": SAMPLE,
    "sekoia-iam-maliciousipcaller-sample-bare.json": SAMPLE,
    "sekoia-s3-discovery-maliciousipcaller-custom-sample-bare.json": SAMPLE,
    # Only region + detail, and detail lacks accountId/region/arn.
    "wafacl-ec2-sshbruteforce-sample-partial-envelope.json": (MALFORMED, "detail.accountId: required"),
}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run(runner: CliRunner, *args: str, input: str | None = None) -> Any:
    result = runner.invoke(app, ["simulate", *args], input=input)
    assert "Traceback" not in result.output, result.output
    return result


def rows(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def raw_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def finding_of(data: dict[str, Any]) -> dict[str, Any]:
    """The camelCase finding inside a fixture (bare, envelope)."""
    found: dict[str, Any] = data.get("detail", data)
    return found


def fixture_finding_id(name: str) -> str:
    data = raw_fixture(name)
    if "Findings" in data:
        return str(data["Findings"][0]["Id"])
    return str(finding_of(data).get("id"))


def a_finding(**changes: Any) -> dict[str, Any]:
    """A real, non-sample, high-severity EC2 finding in a covered region (from a fixture)."""
    finding = copy.deepcopy(raw_fixture("elastic-ec2-torclient-sample-count4.json"))
    finding["service"]["additionalInfo"] = {"value": "{}", "type": "default"}
    finding.update(region="us-east-1", accountId="555555555555")
    finding["arn"] = f"arn:aws:guardduty:us-east-1:555555555555:detector/d/finding/{finding['id']}"
    for key, value in changes.items():
        finding[key] = value
    return finding


def line(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":")) + "\n"


# --- the fixtures, as a folder -------------------------------------------------------------------


def test_every_fixture_file_gets_a_sensible_decision(runner: CliRunner) -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in FIXTURES.glob("*.json")), "new fixture? add it"
    result = run(runner, "--config", str(CONFIG), "--json", str(FIXTURES))
    assert result.exit_code == 0, result.output

    by_id = {row["finding_id"]: row for row in rows(result.stdout)}
    malformed = [ln for ln in result.stderr.splitlines() if ln.startswith("malformed:")]
    for name, (decision, detail) in EXPECTED.items():
        if decision == MALFORMED:
            reported = [ln for ln in malformed if f"{name}:1: " in ln]
            assert len(reported) == 1, (name, malformed)
            assert detail in reported[0], reported[0]
            assert fixture_finding_id(name) not in by_id
        else:
            row = by_id[fixture_finding_id(name)]
            assert (row["decision"], row["reason"]) == (decision, detail), (name, row)
    n_malformed = sum(1 for d, _ in EXPECTED.values() if d == MALFORMED)
    assert len(by_id) == len(EXPECTED) - n_malformed
    assert len(malformed) == n_malformed
    assert f"{n_malformed} malformed" in result.stderr


def test_rows_have_exactly_the_documented_keys(runner: CliRunner) -> None:
    result = run(runner, "-c", str(CONFIG), "--json", str(FIXTURES))
    for row in rows(result.stdout):
        assert tuple(row) == ROW_KEYS
        assert isinstance(row["severity"], float)


def test_key_fixtures_in_detail(runner: CliRunner) -> None:
    result = run(runner, "-c", str(CONFIG), "--json", str(FIXTURES))
    by_id = {row["finding_id"]: row for row in rows(result.stdout)}
    # The PascalCase `aws guardduty get-findings` file, normalised to the event shape.
    cli = by_id["1ab92989eaf0e742df4a014d5example"]
    assert cli == {
        "finding_id": "1ab92989eaf0e742df4a014d5example",
        "account_id": "111122223333",
        "region": "us-east-1",
        "instance_id": None,
        "type": "Recon:IAMUser/UserPermissions",
        "severity": 5.0,
        "decision": "skipped",
        "reason": "below-threshold",
    }
    # An EC2 instance finding carries its instance id; an S3 one with a placeholder
    # instanceDetails block (resourceType S3Bucket) does not name an instance.
    canary = by_id[fixture_finding_id("autoresp-ec2-canary-integtest-bare.json")]
    assert canary["instance_id"] == "i-05746eb48123455e0"
    s3 = by_id[fixture_finding_id("elastic-s3-exfiltration-maliciousipcaller-sample-count4.json")]
    assert s3["instance_id"] is None
    # Envelopes: the member account comes from detail.accountId, never the envelope's account.
    o7 = raw_fixture("o7-ec2-backdoor-spambot-sample-eventbridge-envelope.json")
    assert by_id[o7["detail"]["id"]]["account_id"] == o7["detail"]["accountId"]


@pytest.mark.parametrize(
    ("name", "region", "expected"),
    [
        # S3 and IAM findings are not about an instance, even with an instanceDetails block.
        (
            "elastic-s3-exfiltration-maliciousipcaller-sample-count4.json",
            None,
            ("skipped", "not-instance-finding"),
        ),
        (
            "sekoia-s3-discovery-maliciousipcaller-custom-sample-bare.json",
            None,
            ("skipped", "not-instance-finding"),
        ),
        (
            "elastic-iam-instancecredentialexfiltration-outsideaws-sample-count4.json",
            None,
            ("skipped", "not-instance-finding"),
        ),
        (
            "sekoia-eks-policy-adminaccesstodefaultsa-sample-bare.json",
            None,
            ("skipped", "not-instance-finding"),
        ),
        ("panther-attacksequence-s3-compromiseddata-sample-bare.json", None, ("notified", "attack-sequence")),
        # EC2, high severity: us-east-2 is not a configured region; us-east-1 is.
        ("elastic-ec2-torclient-sample-count4.json", None, ("notified", "region-not-covered")),
        ("elastic-ec2-torclient-sample-count4.json", "us-east-1", ("isolated", "mode-isolate")),
        ("sekoia-ec2-torrelay-sample-bare.json", "eu-west-1", ("isolated", "mode-isolate")),
        ("elastic-ec2-sshbruteforce-sample-count4-low.json", "us-east-1", ("skipped", "below-threshold")),
    ],
)
def test_fixture_findings_without_the_sample_flag(
    runner: CliRunner, tmp_path: Path, name: str, region: str | None, expected: tuple[str, str]
) -> None:
    finding = finding_of(raw_fixture(name))
    finding["service"]["additionalInfo"] = {}
    if region is not None:
        finding["region"] = region
    (tmp_path / "f.json").write_text(json.dumps(finding, indent=2))
    result = run(runner, "-c", str(CONFIG), "--json", str(tmp_path / "f.json"))
    [row] = rows(result.stdout)
    assert (row["decision"], row["reason"]) == expected


# --- input shapes --------------------------------------------------------------------------------


def test_json_lines_mixed_shapes_and_malformed_lines(runner: CliRunner, tmp_path: Path) -> None:
    bare = a_finding(id="a" * 32)
    event = {
        "version": "0",
        "id": "e1",
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": "222222222222",
        "region": "us-east-1",
        "resources": [],
        "detail": a_finding(id="b" * 32),
    }
    pascal = raw_fixture("awscli-getfindings-iam-recon-userpermissions-count5.json")
    health = {**event, "detail-type": "GuardDuty Runtime Protection Unhealthy", "detail": {"x": 1}}
    path = tmp_path / "feed.jsonl"
    path.write_text(
        line(bare)  # 1
        + line(event)  # 2
        + '{"accountId": "555555555555", "id":\n'  # 3: cut short
        + "\n"  # 4: blank lines are fine
        + line(pascal["Findings"][0])  # 5: one PascalCase finding a line (jq -c '.Findings[]')
        + "[1, 2]\n"  # 6
        + line(health)  # 7
        + line(pascal)  # 8: a whole get-findings answer on one line
        + line([a_finding(id="c" * 32), a_finding(id="d" * 32)])  # 9: an array of findings
        + line({**a_finding(id="f" * 32), "severity": "high"})  # 10
    )
    result = run(runner, "-c", str(CONFIG), "--json", str(path))
    assert result.exit_code == 0, result.output
    got = [(r["finding_id"], r["decision"]) for r in rows(result.stdout)]
    assert got == [
        ("a" * 32, "isolated"),
        ("b" * 32, "isolated"),
        ("1ab92989eaf0e742df4a014d5example", "skipped"),
        ("1ab92989eaf0e742df4a014d5example", "skipped"),
        ("c" * 32, "isolated"),
        ("d" * 32, "isolated"),
    ]
    errors = [
        ln.removeprefix("malformed: ") for ln in result.stderr.splitlines() if ln.startswith("malformed")
    ]
    assert errors[0].startswith(f"{path}:3: invalid JSON")
    # Each element of [1, 2] is an entry of its own.
    assert errors[1] == errors[2] == f"{path}:6: expected a JSON object (a finding or an event), got a number"
    assert errors[3].startswith(f"{path}:7: an EventBridge event of detail-type")
    assert errors[4].startswith(f"{path}:10: finding {'f' * 32}: not a valid GuardDuty finding: severity")
    assert len(errors) == 5
    assert "6 findings from 1 file" in result.stderr and "5 malformed" in result.stderr

    strict = run(runner, "-c", str(CONFIG), "--json", "--strict", str(path))
    assert strict.exit_code == 1
    assert strict.stdout == result.stdout  # the run still completes


def test_pretty_printed_get_findings_reports_the_line_of_each_bad_entry(
    runner: CliRunner, tmp_path: Path
) -> None:
    good = raw_fixture("awscli-getfindings-iam-recon-userpermissions-count5.json")["Findings"][0]
    bad = {**good, "AccountId": "1234", "Id": "bad1"}
    high = {**good, "Id": "high1", "Severity": 8.5}
    doc = json.dumps({"Findings": [good, bad, high], "NextToken": ""}, indent=2)
    path = tmp_path / "dump.json"
    path.write_text(doc)
    element_starts = [i + 1 for i, text in enumerate(doc.splitlines()) if text == "    {"]
    bad_line = element_starts[1]

    result = run(runner, "-c", str(CONFIG), "--json", str(path))
    assert [(r["finding_id"], r["decision"], r["reason"]) for r in rows(result.stdout)] == [
        ("1ab92989eaf0e742df4a014d5example", "skipped", "below-threshold"),
        ("high1", "skipped", "not-instance-finding"),  # an AccessKey finding
    ]
    assert f"{path}:{bad_line}: finding bad1: not a valid GuardDuty finding: accountId" in result.stderr


def test_pretty_printed_array_of_events_and_broken_document(runner: CliRunner, tmp_path: Path) -> None:
    envelope = raw_fixture("o7-ec2-backdoor-spambot-sample-eventbridge-envelope.json")
    (tmp_path / "a.json").write_text(json.dumps([envelope, finding_of(copy.deepcopy(envelope))], indent=2))
    (tmp_path / "b.json").write_text('{\n  "id": "x",\n  "severity": 8,,\n}\n')
    (tmp_path / "notes.md").write_text("not input")  # folders yield only *.json, *.jsonl, *.ndjson
    (tmp_path / ".hidden.json").write_text("{")
    result = run(runner, "-c", str(CONFIG), "--json", str(tmp_path))
    assert [r["reason"] for r in rows(result.stdout)] == ["sample-finding", "sample-finding"]
    assert f"{tmp_path / 'b.json'}:3: invalid JSON" in result.stderr
    assert ".hidden" not in result.stderr and "notes.md" not in result.stderr


def test_standard_input(runner: CliRunner) -> None:
    feed = line(a_finding(id="1" * 32)) + line(a_finding(id="2" * 32, severity=2))
    result = run(runner, "-c", str(CONFIG), "--json", "-", input=feed)
    assert [(r["finding_id"], r["reason"]) for r in rows(result.stdout)] == [
        ("1" * 32, "mode-isolate"),
        ("2" * 32, "below-threshold"),
    ]


def test_empty_file_is_no_findings_not_an_error(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n\n")
    result = run(runner, "-c", str(CONFIG), "--json", str(tmp_path / "empty.jsonl"))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "0 findings" in result.stderr


def test_nothing_readable_exits_1(runner: CliRunner) -> None:
    result = run(
        runner, "-c", str(CONFIG), str(FIXTURES / "asff-securityhub-stealth-cloudtrailloggingdisabled.json")
    )
    assert result.exit_code == 1
    assert "ASFF" in result.stderr


# --- policy inputs: ORG.json and instance tags ---------------------------------------------------


def test_org_json_brings_ou_overrides_into_play(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text(line(a_finding()) + line(a_finding(accountId="666666666666")))
    org = tmp_path / "org.json"
    org.write_text(json.dumps({"555555555555": ["r-ab12", "ou-ab12-parent01", "ou-exam-ple11111"]}))

    without = run(runner, "-c", str(CONFIG), "--json", str(path))
    assert [r["reason"] for r in rows(without.stdout)] == ["mode-isolate", "mode-isolate"]
    assert "without --org ORG.json none applies" in without.stderr

    with_org = run(runner, "-c", str(CONFIG), "--org", str(org), "--json", str(path))
    assert [(r["account_id"], r["decision"]) for r in rows(with_org.stdout)] == [
        ("555555555555", "dry-run"),  # ou-exam-ple11111 is dry-run in the shipped config
        ("666666666666", "isolated"),
    ]


def test_account_override_and_instance_tag_from_the_finding(runner: CliRunner, tmp_path: Path) -> None:
    tagged = a_finding(id="7" * 32)
    tagged["resource"]["instanceDetails"]["tags"] = [{"key": "orgcontain:mode", "value": "notify"}]
    path = tmp_path / "f.jsonl"
    path.write_text(line(tagged) + line(a_finding(id="8" * 32, accountId="444444444444")))
    result = run(runner, "-c", str(CONFIG), "--json", str(path))
    assert [(r["decision"], r["reason"]) for r in rows(result.stdout)] == [
        ("notified", "tag-exemption"),
        ("skipped", "account-opted-off"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1]", "expected an object mapping account ids"),
        ('{"55555555555": ["ou-exam-ple11111"]}', "not a 12-digit account id"),
        ('{"555555555555": "ou-exam-ple11111"}', "expected a list of OU ids"),
        ('{"555555555555": ["Workloads"]}', "'Workloads' is not an OU id"),
        ("{", "not valid JSON"),
    ],
)
def test_bad_org_json_is_one_clear_line(
    runner: CliRunner, tmp_path: Path, content: str, message: str
) -> None:
    org = tmp_path / "org.json"
    org.write_text(content)
    result = run(runner, "-c", str(CONFIG), "--org", str(org), str(FIXTURES))
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stderr.count("error:") == 1


# --- summary without --json ----------------------------------------------------------------------


def test_summary_lists_would_isolate_first_then_the_tables(runner: CliRunner, tmp_path: Path) -> None:
    findings = [a_finding(id=f"{i:032x}", severity=7.0 + i / 10) for i in range(5)]
    findings[0]["resource"]["instanceDetails"]["instanceId"] = "i-0123456789abcdef0"
    findings.append(a_finding(id="e" * 32, severity=3.0))
    path = tmp_path / "f.jsonl"
    path.write_text("".join(line(f) for f in findings))
    result = run(runner, "-c", str(CONFIG), str(path))
    assert result.exit_code == 0
    assert result.stdout == ""  # summaries go to stderr
    err = result.stderr
    order = [
        err.index(t)
        for t in ("Would isolate: 5", "By decision", "By reason", "By account", "By finding type")
    ]
    assert order == sorted(order)
    assert "i-0123456789abcdef0" in err and "below-threshold" in err and "555555555555" in err
    # Highest severity first in the would-isolate list.
    assert err.index("7.4") < err.index("7.2") < err.index("i-0123456789abcdef0")


def test_progress_bar_can_be_forced(runner: CliRunner) -> None:
    result = run(runner, "-c", str(CONFIG), "--json", "--progress", str(FIXTURES))
    assert result.exit_code == 0
    assert len(rows(result.stdout)) == 28


# --- user errors: one line, the right exit code --------------------------------------------------


def test_invalid_config_is_reported_with_key_path_and_line(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.read_text().replace("min_severity: 7.0", "min_severity: 70"))
    result = run(runner, "-c", str(bad), str(FIXTURES))
    assert result.exit_code == 1
    line_no = CONFIG.read_text().splitlines().index("  min_severity: 7.0") + 1
    assert f"{bad}:{line_no}: response.min_severity:" in result.stderr
    assert "error:" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope/missing.jsonl"], "no such file or folder"),
        (["EMPTY"], "no .json, .jsonl or .ndjson files"),
    ],
)
def test_nothing_to_read_is_a_usage_error(
    runner: CliRunner, tmp_path: Path, args: list[str], message: str
) -> None:
    args = [str(tmp_path) if a == "EMPTY" else a for a in args]
    result = run(runner, "-c", str(CONFIG), *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_missing_config_option_is_a_usage_error(runner: CliRunner) -> None:
    assert run(runner, str(FIXTURES)).exit_code == 2


# --- the engine, directly ------------------------------------------------------------------------


def test_pascal_case_normalisation_keeps_data_keys() -> None:
    out = pascal_to_camel(
        {
            "Resource": {
                "InstanceDetails": {"InstanceId": "i-1", "Tags": [{"Key": "Name", "Value": "Web"}]},
                "S3BucketDetails": [{"Name": "b"}],
            },
            "Service": {"Action": {"AwsApiCallAction": {"AffectedResources": {"AWS::EC2::Instance": "i-1"}}}},
        }
    )
    assert out == {
        "resource": {
            "instanceDetails": {"instanceId": "i-1", "tags": [{"key": "Name", "value": "Web"}]},
            "s3BucketDetails": [{"name": "b"}],
        },
        "service": {"action": {"awsApiCallAction": {"affectedResources": {"AWS::EC2::Instance": "i-1"}}}},
    }


def test_row_json_matches_json_dumps() -> None:
    o = Outcome(
        'id"1', "555555555555", "us-east-1", None, "Backdoor:EC2/C&CActivity.B!DNS", 8.5, "isolated", "r"
    )
    assert json.loads(row_json(o)) == o.as_dict() == dict(zip(ROW_KEYS, o, strict=True))
    assert row_json(o).endswith("}\n") and "\n" not in row_json(o)[:-1]


def test_discover_orders_files_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ("b/2.jsonl", "a.json", "c.ndjson", ".git/x.json", "b/.tmp.json", "readme.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in discover([tmp_path])] == [
        "a.json",
        "b/2.jsonl",
        "c.ndjson",
    ]
    explicit = tmp_path / "readme.txt"
    assert discover([explicit]) == [explicit]  # named explicitly: read whatever the suffix


def _feed(n: int) -> Iterator[str]:
    base = a_finding()
    for i in range(n):
        base["id"] = f"{i:032x}"
        base["arn"] = f"arn:aws:guardduty:us-east-1:555555555555:detector/d/finding/{base['id']}"
        yield line(base)


def test_memory_does_not_grow_with_the_number_of_findings(tmp_path: Path) -> None:
    """JSON Lines are streamed: 20x the findings, about the same peak (not a timing test)."""
    config = load_config_file(CONFIG)
    peaks = []
    for n in (100, 2000):
        path = tmp_path / f"{n}.jsonl"
        path.write_text("".join(_feed(n)))
        tracemalloc.start()
        summary = simulate([path], config, on_outcome=lambda _o: None)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert summary.findings == n and summary.would_isolate == n
    # Holding 1,900 more findings (~3.7 KB of JSON each) would add megabytes.
    assert peaks[1] < peaks[0] + 512 * 1024, peaks


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=200),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                lambda inner: (
                    st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
                ),
                max_leaves=20,
            ).map(lambda v: json.dumps(v).encode()),
        ),
        max_size=6,
    )
)
def test_any_input_line_is_a_finding_or_a_malformed_entry(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes]
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "f.jsonl"
    path.write_bytes(b"\n".join(ln.replace(b"\n", b" ") for ln in lines))
    for item in read_items(path):
        assert isinstance(item, Finding | Malformed)
        if isinstance(item, Malformed):
            assert item.line >= 1 and item.message


def test_single_document_that_is_not_an_object() -> None:
    assert [str(m) for m in read_document('"text"', "f.json")] == [
        "f.json:1: expected a JSON object (a finding or an event), got a string"
    ]
    assert [str(m) for m in read_document('{"a": 1} x', "f.json")] == [
        "f.json:1: invalid JSON: extra data after the JSON document (column 10)"
    ]


def test_byte_order_marks(runner: CliRunner, tmp_path: Path) -> None:
    finding = a_finding(id="9" * 32)
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + line(finding).encode())
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(finding, indent=2).encode())
    (tmp_path / "utf16.json").write_bytes(json.dumps(finding, indent=2).encode("utf-16"))
    result = run(runner, "-c", str(CONFIG), "--json", str(tmp_path))
    assert [r["finding_id"] for r in rows(result.stdout)] == ["9" * 32, "9" * 32]
    assert f"{tmp_path / 'utf16.json'}:1: UTF-16 text: convert it to UTF-8" in result.stderr


def test_json_piped_into_head_stops_quietly(tmp_path: Path) -> None:
    """`simulate --json ... | head -1`: no BrokenPipeError traceback (a real pipe, not CliRunner)."""
    import subprocess
    import sys

    path = tmp_path / "many.jsonl"
    path.write_text("".join(_feed(3000)))  # ~700 KB of rows: far more than a pipe buffer holds
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from hub.cli import main; main()",
            "simulate",
            "-c",
            str(CONFIG),
            "--json",
            str(path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert json.loads(first)["decision"] == "isolated"
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert proc.returncode == 1


def test_deeply_nested_json_is_malformed_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "deep.jsonl").write_text("[" * 50_000 + "]" * 50_000 + "\n[[{}]]\n")
    (tmp_path / "deep.json").write_text("[\n" + "[" * 5_000 + "]" * 5_000 + "\n]\n")
    assert [str(m) for m in read_items(tmp_path / "deep.jsonl")] == [
        f"{tmp_path / 'deep.jsonl'}:1: invalid JSON: nested too deeply",
        f"{tmp_path / 'deep.jsonl'}:2: expected a JSON object (a finding or an event), got an array",
    ]
    assert [str(m) for m in read_items(tmp_path / "deep.json")] == [
        f"{tmp_path / 'deep.json'}:1: invalid JSON: nested too deeply"
    ]
