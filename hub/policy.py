"""The response policy: a pure function from a finding, the config, the account's OU path and the
instance's tags to the intended decision, a machine-readable reason and the effective mode.

No AWS here, so ``orgcontain simulate`` and the hub decide identically.

Precedence (DESIGN "Public contract"): ``response.mode`` is the default AND the ceiling; below it,
most specific first: instance tag ``orgcontain:mode`` > account > nearest OU > response. A tag may
only make the response milder, and an instance exempted by tag (even ``off``) is still notified.

Reasons (kebab-case, stable; dashboards and subscription filters key on them):

==========================  ==========  ====================================================
reason                      decision    when
==========================  ==========  ====================================================
archived                    skipped     ``service.archived`` is true
sample-finding              skipped     a GuardDuty sample (additionalInfo or ``[SAMPLE]`` title)
below-threshold             skipped     severity < ``response.min_severity``
type-not-included           skipped     type matches no ``finding_types.include`` glob
type-excluded               skipped     type matches a ``finding_types.exclude`` glob
mode-off                    skipped     ``response.mode`` is off
ou-opted-off                skipped     the nearest OU override is off
account-opted-off           skipped     the account override is off
not-instance-finding        skipped     ``resourceType`` is not Instance (nor an attack sequence)
attack-sequence             notified    an attack sequence (names instances; never auto-isolated)
region-not-covered          notified    the finding's region is not in ``regions``
tag-exemption               notified    the instance tag lowers the mode (even to off)
tag-invalid                 notified    the instance tag holds no known mode: treated as notify
mode-notify                 notified    the effective mode is notify
mode-dry-run                dry-run     the effective mode is dry-run
mode-isolate                isolated    the effective mode is isolate (intended; the handler
                                        turns it into isolated / already-isolated / failed)
==========================  ==========  ====================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hub.config import Mode, OrgContainConfig, glob_to_regex
from hub.models import Decision, Finding, is_sample_finding, tag_of_instance

MODE_TAG = "orgcontain:mode"

ARCHIVED = "archived"
SAMPLE = "sample-finding"
BELOW_THRESHOLD = "below-threshold"
TYPE_NOT_INCLUDED = "type-not-included"
TYPE_EXCLUDED = "type-excluded"
MODE_OFF = "mode-off"
OU_OFF = "ou-opted-off"
ACCOUNT_OFF = "account-opted-off"
NOT_INSTANCE = "not-instance-finding"
ATTACK_SEQUENCE = "attack-sequence"
REGION_NOT_COVERED = "region-not-covered"
TAG_EXEMPTION = "tag-exemption"
TAG_INVALID = "tag-invalid"

_MODE_DECISION = {
    Mode.ISOLATE: (Decision.ISOLATED, "mode-isolate"),
    Mode.DRY_RUN: (Decision.DRY_RUN, "mode-dry-run"),
    Mode.NOTIFY: (Decision.NOTIFIED, "mode-notify"),
}
_MODES_BY_VALUE = {m.value: m for m in Mode}


@dataclass(frozen=True, init=False)
class PolicyDecision:
    """The intended outcome for one finding.

    ``mode`` is the effective mode after precedence; ``source`` says where it came from
    (``response``, ``ou:<id>``, ``account:<id>``, ``tag``); ``detail`` is for people (the override's
    own reason, the tag value, ...).
    """

    decision: Decision
    reason: str
    mode: Mode
    instance_ids: tuple[str, ...] = ()
    source: str = "response"
    detail: str = ""

    def __init__(
        self,
        decision: Decision,
        reason: str,
        mode: Mode,
        instance_ids: tuple[str, ...] = (),
        source: str = "response",
        detail: str = "",
    ) -> None:
        # A frozen dataclass's generated __init__ pays object.__setattr__ per field; simulate
        # builds one of these per finding, so fill __dict__ in one go (still frozen afterwards).
        self.__dict__.update(
            decision=decision,
            reason=reason,
            mode=mode,
            instance_ids=instance_ids,
            source=source,
            detail=detail,
        )


_ARCHIVED = PolicyDecision(Decision.SKIPPED, "archived", Mode.OFF)
_SAMPLE = PolicyDecision(Decision.SKIPPED, "sample-finding", Mode.OFF)
_BELOW = PolicyDecision(Decision.SKIPPED, "below-threshold", Mode.OFF)


class _Compiled:
    """Per-config precomputation: simulate decides tens of thousands of findings per second."""

    __slots__ = ("accounts", "config", "exclude", "include", "min_severity", "regions", "types")

    def __init__(self, config: OrgContainConfig) -> None:
        self.config = config
        self.min_severity = config.response.min_severity
        ft = config.response.finding_types
        self.include = re.compile("|".join(f"(?:{glob_to_regex(p).pattern})" for p in ft.include))
        self.exclude = (
            re.compile("|".join(f"(?:{glob_to_regex(p).pattern})" for p in ft.exclude))
            if ft.exclude
            else None
        )
        self.regions = frozenset(config.regions)
        self.types: dict[str, str | None] = {}
        self.accounts: dict[tuple[str, tuple[str, ...]], tuple[Mode, str, str]] = {}

    def type_reason(self, finding_type: str) -> str | None:
        try:
            return self.types[finding_type]
        except KeyError:
            pass
        reason: str | None = None
        if not self.include.match(finding_type):
            reason = TYPE_NOT_INCLUDED
        elif self.exclude is not None and self.exclude.match(finding_type):
            reason = TYPE_EXCLUDED
        if len(self.types) < 4096:
            self.types[finding_type] = reason
        return reason

    def mode_for(self, account_id: str, ou_path: Sequence[str]) -> tuple[Mode, str, str]:
        key = (account_id, tuple(ou_path))
        try:
            return self.accounts[key]
        except KeyError:
            pass
        result = effective_mode(self.config, account_id, ou_path)
        if len(self.accounts) < 65536:
            self.accounts[key] = result
        return result


_compiled: dict[int, _Compiled] = {}


def _compile(config: OrgContainConfig) -> _Compiled:
    found = _compiled.get(id(config))
    if found is None or found.config is not config:
        if len(_compiled) > 16:
            _compiled.clear()
        found = _compiled[id(config)] = _Compiled(config)
    return found


def effective_mode(
    config: OrgContainConfig, account_id: str, ou_path: Sequence[str] = ()
) -> tuple[Mode, str, str]:
    """Mode for an account before instance tags: (mode, source, override reason).

    Account beats the nearest OU, which beats ``response.mode``; nothing exceeds ``response.mode``.
    """
    ceiling = config.response.mode
    mode, source, why = ceiling, "response", ""
    account = config.accounts.get(account_id)
    if account is not None:
        mode, source, why = account.mode, f"account:{account_id}", account.reason
    else:
        for ou in reversed(ou_path):
            override = config.organizational_units.get(ou)
            if override is not None:
                mode, source, why = override.mode, f"ou:{ou}", override.reason
                break
    if mode.rank > ceiling.rank:
        # The ceiling: an override may make the response milder, never harsher (the kill switch).
        return ceiling, "response", f"{source} asks for {mode.value}, capped by response.mode"
    return mode, source, why


def tag_mode(value: str | None) -> Mode | None:
    """The mode an ``orgcontain:mode`` tag value names (None when the tag is absent)."""
    if value is None:
        return None
    return _MODES_BY_VALUE.get(value.strip().lower())


def decide(
    finding: Finding,
    config: OrgContainConfig,
    ou_path: Sequence[str] = (),
    instance_tags: Mapping[str, str] | None = None,
) -> PolicyDecision:
    """Decide what to do about ``finding``. Pure: no AWS, no clock, no randomness.

    ``instance_tags`` defaults to the tags GuardDuty put in the finding (what simulate uses); the
    hub passes the live tags it read before acting. A tag can only lower the mode.
    """
    # The finding's fields, read once: every attribute read on a pydantic model goes through its
    # __getattr__ hook, and simulate decides tens of thousands of findings a second (issue #8).
    fields = finding.__dict__
    service = fields["service"]
    if service.get("archived") is True:  # Finding.archived
        return _ARCHIVED
    if is_sample_finding(service, fields["title"]):  # Finding.is_sample
        return _SAMPLE
    compiled = _compiled.get(id(config))
    if compiled is None or compiled.config is not config:
        compiled = _compile(config)
    if fields["severity"] < compiled.min_severity:
        return _BELOW
    finding_type = fields["type"]
    type_reason = compiled.type_reason(finding_type)
    if type_reason is not None:
        return PolicyDecision(Decision.SKIPPED, type_reason, Mode.OFF, detail=finding_type)

    mode, source, why = compiled.mode_for(fields["account_id"], ou_path)
    if mode is Mode.OFF:
        reason = (
            ACCOUNT_OFF if source.startswith("account:") else OU_OFF if source.startswith("ou:") else MODE_OFF
        )
        return PolicyDecision(Decision.SKIPPED, reason, Mode.OFF, source=source, detail=why)

    if finding.is_attack_sequence:
        # Critical and multi-resource: a person decides. The instances named go in the message.
        return PolicyDecision(
            Decision.NOTIFIED,
            ATTACK_SEQUENCE,
            Mode.NOTIFY,
            finding.sequence_instance_ids,
            source=source,
            detail=why,
        )
    instance_id = finding.instance_id
    if instance_id is None:
        return PolicyDecision(
            Decision.SKIPPED, NOT_INSTANCE, Mode.OFF, source=source, detail=finding.resource_type
        )
    instance = (instance_id,)
    region = fields["region"]
    if region not in compiled.regions:
        return PolicyDecision(
            Decision.NOTIFIED,
            REGION_NOT_COVERED,
            Mode.NOTIFY,
            instance,
            source=source,
            detail=f"{region} is not in regions",
        )

    raw_tag = (
        tag_of_instance(fields["resource"], MODE_TAG)
        if instance_tags is None
        else instance_tags.get(MODE_TAG)
    )
    if raw_tag is not None:
        wanted = tag_mode(raw_tag)
        if wanted is None:
            # Unknown value: someone meant to exempt it; milder is the safe reading. Still notify.
            if mode.rank > Mode.NOTIFY.rank:
                return PolicyDecision(
                    Decision.NOTIFIED,
                    TAG_INVALID,
                    Mode.NOTIFY,
                    instance,
                    source="tag",
                    detail=f"{MODE_TAG}={raw_tag!r} is not a mode; treated as notify",
                )
        elif wanted.rank < mode.rank:
            if wanted is Mode.DRY_RUN:
                return PolicyDecision(
                    Decision.DRY_RUN,
                    TAG_EXEMPTION,
                    wanted,
                    instance,
                    source="tag",
                    detail=f"{MODE_TAG}={raw_tag}",
                )
            # notify or off: an exempted instance is still notified, never silently skipped.
            return PolicyDecision(
                Decision.NOTIFIED,
                TAG_EXEMPTION,
                wanted,
                instance,
                source="tag",
                detail=f"{MODE_TAG}={raw_tag}",
            )

    decision, reason = _MODE_DECISION[mode]
    return PolicyDecision(decision, reason, mode, instance, source=source, detail=why)
