"""Take the instance profile away; optionally revoke the role's older sessions.

Disassociating the profile stops new credentials from the instance metadata service; credentials
already issued stay valid until they expire (up to hours). Revoking them means an inline deny on
every session of the role issued before now (``aws:TokenIssueTime``), which hits every holder of
the role (all instances sharing it, any other principal): off by default, and only after the
profile is gone, else the instance would fetch fresh credentials the deny does not cover.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from spoke.errors import error_code
from spoke.steps.base import ALREADY, DONE, FAILED, SKIPPED, WOULD, IsolateRun, LaterStep, ReleaseRun

REVOKE_POLICY_NAME = "orgcontain-revoke-older-sessions"
ASSOCIATED = ("associated", "associating")


def _associations(run: IsolateRun | ReleaseRun) -> list[tuple[str, str]]:
    """(association id, profile ARN) of the instance's live profile associations."""
    resp = run.clients.ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [run.s.instance_id]}]
    )
    return [
        (a["AssociationId"], a.get("IamInstanceProfile", {}).get("Arn", ""))
        for a in resp.get("IamInstanceProfileAssociations", [])
        if a.get("State") in ASSOCIATED
    ]


class InstanceProfile(LaterStep):
    name = "instance-profile"
    actions = frozenset({"ec2:DescribeIamInstanceProfileAssociations", "ec2:DisassociateIamInstanceProfile"})
    release_actions = frozenset(
        {
            "ec2:DescribeIamInstanceProfileAssociations",
            "ec2:AssociateIamInstanceProfile",
            # Associating a profile passes its role to EC2.
            "iam:PassRole",
        }
    )

    @classmethod
    def skip_reason(cls, run: IsolateRun) -> str | None:
        if not run.p.detach_instance_profile:
            return "off (plan.detach_instance_profile)"
        if not run.s.instance_profile_arn:
            return "no instance profile"
        return None

    @classmethod
    def discover(cls, run: IsolateRun) -> None:
        found = _associations(run)
        run.update(instance_profile_association_id=found[0][0] if found else None)

    @classmethod
    def apply(cls, run: IsolateRun) -> None:
        # On a resume the association recorded earlier may be gone or replaced: look again.
        ids = [a for a, _ in _associations(run)] if run.resumed else [run.s.instance_profile_association_id]
        ids = [a for a in ids if a]
        if not ids:
            run.record(cls.name, ALREADY, "no profile associated")
            return
        if run.dry_run:
            run.record(cls.name, WOULD, f"would disassociate {run.s.instance_profile_arn}")
            return
        for association in ids:
            try:
                run.clients.ec2.disassociate_iam_instance_profile(AssociationId=association)
            except ClientError as exc:
                if error_code(exc) != "InvalidAssociationID.NotFound":
                    raise
        run.record(cls.name, DONE, f"disassociated {run.s.instance_profile_arn}")

    @classmethod
    def restore(cls, run: ReleaseRun) -> None:
        arn = run.s.instance_profile_arn
        if not arn:
            run.record(cls.name, SKIPPED, "had no instance profile")
            return
        found = _associations(run)
        if any(a == arn for _, a in found):
            run.record(cls.name, ALREADY, f"{arn} is associated")
            return
        if found:
            run.record(cls.name, SKIPPED, f"another profile is associated ({found[0][1]}): left as is")
            return
        try:
            run.clients.ec2.associate_iam_instance_profile(
                IamInstanceProfile={"Arn": arn}, InstanceId=run.s.instance_id
            )
        except ClientError as exc:
            if error_code(exc) != "IncorrectState":
                raise
            run.record(cls.name, ALREADY, "a profile was associated meanwhile")
            return
        run.record(cls.name, DONE, f"re-associated {arn}")


def revoke_policy(issued_before: datetime) -> str:
    """Deny everything to sessions of the role issued before ``issued_before`` (AWSRevokeOlderSessions)."""
    stamp = issued_before.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "OrgContainRevokeOlderSessions",
                    "Effect": "Deny",
                    "Action": "*",
                    "Resource": "*",
                    "Condition": {"DateLessThan": {"aws:TokenIssueTime": stamp}},
                }
            ],
        }
    )


class RevokeSessions(LaterStep):
    name = "revoke-sessions"
    actions = frozenset({"iam:GetInstanceProfile", "iam:PutRolePolicy"})

    @classmethod
    def skip_reason(cls, run: IsolateRun) -> str | None:
        if not run.p.revoke_role_sessions:
            return "off (plan.revoke_role_sessions)"
        if not run.s.instance_profile_arn:
            return "no instance profile"
        return None

    @classmethod
    def apply(cls, run: IsolateRun) -> None:
        name = str(run.s.instance_profile_arn).rsplit("/", 1)[-1]
        profile = run.clients.iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        roles = [r["RoleName"] for r in profile.get("Roles", [])]
        if run.dry_run:
            run.record(cls.name, WOULD, f"would deny sessions of {', '.join(roles)} issued before now")
            return
        disassociated = run.outcome(InstanceProfile.name)
        if disassociated is None or disassociated.status not in (DONE, ALREADY):
            # Revoking while the profile is still associated would be undone by fresh credentials.
            run.record(cls.name, FAILED, "instance profile still associated", "prerequisite-failed")
            return
        now = datetime.now(UTC)
        for role in roles:
            run.clients.iam.put_role_policy(
                RoleName=role, PolicyName=REVOKE_POLICY_NAME, PolicyDocument=revoke_policy(now)
            )
        run.record(cls.name, DONE, f"denied sessions of {', '.join(roles)} issued before {now.isoformat()}")

    @classmethod
    def restore(cls, run: ReleaseRun) -> None:
        run.record(
            cls.name,
            SKIPPED,
            f"inline policy {REVOKE_POLICY_NAME} left in place: "
            "it only denies sessions issued before containment",
        )
