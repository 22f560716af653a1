"""Tag the instance: what orgcontain did, for whoever looks at it in the console.

``orgcontain:status`` (quarantined | released), ``orgcontain:finding-id``,
``orgcontain:quarantined-at`` (ISO 8601 UTC), plus one ``orgcontain:original-groups:<eni>`` per
ENI: a copy of what the ledger records, so that a describe of a quarantined instance still knows
each ENI's own groups. All in one CreateTags call; if the instance is at its 50-tag limit, the
three contract tags alone.
"""

from __future__ import annotations

from datetime import UTC, datetime

from botocore.exceptions import ClientError

from spoke.describe import encode_groups, original_groups_tag
from spoke.errors import error_code
from spoke.models import (
    FINDING_TAG,
    ORIGINAL_GROUPS_TAG_PREFIX,
    QUARANTINED_AT_TAG,
    STATUS_QUARANTINED,
    STATUS_RELEASED,
    STATUS_TAG,
)
from spoke.steps.base import ALREADY, DONE, WOULD, IsolateRun, ReleaseRun, Step


def iso_utc(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Tags(Step):
    name = "tags"
    actions = frozenset({"ec2:CreateTags"})
    release_actions = frozenset({"ec2:CreateTags", "ec2:DeleteTags"})

    @classmethod
    def isolate(cls, run: IsolateRun) -> None:
        contract = {
            STATUS_TAG: STATUS_QUARANTINED,
            FINDING_TAG: run.p.finding_id,
            QUARANTINED_AT_TAG: iso_utc(run.p.quarantined_at),
        }
        extra: dict[str, str] = {}
        for eni in run.s.enis:
            value = encode_groups(eni.groups)
            if value and not eni.not_modified:
                extra[original_groups_tag(eni.eni_id)] = value
        wanted = {**contract, **extra}
        if all(run.live_tags.get(k) == v for k, v in wanted.items()):
            run.record(cls.name, ALREADY, "tags already in place")
            return
        if run.dry_run:
            run.record(cls.name, WOULD, f"would tag {STATUS_TAG}={STATUS_QUARANTINED}")
            return
        ec2 = run.clients.ec2
        try:
            ec2.create_tags(
                Resources=[run.s.instance_id], Tags=[{"Key": k, "Value": v} for k, v in wanted.items()]
            )
        except ClientError as exc:
            if error_code(exc) != "TagLimitExceeded" or not extra:
                raise
            ec2.create_tags(
                Resources=[run.s.instance_id], Tags=[{"Key": k, "Value": v} for k, v in contract.items()]
            )
            run.record(cls.name, DONE, "tagged (tag limit reached: original-groups copies left out)")
            return
        run.record(cls.name, DONE, f"{STATUS_TAG}={STATUS_QUARANTINED}")

    @classmethod
    def restore(cls, run: ReleaseRun) -> None:
        ec2 = run.clients.ec2
        live = run.live.tags if run.live else {}
        copies = [k for k in live if k.startswith(ORIGINAL_GROUPS_TAG_PREFIX)]
        detail = f"{STATUS_TAG}={STATUS_RELEASED}" + (
            f" (finding {run.finding_id})" if run.finding_id else ""
        )
        if live.get(STATUS_TAG) == STATUS_RELEASED and not copies:
            run.record(cls.name, ALREADY, detail)
            return
        ec2.create_tags(Resources=[run.s.instance_id], Tags=[{"Key": STATUS_TAG, "Value": STATUS_RELEASED}])
        if copies:
            # The copies describe a containment that is over; a later one writes its own.
            ec2.delete_tags(Resources=[run.s.instance_id], Tags=[{"Key": k} for k in copies])
        run.record(cls.name, DONE, detail)
