"""The demo's scenario: the responder's configuration, the findings to feed, and what each must get.

The expectations below are the scenario's own specification, written from the configuration's
intent (which OU is in dry-run, which account opted out, which instance carries a milder tag); the
demo never asks ``hub.policy`` what to expect, so a wrong decision shows up as a failed check.

Configuration (``demo_config``): the hub account is also the GuardDuty delegated admin; the
Workloads OU runs in ``dry-run`` while its nested Prod OU isolates (nearest OU wins); the
``sandbox`` account is opted out (``off``); one finding type is excluded org-wide.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from hub.demo import findings as samples
from hub.demo.fleet import MILDER_TAG, Fleet, FleetInstance
from hub.demo.org import EmulatedOrg

OPTED_OUT = "sandbox"
DRY_RUN_OU = "Workloads"
ISOLATE_OU = "Prod"
EXCLUDED_TYPE = "UnauthorizedAccess:EC2/TorClient"
MIN_SEVERITY = 7.0
OUTSIDER = "outsider"  # an account that is not in the organization


@dataclass(frozen=True)
class Expect:
    decision: str
    reason: str

    def text(self) -> str:
        return f"{self.decision} ({self.reason})"


ISOLATED = Expect("isolated", "mode-isolate")
ALREADY_ISOLATED = Expect("already-isolated", "incident-open")
DRY_RUN = Expect("dry-run", "mode-dry-run")
OPTED_OUT_SKIP = Expect("skipped", "account-opted-off")
TAG_EXEMPTION = Expect("notified", "tag-exemption")


def demo_config(org: EmulatedOrg, *, max_isolations: int) -> dict[str, Any]:
    """The responder's configuration for the emulated organization (validated by the deploy)."""
    return {
        "organization_id": org.organization_id,
        "hub": {"account_id": org.hub_account_id, "region": org.regions[0]},
        "trusted_event_accounts": [org.guardduty_admin_id],
        "regions": list(org.regions),
        "spoke_role_prefix": "orgcontain-spoke",
        "response": {
            "mode": "isolate",
            "min_severity": MIN_SEVERITY,
            "finding_types": {"include": ["*"], "exclude": [EXCLUDED_TYPE]},
            "quarantine_ingress": [
                {"cidr": "10.0.0.10/32", "ports": [22], "description": "SOC bastion"},
                {"cidr": "10.0.0.20/32", "ports": [22, 443], "description": "forensic collector"},
            ],
            # Sized to the fleet: the breaker (20 an hour by default) is not what this shows.
            "breaker": {"max_isolations": max_isolations, "window_minutes": 60},
        },
        "organizational_units": {
            org.ous[DRY_RUN_OU]: {"mode": "dry-run", "reason": "Workloads: watch before acting"},
            org.ous[ISOLATE_OU]: {"mode": "isolate", "reason": "production: contain at once"},
        },
        "accounts": {
            org.accounts[OPTED_OUT]: {"mode": "off", "reason": "sandbox account, opted out"},
        },
    }


def expected_for(org: EmulatedOrg, inst: FleetInstance) -> tuple[Expect, ...]:
    """What a high-severity EC2 finding about ``inst`` must get under ``demo_config``."""
    if inst.tags.get("orgcontain:mode") == MILDER_TAG["orgcontain:mode"]:
        return (TAG_EXEMPTION,)
    if inst.account_name == OPTED_OUT:
        return (OPTED_OUT_SKIP,)
    if org.account_ou[inst.account_id] == DRY_RUN_OU:
        return (DRY_RUN,)
    # Prod (isolate) and the other OUs (response.mode isolate): the first finding about the
    # instance isolates it, later ones attach to the open incident.
    return (ISOLATED, ALREADY_ISOLATED)


