"""`orgcontain demo`: the product's main job on an embedded, emulated organization (moto, in process).

1. organization: management account, a hub account that is also the GuardDuty delegated admin,
   workload accounts in several OUs (one nested), GuardDuty detectors in every account x region;
2. deploy: the project's own templates through moto's CloudFormation and StackSets, with
   :class:`stacksets.deploy.Deployer` (the code behind `orgcontain deploy`): the Lambda package,
   the config in SSM, the hub stack, the spoke StackSet (a role per account x region) and the
   forwarder StackSet (GuardDuty admin, every region);
3. fleet: instances in every workload account and region (:mod:`hub.demo.fleet`);
4. findings: GuardDuty-shaped findings from real samples (:mod:`hub.demo.scenario`) put on the
   admin account's default bus in the finding's region; the forwarder rule sends them to the
   central bus, whose rule sends them to the queue; :class:`hub.demo.lambdahost.FunctionHost`
   runs the deployed function's handler on the queue like Lambda's poller;
5. checks: :mod:`hub.demo.verify` reads the member accounts and says whether it all happened.

Nothing here decides or contains anything: that is ``hub.handler.lambda_handler`` and what it
calls, exactly as deployed.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hub.demo.fleet import Fleet
from hub.demo.org import EmulatedOrg
from hub.demo.scenario import MIX, Row

MIN_ACCOUNTS = 5  # security (hub + GuardDuty admin), dev, prod-a, prod-b, sandbox
WAVE = 6  # findings put on the buses before the queue is drained (a Lambda batch takes 10)
TARGET_OUS = ("Security", "Workloads", "Sandbox")  # Workloads covers its nested Prod OU

# Test-only hook: callables run on the demo's state after the findings and before the checks
# (e.g. to undo a quarantine and see the checks fail). Empty in normal runs.
BEFORE_VERIFY: list[Callable[[DemoState], None]] = []


class DemoError(ValueError):
    """The options cannot make a demo (one line for the CLI)."""


@dataclass
class DemoOptions:
    accounts: int = MIN_ACCOUNTS
    findings: int = 24
    seed: int | None = None


@dataclass
class DemoState:
    """What the demo built, for the checks and for the test hook."""

    org: EmulatedOrg
    fleet: Fleet
    rows: list[Row]
    hub_outputs: dict[str, str]


@dataclass
class DemoResult:
    document: dict[str, Any]
    passed: bool
    rows: list[Row] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)


class View(Protocol):
    """How the run is shown (the CLI renders it with rich on stderr)."""

    def phase(self, name: str) -> None: ...

    def step(self, text: str) -> None: ...

    def phase_done(self, name: str, summary: str, seconds: float) -> None: ...

    def findings_start(self, rows: list[Row]) -> None: ...

    def rows_changed(self) -> None: ...

    def findings_done(self) -> None: ...


class NullView:
    def phase(self, name: str) -> None:
        pass

    def step(self, text: str) -> None:
        pass

    def phase_done(self, name: str, summary: str, seconds: float) -> None:
        pass

    def findings_start(self, rows: list[Row]) -> None:
        pass

    def rows_changed(self) -> None:
        pass

    def findings_done(self) -> None:
        pass


class _DeployReporter:
    """stacksets.deploy's progress, forwarded to the view."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.changes: list[str] = []

    def start(self, what: str) -> None:
        self.view.step(what)

    def update(self, text: str) -> None:
        self.view.step(text)

    def finish(self, change: Any) -> None:
        self.changes.append(f"{change.action} {change.target}")


@contextmanager
def _own_environment() -> Iterator[None]:
    """Dummy credentials (nothing can reach AWS) and a process environment restored afterwards."""
    from hub.demo.org import fake_credentials

    saved = dict(os.environ)
    fake_credentials()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class _Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.phases: dict[str, float] = {}
        self._mark = self.start

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        self.phases[name] = round(now - self._mark, 3)
        self._mark = now
        return self.phases[name]

    @property
    def total(self) -> float:
        return round(time.perf_counter() - self.start, 3)


