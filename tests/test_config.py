"""The config model (hub/config.py): what it accepts, what it refuses, and how it says so."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hub.config import (
    ConfigError,
    ConfigIssue,
    Mode,
    OrgContainConfig,
    glob_to_regex,
    load_config_file,
    load_config_text,
    render_json_schema,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config" / "orgcontain.yaml"
SCHEMA = ROOT / "config" / "orgcontain.schema.json"

MINIMAL = textwrap.dedent(
    """\
    organization_id: o-exampleorgid
    hub: {account_id: "111111111111", region: us-east-1}
    trusted_event_accounts: ["222222222222"]
    regions: [us-east-1, eu-west-1]
    """
)


def load(extra: str = "") -> OrgContainConfig:
    return load_config_text(MINIMAL + textwrap.dedent(extra), "test.yaml")


def issues(extra: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        load(extra)
    return info.value.issues


def only_issue(extra: str) -> ConfigIssue:
    found = issues(extra)
    assert len(found) == 1, found
    return found[0]


# --- the shipped files -------------------------------------------------------------------------


def test_shipped_config_is_valid() -> None:
    cfg = load_config_file(SHIPPED)
    assert cfg.response.mode is Mode.ISOLATE
    assert cfg.accounts["444444444444"].mode is Mode.OFF  # the quoted "off" of the example
    assert cfg.role_name("eu-west-1") == "orgcontain-spoke-eu-west-1"


def test_schema_file_is_up_to_date() -> None:
    assert SCHEMA.read_text() == render_json_schema(), "regenerate: python -m hub.config > " + str(SCHEMA)
    printed = subprocess.run(
        [sys.executable, "-m", "hub.config"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert printed == SCHEMA.read_text()


def test_minimal_config_takes_the_documented_defaults() -> None:
    cfg = load()
    assert cfg.response.mode is Mode.ISOLATE
    assert cfg.response.min_severity == 7.0
    assert cfg.response.revoke_role_sessions is False
    assert cfg.spoke_role_prefix == "orgcontain-spoke"


# --- unknown keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "path", "line"),
    [
        ("colour: blue\n", "colour", 5),
        ("response:\n  min_severty: 8\n", "response.min_severty", 6),
        ('accounts:\n  "333333333333": {mode: notify, resaon: typo}\n', "accounts.333333333333.resaon", 6),
        (
            "response:\n  quarantine_ingress:\n    - {cidr: 10.0.0.1/32, ports: [22], port: 22}\n",
            "response.quarantine_ingress.0.port",
            7,
        ),
    ],
)
def test_unknown_keys_are_rejected_with_key_path_and_line(extra: str, path: str, line: int) -> None:
    issue = only_issue(extra)
    assert issue.path == path
    assert "unknown key" in issue.message
    assert issue.line == line
    assert str(issue).startswith(f"line {line}: {path}: ")


def test_every_problem_is_reported_at_once() -> None:
    found = issues("response:\n  min_severity: 11\n  mode: block\nextra: 1\n")
    assert {i.path for i in found} == {"response.min_severity", "response.mode", "extra"}


def test_error_message_names_the_source() -> None:
    with pytest.raises(ConfigError, match=r"invalid orgcontain config test\.yaml"):
        load("extra: 1\n")


def test_not_yaml_and_not_a_mapping() -> None:
    issue = only_issue("regions: [us-east-1\n")
    assert "not valid YAML" in issue.message
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config_text("- a\n- b\n")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config_file(tmp_path / "missing.yaml")


# --- severity ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "0.0", "7", "8.9", "10", "10.0"])
def test_min_severity_range_is_inclusive(value: str) -> None:
    assert load(f"response: {{min_severity: {value}}}\n").response.min_severity == float(value)


@pytest.mark.parametrize("value", ["-0.1", "10.1", "11", ".nan", ".inf", "-.inf", "high", "[7]"])
def test_min_severity_outside_0_to_10_or_not_a_number_is_refused(value: str) -> None:
    assert only_issue(f"response: {{min_severity: {value}}}\n").path == "response.min_severity"


# --- CIDRs and ports -----------------------------------------------------------------------------


def ingress(rule: str) -> str:
    return f"response:\n  quarantine_ingress:\n    - {rule}\n"


@pytest.mark.parametrize(
    ("cidr", "stored"),
    [
        ("10.0.0.10/32", "10.0.0.10/32"),
        ("10.0.0.0/8", "10.0.0.0/8"),  # the widest IPv4 allowed
        ("2001:db8::/32", "2001:db8::/32"),  # the widest IPv6 allowed
        ("2001:db8::1/128", "2001:db8::1/128"),
    ],
)
def test_narrow_cidrs_are_accepted(cidr: str, stored: str) -> None:
    cfg = load(ingress(f"{{cidr: {cidr!r}, ports: [22]}}"))
    assert cfg.response.quarantine_ingress[0].cidr == stored


@pytest.mark.parametrize(
    ("cidr", "why"),
    [
        ("0.0.0.0/0", "too much of the internet"),
        ("10.0.0.0/7", "too much of the internet"),
        ("::/0", "too much of the internet"),
        ("2001:db8::/31", "too much of the internet"),
        ("10.0.0.300/32", "not a valid CIDR"),
        ("10.0.0.1/24", "not a valid CIDR"),  # host bits set: a typo, not a network
        ("bastion", "not a valid CIDR"),
    ],
)
def test_wide_or_invalid_cidrs_are_refused(cidr: str, why: str) -> None:
    issue = only_issue(ingress(f"{{cidr: {cidr!r}, ports: [22]}}"))
    assert issue.path == "response.quarantine_ingress.0.cidr"
    assert why in issue.message


@pytest.mark.parametrize("ports", ["[1]", "[65535]", "[22, 443]"])
def test_ports_in_range(ports: str) -> None:
    load(ingress(f"{{cidr: 10.0.0.1/32, ports: {ports}}}"))


@pytest.mark.parametrize("ports", ["[0]", "[65536]", "[-22]", "[]", "[22, 22]", "[ssh]"])
def test_ports_out_of_range_empty_or_repeated_are_refused(ports: str) -> None:
    found = issues(ingress(f"{{cidr: 10.0.0.1/32, ports: {ports}}}"))
    assert all(i.path.startswith("response.quarantine_ingress.0.ports") for i in found), found


def test_ingress_rule_needs_exactly_one_source() -> None:
    assert "exactly one source" in only_issue(ingress("{ports: [22]}")).message
    both = only_issue(ingress("{cidr: 10.0.0.1/32, prefix_list: pl-0123456789abcdef0, ports: [22]}"))
    assert "exactly one source" in both.message
    assert only_issue(ingress("{prefix_list: pl-xyz, ports: [22]}")).path.endswith("prefix_list")
    assert only_issue(ingress("{security_group: sg-1, ports: [22]}")).path.endswith("security_group")


# --- account, OU, organization ids, regions ------------------------------------------------------


@pytest.mark.parametrize("account", ["11111111111", "1111111111111", "11111111111a", "abcdefghijkl"])
def test_account_ids_must_be_twelve_digits(account: str) -> None:
    text = MINIMAL.replace('"222222222222"', f'"{account}"')
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    assert [i.path for i in info.value.issues] == ["trusted_event_accounts.0"]
    assert only_issue(f'accounts:\n  "{account}": {{mode: notify}}\n').path.startswith("accounts.")


def test_unquoted_account_id_key_says_to_quote_it() -> None:
    issue = only_issue("accounts:\n  333333333333: {mode: notify}\n")
    assert issue.path == "accounts"
    assert "quote account ids" in issue.message
    assert issue.line == 5


@pytest.mark.parametrize("ou", ["ou-exam-ple11111", "ou-ab12-abcdefgh", "ou-abcd-0123456789abcdef"])
def test_well_formed_ou_ids(ou: str) -> None:
    assert (
        load(f"organizational_units:\n  {ou}: {{mode: dry-run}}\n").organizational_units[ou].mode
        is Mode.DRY_RUN
    )


@pytest.mark.parametrize("ou", ["ou-abc", "OU-EXAM-PLE11111", "r-ab12", "ou-exam_ple11111", "exam-ple11111"])
def test_malformed_ou_ids_are_refused(ou: str) -> None:
    assert only_issue(f"organizational_units:\n  {ou}: {{mode: notify}}\n").path.startswith(
        "organizational_units."
    )


def test_organization_id_region_and_duplicates() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(MINIMAL.replace("o-exampleorgid", "o-x").replace("eu-west-1", "Europe"))
    assert {i.path for i in info.value.issues} == {"organization_id", "regions.1"}
    with pytest.raises(ConfigError, match="listed more than once: us-east-1"):
        load_config_text(MINIMAL.replace("eu-west-1", "us-east-1"))


# --- modes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["isolate", "dry-run", "notify", '"off"'])
def test_every_mode_is_accepted(mode: str) -> None:
    cfg = load(f"response: {{mode: {mode}}}\n")
    assert cfg.response.mode.value == mode.strip('"')


@pytest.mark.parametrize(
    "extra",
    [
        "response: {mode: off}\n",
        'accounts:\n  "444444444444": {mode: off, reason: sandbox}\n',
        "organizational_units:\n  ou-exam-ple11111: {mode: off}\n",
    ],
)
def test_unquoted_yaml_off_gets_a_clear_error(extra: str) -> None:
    issue = only_issue(extra)
    assert issue.path.endswith("mode")
    assert "YAML boolean false" in issue.message
    assert 'mode: "off"' in issue.message


@pytest.mark.parametrize("mode", ["block", "Isolate", "on", "1"])
def test_unknown_modes_are_refused(mode: str) -> None:
    assert only_issue(f"response: {{mode: {mode}}}\n").path == "response.mode"


def test_override_needs_a_mode() -> None:
    assert only_issue('accounts:\n  "333333333333": {reason: why}\n').path == "accounts.333333333333.mode"


def test_mode_order_mildest_first() -> None:
    assert [m.rank for m in (Mode.OFF, Mode.NOTIFY, Mode.DRY_RUN, Mode.ISOLATE)] == [0, 1, 2, 3]
    assert Mode.mildest(Mode.ISOLATE, Mode.NOTIFY, Mode.DRY_RUN) is Mode.NOTIFY


# --- finding type globs --------------------------------------------------------------------------


def test_glob_only_star_and_question_mark_are_wildcards() -> None:
    exact = glob_to_regex("Backdoor:EC2/C&CActivity.B!DNS")
    assert exact.match("Backdoor:EC2/C&CActivity.B!DNS")
    assert not exact.match("Backdoor:EC2/C&CActivityXB!DNS")  # '.' is literal
    assert glob_to_regex("*:EC2/*").match("Recon:EC2/PortProbeUnprotectedPort")
    assert not glob_to_regex("*:EC2/*").match("Recon:IAMUser/UserPermissions")
    assert glob_to_regex("Trojan:EC2/DGADomainRequest.?").match("Trojan:EC2/DGADomainRequest.B")
