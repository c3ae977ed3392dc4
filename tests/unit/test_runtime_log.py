"""containerd's CRI log read into exact starts and stops (lines as containerd 1.6 writes them)."""

from probelab.clusters.local.runtime_log import read_runtime

NS = "probelab-observe-ab12cd"
Q = '\\"'  # containerd escapes the quotes inside msg="..."


def line(second: str, message: str) -> str:
    return f'time="2026-12-02T13:40:{second}Z" level=info msg="{message}"'


def sandbox(name: str, namespace: str) -> str:
    meta = f"&PodSandboxMetadata{{Name:{name},Uid:u1,Namespace:{namespace},Attempt:0,}}"
    return f"RunPodSandbox for {meta}"


def created(attempt: int, container_id: str) -> str:
    meta = f"&ContainerMetadata{{Name:app,Attempt:{attempt},}}"
    created_id = f"returns container id {Q}{container_id}{Q}"
    return f"CreateContainer within sandbox {Q}s1{Q} for {meta} {created_id}"


LINES = [
    line("00.100000000", sandbox("bad", NS)),
    line("00.400000000", sandbox("bad", NS) + f" returns sandbox id {Q}s1{Q}"),
    line("00.450000000", created(0, "c1")),
    line("00.500123456", f"StartContainer for {Q}c1{Q} returns successfully"),
    line("09.600000000", f"StopContainer for {Q}c1{Q} with timeout 30 (s)"),
    line("09.900000000", f"StopContainer for {Q}c1{Q} returns successfully"),
    line("09.950000000", created(1, "c2")),
    line("10.000000000", f"StartContainer for {Q}c2{Q} returns successfully"),
    line("10.000000000", f"StartContainer for {Q}other{Q} returns successfully"),
    line("11.000000000", sandbox("bad", "elsewhere")),
]


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
