"""Take the instance out of its Auto Scaling group before the network change.

Once quarantined, the instance fails its health checks and the group would terminate it, with
the evidence. Detach (the default) makes it standalone; standby keeps it in the group's books
without traffic or health-check replacement. Both keep the desired capacity, so the group
launches a replacement. moto (and, briefly, AWS) keeps a standby or detached instance registered
in the group's target groups, so the load-balancer step deregisters it explicitly.
"""

from __future__ import annotations

from spoke.steps.base import ALREADY, DONE, FAILED, SKIPPED, WOULD, IsolateRun, ReleaseRun, Step

OUT_OF_SERVICE = ("Standby", "EnteringStandby", "Detaching", "Detached")


class AutoScaling(Step):
    name = "autoscaling"
    actions = frozenset(
        {
            "autoscaling:DescribeAutoScalingInstances",
            "autoscaling:DetachInstances",
            "autoscaling:EnterStandby",
        }
    )
    release_actions = frozenset(
        {
            "autoscaling:DescribeAutoScalingInstances",
            "autoscaling:AttachInstances",
            "autoscaling:ExitStandby",
        }
    )

    @classmethod
    def isolate(cls, run: IsolateRun) -> None:
        group = run.s.autoscaling_group
        if not group:
            run.record(cls.name, SKIPPED, "not in an Auto Scaling group")
            return
        if not run.p.detach_from_autoscaling:
            run.record(cls.name, SKIPPED, "off (plan.detach_from_autoscaling)")
            return
        asg = run.clients.autoscaling
        found = asg.describe_auto_scaling_instances(InstanceIds=[run.s.instance_id])["AutoScalingInstances"]
        if not found:
            run.record(cls.name, ALREADY, f"no longer in {group}")
            return
        state = found[0]["LifecycleState"]
        group = found[0]["AutoScalingGroupName"]
        if state in OUT_OF_SERVICE:
            run.record(cls.name, ALREADY, f"{state} in {group}")
            return
        if state.startswith("Terminat"):
            run.record(cls.name, FAILED, f"{group} is already terminating it ({state})", "asg-terminating")
            return
        action = run.p.autoscaling_action
        if run.dry_run:
            run.record(cls.name, WOULD, f"would {action} from {group} (capacity replaced)")
            return
        # Keep the desired capacity: the group launches a replacement, the app keeps its capacity,
        # and no minimum-size check can refuse the call.
        if action == "standby":
            asg.enter_standby(
                InstanceIds=[run.s.instance_id],
                AutoScalingGroupName=group,
                ShouldDecrementDesiredCapacity=False,
            )
        else:
            asg.detach_instances(
                InstanceIds=[run.s.instance_id],
                AutoScalingGroupName=group,
                ShouldDecrementDesiredCapacity=False,
            )
        run.update(autoscaling_action=action, autoscaling_group=group)
        run.record(cls.name, DONE, f"{'standby in' if action == 'standby' else 'detached from'} {group}")

    @classmethod
    def restore(cls, run: ReleaseRun) -> None:
        action, group = run.s.autoscaling_action, run.s.autoscaling_group
        if action is None or group is None:
            run.record(cls.name, SKIPPED, "containment did not take it out of a group")
            return
        if not run.reattach_asg:
            run.record(cls.name, SKIPPED, f"not re-attached to {group} (not asked)")
            return
        asg = run.clients.autoscaling
        found = asg.describe_auto_scaling_instances(InstanceIds=[run.s.instance_id])["AutoScalingInstances"]
        state = found[0]["LifecycleState"] if found else None
        if action == "standby":
            if state == "Standby":
                asg.exit_standby(InstanceIds=[run.s.instance_id], AutoScalingGroupName=group)
                run.record(cls.name, DONE, f"back in service in {group}")
            else:
                run.record(cls.name, ALREADY if state else SKIPPED, f"{state or 'not in a group'}")
            return
        if found:
            run.record(cls.name, ALREADY, f"{state} in {found[0]['AutoScalingGroupName']}")
            return
        # AttachInstances raises the desired capacity by one (the replacement stays).
        asg.attach_instances(InstanceIds=[run.s.instance_id], AutoScalingGroupName=group)
        run.record(cls.name, DONE, f"attached to {group} (desired capacity +1)")
