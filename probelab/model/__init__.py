"""A model of kubelet's probes, restarts and back-off, with no knowledge of the harness.

Everything that says *when* kubelet will probe, kill, restart, back off or mark a pod Ready
lives here, once: probe settings and how a probe's handler and port resolve
(:mod:`.probes`), kubelet's rules and constants per version (:mod:`.rules`), what the
node adds (:mod:`.node`), what the container's process does (:mod:`.app`, with the lab
image's facts in :mod:`.lab_app`), the event-by-event engine (:mod:`.simulate`), its
randomness sampled into odds (:mod:`.odds`), and the deadlines the labs wait with
(:mod:`.waits`). The package imports nothing of probelab's harness, so the harness, the
CLI and the benchmarks all read the same rules.
"""
