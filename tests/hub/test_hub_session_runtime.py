"""Spoke sessions (AssumeRole, caching, AccessDenied) and the run-time config (file, SSM, last good)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from hub.config import Mode
from hub.demo.org import EmulatedOrg
from hub.runtime import ConfigUnavailable, RuntimeConfig
from hub.session import SpokeAccessDenied, SpokeSessions, role_session_name
from tests.hub.helpers import base_config, body_text, error_response, fail_when


@given(st.text(max_size=200))
def test_role_session_name_is_in_sts_charset_and_length(finding_id: str) -> None:
    name = role_session_name(finding_id)
    assert re.fullmatch(r"[\w+=,.@-]{2,64}", name), name
    assert name.startswith("orgcontain-")


def test_role_session_name_keeps_a_finding_id() -> None:
    assert (
        role_session_name("16afba5c5c43e07c9e3e5e2e544e95df") == "orgcontain-16afba5c5c43e07c9e3e5e2e544e95df"
    )


class _Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _assume_recorder(session: Any) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    session.events.register(
        "provide-client-params.sts.AssumeRole", lambda params, **_: calls.append(dict(params))
    )
    return calls


def test_sessions_land_in_the_member_account_through_the_regional_role(org: EmulatedOrg) -> None:
    hub_session = org.session(org.hub_account_id)
    calls = _assume_recorder(hub_session)
    sessions = SpokeSessions(hub_session)
    member = org.accounts["prod-a"]
    clients = sessions.clients(member, "eu-west-1", "abc/def:1")
    ident = clients.session.client("sts", region_name="eu-west-1").get_caller_identity()
    assert ident["Account"] == member
    assert calls[0]["RoleArn"] == f"arn:aws:iam::{member}:role/orgcontain-spoke-eu-west-1"
    assert calls[0]["RoleSessionName"] == "orgcontain-abc-def:1".replace(":", "-")
    assert sessions._sts_client("eu-west-1").meta.endpoint_url == "https://sts.eu-west-1.amazonaws.com"
    assert clients.region == "eu-west-1"


def test_sessions_are_cached_until_shortly_before_expiry(org: EmulatedOrg) -> None:
    hub_session = org.session(org.hub_account_id)
    calls = _assume_recorder(hub_session)
    clock = _Clock(0.0)
    sessions = SpokeSessions(hub_session, clock=clock)
    member = org.accounts["dev"]
    first = sessions.clients(member, "us-east-1", "f1")
    clock.t = (
        first and sessions._entries[(member, "us-east-1", "orgcontain-spoke-us-east-1")].expires_at - 3600
    )
    assert sessions.clients(member, "us-east-1", "f2") is first
    assert len(calls) == 1
    # Other region: another role, another session.
    sessions.clients(member, "eu-west-1", "f3")
    assert len(calls) == 2
    # Within the refresh margin of the expiry: assume again.
    clock.t = sessions._entries[(member, "us-east-1", "orgcontain-spoke-us-east-1")].expires_at - 60
    assert sessions.clients(member, "us-east-1", "f4") is not first
    assert len(calls) == 3


def test_access_denied_on_assume_role_is_typed(org: EmulatedOrg) -> None:
    hub_session = org.session(org.hub_account_id)
    member = org.accounts["sandbox"]
    hub_session.events.register_first(
        "before-send.sts.AssumeRole",
        fail_when(
            lambda req: member in body_text(req),
            lambda: error_response(403, "AccessDenied", "not authorized to perform sts:AssumeRole"),
        ),
    )
    sessions = SpokeSessions(hub_session)
    with pytest.raises(SpokeAccessDenied) as err:
        sessions.clients(member, "us-east-1", "f1")
    assert err.value.code == "AccessDenied"
    assert f"arn:aws:iam::{member}:role/orgcontain-spoke-us-east-1" in str(err.value)
    # Another account is unaffected.
    assert sessions.clients(org.accounts["dev"], "us-east-1", "f2") is not None


# ---- run-time config ------------------------------------------------------------------------------


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data))


def test_file_config_is_cached_and_reloaded_after_max_age(org: EmulatedOrg, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    _write(path, base_config(org))
    clock = _Clock(100.0)
    problems: list[Any] = []
    rc = RuntimeConfig(str(path), clock=clock, on_invalid=problems.append)
    assert rc.get().response.mode is Mode.ISOLATE
    _write(path, base_config(org, mode="notify"))
    clock.t = 159.0
    assert rc.get().response.mode is Mode.ISOLATE  # cached
    clock.t = 161.0
    assert rc.get().response.mode is Mode.NOTIFY  # the kill switch takes effect within a minute
    path.write_text("response: {mode: isolate, bogus: 1}\n")  # invalid
    clock.t = 300.0
    assert rc.get().response.mode is Mode.NOTIFY  # the last good one stays
    assert problems and "bogus" in problems[-1].message
    assert rc.last_problem is not None


def test_cold_start_with_invalid_or_missing_config_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("organization_id: nope\n")
    with pytest.raises(ConfigUnavailable, match="organization_id"):
        RuntimeConfig(str(path)).get()
    with pytest.raises(ConfigUnavailable, match="No such file"):
        RuntimeConfig(str(tmp_path / "missing.yaml")).get()
    with pytest.raises(ConfigUnavailable, match="ORGCONTAIN_CONFIG"):
        RuntimeConfig("").get()


def test_ssm_config_through_powertools_parameters(org: EmulatedOrg) -> None:
    session = org.session(org.hub_account_id)
    ssm = session.client("ssm", region_name="us-east-1")
    ssm.put_parameter(Name="/orgcontain/config", Value=yaml.safe_dump(base_config(org)), Type="String")
    clock = _Clock(0.0)
    rc = RuntimeConfig("ssm:/orgcontain/config", ssm_client=ssm, clock=clock, max_age=60)
    assert rc.get().organization_id == org.organization_id
    ssm.put_parameter(Name="/orgcontain/config", Value="{not: valid", Type="String", Overwrite=True)
    clock.t = 61
    rc._ssm_provider.clear_cache()  # Powertools' own cache follows the same max age in real time
    assert rc.get().organization_id == org.organization_id  # last good kept
    assert rc.last_problem is not None
    with pytest.raises(ConfigUnavailable, match="SSM parameter"):
        RuntimeConfig("ssm:/orgcontain/missing", ssm_client=ssm).get()