@dataclass
class Row:
    """One finding of the demo: what is sent, what it must get, and what it got."""

    n: int
    scenario: str
    label: str
    sample: str
    finding_id: str
    account_name: str
    account_id: str
    region: str
    instance: FleetInstance | None
    expected: tuple[Expect, ...]  # empty: must never reach the hub (filtered on the way)
    severity: float | None = None  # None: the sample's own
    route: str = "admin-bus"  # admin-bus | hub-queue (forged)
    sample_flag: bool = False
    archived: bool = False
    update_of: Row | None = None
    instance_id: str | None = None  # for a finding about a non-existent instance
    # filled while the demo runs
    detail: dict[str, Any] | None = None
    sent_at: float | None = None
    state: str = "planned"  # planned | sent | decided | filtered (never reached the hub) | failed
    message_ids: list[str] = field(default_factory=list)
    decision: str | None = None
    reason: str | None = None
    detail_text: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)
    decided_at: float | None = None  # when the hub started deciding (the ledger's decided_at)
    finished_at: float | None = None  # when the Lambda invocation that decided it returned
    seconds_to_network_isolation: float | None = None  # the hub's own measure, from updatedAt

    @property
    def finding_type(self) -> str:
        return str((self.detail or {}).get("type", ""))

    @property
    def effective_severity(self) -> float | None:
        value = (self.detail or {}).get("severity")
        return float(value) if isinstance(value, int | float) else None

    @property
    def target_instance_id(self) -> str | None:
        if self.instance is not None:
            return self.instance.instance_id
        return self.instance_id

    @property
    def seconds(self) -> float | None:
        """Put on the bus (or the queue) -> the invocation that decided it returned."""
        if self.sent_at is None or self.finished_at is None:
            return None
        return max(self.finished_at - self.sent_at, 0.0)

    @property
    def ok(self) -> bool:
        if not self.expected:
            return self.state == "filtered"
        return self.state == "decided" and Expect(self.decision or "", self.reason or "") in self.expected


@dataclass(frozen=True)
class _Spec:
    scenario: str
    label: str
    sample: str
    account: str  # account name, or OUTSIDER
    region: int  # index into org.regions
    role: str | None  # fleet role of the target instance; None: no instance
    expected: tuple[Expect, ...]
    severity: float | None = None
    route: str = "admin-bus"
    sample_flag: bool = False
    archived: bool = False
    update_of: str | None = None


# In priority order: ``--findings N`` below the mix's length takes the first N.
MIX: tuple[_Spec, ...] = (
    _Spec("high", "high severity, 3-ENI instance", samples.BITCOIN, "prod-a", 0, "db", (ISOLATED,)),
    _Spec(
        "critical", "critical severity, second region", samples.C2, "prod-b", 1, "api", (ISOLATED,), 9.0
    ),
    _Spec("asg", "Auto Scaling group + target group", samples.TOR_RELAY, "prod-b", 0, "asg", (ISOLATED,)),
    _Spec(
        "milder-tag", "tagged orgcontain:mode=notify", samples.BITCOIN_DNS_REAL, "prod-a", 1, "legacy",
        (TAG_EXEMPTION,),
    ),
    _Spec("dry-run-ou", "account in the dry-run OU", samples.BITCOIN, "dev", 0, "web", (DRY_RUN,)),
    _Spec("opted-out", "opted-out account", samples.C2, OPTED_OUT, 0, "web", (OPTED_OUT_SKIP,)),
    _Spec("low", "low severity", samples.SSH_BRUTE_FORCE_LOW, "prod-a", 0, "web", ()),
    _Spec(
        "excluded-type", "type excluded by the config", samples.TOR_CLIENT, "prod-b", 0, "web",
        (Expect("skipped", "type-excluded"),),
    ),
    _Spec(
        "s3", "S3 finding", samples.S3_EXFILTRATION, "prod-a", 0, None,
        (Expect("skipped", "not-instance-finding"),),
    ),
    _Spec(
        "sample", "GuardDuty sample finding", samples.C2, "prod-b", 1, "web",
        (Expect("skipped", "sample-finding"),), sample_flag=True,
    ),
    _Spec(
        "archived", "archived finding", samples.BITCOIN, "dev", 1, "web",
        (Expect("skipped", "archived"),), archived=True,
    ),
    _Spec(
        "attack-sequence", "attack sequence, critical", samples.ATTACK_SEQUENCE, "prod-a", 0, None,
        (Expect("notified", "attack-sequence"),),
    ),
    _Spec(
        "update", "update of finding 1 (same id)", samples.BITCOIN, "prod-a", 0, "db",
        (ALREADY_ISOLATED,), update_of="high",
    ),
    _Spec(
        "forged", "forged: member posts to the hub queue", samples.C2, "prod-a", 0, "web",
        (Expect("rejected", "untrusted-event-account"),), route="hub-queue",
    ),
    _Spec(
        "outside-org", "account outside the organization", samples.BITCOIN, OUTSIDER, 0, None,
        (Expect("rejected", "account-not-in-organization"),),
    ),
)  # fmt: skip

