"""Fixtures of the spoke engine's tests: a workload member account in each region of the org."""

from __future__ import annotations

import pytest

from hub.demo.org import EmulatedOrg
from tests.spoke.helpers import Member, member_in


@pytest.fixture(params=["us-east-1", "eu-west-1"])
def member(org: EmulatedOrg, request: pytest.FixtureRequest) -> Member:
    """A workload account, in each of the org's two regions."""
    return member_in(org, "prod-a", request.param)


@pytest.fixture
def member_us(org: EmulatedOrg) -> Member:
    return member_in(org, "prod-b", "us-east-1")


@pytest.fixture
def member_eu(org: EmulatedOrg) -> Member:
    return member_in(org, "dev", "eu-west-1")


@pytest.fixture(autouse=True)
def _no_default_amis(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip moto's ~1,300 preloaded AMIs per touched account and region (and again at teardown,
    when moto re-initialises every backend): containment never reads them, and loading them is
    most of a short test's time. Instances launch from the fixtures' fake AMI id all the same."""
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
