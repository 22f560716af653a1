"""`orgcontain demo` end to end, through the CLI entry point, as a user runs it.

The demo starts its own moto (no ``aws`` fixture here). A hook the demo offers for tests
(``hub.demo.runner.BEFORE_VERIFY``) runs after the findings and before the demo's own checks,
while the emulated organization is still alive: the test uses it to look at the member accounts
itself, independently of the demo's checks, and (second test) to undo a quarantine so that the
demo's checks must fail.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

import hub.demo.runner as runner
from hub.cli import app
from hub.demo.runner import DemoState

# What each finding of the scenario's mix must get: the product's promises, stated here again.
EXPECTED = {
    "high": ("isolated", "mode-isolate"),
    "critical": ("isolated", "mode-isolate"),
    "asg": ("isolated", "mode-isolate"),
    "milder-tag": ("notified", "tag-exemption"),
    "dry-run-ou": ("dry-run", "mode-dry-run"),
    "opted-out": ("skipped", "account-opted-off"),
    "excluded-type": ("skipped", "type-excluded"),
    "s3": ("skipped", "not-instance-finding"),
    "sample": ("skipped", "sample-finding"),
    "archived": ("skipped", "archived"),
    "attack-sequence": ("notified", "attack-sequence"),
    "update": ("already-isolated", "incident-open"),
    "forged": ("rejected", "untrusted-event-account"),
    "outside-org": ("rejected", "account-not-in-organization"),
}
QUARANTINE = "orgcontain-quarantine"
SAMPLES = Path(str(resources.files("hub.demo").joinpath("samples")))


def run_demo(*args: str) -> tuple[Result, dict[str, Any]]:
    result = CliRunner().invoke(app, ["demo", "--json", *args])
    assert "Traceback" not in result.output, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(result.output) from result.exception
    try:
        return result, json.loads(result.stdout)
    except ValueError:
        raise AssertionError(f"no JSON on stdout (exit {result.exit_code}):\n{result.output}") from None


def enis(state: DemoState, account_id: str, region: str, instance_id: str) -> dict[str, set[str]]:
    """ENI id -> group names, read in the member account through its own role."""
    ec2 = state.org.client("ec2", account_id, region)
    found = ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
    )["NetworkInterfaces"]
    return {e["NetworkInterfaceId"]: {g["GroupName"] for g in e["Groups"]} for e in found}


def group_ids(state: DemoState, account_id: str, region: str, instance_id: str) -> dict[str, tuple[str, ...]]:
    ec2 = state.org.client("ec2", account_id, region)
    found = ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
    )["NetworkInterfaces"]
    return {e["NetworkInterfaceId"]: tuple(sorted(g["GroupId"] for g in e["Groups"])) for e in found}


@pytest.mark.slow
def test_demo_contains_the_right_instances_and_checks_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def look(state: DemoState) -> None:
        isolated = {
            r.instance.instance_id: r.instance for r in state.rows if r.decision == "isolated" and r.instance
        }
        seen["isolated"] = {
            iid: enis(state, inst.account_id, inst.region, iid) for iid, inst in isolated.items()
        }
        seen["expected_enis"] = {iid: set(inst.eni_ids) for iid, inst in isolated.items()}
        seen["changed_elsewhere"] = [
            inst.key
            for inst in state.fleet.instances
            if inst.instance_id not in isolated
            and group_ids(state, inst.account_id, inst.region, inst.instance_id) != inst.before
        ]
        seen["sandbox_instances"] = [
            i.instance_id for i in state.fleet.instances if i.account_name == "sandbox"
        ]
        asg = next(r.instance for r in state.rows if r.scenario == "asg" and r.instance)
        group = state.org.client("autoscaling", asg.account_id, asg.region).describe_auto_scaling_groups(
            AutoScalingGroupNames=[asg.asg_name or ""]
        )["AutoScalingGroups"][0]
        seen["asg_members"] = {i["InstanceId"] for i in group["Instances"]}
        seen["asg_instance"] = asg.instance_id

    monkeypatch.setattr(runner, "BEFORE_VERIFY", [look])
    result, doc = run_demo("--findings", "16", "--seed", "11", "--accounts", "5")

    assert result.exit_code == 0, result.output
    assert doc["passed"] is True
    assert doc["checks"] and all(c["passed"] for c in doc["checks"]), doc["checks"]
    assert {c["name"] for c in doc["checks"]} >= {
        "expected-decisions",
        "isolated-instances-quarantined",
        "opted-out-account-untouched",
        "asg-members-left-group-and-target-group",
    }
    by_scenario = {f["scenario"]: f for f in doc["findings"]}
    for scenario, (decision, reason) in EXPECTED.items():
        got = by_scenario[scenario]
        assert (got["decision"], got["reason"]) == (decision, reason), (scenario, got)
    low = by_scenario["low"]
    assert low["state"] == "filtered" and low["decision"] is None  # the forwarder rule stopped it
    assert len(doc["findings"]) == 16 and doc["findings"][-1]["scenario"] == "extra"
    # Every finding has its own id, except GuardDuty's update, which reuses its original's.
    assert by_scenario["update"]["finding_id"] == by_scenario["high"]["finding_id"]
    assert len({f["finding_id"] for f in doc["findings"]}) == 15
    # Real work happened in the isolations: steps done, in the member account's region.
    high = by_scenario["high"]
    assert {s["step"]: s["status"] for s in high["steps"]}["network"] == "done"
    assert by_scenario["critical"]["region"] == doc["organization"]["regions"][1]
    assert by_scenario["critical"]["severity"] == 9.0

    # The test's own look at the member accounts, before the demo checked anything:
    assert len(seen["isolated"]) >= 3
    for iid, groups in seen["isolated"].items():
        assert set(groups) == seen["expected_enis"][iid]
        assert all(names == {QUARANTINE} for names in groups.values()), (iid, groups)
    assert len(seen["isolated"][high["instance_id"]]) == 3  # every ENI of the 3-ENI instance
    assert seen["changed_elsewhere"] == []
    assert seen["sandbox_instances"] and not set(seen["sandbox_instances"]) & set(seen["isolated"])
    assert seen["asg_instance"] not in seen["asg_members"]  # it left its Auto Scaling group

    summary = doc["summary"]
    assert summary["decisions"]["isolated"] == len(seen["isolated"])
    assert summary["filtered_before_the_hub"] == 1
    assert summary["lambda_invocations"] >= 3
    assert [g["gap"] for g in doc["moto_gaps"]]  # the emulation's limits are stated
    assert "all checks passed" in result.stderr


@pytest.mark.slow
def test_a_failed_check_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone puts an isolated instance's ENIs back on their old groups: the demo must notice."""
    undone: list[str] = []

    def undo_quarantine(state: DemoState) -> None:
        row = next(r for r in state.rows if r.decision == "isolated" and r.instance)
        inst = row.instance
        assert inst is not None
        ec2 = state.org.client("ec2", inst.account_id, inst.region)
        for eni, groups in inst.before.items():
            ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, Groups=list(groups))
        undone.append(inst.instance_id)

    monkeypatch.setattr(runner, "BEFORE_VERIFY", [undo_quarantine])
    result, doc = run_demo("--findings", "1", "--seed", "5")

    assert undone
    assert result.exit_code == 1, result.output
    assert doc["passed"] is False
    failed = {c["name"]: c["detail"] for c in doc["checks"] if not c["passed"]}
    assert set(failed) == {"isolated-instances-quarantined"}
    assert undone[0] in failed["isolated-instances-quarantined"]
    assert doc["findings"][0]["decision"] == "isolated"  # the hub did its job; the check saw the undo
    assert "demo checks failed" in result.stderr


