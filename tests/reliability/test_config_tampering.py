"""Issue #7, config tampering and mistakes, through the real handler reading its config from the
SSM parameter store (moto): an invalid config, a quarantine open to the world (``0.0.0.0/0``,
``::/0``, any prefix wider than /8 or /32), a config that opts everything out, a spoke role prefix
that names other roles.

A bad config never makes the hub act more: at a cold start it fails closed (every finding
``failed: config-unavailable``, retried, nothing touched); in a warm container the last good config
stays in force and the problem is recorded; the quarantine group never admits the world.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import hub.handler as handler
from hub.config import ConfigError, parse_config
from hub.demo.org import EmulatedOrg, Instance
from hub.runtime import RuntimeConfig
from tests.hub.helpers import LambdaContext, base_config, envelope, make_finding, sqs_event
from tests.reliability.conftest import Hub
from tests.reliability.harness import fleet_state, quarantined_enis

PARAMETER = "/orgcontain/config"
ROOT = Path(__file__).resolve().parents[2]

WORLD_OPEN = ["0.0.0.0/0", "::/0", "0.0.0.0/1", "10.0.0.0/7", "2000::/3", "2001:db8::/31"]


def _with_ingress(org: EmulatedOrg, cidr: str) -> dict[str, Any]:
    config = base_config(org)
    config["response"]["quarantine_ingress"] = [{"cidr": cidr, "ports": [22], "description": "oops"}]
    return config


class SsmHub:
    """The hub reading ``ssm:/orgcontain/config`` from the hub account's parameter store."""

    def __init__(self, org: EmulatedOrg, hub: Hub) -> None:
        self.org, self.hub = org, hub
        self.ssm = hub.stack.client("ssm")
        self.problems: list[str] = []

    def put(self, data: dict[str, Any] | str) -> None:
        text = data if isinstance(data, str) else yaml.safe_dump(data)
        self.ssm.put_parameter(Name=PARAMETER, Value=text, Type="String", Overwrite=True)

    def cold_start(self) -> None:
        """A new container; the config is read again at every finding (max_age 0) so that a change
        of the parameter is seen at once."""
        runtime = RuntimeConfig(
            f"ssm:{PARAMETER}",
            ssm_client=self.ssm,
            max_age=0,
            on_invalid=lambda problem: self.problems.append(problem.message),
        )
        self.hub.wiring = {"config": runtime}
        self.hub.cold_start()

    def invoke(self, *instances: Instance) -> dict[str, Any]:
        events = [
            envelope(make_finding(i.account_id, i.region, i.instance_id), self.org.guardduty_admin_id)
            for i in instances
        ]
        return dict(handler.lambda_handler(sqs_event(events), LambdaContext()))


@pytest.fixture
def ssm_hub(aws: None, make_hub: Callable[..., Hub]) -> SsmHub:
    org = EmulatedOrg()
    return SsmHub(org, make_hub(org))


def _decisions(hub: Hub, instance: Instance | None = None) -> list[tuple[str, str]]:
    """(decision, reason) of the instance's findings, or of every record (a finding that fails
    before its config is read has no instance yet)."""
    return [
        (d.decision, d.reason)
        for d in hub.ledger.all_decisions()
        if instance is None or d.instance_id == instance.instance_id
    ]


@pytest.mark.parametrize(
    "tampered",
    ["{not: valid", "response: {mode: isolate}\nnot_a_key: 1\n", "{}", *WORLD_OPEN],
    ids=["not-yaml", "unknown-key", "empty", *WORLD_OPEN],
)
def test_tampered_config_at_cold_start_fails_closed(ssm_hub: SsmHub, tampered: str) -> None:
    org, hub = ssm_hub.org, ssm_hub.hub
    inst = org.workload(org.member_ids[0], org.regions[0]).run_instance(enis=2)
    pairs = [(inst.account_id, inst.region)]
    before = fleet_state(org, pairs)
    ssm_hub.put(_with_ingress(org, tampered) if tampered in WORLD_OPEN else tampered)
    ssm_hub.cold_start()
    response = ssm_hub.invoke(inst, inst)
    assert len(response["batchItemFailures"]) == 2, "retried until a valid config is stored, then the DLQ"
    assert _decisions(hub) == [("failed", "config-unavailable")] * 2
    assert fleet_state(org, pairs) == before
    assert ssm_hub.problems, "the problem is reported (ConfigInvalid metric, alarmed)"
    if tampered in WORLD_OPEN:
        assert "a quarantine open to the world is not a quarantine" in ssm_hub.problems[0]


