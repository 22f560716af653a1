"""How long the emulated organization takes to build (issue 2: under 3 s per fixture).

Run: python benchmarks/org_fixture.py [REPEATS]. Prints medians over REPEATS fresh mocks.
"""

from __future__ import annotations

import statistics
import sys
import time

from moto import mock_aws

from hub.demo.org import EmulatedOrg, fake_credentials


def measure(repeats: int = 5) -> dict[str, float]:
    fake_credentials()
    out: dict[str, float] = {}
    for variant in (False, True):
        org_only: list[float] = []
        with_instance: list[float] = []
        for _ in range(repeats):
            with mock_aws():
                start = time.perf_counter()
                org = EmulatedOrg(separate_guardduty_admin=variant)
                built = time.perf_counter()
                org.workload("dev").run_instance(enis=2)
                done = time.perf_counter()
            org_only.append(built - start)
            with_instance.append(done - start)
        name = "separate_admin" if variant else "default"
        out[f"{name}_org_s"] = statistics.median(org_only)
        out[f"{name}_org_and_first_instance_s"] = statistics.median(with_instance)
        out[f"{name}_org_and_first_instance_max_s"] = max(with_instance)
    return out


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for key, value in measure(n).items():
        print(f"{key:45s} {value:.3f}")
