"""Fixtures for the rollout tests: a prebuilt package, a config for the emulated org, a deployed org.

moto gap (documented in docs/deploy.md and patched in ``hub.demo.org.patch_moto``): moto's
CloudFormation cannot read an ``EventPattern`` written as a JSON string, which AWS accepts and
which our templates need (a ``Ref`` to a Number parameter is a string in CloudFormation).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rollout_support import Deployed, config_for, leaf_targets, write_config
from typer.testing import CliRunner

from hub.demo.org import EmulatedOrg, patch_moto


@pytest.fixture(autouse=True)
def _moto_accepts_string_patterns() -> None:
    patch_moto()


@pytest.fixture(scope="session")
def lambda_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """orgcontain's code only (no dependency fetch): enough for moto, which never runs it."""
    from stacksets.package import build

    return build(tmp_path_factory.mktemp("pkg") / "orgcontain-lambda.zip", with_deps=False).path


@pytest.fixture
def deployed_factory(tmp_path: Path, lambda_package: Path) -> Iterator[Any]:
    def make(org: EmulatedOrg, **config_overrides: Any) -> Deployed:
        import hub.cli  # noqa: F401

        cfg = write_config(tmp_path, config_for(org, **config_overrides))
        d = Deployed(org, cfg, lambda_package, leaf_targets(org), CliRunner())
        result = d.invoke(*d.deploy_args())
        assert result.exit_code == 0, result.output
        return d

    yield make
