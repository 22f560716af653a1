"""Shared fixtures: fake credentials, moto, and the emulated organization.

Nothing here can reach real AWS: credentials are dummies, ``MOTO_ACCOUNT_ID`` is removed (it would
silently override assumed-role credentials), and every AWS call runs inside ``mock_aws``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.demo.org import EmulatedOrg, fake_credentials

FIXTURES = Path(__file__).parent / "fixtures" / "guardduty"


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "MOTO_ACCOUNT_ID",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "ORGCONTAIN_CONFIG",
        "ORGCONTAIN_LEDGER_TABLE",
        "ORGCONTAIN_TOPIC_ARN",
        "ORGCONTAIN_EVENT_BUS",
        "AWS_ENDPOINT_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    fake_credentials()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "orgcontain")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "OrgContain")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    # Wide enough that rich never wraps an error line (tests match paths in it).
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture
def aws() -> Iterator[None]:
    """An empty moto AWS, torn down after the test."""
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def org(aws: None) -> EmulatedOrg:
    """The emulated organization; the hub account is also the GuardDuty delegated admin."""
    return EmulatedOrg()


@pytest.fixture
def org_separate_admin(aws: None) -> EmulatedOrg:
    """Variant: a separate audit account is the GuardDuty delegated admin."""
    return EmulatedOrg(separate_guardduty_admin=True)


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def guardduty_fixture() -> Any:
    return load_fixture