def test_tampering_a_warm_hub_keeps_the_last_good_config_and_the_quarantine_closed(ssm_hub: SsmHub) -> None:
    org, hub = ssm_hub.org, ssm_hub.hub
    work = org.workload(org.member_ids[0], org.regions[0])
    first, second = work.run_instance(), work.run_instance(enis=2)
    ssm_hub.put(base_config(org))
    ssm_hub.cold_start()
    assert ssm_hub.invoke(first)["batchItemFailures"] == []
    for cidr in WORLD_OPEN[:2]:
        ssm_hub.put(_with_ingress(org, cidr))
        assert ssm_hub.invoke(second)["batchItemFailures"] == []
    assert _decisions(hub, first) == [("isolated", "mode-isolate")]
    assert sorted(_decisions(hub, second)) == [
        ("already-isolated", "incident-open"),
        ("isolated", "mode-isolate"),
    ]
    assert len(ssm_hub.problems) >= 2 and all("open to the world" in p for p in ssm_hub.problems)
    state = fleet_state(org, [(work.account_id, work.region)])
    q, n = quarantined_enis(state[second.instance_id])
    assert q == n == 2
    group = hub.ledger.incident(second.account_id, second.region, second.instance_id).quarantine_group_id  # type: ignore[union-attr]
    rules = work.ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]["IpPermissions"]
    sources = {r.get("CidrIp") for p in rules for r in p.get("IpRanges", [])}
    sources |= {r.get("CidrIpv6") for p in rules for r in p.get("Ipv6Ranges", [])}
    assert sources == {"10.0.0.10/32"}, "only the last good config's SOC bastion"


@pytest.mark.parametrize("cidr", WORLD_OPEN)
def test_a_quarantine_open_to_the_world_is_refused(cidr: str) -> None:
    with pytest.raises(ConfigError, match="open to the world is not a quarantine"):
        parse_config(
            {
                **base_config_data(),
                "response": {"quarantine_ingress": [{"cidr": cidr, "ports": [22]}]},
            }
        )


def base_config_data() -> dict[str, Any]:
    return {
        "organization_id": "o-abcdefghij",
        "hub": {"account_id": "111111111111", "region": "us-east-1"},
        "trusted_event_accounts": ["111111111111"],
        "regions": ["us-east-1"],
    }


def test_a_config_that_opts_everything_out_isolates_nothing_but_records_every_finding(
    ssm_hub: SsmHub,
) -> None:
    org, hub = ssm_hub.org, ssm_hub.hub
    fleet = [org.workload(a, r).run_instance() for a in org.member_ids[:2] for r in org.regions]
    pairs = [(i.account_id, i.region) for i in fleet]
    before = fleet_state(org, pairs)
    ssm_hub.put(base_config(org, mode="off"))
    ssm_hub.cold_start()
    response = ssm_hub.invoke(*fleet)
    assert response["batchItemFailures"] == []
    assert fleet_state(org, pairs) == before
    for inst in fleet:
        assert _decisions(hub, inst) == [("skipped", "mode-off")]
    assert handler.responder().telemetry.counts["Skipped"] == len(fleet)


@pytest.mark.parametrize("prefix", ["orgcontain-spoke/../admin", "*", "arn:aws:iam::1:role/x", "a b", ""])
def test_a_spoke_role_prefix_cannot_name_a_path_wildcard_or_arn(prefix: str) -> None:
    with pytest.raises(ConfigError):
        parse_config({**base_config_data(), "spoke_role_prefix": prefix})


def test_a_tampered_role_prefix_names_roles_the_hub_role_may_not_assume(ssm_hub: SsmHub) -> None:
    """The config may name any prefix; the hub's IAM policy (template, deployed with the real
    prefix) allows AssumeRole only on ``role/<prefix>-*`` in the organization. The role the hub
    asks for with a tampered prefix falls outside it (moto does not evaluate IAM: the match is
    checked here against the template's policy)."""
    org = ssm_hub.org
    template = yaml.load((ROOT / "hub" / "template.yaml").read_text(), Loader=_CfnLoader)
    statements = [
        s
        for p in template["Resources"]["HubRole"]["Properties"]["Policies"]
        for s in p["PolicyDocument"]["Statement"]
        if s["Action"] == "sts:AssumeRole" or "sts:AssumeRole" in s["Action"]
    ]
    assert len(statements) == 1
    pattern = statements[0]["Resource"].replace("${AWS::Partition}", "aws")
    pattern = pattern.replace("${SpokeRolePrefix}", "orgcontain-spoke")
    assert statements[0]["Condition"]["StringEquals"]["aws:ResourceOrgID"]
    asked: list[str] = []
    session = org.session(org.hub_account_id)
    session.events.register(
        "before-call.sts.AssumeRole", lambda params, **_: asked.append(params["body"]["RoleArn"])
    )
    ssm_hub.put({**base_config(org), "spoke_role_prefix": "OrganizationAccountAccessRole"})
    ssm_hub.cold_start()
    ssm_hub.hub.wiring["hub_session"] = session
    ssm_hub.hub.cold_start()
    inst = org.workload(org.member_ids[0], org.regions[0]).run_instance()
    ssm_hub.invoke(inst)
    assert asked == [f"arn:aws:iam::{inst.account_id}:role/OrganizationAccountAccessRole-{inst.region}"]
    assert not fnmatch.fnmatchcase(asked[0], pattern), "the deployed hub role may not assume it"
    assert fnmatch.fnmatchcase(f"arn:aws:iam::{inst.account_id}:role/orgcontain-spoke-{inst.region}", pattern)


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation short-form tags (!Sub "x" -> "x")."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _cfn_tag)
