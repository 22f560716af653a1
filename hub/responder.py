"""Orchestration: one finding in, exactly one recorded decision out. Used by the Lambda handler and
by the CLI's break-glass ``isolate`` / ``release`` (same engine, ledger, notifications, events).

Critical path of an isolation (round trips before the last ENI is quarantined; concurrent calls
count as one):

- RT1: ``spoke.describe`` (after AssumeRole when the session is cold) || ledger prefetch (incident,
  breaker, released mark in one BatchGetItem) || Organizations (account status, OU path) when
  not cached. All read-only: nothing mutates before the trust and policy checks pass.
- RT2: one TransactWriteItems: incident lock holding the pre-state + breaker update + "finding
  not released" check.
- RT3/RT4: the network change (transition group, then quarantine group) in ``spoke.isolate`` with
  the pre-state given (no second describe) and the per account+region GroupCache.
- Then, off the critical path: the other steps, checkpoint, incident outcome, decision record,
  SNS, result event, metrics.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from hub import policy
from hub.breaker import evaluate
from hub.config import Mode, OrgContainConfig
from hub.ledger import (
    CONTAINING,
    GONE,
    ISOLATED,
    RELEASED,
    RELEASING,
    DecisionRecord,
    Incident,
    Ledger,
    LockConflict,
    Prefetch,
    iso,
)
from hub.models import Decision, Finding
from hub.orgview import NotInOrganization, OrgLookupFailed, OrgView
from hub.outcome import Outcome
from hub.plan import build_plan
from hub.runtime import ConfigUnavailable, RuntimeConfig
from hub.session import SpokeAccessDenied, SpokeSessions
from hub.telemetry import Telemetry
from hub.trust import HINT_MAX, check_event, membership_rejection

if TYPE_CHECKING:
    from hub.notify import Notifier
    from spoke.clients import SpokeClients
    from spoke.groups import GroupCache
    from spoke.models import IsolationResult, PreState

log = logging.getLogger(__name__)

LOCK_ATTEMPTS = 5  # optimistic-concurrency rounds on the breaker/incident before giving up (retry)
CLI_LEASE_SECONDS = 900.0

# How far each intended decision goes: the live-tag re-check may only move down this scale.
_ACTION_RANK = {
    Decision.ISOLATED: 3,
    Decision.ALREADY_ISOLATED: 3,
    Decision.DRY_RUN: 2,
    Decision.NOTIFIED: 1,
    Decision.SKIPPED: 0,
    Decision.REJECTED: 0,
    Decision.FAILED: 0,
}


class ResponderError(RuntimeError):
    """An operator action that cannot proceed; the message says why, naming the instance."""


@dataclass
class _Speculation:
    """RT1 reads started before the policy decision is final (read-only, discarded if unneeded)."""

    describe: Future[tuple[SpokeClients, PreState | None]] | None = None
    prefetch: Future[Prefetch] | None = None


def _out(
    base: Outcome,
    decision: Decision,
    reason: str,
    detail: str = "",
    *,
    incident: Incident | None = None,
    result: IsolationResult | None = None,
) -> Outcome:
    """``base`` (what is known so far) with its decision filled in."""
    return replace(
        base,
        decision=decision,
        reason=reason,
        detail=detail,
        incident=incident if incident is not None else base.incident,
        result=result if result is not None else base.result,
    )


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class Responder:
    """Everything the hub needs, built once per warm container and shared by worker threads."""

    def __init__(
        self,
        *,
        config: RuntimeConfig | OrgContainConfig,
        org: OrgView,
        sessions: SpokeSessions,
        ledger: Ledger,
        notifier: Notifier | None = None,
        telemetry: Telemetry | None = None,
        clock: Callable[[], float] = time.time,
        io_workers: int = 16,
    ) -> None:
        self._config = config
        self.org = org
        self.sessions = sessions
        self.ledger = ledger
        self.notifier = notifier
        self.telemetry = telemetry or Telemetry()
        self.clock = clock
        self._io = ThreadPoolExecutor(max_workers=io_workers, thread_name_prefix="orgcontain-io")
        self._groups: dict[tuple[str, str], GroupCache] = {}
        self._groups_lock = threading.Lock()

    # ---- shared helpers ---------------------------------------------------------------------------
    def config(self) -> OrgContainConfig:
        if isinstance(self._config, OrgContainConfig):
            return self._config
        return self._config.get()

    def group_cache(self, account_id: str, region: str) -> GroupCache:
        """One GroupCache per account and region, kept across invocations of a warm container."""
        from spoke.groups import GroupCache

        with self._groups_lock:
            cache = self._groups.get((account_id, region))
            if cache is None:
                cache = self._groups[(account_id, region)] = GroupCache()
            return cache

    def _describe(
        self, account_id: str, region: str, instance_id: str, finding_id: str
    ) -> tuple[SpokeClients, PreState | None]:
        from spoke.describe import describe

        clients = self.sessions.clients(account_id, region, finding_id, self.config().spoke_role_prefix)
        return clients, describe(clients, instance_id)

    def _org_facts(self, finding: Finding, config: OrgContainConfig) -> tuple[str | None, tuple[str, ...]]:
        """(account status, OU path), both lookups in flight at once when not cached."""
        need_path = bool(config.organizational_units) and finding.account_id not in config.accounts
        path_future = (
            self._io.submit(self.org.ou_path, finding.account_id, set(config.organizational_units))
            if need_path
            else None
        )
        try:
            status = self.org.account_status(finding.account_id)
        except OrgLookupFailed:
            if path_future is not None:
                _swallow_when_done(path_future)
            raise
        path: tuple[str, ...] = ()
        if path_future is not None:
            try:
                path = path_future.result()
            except NotInOrganization:
                if status is not None:  # moved out between the two calls: look again on retry
                    raise
        return status, path

    # ---- the finding path ---------------------------------------------------------------------------
    def handle_event(
        self,
        raw: str | bytes | dict[str, Any],
        *,
        delivery_id: str,
        attempt: int = 1,
        lease_seconds: float = 300.0,
    ) -> Outcome:
        """Decide, act, record, tell. Always returns an Outcome (``failed`` ones are retried)."""
        self.telemetry.count("FindingsReceived")
        try:
            outcome = self._decide_and_act(raw, delivery_id, attempt, lease_seconds)
        except ConfigUnavailable as exc:
            self.telemetry.count("ConfigUnavailable")
            outcome = Outcome(
                Decision.FAILED, "config-unavailable", delivery_id, detail=str(exc), attempt=attempt
            )
        except Exception as exc:  # a bug must still give this finding a decision
            # Never silent: logged with the traceback, recorded as failed, retried, then the DLQ.
            log.exception("unexpected error handling delivery %s", delivery_id)
            outcome = Outcome(
                Decision.FAILED,
                "internal-error",
                delivery_id,
                detail=f"{type(exc).__name__}: {exc}",
                attempt=attempt,
            )
        return self.conclude(outcome)

    def _decide_and_act(
        self, raw: str | bytes | dict[str, Any], delivery_id: str, attempt: int, lease_seconds: float
    ) -> Outcome:
        config = self.config()
        checked = check_event(raw, config)
        hints = checked.hints or {}
        envelope = checked.envelope
        # Everything known so far; each exit below is this plus a decision and a reason.
        base = Outcome(
            Decision.REJECTED,
            "malformed-event",
            delivery_id,
            attempt=attempt,
            # Bounded like the hints: the event id keys the decision record of an event without a
            # finding (DynamoDB refuses a partition key over 2048 bytes), so an event with a huge id
            # would otherwise never be recorded and be retried to the DLQ instead of rejected.
            event_id=envelope.id[:HINT_MAX] if envelope is not None else hints.get("event_id"),
            event_account=(
                envelope.account[:HINT_MAX] if envelope is not None else hints.get("event_account")
            ),
            account_id=hints.get("account_id"),
            region=hints.get("region"),
            finding_id=hints.get("finding_id"),
            instance_id=hints.get("instance_id"),
            finding=checked.finding,
        )
        if checked.rejection is not None or checked.finding is None:
            rejection = checked.rejection
            return _out(
                base,
                Decision.REJECTED,
                rejection.reason if rejection else "malformed-event",
                rejection.detail if rejection else "",
            )
        finding = checked.finding
        instance_id = finding.instance_id
        base.account_id, base.region, base.finding_id = finding.account_id, finding.region, finding.id
        base.instance_id = instance_id
        # The harshest response possible before the OU path is known (an OU can only lower it):
        # the spoke describe and the ledger prefetch start now, but only when they may be needed.
        upper = policy.decide(finding, config)
        spec = _Speculation()
        if instance_id is not None and upper.decision in (Decision.ISOLATED, Decision.DRY_RUN):
            spec.describe = self._io.submit(
                self._describe, finding.account_id, finding.region, instance_id, finding.id
            )
            if upper.decision is Decision.ISOLATED:
                spec.prefetch = self._io.submit(
                    self.ledger.prefetch, finding.account_id, finding.region, instance_id, finding.id
                )
        try:
            return self._decide_with_org(
                config, finding, base, spec, delivery_id=delivery_id, lease_seconds=lease_seconds
            )
        finally:
            _drain(spec)

    def _decide_with_org(
        self,
        config: OrgContainConfig,
        finding: Finding,
        base: Outcome,
        spec: _Speculation,
        *,
        delivery_id: str,
        lease_seconds: float,
    ) -> Outcome:
        try:
            status, ou_path = self._org_facts(finding, config)
        except OrgLookupFailed as exc:
            return _out(base, Decision.FAILED, "org-lookup-failed", str(exc))
        rejection = membership_rejection(finding.account_id, status)
        if rejection is not None:
            return _out(base, Decision.REJECTED, rejection.reason, rejection.detail)
        decided = policy.decide(finding, config, ou_path)
        base.instance_ids = decided.instance_ids
        base.mode, base.mode_source = decided.mode.value, decided.source
        if decided.decision not in (Decision.ISOLATED, Decision.DRY_RUN) or spec.describe is None:
            return _out(base, decided.decision, decided.reason, decided.detail)

        try:
            clients, pre_state = spec.describe.result()
        except SpokeAccessDenied as exc:
            self.telemetry.count("AssumeRoleFailed")
            return _out(base, Decision.FAILED, "assume-role-denied", str(exc))
        except (ClientError, BotoCoreError) as exc:
            return _out(base, Decision.FAILED, "describe-failed", _aws_error(exc))
        if pre_state is None:
            return _out(base, Decision.SKIPPED, "instance-gone", "terminated, shutting down or not found")

        # Live tags, read just now: a tag added since the finding can only make it milder.
        live = policy.decide(finding, config, ou_path, pre_state.tags)
        if _ACTION_RANK[live.decision] < _ACTION_RANK[decided.decision]:
            decided = live
            base.mode, base.mode_source = live.mode.value, live.source
            if live.decision is not Decision.DRY_RUN:
                return _out(base, live.decision, live.reason, live.detail)
        if decided.decision is Decision.DRY_RUN:
            try:
                result = self._dry_run(clients, config, finding, pre_state, decided.reason)
            except (ClientError, BotoCoreError) as exc:
                return _out(base, Decision.FAILED, "dry-run-failed", _aws_error(exc))
            return _out(
                base, Decision.DRY_RUN, decided.reason, decided.detail or result.detail, result=result
            )

        if spec.prefetch is None:  # cannot happen: ISOLATED here implies ISOLATED as upper bound
            return _out(base, Decision.FAILED, "internal-error", "no ledger prefetch for an isolation")
        try:
            prefetch = spec.prefetch.result()
        except (ClientError, BotoCoreError) as exc:
            return _out(base, Decision.FAILED, "ledger-unavailable", _aws_error(exc))
        return self._contain(
            config,
            clients,
            finding,
            pre_state,
            prefetch,
            base,
            owner=delivery_id,
            lease_seconds=lease_seconds,
            reason=decided.reason,
        )

    def _dry_run(
        self,
        clients: SpokeClients,
        config: OrgContainConfig,
        finding: Finding,
        pre_state: PreState,
        reason: str,
    ) -> IsolationResult:
        """Plan the containment against the live instance with read-only calls."""
        from spoke.isolate import isolate

        plan = build_plan(
            config,
            instance_id=pre_state.instance_id,
            finding_id=finding.id,
            quarantined_at=datetime.fromtimestamp(self.clock(), UTC),
            reason=reason,
        )
        return isolate(
            clients,
            plan,
            pre_state=pre_state,
            groups=self.group_cache(finding.account_id, finding.region),
            dry_run=True,
        )

    # ---- the lock, the breaker and the containment -------------------------------------------------
    def _contain(
        self,
        config: OrgContainConfig,
        clients: SpokeClients,
        finding: Finding,
        pre_state: PreState,
        pf: Prefetch,
        base: Outcome,
        *,
        owner: str,
        lease_seconds: float,
        reason: str,
    ) -> Outcome:
        # Cold VPC: find (or create) the quarantine/transition groups while the lock transaction
        # is in flight, so the containment starts with their ids cached.
        warming = self._warm_groups(config, clients, finding, pre_state)
        try:
            return self._lock_and_contain(
                config,
                clients,
                finding,
                pre_state,
                pf,
                base,
                owner=owner,
                lease_seconds=lease_seconds,
                reason=reason,
                warming=warming,
            )
        finally:
            if warming is not None:
                _swallow_when_done(warming)

    def _warm_groups(
        self, config: OrgContainConfig, clients: SpokeClients, finding: Finding, pre_state: PreState
    ) -> Future[None] | None:
        cache = self.group_cache(finding.account_id, finding.region)
        vpcs = pre_state.vpc_ids
        if not vpcs or all(cache.get(v) is not None for v in vpcs):
            return None
        plan = build_plan(
            config,
            instance_id=pre_state.instance_id,
            finding_id=finding.id,
            quarantined_at=datetime.fromtimestamp(self.clock(), UTC),
        )
        return self._io.submit(_prepare_groups, clients, plan, cache, vpcs)

    def _lock_and_contain(
        self,
        config: OrgContainConfig,
        clients: SpokeClients,
        finding: Finding,
        pre_state: PreState,
        pf: Prefetch,
        base: Outcome,
        *,
        owner: str,
        lease_seconds: float,
        reason: str,
        warming: Future[None] | None,
    ) -> Outcome:
        account, region, instance_id = finding.account_id, finding.region, pre_state.instance_id
        breaker_cfg = config.response.breaker
        for _ in range(LOCK_ATTEMPTS):
            now = self.clock()
            if pf.finding_released:
                return _out(
                    base,
                    Decision.SKIPPED,
                    "released",
                    "this finding's incident was released by an operator; a new finding id isolates again",
                    incident=pf.incident,
                )
            current = pf.incident
            if current is not None and current.is_open:
                joined = self._join_open_incident(base, current, finding.id, now)
                if joined is not None:
                    return joined
                # A crashed or failed attempt: resume it with the recorded pre-state.
                try:
                    incident = self.ledger.take_over(
                        current, owner=owner, lease_expires=now + lease_seconds, finding_id=finding.id
                    )
                except LockConflict:
                    pf = self.ledger.prefetch(account, region, instance_id, finding.id)
                    continue
                _wait(warming)
                return self._run_containment(config, clients, incident, owner, base, resumed=True)

            verdict = evaluate(
                pf.breaker,
                now=now,
                max_isolations=breaker_cfg.max_isolations,
                window_seconds=breaker_cfg.window_minutes * 60.0,
            )
            if not verdict.allowed:
                self.telemetry.count("BreakerOpen")
                until = iso(verdict.reopens_at) if verdict.reopens_at else "?"
                return _out(
                    base,
                    Decision.NOTIFIED,
                    "breaker-open",
                    f"{verdict.in_window} isolations in the last {breaker_cfg.window_minutes} min "
                    f"(max {breaker_cfg.max_isolations}); automatic isolation resumes about {until}",
                )
            incident = Incident.opened(
                account,
                region,
                pre_state,
                finding_id=finding.id,
                owner=owner,
                now=now,
                lease_seconds=lease_seconds,
                trigger="finding",
                reason=reason,
                finding_type=finding.type,
                severity=finding.severity,
            )
            try:
                self.ledger.open_incident(
                    incident,
                    replaces=current,
                    breaker_from=pf.breaker,
                    breaker_to=verdict.new_state,
                    check_not_released=finding.id,
                )
            except LockConflict as conflict:
                if conflict.kind == "released":
                    pf = replace(pf, finding_released=True)
                else:
                    pf = self.ledger.prefetch(account, region, instance_id, finding.id)
                continue
            _wait(warming)
            return self._run_containment(config, clients, incident, owner, base, resumed=False)
        return _out(
            base,
            Decision.FAILED,
            "ledger-contention",
            f"lost {LOCK_ATTEMPTS} optimistic-lock rounds on the incident/breaker; retrying later",
        )

    def _join_open_incident(
        self, base: Outcome, current: Incident, finding_id: str, now: float
    ) -> Outcome | None:
        """An open incident exists: attach, wait, or (None) take it over."""
        known = finding_id == current.first_finding_id or finding_id in current.finding_ids
        if current.status == RELEASING:
            return _out(
                base,
                Decision.FAILED,
                "release-in-progress",
                "an operator is releasing this instance; retrying after the release",
                incident=current,
            )
        if current.status == CONTAINING:
            if not current.lease_valid(now):
                return None
            if known:
                # The same finding is being contained right now (a duplicate delivery, or the retry
                # of a holder still running): try again later, never a second containment.
                return _out(
                    base,
                    Decision.FAILED,
                    "containment-in-progress",
                    f"incident {current.incident_id} holds the lock until {iso(current.lease_expires)}",
                    incident=current,
                )
        attached = current if known else self.ledger.attach(current, finding_id)
        return _out(
            base,
            Decision.ALREADY_ISOLATED,
            "incident-in-progress" if current.status == CONTAINING else "incident-open",
            f"attached to incident {current.incident_id} ({current.status})",
            incident=attached,
        )

    def _run_containment(
        self,
        config: OrgContainConfig,
        clients: SpokeClients,
        incident: Incident,
        owner: str,
        base: Outcome,
        *,
        resumed: bool,
    ) -> Outcome:
        """Hold the lock, run spoke.isolate, write the outcome on the incident (lease dropped)."""
        from spoke.isolate import isolate
        from spoke.models import IsolationStatus, StepStatus

        def checkpoint(full: PreState) -> None:
            # What release needs, persisted before the later steps change it.
            self.ledger.checkpoint(incident, full, owner)

        plan = build_plan(
            config,
            instance_id=incident.instance_id,
            finding_id=incident.first_finding_id,
            quarantined_at=datetime.fromtimestamp(self.clock(), UTC),
            reason=incident.reason,
        )
        try:
            result = isolate(
                clients,
                plan,
                pre_state=incident.pre_state,
                groups=self.group_cache(incident.account_id, incident.region),
                checkpoint=checkpoint,
            )
        except (ClientError, BotoCoreError, LockConflict) as exc:
            error = str(exc) if isinstance(exc, LockConflict) else _aws_error(exc)
            failed = replace(incident, last_error=error)
            self._finish_quietly(failed, owner)
            return _out(base, Decision.FAILED, "containment-error", error, incident=failed)

        failed_steps = [s for s in result.steps if s.status is StepStatus.FAILED]
        update: dict[str, Any] = {
            "steps": tuple(s.model_dump(mode="json") for s in result.steps),
            "quarantine_group_id": result.quarantine_group_id or incident.quarantine_group_id,
            "snapshot_ids": tuple(sorted(set(incident.snapshot_ids) | set(result.snapshot_ids))),
            "network_isolated_at": (
                iso(result.network_isolated_at.timestamp())
                if result.network_isolated_at
                else incident.network_isolated_at
            ),
        }
        if result.pre_state is not None:
            update["pre_state"] = result.pre_state
            update["pre_state_complete"] = result.pre_state.complete
        status = result.status
        if status is IsolationStatus.GONE:
            done = self.ledger.finish(replace(incident, status=GONE, **update), owner)
            return _out(base, Decision.SKIPPED, "instance-gone", result.detail, incident=done, result=result)
        if status in (IsolationStatus.ISOLATED, IsolationStatus.ALREADY_ISOLATED) or (
            status is IsolationStatus.PARTIAL and not failed_steps
        ):
            done = self.ledger.finish(replace(incident, status=ISOLATED, last_error=None, **update), owner)
            if resumed:
                reason = "resumed"
            elif status is IsolationStatus.PARTIAL:
                reason = "isolated-partial"  # e.g. a requester-managed ENI that cannot be moved
            else:
                reason = incident.reason or "mode-isolate"
            outcome = _out(base, Decision.ISOLATED, reason, result.detail, incident=done, result=result)
            self._time_to_isolation(outcome, result)
            return outcome
        # Network step incomplete, or a later step failed: keep the record, drop the lease, and let
        # the retry resume from the recorded pre-state.
        error = "; ".join(f"{s.step}: {s.error_code or s.detail}" for s in failed_steps) or result.detail
        done = self.ledger.finish(replace(incident, status=CONTAINING, last_error=error, **update), owner)
        why = "network-isolation-failed" if status is IsolationStatus.FAILED else "containment-incomplete"
        outcome = _out(base, Decision.FAILED, why, error, incident=done, result=result)
        self._time_to_isolation(outcome, result)
        return outcome

    def _time_to_isolation(self, outcome: Outcome, result: IsolationResult) -> None:
        finding = outcome.finding
        if finding is None or result.network_isolated_at is None:
            return
        updated = _parse_time(finding.updated_at)
        if updated is None:
            return
        seconds = result.network_isolated_at.timestamp() - updated
        outcome.seconds_to_network_isolation = round(seconds, 3)
        self.telemetry.seconds("SecondsToNetworkIsolation", max(seconds, 0.0))

    def _finish_quietly(self, incident: Incident, owner: str) -> None:
        try:
            self.ledger.finish(incident, owner)
        except (ClientError, BotoCoreError, LockConflict) as exc:
            # The lease then simply expires and the retry resumes; say so.
            log.warning("could not record the failed attempt on %s: %s", incident.incident_id, exc)

    # ---- conclusion: record, tell, count -----------------------------------------------------------
    def conclude(self, outcome: Outcome) -> Outcome:
        """Record the decision (the ledger first: it must never be lost), then SNS, event, metrics."""
        record = DecisionRecord(
            decision=outcome.decision.value,
            reason=outcome.reason,
            delivery_id=outcome.delivery_id,
            decided_at=outcome.decided_at,
            account_id=outcome.account_id,
            region=outcome.region,
            finding_id=outcome.finding_id,
            event_id=outcome.event_id,
            instance_id=outcome.instance_id,
            mode=outcome.mode,
            finding_type=outcome.finding_type,
            severity=outcome.severity,
            incident_id=outcome.incident.incident_id if outcome.incident else None,
            detail=outcome.detail,
            action=outcome.action,
            data={
                "attempt": outcome.attempt,
                "event_account": outcome.event_account,
                "mode_source": outcome.mode_source,
                "instance_ids": list(outcome.instance_ids),
                "steps": [s.model_dump(mode="json") for s in outcome.result.steps] if outcome.result else [],
                "caller": outcome.caller,
                "operator_reason": outcome.operator_reason,
                "seconds_to_network_isolation": outcome.seconds_to_network_isolation,
            },
        )
        self.ledger.record_decision(record)
        self.telemetry.decision(outcome.decision)
        if self.notifier is not None:
            sns_ok, event_ok = self.notifier.publish(outcome)
            if not sns_ok:
                self.telemetry.count("NotificationsFailed")
            if not event_ok:
                self.telemetry.count("ResultEventsFailed")
            if not (sns_ok and event_ok):
                outcome.notification = "failed" if not sns_ok else "event-failed"
                try:
                    self.ledger.set_notification(record, outcome.notification)
                except (ClientError, BotoCoreError) as exc:
                    log.warning("could not note the notification failure: %s", exc)
        level = logging.WARNING if outcome.decision in (Decision.FAILED, Decision.REJECTED) else logging.INFO
        log.log(
            level,
            "decision %s (%s)",
            outcome.decision.value,
            outcome.reason,
            extra={
                "decision": outcome.decision.value,
                "reason": outcome.reason,
                "detail": outcome.detail,
                "finding_id": outcome.finding_id,
                "account_id": outcome.account_id,
                "region": outcome.region,
                "instance_id": outcome.instance_id,
                "mode": outcome.mode,
                "delivery_id": outcome.delivery_id,
                "action": outcome.action,
            },
        )
        return outcome

    # ---- operator break-glass ----------------------------------------------------------------------
    def _operator_checks(self, account_id: str, region: str, instance_id: str) -> OrgContainConfig:
        from spoke.describe import validate_instance_id
        from spoke.errors import InvalidInstanceId

        config = self.config()
        try:
            validate_instance_id(instance_id)
        except InvalidInstanceId as exc:
            raise ResponderError(str(exc)) from None
        if region not in config.regions:
            raise ResponderError(
                f"region {region} is not in the config's regions ({', '.join(config.regions)}): "
                "there is no spoke role there"
            )
        try:
            status = self.org.account_status(account_id)
        except OrgLookupFailed as exc:
            raise ResponderError(str(exc)) from None
        if status != "ACTIVE":
            raise ResponderError(
                f"account {account_id} is not an active account of the organization ({status or 'not found'})"
            )
        return config

    def isolate_instance(
        self,
        account_id: str,
        region: str,
        instance_id: str,
        reason: str,
        caller_arn: str | None,
        *,
        lease_seconds: float = CLI_LEASE_SECONDS,
    ) -> Outcome:
        """Break-glass isolation by an operator: same engine, ledger and notifications; not gated
        by the policy or the breaker (a person decided), recorded with the caller and the reason."""
        config = self._operator_checks(account_id, region, instance_id)
        now = self.clock()
        finding_id = f"manual-{int(now)}-{uuid.uuid4().hex[:8]}"
        owner = f"cli-{uuid.uuid4().hex}"
        base = Outcome(
            Decision.FAILED,
            "",
            owner,
            action="isolate",
            account_id=account_id,
            region=region,
            instance_id=instance_id,
            finding_id=finding_id,
            caller=caller_arn,
            operator_reason=reason,
            mode=Mode.ISOLATE.value,
            mode_source="operator",
        )
        try:
            clients, pre_state = self._describe(account_id, region, instance_id, finding_id)
        except SpokeAccessDenied as exc:
            self.telemetry.count("AssumeRoleFailed")
            return self.conclude(_out(base, Decision.FAILED, "assume-role-denied", str(exc)))
        if pre_state is None:
            raise ResponderError(
                f"instance {instance_id} in account {account_id} region {region} is gone "
                "(terminated or not found)"
            )
        current = self.ledger.prefetch(account_id, region, instance_id, None).incident
        if current is not None and current.is_open:
            if current.status == CONTAINING and not current.lease_valid(now):
                incident = self.ledger.take_over(
                    current, owner=owner, lease_expires=now + lease_seconds, finding_id=finding_id
                )
                return self.conclude(
                    self._run_containment(config, clients, incident, owner, base, resumed=True)
                )
            attached = self.ledger.attach(current, finding_id)
            return self.conclude(
                _out(
                    base,
                    Decision.ALREADY_ISOLATED,
                    "incident-open",
                    f"incident {current.incident_id} is {current.status}",
                    incident=attached,
                )
            )
        incident = Incident.opened(
            account_id,
            region,
            pre_state,
            finding_id=finding_id,
            owner=owner,
            now=now,
            lease_seconds=lease_seconds,
            trigger="manual",
            caller=caller_arn,
            reason="operator-isolate",
        )
        try:
            self.ledger.open_incident(
                incident, replaces=current, breaker_from=None, breaker_to=None, check_not_released=None
            )
        except LockConflict as exc:
            raise ResponderError(
                f"instance {instance_id} in account {account_id} region {region}: another containment "
                "started meanwhile; run `orgcontain status` and try again"
            ) from exc
        return self.conclude(self._run_containment(config, clients, incident, owner, base, resumed=False))

    def release_instance(
        self,
        account_id: str,
        region: str,
        instance_id: str,
        reason: str,
        caller_arn: str | None,
        *,
        reattach_asg: bool = False,
        lease_seconds: float = CLI_LEASE_SECONDS,
    ) -> Outcome:
        """Undo the containment from the ledger's recorded pre-state, exactly; mark it released, so
        later updates of its findings are skipped (a new finding id isolates again)."""
        from spoke.models import ReleaseStatus
        from spoke.release import release

        self._operator_checks(account_id, region, instance_id)
        incident = self.ledger.incident(account_id, region, instance_id)
        where = f"instance {instance_id} in account {account_id} region {region}"
        if incident is None:
            raise ResponderError(f"{where} was never isolated by orgcontain (no incident in the ledger)")
        if incident.status == RELEASED:
            raise ResponderError(
                f"{where} was already released at {incident.released_at} by {incident.released_by}"
            )
        if incident.status == GONE:
            raise ResponderError(f"{where} is gone (terminated); incident {incident.incident_id} is closed")
        if incident.pre_state is None:
            raise ResponderError(f"{where}: incident {incident.incident_id} holds no pre-state to restore")
        now = self.clock()
        owner = f"cli-{uuid.uuid4().hex}"
        try:
            claimed = self.ledger.claim_for_release(
                incident, owner=owner, lease_expires=now + lease_seconds, now=now
            )
        except LockConflict as exc:
            raise ResponderError(
                f"{where}: a containment holds the lock until {iso(incident.lease_expires)}; try again then"
            ) from exc
        base = Outcome(
            Decision.FAILED,
            "",
            owner,
            action="release",
            account_id=account_id,
            region=region,
            instance_id=instance_id,
            finding_id=claimed.first_finding_id,
            caller=caller_arn,
            operator_reason=reason,
            mode_source="operator",
        )
        pre_state = claimed.pre_state or incident.pre_state
        try:
            clients = self.sessions.clients(
                account_id, region, f"release-{instance_id}", self.config().spoke_role_prefix
            )
            result = release(
                clients, pre_state, reattach_asg=reattach_asg, finding_id=claimed.first_finding_id
            )
        except SpokeAccessDenied as exc:
            self.telemetry.count("AssumeRoleFailed")
            self._finish_quietly(replace(claimed, last_error=str(exc)), owner)
            return self.conclude(
                _out(base, Decision.FAILED, "assume-role-denied", str(exc), incident=claimed)
            )
        steps = claimed.steps + tuple(s.model_dump(mode="json") for s in result.steps)
        if result.status in (ReleaseStatus.RELEASED, ReleaseStatus.GONE):
            done = self.ledger.mark_released(
                replace(
                    claimed,
                    steps=steps,
                    released_at=iso(self.clock()),
                    released_by=caller_arn or "unknown",
                    release_reason=reason,
                    last_error=None,
                ),
                owner,
            )
            outcome = _out(base, Decision.NOTIFIED, "released", result.detail, incident=done)
            outcome.release = result
            return self.conclude(outcome)
        # Partly restored: the incident stays "releasing" (lease dropped); running release again
        # finishes it (every release step checks the live value first).
        failed = self.ledger.finish(replace(claimed, steps=steps, last_error=result.detail), owner)
        outcome = _out(base, Decision.FAILED, "release-incomplete", result.detail, incident=failed)
        outcome.release = result
        return self.conclude(outcome)

    # ---- status (CLI) ------------------------------------------------------------------------------
    def open_incidents(self) -> list[Incident]:
        return self.ledger.open_incidents()

    def incident(self, account_id: str, region: str, instance_id: str) -> Incident | None:
        return self.ledger.incident(account_id, region, instance_id)

    def find_incidents(self, instance_id: str) -> list[Incident]:
        return self.ledger.current_incidents(instance_id)

    def close(self) -> None:
        self._io.shutdown(wait=False)


def _prepare_groups(clients: SpokeClients, plan: Any, cache: GroupCache, vpcs: tuple[str, ...]) -> None:
    """The spoke's security-groups step on its own, to fill the GroupCache ahead of the swap.

    Its outcome is not kept: spoke.isolate runs the step again and then finds the ids cached (or,
    if this failed, does the work itself and records any error).
    """
    from spoke.isolate import prepare_groups

    prepare_groups(clients, plan, vpcs, cache)


def _wait(fut: Future[None] | None) -> None:
    """Wait for the group warm-up; its errors are the containment's to meet again, not ours."""
    if fut is not None:
        try:
            fut.result()
        except (ClientError, BotoCoreError) as exc:
            log.info("group warm-up failed (the containment retries it): %s", _aws_error(exc))


def _drain(spec: _Speculation) -> None:
    """Speculative reads nobody waited for: retrieve their errors so none is reported as lost."""
    for fut in (spec.describe, spec.prefetch):
        if fut is not None:
            fut.add_done_callback(_swallow)


def _swallow_when_done(fut: Future[Any]) -> None:
    fut.add_done_callback(_swallow)


def _swallow(fut: Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _aws_error(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}"
    return f"{type(exc).__name__}: {exc}"