def run_demo(options: DemoOptions, view: View | None = None) -> DemoResult:
    """Run the whole demo in a fresh in-process moto; returns the report and whether all checks passed."""
    if options.accounts < MIN_ACCOUNTS:
        raise DemoError(f"--accounts must be at least {MIN_ACCOUNTS}")
    if options.findings < 1:
        raise DemoError("--findings must be at least 1")
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(1, 2**31)
    shown = view or NullView()
    with _own_environment():
        from moto import mock_aws

        from hub.demo.motogaps import fewer_amis, serialised_dynamodb, shared_service_models

        fewer_amis()

        with shared_service_models(), mock_aws(), serialised_dynamodb():
            return _run(options, seed, shown)


def _run(options: DemoOptions, seed: int, view: View) -> DemoResult:
    from hub.demo import motogaps
    from hub.demo.org import patch_moto

    timer = _Timer()
    rng = random.Random(seed)
    motogaps.seed(seed)
    patch_moto()
    motogaps.accept_string_event_patterns()

    # ---- 1. organization ------------------------------------------------------------------------
    view.phase("organization")
    org = EmulatedOrg(extra_members=options.accounts - MIN_ACCOUNTS)
    detectors = _guardduty(org, view)
    org_summary = (
        f"{len(org.accounts)} member accounts in {len(org.ous)} OUs (+ management), "
        f"{len(org.regions)} regions; hub and GuardDuty admin: security {org.hub_account_id}"
    )
    view.phase_done("organization", org_summary, timer.lap("organization"))

    # ---- 2. deploy ------------------------------------------------------------------------------
    view.phase("deploy")
    config_data, outputs, changes, skipped = _deploy(org, view, max_isolations=max(50, 4 * options.findings))
    soc_inbox = _subscribe_soc_inbox(org, outputs["TopicArn"])
    deploy_summary = (
        f"hub stack; spoke StackSet: {_stack_instances(org, 'orgcontain-spoke')} account-regions; "
        f"forwarder StackSet: {_stack_instances(org, 'orgcontain-forwarder')} regions"
    )
    view.phase_done("deploy", deploy_summary, timer.lap("deploy"))

    # ---- 3. fleet -------------------------------------------------------------------------------
    view.phase("fleet")
    from hub.demo.fleet import build_fleet

    fleet = build_fleet(org, progress=view.step)
    fleet_summary = (
        f"{len(fleet.instances)} instances, {sum(len(i.eni_ids) for i in fleet.instances)} ENIs in "
        f"{len(fleet.in_account_region())} account-regions (multi-ENI, ASG + target group, milder tag)"
    )
    view.phase_done("fleet", fleet_summary, timer.lap("fleet"))

    # ---- 4. findings ----------------------------------------------------------------------------
    view.phase("findings")
    from hub.demo.scenario import plan

    rows = plan(org, fleet, rng, options.findings)
    feeder = _Feeder(org, outputs, detectors, rows)
    view.findings_start(rows)
    feeder.run(view)
    view.findings_done()
    timer.lap("findings")

    # ---- 5. checks ------------------------------------------------------------------------------
    state = DemoState(org, fleet, rows, outputs)
    for hook in BEFORE_VERIFY:
        hook(state)
    from hub.demo.verify import Check, run_checks

    hub_sqs = org.client("sqs", org.hub_account_id, org.regions[0])
    checks = run_checks(org, fleet, rows, hub_sqs, outputs["QueueUrl"], outputs["DeadLetterQueueUrl"])
    if feeder.unmatched:
        checks.append(
            Check("no-unexpected-deliveries", False, f"{len(feeder.unmatched)} message(s) matched no finding")
        )
    notifications = _count_messages(hub_sqs, soc_inbox)
    timer.lap("checks")

    passed = all(c.passed for c in checks)
    document = _document(
        options=options,
        seed=seed,
        org=org,
        config_data=config_data,
        outputs=outputs,
        changes=changes,
        skipped=skipped,
        fleet=fleet,
        rows=rows,
        checks=[c.to_json() for c in checks],
        passed=passed,
        timer=timer,
        invocations=feeder.host.invocations,
        notifications=notifications,
    )
    return DemoResult(document, passed, rows, feeder.host.logs.problems())


