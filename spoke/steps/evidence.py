"""Evidence: one crash-consistent snapshot set of every attached EBS volume.

``CreateSnapshots`` with an instance specification snapshots all the instance's volumes at the
same point in time in one call; the snapshots are tagged at creation with the finding and the
instance, and never waited for (they complete in the background). A resumed containment first
looks for the snapshots an earlier run made for the same finding, so evidence is taken once.
"""

from __future__ import annotations

from spoke.models import FINDING_TAG, INSTANCE_TAG
from spoke.steps.base import ALREADY, DONE, SKIPPED, WOULD, IsolateRun, LaterStep, ReleaseRun


class Snapshots(LaterStep):
    name = "snapshots"
    actions = frozenset({"ec2:CreateSnapshots", "ec2:CreateTags", "ec2:DescribeSnapshots"})

    @classmethod
    def skip_reason(cls, run: IsolateRun) -> str | None:
        if not run.p.snapshot_volumes:
            return "off (plan.snapshot_volumes)"
        if not run.s.volumes:
            return "no EBS volumes"
        return None

    @classmethod
    def apply(cls, run: IsolateRun) -> None:
        instance_id, finding = run.s.instance_id, run.p.finding_id
        ec2 = run.clients.ec2
        if run.resumed or any(
            e.found_on != "original" for e in run.s.enis if e.eni_id not in run.swapped_enis
        ):
            # An earlier run got this far maybe: find its snapshots (always filter: an account
            # lists thousands of public snapshots otherwise).
            earlier = ec2.describe_snapshots(
                OwnerIds=["self"],
                Filters=[
                    {"Name": f"tag:{INSTANCE_TAG}", "Values": [instance_id]},
                    {"Name": f"tag:{FINDING_TAG}", "Values": [finding]},
                ],
            ).get("Snapshots", [])
            if earlier:
                run.snapshot_ids = tuple(sorted(s["SnapshotId"] for s in earlier))
                run.record(cls.name, ALREADY, f"taken earlier: {', '.join(run.snapshot_ids)}")
                return
        if run.dry_run:
            run.record(cls.name, WOULD, f"would snapshot {len(run.s.volumes)} volume(s)")
            return
        resp = ec2.create_snapshots(
            InstanceSpecification={"InstanceId": instance_id, "ExcludeBootVolume": False},
            Description=f"orgcontain evidence: {instance_id}, finding {finding}"[:255],
            TagSpecifications=[
                {
                    "ResourceType": "snapshot",
                    "Tags": [
                        {"Key": FINDING_TAG, "Value": finding},
                        {"Key": INSTANCE_TAG, "Value": instance_id},
                        {"Key": "Name", "Value": f"orgcontain {instance_id}"},
                    ],
                }
            ],
        )
        run.snapshot_ids = tuple(s["SnapshotId"] for s in resp.get("Snapshots", []))
        run.record(cls.name, DONE, f"started {', '.join(run.snapshot_ids)} (not waited for)")

    @classmethod
    def restore(cls, run: ReleaseRun) -> None:
        run.record(cls.name, SKIPPED, "evidence snapshots are kept")
