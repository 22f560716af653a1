"""Evidence protection: termination protection on, shutdown behaviour ``stop``, volumes kept.

Each is its own ``ModifyInstanceAttribute`` call (one attribute per call), made only when the
value differs; the previous values are recorded (DescribeInstanceAttribute for the two
attributes, the describe for ``DeleteOnTermination``) and restored on release.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from spoke.errors import error_code
from spoke.steps.base import ALREADY, DONE, SKIPPED, WOULD, IsolateRun, LaterStep, ReleaseRun

# e.g. Spot instances cannot take termination protection or shutdown behaviour "stop" everywhere.
UNSUPPORTED = frozenset({"UnsupportedOperation", "InvalidParameterCombination"})


def _off(run: IsolateRun) -> str | None:
    return None if run.p.termination_protection else "off (plan.termination_protection)"


class TerminationProtection(LaterStep):
    name = "termination-protection"
    actions = frozenset({"ec2:DescribeInstanceAttribute", "ec2:ModifyInstanceAttribute"})
    release_actions = frozenset({"ec2:DescribeInstanceAttribute", "ec2:ModifyInstanceAttribute"})

    @classmethod
    def skip_reason(cls, run: IsolateRun) -> str | None:
        return _off(run)

    @classmethod
    def discover(cls, run: IsolateRun) -> None:
        resp = run.clients.ec2.describe_instance_attribute(
            InstanceId=run.s.instance_id, Attribute="disableApiTermination"
        )
        run.update(disable_api_termination=bool(resp.get("DisableApiTermination", {}).get("Value", False)))

    @classmethod
    def apply(cls, run: IsolateRun) -> None:
        if run.s.disable_api_termination:
            run.record(cls.name, ALREADY, "was already on")
            return
        if run.dry_run:
            run.record(cls.name, WOULD, "would turn termination protection on")
            return
        try:
            run.clients.ec2.modify_instance_attribute(
                InstanceId=run.s.instance_id, DisableApiTermination={"Value": True}
            )
        except ClientError as exc:
            if error_code(exc) not in UNSUPPORTED:
                raise
            run.record(cls.name, SKIPPED, f"not supported for this instance ({error_code(exc)})")
            return
        run.record(cls.name, DONE, "termination protection on")

    @classmethod
    def restore(cls, run: ReleaseRun) -> None:
        if run.s.disable_api_termination is None:
            run.record(cls.name, SKIPPED, "original value not recorded")
        elif run.s.disable_api_termination:
            run.record(cls.name, ALREADY, "was on before containment: left on")
        elif not run.clients.ec2.describe_instance_attribute(
            InstanceId=run.s.instance_id, Attribute="disableApiTermination"
        )["DisableApiTermination"]["Value"]:
            run.record(cls.name, ALREADY, "already off")
        else:
            run.clients.ec2.modify_instance_attribute(
                InstanceId=run.s.instance_id, DisableApiTermination={"Value": False}
            )
            run.record(cls.name, DONE, "termination protection off again")


class ShutdownBehavior(LaterStep):
    name = "shutdown-behavior"
    actions = frozenset({"ec2:DescribeInstanceAttribute", "ec2:ModifyInstanceAttribute"})
    release_actions = frozenset({"ec2:DescribeInstanceAttribute", "ec2:ModifyInstanceAttribute"})

    @classmethod
    def skip_reason(cls, run: IsolateRun) -> str | None:
        return _off(run)

    @classmethod
    def discover(cls, run: IsolateRun) -> None:
        resp = run.clients.ec2.describe_instance_attribute(
            InstanceId=run.s.instance_id, Attribute="instanceInitiatedShutdownBehavior"
        )
        run.update(shutdown_behavior=resp.get("InstanceInitiatedShutdownBehavior", {}).get("Value", "stop"))

    @classmethod
    def apply(cls, run: IsolateRun) -> None:
        if run.s.shutdown_behavior == "stop":
            run.record(cls.name, ALREADY, "was already stop")
            return
        if run.dry_run:
            run.record(cls.name, WOULD, f"would change shutdown behaviour {run.s.shutdown_behavior} -> stop")
            return
        try:
            run.clients.ec2.modify_instance_attribute(
                InstanceId=run.s.instance_id, InstanceInitiatedShutdownBehavior={"Value": "stop"}
            )
        except ClientError as exc:
            if error_code(exc) not in UNSUPPORTED:
                raise
            run.record(cls.name, SKIPPED, f"not supported for this instance ({error_code(exc)})")
            return
        run.record(cls.name, DONE, f"shutdown behaviour {run.s.shutdown_behavior} -> stop")

    @classmethod
    def restore(cls, run: ReleaseRun) -> None:
        original = run.s.shutdown_behavior
        if original is None:
            run.record(cls.name, SKIPPED, "original value not recorded")
        elif original == "stop":
            run.record(cls.name, ALREADY, "was stop before containment")
        elif (
            run.clients.ec2.describe_instance_attribute(
                InstanceId=run.s.instance_id, Attribute="instanceInitiatedShutdownBehavior"
            )["InstanceInitiatedShutdownBehavior"]["Value"]
            == original
        ):
            run.record(cls.name, ALREADY, f"already {original}")
        else:
            run.clients.ec2.modify_instance_attribute(
                InstanceId=run.s.instance_id, InstanceInitiatedShutdownBehavior={"Value": original}
            )
            run.record(cls.name, DONE, f"shutdown behaviour back to {original}")


class DeleteOnTermination(LaterStep):
    name = "delete-on-termination"
    actions = frozenset({"ec2:ModifyInstanceAttribute"})
    release_actions = frozenset({"ec2:ModifyInstanceAttribute"})

    @classmethod
    def skip_reason(cls, run: IsolateRun) -> str | None:
        if not run.s.volumes:
            return "no EBS volumes"
        return _off(run)

    @classmethod
    def apply(cls, run: IsolateRun) -> None:
        # The describe's values are the live ones (the recorded ones on a resume, where the step
        # only runs again if it did not complete: setting false twice is harmless).
        marked = [v for v in run.s.volumes if v.delete_on_termination]
        if not marked:
            run.record(cls.name, ALREADY, "no volume is deleted on termination")
            return
        if run.dry_run:
            run.record(cls.name, WOULD, f"would keep {', '.join(v.volume_id for v in marked)} on termination")
            return
        run.clients.ec2.modify_instance_attribute(
            InstanceId=run.s.instance_id,
            BlockDeviceMappings=[
                {"DeviceName": v.device_name, "Ebs": {"DeleteOnTermination": False}} for v in marked
            ],
        )
        run.record(cls.name, DONE, f"kept on termination: {', '.join(v.volume_id for v in marked)}")

    @classmethod
    def restore(cls, run: ReleaseRun) -> None:
        live = {v.volume_id: v for v in (run.live.volumes if run.live else ())}
        todo = [
            v
            for v in run.s.volumes
            if v.volume_id in live and live[v.volume_id].delete_on_termination != v.delete_on_termination
        ]
        if not todo:
            run.record(cls.name, ALREADY, "every attached volume has its original setting")
            return
        run.clients.ec2.modify_instance_attribute(
            InstanceId=run.s.instance_id,
            BlockDeviceMappings=[
                {"DeviceName": v.device_name, "Ebs": {"DeleteOnTermination": v.delete_on_termination}}
                for v in todo
            ],
        )
        run.record(cls.name, DONE, f"restored on {', '.join(v.volume_id for v in todo)}")
