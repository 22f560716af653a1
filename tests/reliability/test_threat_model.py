"""docs/threat-model.md stays true: every test it names exists, and the SCP it recommends denies
what it says it denies (evaluated here with IAM's condition semantics for the operators it uses:
moto evaluates no SCP)."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "threat-model.md"


def _named_tests() -> set[tuple[str, str]]:
    return set(re.findall(r"(tests/[\w/]+\.py)::(test_\w+)", DOC.read_text()))


def test_every_test_the_threat_model_names_exists() -> None:
    named = _named_tests()
    assert len(named) >= 30
    missing = []
    for path, name in sorted(named):
        source = ROOT / path
        tree = ast.parse(source.read_text()) if source.exists() else None
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)} if tree else set()
        if name not in defined:
            missing.append(f"{path}::{name}")
    assert missing == []


def _scp() -> dict[str, Any]:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.S)
    [scp] = [json.loads(b) for b in blocks if "orgcontain:*" in b]
    return dict(scp)


def _denied(scp: dict[str, Any], action: str, principal: str, tag_keys: list[str] | None) -> bool:
    """Whether an explicit Deny of ``scp`` matches (only the condition operators the SCP uses)."""
    for statement in scp["Statement"]:
        assert statement["Effect"] == "Deny"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if action not in actions:
            continue
        matched = True
        for operator, conditions in statement["Condition"].items():
            for key, values in conditions.items():
                values = values if isinstance(values, list) else [values]
                if operator == "ForAnyValue:StringLike":
                    assert key == "aws:TagKeys"
                    ok = bool(tag_keys) and any(
                        fnmatch.fnmatchcase(k, v) for k in tag_keys or [] for v in values
                    )
                elif operator == "ArnNotLike":
                    assert key == "aws:PrincipalArn"
                    ok = not any(fnmatch.fnmatchcase(principal, v) for v in values)
                elif operator == "Null":
                    assert key == "aws:TagKeys"
                    ok = (tag_keys is None) == (values == ["true"])
                else:
                    pytest.fail(f"operator {operator} not evaluated here")
                matched = matched and ok
        if matched:
            return True
    return False


SPOKE = "arn:aws:iam::222222222222:role/orgcontain-spoke-eu-west-1"
SECURITY = "arn:aws:iam::222222222222:role/SecurityTeamAdmin"
MEMBER_ADMIN = "arn:aws:iam::222222222222:role/AdministratorAccess"
ATTACKER = "arn:aws:iam::222222222222:user/compromised"


@pytest.mark.parametrize("action", ["ec2:CreateTags", "ec2:DeleteTags"])
def test_the_scp_reserves_orgcontain_tags_for_the_security_team_and_spoke_roles(action: str) -> None:
    scp = _scp()
    mode = ["orgcontain:mode"]
    assert _denied(scp, action, MEMBER_ADMIN, mode)
    assert _denied(scp, action, ATTACKER, ["Name", "orgcontain:mode"])
    assert not _denied(scp, action, SPOKE, mode)
    assert not _denied(scp, action, SECURITY, mode)
    assert not _denied(scp, action, MEMBER_ADMIN, ["Name", "team"]), "other tags stay free"
    # DeleteTags without a key list removes every tag, orgcontain's included.
    assert _denied(scp, "ec2:DeleteTags", MEMBER_ADMIN, None)
    assert not _denied(scp, "ec2:DeleteTags", SPOKE, None)
    # The spoke role's name in the SCP is the one the StackSet creates (<prefix>-<region>).
    spoke = (ROOT / "stacksets" / "spoke.yaml").read_text()
    assert 'RoleName: !Sub "${RolePrefix}-${AWS::Region}"' in spoke
    assert re.search(r"RolePrefix:\n(?:\s+\w+:.*\n)*?\s+Default: orgcontain-spoke\n", spoke)