def test_fewer_than_five_accounts_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["demo", "--accounts", "4"])
    assert result.exit_code == 2
    assert "--accounts" in result.output


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.json")))
def test_every_sample_becomes_a_valid_finding_that_is_not_a_sample(sample: str) -> None:
    from hub.demo.findings import EniView, InstanceView, build_finding, load_sample
    from hub.models import Finding

    view = InstanceView(
        instance_id="i-0123456789abcdef0",
        instance_type="t3.micro",
        image_id="ami-12c6146b",
        availability_zone="eu-west-1a",
        launch_time="2030-01-01T00:00:00.000Z",
        profile_arn=None,
        tags={"Name": "web"},
        enis=(
            EniView("eni-0aaaaaaaaaaaaaaaa", "subnet-1", "vpc-1", "10.0.0.5", (("app", "sg-1"),)),
            EniView("eni-0bbbbbbbbbbbbbbbb", "subnet-1", "vpc-1", "10.0.0.6", (("db", "sg-2"),)),
        ),
    )
    args: dict[str, Any] = dict(
        finding_id="0f" * 16, account_id="210987654321", region="eu-west-1", detector_id="d" * 32, when=1.9e9
    )
    detail = build_finding(sample, instance=view, **args)
    finding = Finding.model_validate(detail)
    assert not finding.is_sample and finding.arn_mismatch() is None
    assert (finding.id, finding.account_id, finding.region) == ("0f" * 16, "210987654321", "eu-west-1")
    assert load_sample(sample)["accountId"] not in json.dumps(detail)  # no trace of the sample's account
    if finding.is_instance_finding:
        assert finding.instance_id == view.instance_id
        nics = detail["resource"]["instanceDetails"]["networkInterfaces"]
        assert [n["networkInterfaceId"] for n in nics] == [e.eni_id for e in view.enis]
        assert view.instance_id in finding.title or "i-99999999" not in finding.title
    assert Finding.model_validate(build_finding(sample, instance=view, sample=True, **args)).is_sample
