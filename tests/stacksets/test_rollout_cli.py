"""The rollout commands fail with one clear line and exit 1 (usage errors exit 2), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rollout_support import config_for, run_cli, write_config

from hub.demo.org import EmulatedOrg


def _one_line_error(result: Any) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_missing_config_file(tmp_path: Path) -> None:
    for command in ("deploy", "coverage"):
        line = _one_line_error(run_cli(command, "--config", str(tmp_path / "nope.yaml")))
        assert "cannot read the file" in line


def test_usage_error_exits_2() -> None:
    result = run_cli("deploy", "--no-such-option")
    assert result.exit_code == 2
    result = run_cli("coverage")  # --config is required
    assert result.exit_code == 2


@pytest.mark.usefixtures("aws")
def test_deploy_with_a_missing_package_file(org: EmulatedOrg, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, config_for(org))
    line = _one_line_error(run_cli("deploy", "--config", str(cfg), "--package", str(tmp_path / "none.zip")))
    assert "does not exist" in line


@pytest.mark.usefixtures("aws")
def test_deploy_refuses_credentials_of_another_organization(
    org: EmulatedOrg, tmp_path: Path, lambda_package: Path
) -> None:
    cfg = write_config(tmp_path, config_for(org, organization_id="o-aaaaaaaaaa"))
    line = _one_line_error(run_cli("deploy", "--config", str(cfg), "--package", str(lambda_package)))
    assert f"belong to organization {org.organization_id}" in line


@pytest.mark.usefixtures("aws")
def test_deploy_refuses_a_target_ou_outside_the_organization(
    org: EmulatedOrg, tmp_path: Path, lambda_package: Path
) -> None:
    cfg = write_config(tmp_path, config_for(org))
    result = run_cli(
        "deploy",
        "--config",
        str(cfg),
        "--package",
        str(lambda_package),
        "--target-ou",
        "ou-zzzz-zzzzzzzz",
        "--dry-run",
    )
    assert "ou-zzzz-zzzzzzzz" in _one_line_error(result)


@pytest.mark.usefixtures("aws")
def test_aws_errors_are_one_line(org: EmulatedOrg, tmp_path: Path, lambda_package: Path) -> None:
    # The GuardDuty admin must not be the management account (StackSets cannot deploy there).
    cfg = write_config(tmp_path, config_for(org, trusted_event_accounts=[org.management_account_id]))
    line = _one_line_error(run_cli("deploy", "--config", str(cfg), "--package", str(lambda_package)))
    assert "management account" in line


@pytest.mark.usefixtures("aws")
def test_coverage_table_without_json(org: EmulatedOrg, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, config_for(org))
    result = run_cli("coverage", "--config", str(cfg))
    assert result.exit_code == 1  # nothing deployed yet
    assert "missing" in result.stdout and org.accounts["prod-a"] in result.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)
    assert "API calls" in result.stderr
