"""How long the emulated organization takes to build (issue 2: under 3 s per fixture)."""

import time, statistics
from moto import mock_aws
from hub.demo.org import EmulatedOrg, fake_credentials

fake_credentials()
for variant in (False, True):
    ts = []
    ts_first = []
    for i in range(5):
        with mock_aws():
            t = time.perf_counter()
            o = EmulatedOrg(separate_guardduty_admin=variant)
            t1 = time.perf_counter()
            o.workload("dev").run_instance(enis=2)
            t2 = time.perf_counter()
        ts.append(t1 - t)
        ts_first.append(t2 - t)
    print(
        "separate_admin" if variant else "default",
        "org build median %.3fs" % statistics.median(ts),
        "org+first instance median %.3fs max %.3fs" % (statistics.median(ts_first), max(ts_first)),
    )
