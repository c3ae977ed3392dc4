"""Reading probe runs out of kubelet's klog lines, as the local cluster writes them."""

from datetime import datetime

from probelab.clusters.local.kubelet_log import ProbeFailure, probe_failures

LINES = [
    'I1204 19:10:04.712030    1145 prober.go:122] "Probe failed" probeType="Readiness" '
    'pod="calib-a1/never-ready-1" podUID="bdcdd19e" containerName="app" probeResult="failure" '
    'output="dial tcp 10.244.0.13:8000: connect: connection refused"',
    'I1204 19:10:05.000001    1145 prober.go:122] "Probe failed" probeType="Liveness" '
    'pod="other-ns/never-ready-1" podUID="x" containerName="app" probeResult="failure" output=""',
    'I1204 19:10:05.250000    1145 kubelet.go:2400] "SyncLoop (PLEG): event" pod="calib-a1/x"',
    'W1204 19:11:06.500000    1145 prober.go:122] "Probe failed" probeType="Startup" '
    'pod="calib-a1/never-ready-2" podUID="y" containerName="side" probeResult="failure" output=""',
]


def test_only_the_namespaces_failed_probes_with_their_local_times() -> None:
    found = probe_failures(LINES, "calib-a1", year=2026)
    assert found == [
        ProbeFailure(
            datetime(2026, 12, 4, 19, 10, 4, 712030).timestamp(),
            "readiness",
            "never-ready-1",
            "app",
        ),
        ProbeFailure(
            datetime(2026, 12, 4, 19, 11, 6, 500000).timestamp(), "startup", "never-ready-2", "side"
        ),
    ]


def test_a_line_cut_short_is_not_a_probe() -> None:
    assert probe_failures([LINES[0][:60], ""], "calib-a1", year=2026) == []