# ---- phases -------------------------------------------------------------------------------------


def _guardduty(org: EmulatedOrg, view: View) -> dict[tuple[str, str], str]:
    """GuardDuty: the delegated admin in every region, a detector in every account x region."""
    detectors: dict[tuple[str, str], str] = {}
    for region in org.regions:
        org.management_client("guardduty", region).enable_organization_admin_account(
            AdminAccountId=org.guardduty_admin_id
        )
    for name, account_id in org.accounts.items():
        view.step(f"GuardDuty detectors in {name}")
        for region in org.regions:
            gd = org.client("guardduty", account_id, region)
            detectors[(account_id, region)] = str(gd.create_detector(Enable=True)["DetectorId"])
    return detectors


def _deploy(
    org: EmulatedOrg, view: View, *, max_isolations: int
) -> tuple[dict[str, Any], dict[str, str], list[str], set[str]]:
    import boto3

    from hub.config import parse_config
    from hub.demo import motogaps
    from hub.demo.scenario import demo_config
    from stacksets.aws import Aws
    from stacksets.deploy import Deployer, DeployOptions
    from stacksets.package import build

    config_data = demo_config(org, max_isolations=max_isolations)
    config = parse_config(config_data, "demo config")
    hub_region = config.hub.region
    with tempfile.TemporaryDirectory(prefix="orgcontain-demo-") as tmp:
        view.step("building the Lambda package (orgcontain's code)")
        # moto stores the zip and never runs it; the handler runs in this process (lambdahost).
        package = build(Path(tmp) / "orgcontain-lambda.zip", with_deps=False)
        management = Aws(boto3.Session(region_name=hub_region), region=hub_region)
        deploy_options = DeployOptions(
            package=package, target_ous=tuple(org.ous[n] for n in TARGET_OUS), poll_seconds=0.0
        )
        reporter = _DeployReporter(view)
        with motogaps.skipped_resource_types() as skipped:
            result = Deployer(management, config, deploy_options, reporter).run()
    return config_data, dict(result.hub_outputs), reporter.changes, skipped


def _stack_instances(org: EmulatedOrg, stack_set: str) -> int:
    cfn = org.management_client("cloudformation", org.regions[0])
    pages = cfn.get_paginator("list_stack_instances").paginate(StackSetName=stack_set)
    return sum(len(page["Summaries"]) for page in pages)


