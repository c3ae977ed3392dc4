"""containerd's CRI log read into exact starts and stops (lines as containerd 1.6 writes them)."""

from probelab.clusters.local.runtime_log import read_runtime

NS = "probelab-observe-ab12cd"
LINES = [
    f'time="2026-12-02T13:40:00.100000000Z" level=info msg="RunPodSandbox for &PodSandboxMetadata{{Name:bad,Uid:u1,Namespace:{NS},Attempt:0,}}"',
    f'time="2026-12-02T13:40:00.400000000Z" level=info msg="RunPodSandbox for &PodSandboxMetadata{{Name:bad,Uid:u1,Namespace:{NS},Attempt:0,}} returns sandbox id \\"s1\\""',
    'time="2026-12-02T13:40:00.450000000Z" level=info msg="CreateContainer within sandbox \\"s1\\" for &ContainerMetadata{Name:app,Attempt:0,} returns container id \\"c1\\""',
    'time="2026-12-02T13:40:00.500123456Z" level=info msg="StartContainer for \\"c1\\" returns successfully"',
    'time="2026-12-02T13:40:09.600000000Z" level=info msg="StopContainer for \\"c1\\" with timeout 30 (s)"',
    'time="2026-12-02T13:40:09.900000000Z" level=info msg="StopContainer for \\"c1\\" returns successfully"',
    'time="2026-12-02T13:40:09.950000000Z" level=info msg="CreateContainer within sandbox \\"s1\\" for &ContainerMetadata{Name:app,Attempt:1,} returns container id \\"c2\\""',
    'time="2026-12-02T13:40:10.000000000Z" level=info msg="StartContainer for \\"c2\\" returns successfully"',
    'time="2026-12-02T13:40:10.000000000Z" level=info msg="StartContainer for \\"other\\" returns successfully"',
    'time="2026-12-02T13:40:11.000000000Z" level=info msg="RunPodSandbox for &PodSandboxMetadata{Name:bad,Uid:u9,Namespace:elsewhere,Attempt:0,}"',
]  # fmt: skip


def test_starts_and_stops_come_out_exact_and_in_attempt_order() -> None:
    pods = read_runtime(LINES, NS)
    assert list(pods) == ["bad"]
    bad = pods["bad"]
    starts = bad.starts("app")
    assert len(starts) == 2 and round(starts[1] - starts[0], 6) == 9.499877
    assert bad.sandbox_asked is not None and round(starts[0] - bad.sandbox_asked, 6) == 0.400123
    first = bad.attempts[0]
    assert first.stop_asked is not None and first.stopped is not None
    assert round(first.stopped - first.stop_asked, 3) == 0.3
