"""Helpers shared by the rollout tests (imported as a plain module: tests/stacksets is on sys.path)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from hub.demo.org import EmulatedOrg


def config_for(org: EmulatedOrg, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "organization_id": org.organization_id,
        "hub": {"account_id": org.hub_account_id, "region": org.regions[0]},
        "trusted_event_accounts": [org.guardduty_admin_id],
        "regions": list(org.regions),
        "response": {"mode": "isolate", "min_severity": 7.0},
    }
    data.update(overrides)
    return data


def write_config(tmp_path: Path, data: dict[str, Any], name: str = "orgcontain.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def leaf_targets(org: EmulatedOrg) -> list[str]:
    """Every OU with accounts, explicitly: moto expands a target OU to its direct accounts only."""
    return [org.ous[name] for name in ("Security", "Workloads", "Sandbox")]


@dataclass
class Deployed:
    org: EmulatedOrg
    config_path: Path
    package: Path
    targets: list[str]
    runner: CliRunner

    def deploy_args(self, *extra: str) -> list[str]:
        args = ["deploy", "--config", str(self.config_path), "--package", str(self.package), "--json"]
        for ou in self.targets:
            args += ["--target-ou", ou]
        return [*args, *extra]

    def invoke(self, *args: str) -> Any:
        from hub.cli.app import app

        return self.runner.invoke(app, list(args))


def run_cli(*args: str) -> Any:
    import hub.cli  # noqa: F401 - registers every command on the app
    from hub.cli.app import app

    return CliRunner().invoke(app, list(args))
