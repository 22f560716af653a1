"""Fixtures of the reliability suite: two moto gaps bridged (DynamoDB transactions under threads:
tests.hub.helpers.serialize_dynamodb; SQS receive cost: harness.cheap_sqs_retention_check), a hub
wired to an org of any size, other Lambda containers of it, and the figures file the suite writes.

Run ``python -m pytest tests/reliability -n 0 -s`` to see the burst's figures; every test's figures
are also written to ``reliability-figures.json`` in the pytest run's temporary directory (the
burst prints the path).
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

import hub.handler as handler
from hub.demo.org import EmulatedOrg
from hub.ledger import Ledger
from hub.responder import Responder
from hub.telemetry import Telemetry
from tests.hub.helpers import HubStack, base_config, create_hub_stack, create_spoke_roles, serialize_dynamodb
from tests.reliability.harness import cheap_sqs_retention_check


@pytest.fixture(autouse=True)
def _emulator_fixes(monkeypatch: pytest.MonkeyPatch) -> None:
    serialize_dynamodb(monkeypatch)
    cheap_sqs_retention_check(monkeypatch)


@dataclass
class Hub:
    """The hub stack, its config file and the handler's wiring, for an org built by the test."""

    org: EmulatedOrg
    stack: HubStack
    config_path: Path
    monkeypatch: pytest.MonkeyPatch
    wiring: dict[str, Any] = field(default_factory=dict)
    _containers: list[Responder] = field(default_factory=list)

    def close(self) -> None:
        for container in self._containers:
            container.close()

    @property
    def ledger(self) -> Ledger:
        return self.stack.ledger()

    def write_config(self, data: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(data))

    def container(self) -> Responder:
        """Another warm Lambda container of the same function (its own caches, sessions, metrics
        tally), as when Lambda scales the queue's consumers out: they share only AWS."""
        base: dict[str, Any] = {
            "hub_session": self.org.session(self.org.hub_account_id),
            "organizations_client_factory": self.org.organizations_client_as_delegated_admin,
        }
        hub = handler.build_responder({**base, **self.wiring})
        hub.telemetry = Telemetry()  # a tally per container (Powertools' EMF buffer is per process)
        self._containers.append(hub)
        return hub

    def cold_start(self) -> None:
        """A new Lambda container: nothing cached, config read again."""
        base: dict[str, Any] = {
            "hub_session": self.org.session(self.org.hub_account_id),
            "organizations_client_factory": self.org.organizations_client_as_delegated_admin,
        }
        handler.configure(**{**base, **self.wiring})


@pytest.fixture
def make_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Hub]]:
    """``make_hub(org, spoke_accounts=None, config=None)``: the hub for ``org`` (call inside moto)."""

    def make(
        org: EmulatedOrg, *, spoke_accounts: list[str] | None = None, config: dict[str, Any] | None = None
    ) -> Hub:
        stack = create_hub_stack(org)
        create_spoke_roles(org, org.member_ids if spoke_accounts is None else spoke_accounts, org.regions)
        path = tmp_path / "orgcontain.yaml"
        path.write_text(yaml.safe_dump(config or base_config(org)))
        monkeypatch.setenv("ORGCONTAIN_CONFIG", str(path))
        monkeypatch.setenv("ORGCONTAIN_LEDGER_TABLE", stack.table)
        monkeypatch.setenv("ORGCONTAIN_TOPIC_ARN", stack.topic_arn)
        monkeypatch.setenv("ORGCONTAIN_EVENT_BUS", stack.bus_name)
        hub = Hub(org, stack, path, monkeypatch)
        hub.cold_start()
        return hub

    hubs: list[Hub] = []

    def tracked(*args: Any, **kwargs: Any) -> Hub:
        hub = make(*args, **kwargs)
        hubs.append(hub)
        return hub

    yield tracked
    for hub in hubs:
        hub.close()
    handler.reset()


def _figures_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker has its own base (popen-gwN) inside the run's directory: share that.
    root = base.parent if base.name.startswith("popen-gw") else base
    return root / "reliability-figures.json"


@pytest.fixture
def record_figures(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, dict[str, Any]], Path]:
    """``record_figures(section, figures)`` merges a section into the run's figures file."""

    def record(section: str, figures: dict[str, Any]) -> Path:
        path = _figures_path(tmp_path_factory)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = json.loads(path.read_text()) if path.exists() else {}
            data[section] = figures
            path.write_text(json.dumps(data, indent=2, sort_keys=True))
        return path

    return record
