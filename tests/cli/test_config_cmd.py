"""`orgcontain config validate` and `orgcontain config push` (SSM under moto)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from typer.testing import CliRunner

import hub.cli.configcmd as configcmd
from hub.cli import app
from hub.config import load_config_file, load_config_text

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "orgcontain.yaml"
PARAM = "/orgcontain/config"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> Any:
    result = runner.invoke(app, ["config", *args])
    assert "Traceback" not in result.output, result.output
    return result


def write_config(tmp_path: Path, old: str = "", new: str = "", name: str = "c.yaml") -> Path:
    text = CONFIG.read_text()
    if old:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return path


def ssm(region: str = "us-east-1") -> Any:
    return boto3.client("ssm", region_name=region)


def stored(name: str = PARAM, region: str = "us-east-1") -> tuple[str, int, str]:
    client = ssm(region)
    param = client.get_parameter(Name=name)["Parameter"]
    [meta] = client.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}]
    )["Parameters"]
    return param["Value"], param["Version"], meta["Tier"]


# --- validate ------------------------------------------------------------------------------------


def test_validate_default_file(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = invoke(runner, "validate")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("config/orgcontain.yaml: valid (mode isolate, min_severity 7, 2 regions")


def test_validate_reports_every_problem_with_file_line_and_key_path(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = write_config(tmp_path, "  min_severity: 7.0\n", "  min_severty: 7.0\n")
    path.write_text(path.read_text().replace('"444444444444": {mode: "off"', '"444444444444": {mode: off'))
    lines = path.read_text().splitlines()
    typo_line = lines.index("  min_severty: 7.0") + 1
    off_line = next(i for i, text in enumerate(lines, 1) if text.startswith('  "444444444444"'))

    result = invoke(runner, "validate", str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    err = result.stderr.splitlines()
    unknown = "unknown key (check the spelling; unknown keys are rejected)"
    assert f"{path}:{typo_line}: response.min_severty: {unknown}" in err
    assert any(
        ln.startswith(f"{path}:{off_line}: accounts.444444444444.mode: got the YAML boolean false")
        for ln in err
    ), err
    assert err[-1] == f"error: {path} is not a valid orgcontain config (2 problems)"


def test_validate_missing_file_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "validate", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2


# --- push ----------------------------------------------------------------------------------------


def test_push_creates_the_parameter_the_hub_reads(aws: None, runner: CliRunner) -> None:
    result = invoke(runner, "push", "--config", str(CONFIG))
    assert result.exit_code == 0, result.output
    assert f"new parameter {PARAM} in us-east-1:" in result.stdout  # the hub's home region
    assert "  + response.min_severity: 7.0" in result.stdout
    assert "version 1, Standard tier" in result.stdout

    value, version, tier = stored()
    assert (version, tier) == (1, "Standard")
    # Canonical JSON of the validated config; reading it back gives the same config.
    assert json.loads(value)["accounts"]["444444444444"] == {"mode": "off", "reason": "sandbox"}
    assert load_config_text(value, "ssm") == load_config_file(CONFIG)
    assert len(value.encode()) <= 4096


def test_push_shows_what_changed_key_by_key(aws: None, runner: CliRunner, tmp_path: Path) -> None:
    assert invoke(runner, "push", "--config", str(CONFIG)).exit_code == 0
    changed = write_config(tmp_path, "min_severity: 7.0", "min_severity: 8.0")
    changed.write_text(
        changed.read_text()
        .replace('  "444444444444": {mode: "off", reason: sandbox}\n', "")
        .replace("accounts:\n", 'accounts:\n  "555555555555": {mode: dry-run, reason: pilot}\n')
    )
    result = invoke(runner, "push", "--config", str(changed))
    assert result.exit_code == 0, result.output
    lines = [ln.strip() for ln in result.stdout.splitlines()]
    assert lines[0] == f"changes to {PARAM} in us-east-1 (version 1):"
    assert lines[1:-1] == [
        '- accounts.444444444444.mode: "off"',
        '- accounts.444444444444.reason: "sandbox"',
        '+ accounts.555555555555.mode: "dry-run"',
        '+ accounts.555555555555.reason: "pilot"',
        "~ response.min_severity: 7.0 -> 8.0",
    ]
    assert stored()[1] == 2
    assert json.loads(stored()[0])["response"]["min_severity"] == 8.0


def test_push_without_change_writes_nothing(aws: None, runner: CliRunner) -> None:
    invoke(runner, "push", "--config", str(CONFIG))
    result = invoke(runner, "push", "--config", str(CONFIG))
    assert result.exit_code == 0
    assert result.stdout.strip() == f"no change: {PARAM} in us-east-1 (version 1) already holds this config"
    assert stored()[1] == 1


def test_push_refuses_an_invalid_config(aws: None, runner: CliRunner, tmp_path: Path) -> None:
    invoke(runner, "push", "--config", str(CONFIG))
    before = stored()
    bad = write_config(tmp_path, "cidr: 10.0.0.10/32", "cidr: 0.0.0.0/0")
    result = invoke(runner, "push", "--config", str(bad))
    assert result.exit_code == 1
    assert "response.quarantine_ingress.0.cidr: 0.0.0.0/0 opens the quarantine" in result.stderr
    assert f"error: refusing to push: {bad} is not a valid orgcontain config (1 problem)" in result.stderr
    assert stored() == before


def test_push_dry_run_writes_nothing(aws: None, runner: CliRunner) -> None:
    result = invoke(runner, "push", "--config", str(CONFIG), "--dry-run")
    assert result.exit_code == 0
    assert "new parameter" in result.stdout
    assert "dry run: nothing written" in result.stderr
    with pytest.raises(ssm().exceptions.ParameterNotFound):
        ssm().get_parameter(Name=PARAM)


def test_push_large_config_uses_the_advanced_tier(aws: None, runner: CliRunner, tmp_path: Path) -> None:
    reason = "manual approval required for this account " * 2
    overrides = "".join(f'  "{600000000000 + i}": {{mode: notify, reason: "{reason}"}}\n' for i in range(40))
    big = write_config(tmp_path, "accounts:\n", "accounts:\n" + overrides)
    result = invoke(runner, "push", "--config", str(big), "--parameter-name", "/security/orgcontain")
    assert result.exit_code == 0, result.output
    value, _version, tier = stored("/security/orgcontain")
    assert len(value.encode()) > 4096
    assert tier == "Advanced"
    assert "Advanced tier" in result.stdout


def test_push_region_option_and_account_warning(aws: None, runner: CliRunner) -> None:
    result = invoke(runner, "push", "--config", str(CONFIG), "--region", "eu-west-1")
    assert result.exit_code == 0, result.output
    assert stored(region="eu-west-1")[1] == 1
    with pytest.raises(ssm().exceptions.ParameterNotFound):
        ssm("us-east-1").get_parameter(Name=PARAM)
    # moto's default account is not the config's hub account (111111111111): say so.
    assert (
        "credentials are for account 123456789012; the config's hub account is 111111111111" in result.stderr
    )


def test_push_reports_an_aws_refusal_in_one_line(
    aws: None, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = configcmd._ssm

    def denied(request: Any, **_: Any) -> AWSResponse:
        body = b'{"__type":"AccessDeniedException","message":"not authorized to perform ssm:PutParameter"}'
        return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1"}, _Raw(body))

    def with_fault(options: configcmd.AwsOptions) -> Any:
        client = real(options)
        client.meta.events.register_first("before-send.ssm.PutParameter", denied)
        return client

    monkeypatch.setattr(configcmd, "_ssm", with_fault)
    result = invoke(runner, "push", "--config", str(CONFIG))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: AWS refused: AccessDeniedException: not authorized to perform ssm:PutParameter"
    )


def test_push_with_an_unknown_profile_is_one_line(aws: None, runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "push", "--config", str(CONFIG), "--profile", "no-such-profile")
    assert result.exit_code == 1
    assert "error: AWS call failed: The config profile (no-such-profile) could not be found" in result.stderr


def test_key_diff_and_text_fallback() -> None:
    assert configcmd.key_diff({"a": {"b": 1, "c": [1]}}, {"a": {"b": 2, "c": [1, 2]}, "d": "x"}) == [
        "~ a.b: 1 -> 2",
        "~ a.c: [1] -> [1, 2]",
        '+ d: "x"',
    ]
    # A stored value that is not a mapping (someone put text there): a unified diff.
    lines = configcmd.describe_change("/p", "just text\n", '{"a": 1}\n')
    assert lines[:2] == ["--- /p (stored)", "+++ /p (new)"]
    assert "-just text" in lines and '+{"a": 1}' in lines


class _Raw:
    """The minimal raw-body object botocore reads an AWSResponse from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body