# Samples and severities for the findings beyond the mix (high and critical, EC2 instance).
EXTRA_SAMPLES = (samples.BITCOIN, samples.C2, samples.TOR_RELAY, samples.BITCOIN_DNS_REAL)
EXTRA_SEVERITIES = (7.0, 7.5, 8.0, 8.0, 8.0, 8.5, 8.9, 9.0, 9.5)


def new_finding_id(rng: random.Random) -> str:
    """A GuardDuty-shaped finding id (32 hex digits), new for every run (or seed)."""
    return f"{rng.getrandbits(128):032x}"


def outsider_account(org: EmulatedOrg, rng: random.Random) -> str:
    members = set(org.accounts.values()) | {org.management_account_id}
    while True:
        candidate = f"{rng.randrange(10**11, 10**12):012d}"
        if candidate not in members:
            return candidate


def plan(org: EmulatedOrg, fleet: Fleet, rng: random.Random, count: int) -> list[Row]:
    """The findings to feed, in order: the mix (truncated to ``count``), then extra findings about
    random fleet instances (each instance once before any repeats)."""
    rows: list[Row] = []
    by_scenario: dict[str, Row] = {}
    outsider = outsider_account(org, rng)
    for spec in MIX[:count]:
        region = org.regions[spec.region]
        if spec.account == OUTSIDER:
            account_name, account_id = OUTSIDER, outsider
        else:
            account_name, account_id = spec.account, org.accounts[spec.account]
        instance = fleet.find(spec.account, region, spec.role) if spec.role else None
        original = by_scenario.get(spec.update_of) if spec.update_of else None
        row = Row(
            n=len(rows) + 1,
            scenario=spec.scenario,
            label=spec.label,
            sample=spec.sample,
            finding_id=original.finding_id if original else new_finding_id(rng),
            account_name=account_name,
            account_id=account_id,
            region=region,
            instance=instance,
            expected=spec.expected,
            severity=spec.severity,
            route=spec.route,
            sample_flag=spec.sample_flag,
            archived=spec.archived,
            update_of=original,
        )
        if spec.account == OUTSIDER:
            row.instance_id = f"i-{rng.getrandbits(68):017x}"
        rows.append(row)
        by_scenario[spec.scenario] = row
    targets = list(fleet.instances)
    unused: list[FleetInstance] = []
    while len(rows) < count:
        if not unused:
            unused = targets[:]
            rng.shuffle(unused)
        inst = unused.pop()
        rows.append(
            Row(
                n=len(rows) + 1,
                scenario="extra",
                label="high/critical, random instance",
                sample=rng.choice(EXTRA_SAMPLES),
                finding_id=new_finding_id(rng),
                account_name=inst.account_name,
                account_id=inst.account_id,
                region=inst.region,
                instance=inst,
                expected=expected_for(org, inst),
                severity=rng.choice(EXTRA_SEVERITIES),
            )
        )
    return rows