def _subscribe_soc_inbox(org: EmulatedOrg, topic_arn: str) -> str:
    """The SOC's subscription to the hub topic (an SQS queue here; e-mail or chat in real life)."""
    region = topic_arn.split(":")[3]
    sqs = org.client("sqs", org.hub_account_id, region)
    url = str(sqs.create_queue(QueueName="soc-inbox")["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    org.client("sns", org.hub_account_id, region).subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return url


def _count_messages(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"].get("ApproximateNumberOfMessages", 0))


class _Feeder:
    """Plays GuardDuty (puts findings on the admin's buses) and Lambda (runs the hub on the queue)."""

    def __init__(
        self,
        org: EmulatedOrg,
        outputs: dict[str, str],
        detectors: dict[tuple[str, str], str],
        rows: list[Row],
    ) -> None:
        from hub.demo.lambdahost import FunctionHost
        from hub.ledger import Ledger

        self.org = org
        self.rows = rows
        self.detectors = detectors
        hub, region = org.hub_account_id, org.regions[0]
        # The hub runs as its stack's execution role, orgcontain-hub (moto does not check trust).
        self.hub_session = org.session(hub, role_name="orgcontain-hub", session_name="orgcontain-hub")
        self.host = FunctionHost(
            org.client("lambda", hub, region), org.client("sqs", hub, region), outputs["FunctionName"]
        )
        self.ledger = Ledger(
            outputs["LedgerTableName"], self.hub_session.client("dynamodb", region_name=region)
        )
        self.queue_url = outputs["QueueUrl"]
        self.unmatched: list[str] = []
        self._sent: dict[tuple[str, str, int], Row] = {}

    def run(self, view: View) -> None:
        import hub.handler as hub_handler

        host = self.host
        with host.environment_applied():
            host.handler()  # imported outside the log capture (its logger keeps its stream)
            hub_handler.configure(
                hub_session=self.hub_session,
                organizations_client_factory=self.org.organizations_client_as_delegated_admin,
            )
            try:
                for start in range(0, len(self.rows), WAVE):
                    wave = self.rows[start : start + WAVE]
                    for row in wave:
                        self.send(row)
                        view.rows_changed()
                    host.drain(on_batch=lambda batch: self.record(batch, view))
                    for row in wave:
                        if row.state == "sent":
                            row.state = "filtered"  # never reached the queue (delivery is synchronous)
                    view.rows_changed()
            finally:
                hub_handler.reset()

    def send(self, row: Row) -> None:
        from hub.demo.findings import InstanceView, build_finding, event_envelope

        org = self.org
        when = time.time()
        instance = None
        if row.instance is not None:
            ec2 = org.client("ec2", row.account_id, row.region)
            instance = InstanceView.describe(ec2, row.instance.instance_id)
        original = row.update_of
        detector = self.detectors.get((row.account_id, row.region)) or uuid.uuid4().hex
        detail = build_finding(
            row.sample,
            finding_id=row.finding_id,
            account_id=row.account_id,
            region=row.region,
            detector_id=detector,
            when=when,
            instance=instance,
            instance_id=row.instance_id,
            severity=row.severity,
            sample=row.sample_flag,
            archived=row.archived,
            count=2 if original is not None else 1,
            created=original.sent_at if original is not None else None,
        )
        row.detail, row.sent_at, row.state = detail, when, "sent"
        self._sent[(row.finding_id, str(detail["updatedAt"]), int(detail["service"]["count"]))] = row
        if row.route == "hub-queue":
            # Forged: an event claiming to come from a member account, put straight on the hub's
            # queue (as if the bus and queue policies had been bypassed).
            body = event_envelope(detail, account=row.account_id, event_id=str(uuid.uuid4()), when=when)
            org.client("sqs", org.hub_account_id, org.regions[0]).send_message(
                QueueUrl=self.queue_url, MessageBody=json.dumps(body)
            )
            return
        # GuardDuty publishes the organization's findings on the admin account's default bus, in
        # the finding's region (moto lets anyone use the aws.guardduty source; AWS does not).
        events = org.client("events", org.guardduty_admin_id, row.region)
        response = events.put_events(
            Entries=[
                {
                    "Source": "aws.guardduty",
                    "DetailType": "GuardDuty Finding",
                    "Detail": json.dumps(detail),
                    "Resources": [str(detail["arn"])],
                }
            ]
        )
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            row.state = "failed"
            row.detail_text = f"put_events: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}"

    def record(self, batch: list[Any], view: View) -> None:
        """Match each delivery to its finding and read the decision the hub recorded for it."""
        returned = time.time()  # the invocation that handled this batch has just returned
        for delivery in batch:
            detail = delivery.event.get("detail") or {}
            key = (
                str(detail.get("id", "")),
                str(detail.get("updatedAt", "")),
                int((detail.get("service") or {}).get("count") or 0),
            )
            row = self._sent.get(key)
            if row is None:
                self.unmatched.append(delivery.message_id)
                continue
            if delivery.message_id not in row.message_ids:
                row.message_ids.append(delivery.message_id)
            records = [
                r
                for r in self.ledger.decisions(row.account_id, row.region, row.finding_id)
                if r.delivery_id == delivery.message_id
            ]
            if not records:
                row.state = "failed"
                row.detail_text = "no decision recorded"
                continue
            rec = max(records, key=lambda r: r.decided_at)
            row.decision, row.reason, row.detail_text = rec.decision, rec.reason, rec.detail
            row.steps = list(rec.data.get("steps") or [])
            row.decided_at = rec.decided_at
            row.finished_at = returned
            row.seconds_to_network_isolation = rec.data.get("seconds_to_network_isolation")
            row.state = "failed" if delivery.failed else "decided"
        view.rows_changed()


# ---- the report ---------------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _max(values: list[float]) -> float | None:
    return round(max(values), 3) if values else None


def _row_json(row: Row) -> dict[str, Any]:
    return {
        "n": row.n,
        "scenario": row.scenario,
        "label": row.label,
        "finding_id": row.finding_id,
        "type": row.finding_type,
        "severity": row.effective_severity,
        "sample": row.sample,
        "account_id": row.account_id,
        "account_name": row.account_name,
        "region": row.region,
        "instance_id": row.target_instance_id,
        "route": row.route,
        "expected": [{"decision": e.decision, "reason": e.reason} for e in row.expected],
        "state": row.state,
        "decision": row.decision,
        "reason": row.reason,
        "detail": row.detail_text,
        "steps": [
            {"step": s.get("step"), "status": s.get("status"), "detail": s.get("detail", "")}
            for s in row.steps
        ],
        "seconds": round(row.seconds, 3) if row.seconds is not None else None,
        "seconds_to_network_isolation": row.seconds_to_network_isolation,
        "ok": row.ok,
    }


def _document(
    *,
    options: DemoOptions,
    seed: int,
    org: EmulatedOrg,
    config_data: dict[str, Any],
    outputs: dict[str, str],
    changes: list[str],
    skipped: set[str],
    fleet: Fleet,
    rows: list[Row],
    checks: list[dict[str, Any]],
    passed: bool,
    timer: _Timer,
    invocations: int,
    notifications: int,
) -> dict[str, Any]:
    from hub.demo.motogaps import GAPS
    from hub.demo.verify import isolated_instances

    names = {v: k for k, v in org.accounts.items()}
    decided = [r for r in rows if r.state == "decided"]
    isolated = isolated_instances(rows)
    seconds = [r.seconds for r in decided if r.seconds is not None]
    to_network = [
        float(r.seconds_to_network_isolation) for r in decided if r.seconds_to_network_isolation is not None
    ]
    return {
        "seed": seed,
        "options": {"accounts": options.accounts, "findings": options.findings},
        "organization": {
            "id": org.organization_id,
            "management_account_id": org.management_account_id,
            "hub_account_id": org.hub_account_id,
            "guardduty_admin_id": org.guardduty_admin_id,
            "regions": list(org.regions),
            "ous": dict(org.ous),
            "accounts": [{"name": names[a], "id": a, "ou": org.account_ou[a]} for a in org.accounts.values()],
        },
        "config": config_data,
        "deploy": {
            "changes": changes,
            "hub_outputs": outputs,
            "moto_skipped_resource_types": sorted(skipped),
        },
        "fleet": [
            {
                "key": i.key,
                "role": i.role,
                "account_id": i.account_id,
                "region": i.region,
                "instance_id": i.instance_id,
                "enis": len(i.eni_ids),
            }
            for i in fleet.instances
        ],
        "findings": [_row_json(r) for r in rows],
        "summary": {
            "findings": len(rows),
            "decided": len(decided),
            "filtered_before_the_hub": sum(1 for r in rows if r.state == "filtered"),
            "decisions": dict(Counter(r.decision for r in decided if r.decision)),
            "isolated_instances": len(isolated),
            "quarantined_enis": sum(len(i.eni_ids) for i in isolated.values()),
            "lambda_invocations": invocations,
            "notifications": notifications,
            "seconds_put_to_decided": {"median": _median(seconds), "max": _max(seconds)},
            "seconds_to_network_isolation": {"median": _median(to_network), "max": _max(to_network)},
            "phases_seconds": dict(timer.phases),
            "total_seconds": timer.total,
        },
        "checks": checks,
        "passed": passed,
        "moto_gaps": [{"gap": gap, "bridge": bridge} for gap, bridge in GAPS],
        "mix": [s.scenario for s in MIX],
    }
